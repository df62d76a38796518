//! The descriptor file's errors, each with its file, line and field.

use super::*;

// ---------------------------------------------------------------------------------------------
// Configuration errors

fn error(yaml: &str) -> ConfigError {
    match EnvoyConfig::from_yaml(yaml, "ratelimit.yaml") {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(err) => err,
    }
}

#[test]
fn an_unknown_unit_names_file_line_and_field() {
    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      requests_per_unit: 1\n      unit: minit\n",
    );
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml:6: descriptors[0].rate_limit.unit: unknown unit \"minit\"; \
         expected second, minute, hour, day, week, month or year"
    );
    assert_eq!(err.file(), "ratelimit.yaml");
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit.unit"));
}

#[test]
fn unknown_fields_are_errors_so_a_typo_never_disables_a_limit() {
    // A typo in the rate limit.
    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: second\n      request_per_unit: 5\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit"));
    assert!(
        err.message()
            .starts_with("unknown field `request_per_unit`, expected one of"),
        "{err}"
    );

    // A typo in a nested descriptor.
    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n        shadowmode: true\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].descriptors[0]"));
    assert!(
        err.message().starts_with("unknown field `shadowmode`"),
        "{err}"
    );

    // A typo at the top.
    let err = error("domain: edge\ndescriptor:\n  - key: a\n");
    assert_eq!(err.line(), Some(2));
    assert!(
        err.message().starts_with("unknown field `descriptor`"),
        "{err}"
    );
}

#[test]
fn incomplete_or_contradictory_rate_limits_are_errors() {
    let err =
        error("domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: second\n");
    assert_eq!(err.line(), Some(5));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit"));
    assert!(
        err.message()
            .starts_with("missing field `requests_per_unit`"),
        "{err}"
    );

    let err =
        error("domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { requests_per_unit: 3 }\n");
    assert!(err.message().starts_with("missing field `unit`"), "{err}");

    // `rate_limit:` with nothing under it is not "no limit".
    let err = error("domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n  - key: b\n");
    assert_eq!(err.field(), Some("descriptors[0].rate_limit"));
    assert!(err.message().starts_with("missing field `unit`"), "{err}");

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unlimited: true, unit: second }\n",
    );
    assert_eq!(err.line(), Some(4));
    assert_eq!(
        err.message(),
        "unlimited: true takes no unit; remove it or unlimited"
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: 3, strategy: leaky-bucket }\n",
    );
    assert_eq!(err.field(), Some("descriptors[0].rate_limit.strategy"));
    assert!(
        err.message()
            .starts_with("unknown strategy \"leaky-bucket\""),
        "{err}"
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: 3, burst: 5 }\n",
    );
    assert_eq!(
        err.message(),
        "burst applies to token-bucket only, not fixed-window"
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: -3 }\n",
    );
    assert_eq!(
        err.field(),
        Some("descriptors[0].rate_limit.requests_per_unit")
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      name: a\n      unit: second\n      requests_per_unit: 1\n      replaces: [{ name: a }]\n",
    );
    assert_eq!(err.line(), Some(5));
    assert_eq!(err.message(), "replaces its own name \"a\"");
}

#[test]
fn keys_domains_and_siblings_are_checked() {
    let err = error("domain: edge\ndescriptors:\n  - key: \"\"\n");
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml:3: descriptors[0].key: must not be empty"
    );

    let err = error("descriptors: []\n");
    assert!(err.message().starts_with("missing field `domain`"), "{err}");

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    value: x\n  - key: b\n  - key: a\n    value: x\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[2]"));
    assert_eq!(
        err.message(),
        "duplicate descriptor: key \"a\" with value \"x\" is already descriptor 0 of this list"
    );

    let err = error("domain: edge\n---\ndomain: other\n---\ndomain: edge\n");
    assert_eq!(err.line(), Some(5));
    assert!(
        err.message().starts_with("duplicate domain \"edge\""),
        "{err}"
    );

    let err = error("- edge\n");
    assert_eq!(err.line(), Some(1));
    assert!(err.message().starts_with("invalid type"), "{err}");
}

#[test]
fn replaces_must_name_a_rate_limit_of_the_domain() {
    let err = error(
        r#"domain: edge
descriptors:
  - key: a
    rate_limit:
      name: per_a
      unit: second
      requests_per_unit: 1
  - key: b
    rate_limit:
      unit: second
      requests_per_unit: 1
      replaces:
        - name: per_a
        - name: per_x
"#,
    );
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml:14: descriptors[1].rate_limit.replaces[1].name: \
         no rate limit of this domain is named \"per_x\"; replaces must name a rate limit's `name`"
    );
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let err = error("domain: edge\ndescriptors:\n  - key: a\n   value: b\n");
    assert_eq!(err.file(), "ratelimit.yaml");
    assert!(err.line().is_some(), "{err}");
    assert!(err.to_string().starts_with("ratelimit.yaml:"), "{err}");
}

#[test]
fn several_documents_or_a_list_hold_several_domains() {
    let config = EnvoyConfig::from_yaml(
        "domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: day, requests_per_unit: 1 }\n---\ndomain: b\n",
        "rl.yaml",
    )
    .expect("valid");
    assert_eq!(config.domains().collect::<Vec<_>>(), ["a", "b"]);

    let config = EnvoyConfig::from_yaml(
        "- domain: a\n- domain: b\n  descriptors:\n    - key: k\n      value: 42\n      rate_limit: { unit: WEEK, requests_per_unit: 7 }\n",
        "rl.yaml",
    )
    .expect("valid");
    let policies: Vec<String> = config
        .policies()
        .map(|(name, policy)| format!("{name}: {policy}"))
        .collect();
    assert_eq!(policies, ["envoy:b:k=42: 7/7 days (fixed-window)"]);

    // Line numbers count from the top of the file, across documents.
    let err = error(
        "domain: a\n---\ndomain: b\ndescriptors:\n  - key: k\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit.unit"));

    // In a list, the path starts with the domain's index.
    let err = error(
        "- domain: a\n- domain: b\n  descriptors:\n    - key: k\n      rate_limit: { unit: second }\n",
    );
    assert_eq!(err.field(), Some("[1].descriptors[0].rate_limit"));

    // A file without a domain is a mistake (a truncated file must not allow everything).
    let err = error("# nothing yet\n");
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml: no domain; expected `domain:` and `descriptors:`"
    );
}

#[test]
fn every_prefix_of_a_file_is_an_answer_never_a_panic() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/envoy/ratelimit.yaml"
    ))
    .expect("fixture");
    for (end, _) in text.char_indices() {
        let prefix = &text[..end];
        if let Err(err) = EnvoyConfig::from_yaml(prefix, "rl.yaml") {
            assert!(err.to_string().starts_with("rl.yaml"), "{err}");
        }
        // Lines cut short, and the file mangled one byte at a time.
        let mangled = format!("{prefix}\u{0}{}", &text[end..]);
        let _ = EnvoyConfig::from_yaml(&mangled, "rl.yaml");
    }
}

#[test]
fn the_fixture_loads_and_lists_its_policies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/envoy/ratelimit.yaml");
    let config = EnvoyConfig::load(path).expect("valid fixture");
    let listing: Vec<String> = config.limits().iter().map(ToString::to_string).collect();
    assert_eq!(
        listing,
        [
            "envoy:edge:remote_address: 60/minute (fixed-window), name per_ip",
            "envoy:edge:tenant=acme/user: 10/second (token-bucket, burst 20), name acme_user",
            "envoy:edge:plan=internal: unlimited, replaces per_ip, acme_user",
            "envoy:edge:path=%2Fbeta: 1000/hour (sliding-window-counter), shadow mode",
            "envoy:internal:generic_key=jobs*: 5/day (fixed-window)",
        ]
    );
    assert_eq!(config.policies().count(), 4);

    let err = EnvoyConfig::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/envoy/missing.yaml"
    ))
    .expect_err("no such file");
    assert!(
        err.to_string().contains("missing.yaml: cannot read: "),
        "{err}"
    );
}
