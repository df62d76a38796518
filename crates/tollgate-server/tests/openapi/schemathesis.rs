//! schemathesis (from PyPI; `scripts/test` installs it) generates requests from the spec and
//! checks the live server's answers against it: statuses, content types, bodies, headers,
//! invalid requests refused, other methods refused, reset refused without the token.
//!
//! It runs twice: on the spec as it is (mostly mistakes: random policy names, rates that do
//! not parse), and on the spec with its request bodies narrowed to the configured policies,
//! small rates and two keys, so that answers of every kind (allowed, denied, shadow-denied,
//! banned, charged into debt, reset) are checked too.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Tollgate, write_config};

/// Policies of every kind; an admin token, so that reset is exercised.
const CONFIG: &str = r#"
[server]
admin_token = "s3cret"
headers = "both"

[policies.login]
limits = "3/minute"
ban_after = "2/minute"
ban_for = "1 hour"

[policies.trial]
limits = "1/minute"
shadow = true

[policies.tokens]
limits = "1000/minute"
strategy = "token-bucket"
"#;

/// The checks on answers to requests the spec allows, and to requests it does not.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance";
const CHECKS_ON_MISTAKES: &str = "negative_data_rejection,unsupported_method,ignored_auth";

#[test]
fn the_live_server_answers_as_the_spec_says() {
    let version = match Command::new("schemathesis").arg("--version").output() {
        Ok(output) if output.status.success() => output.stdout,
        _ => panic!(
            "schemathesis is not on PATH: run scripts/test (it runs `pip install schemathesis`), \
             or `pip install schemathesis`"
        ),
    };
    let version = String::from_utf8_lossy(&version).trim().to_owned();
    let config = write_config("tollgate.toml", CONFIG);
    let tollgate = Tollgate::serve(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let url = format!("http://{}", tollgate.api());
    let dir = config.parent().expect("the config's directory");

    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let checks = format!("{CHECKS},{CHECKS_ON_MISTAKES}");
    let stdout = schemathesis(&version, dir, &spec, &url, &checks);
    let text = std::fs::read_to_string(&spec).expect("the spec");
    let operations: usize =
        serde_json::from_str::<Value>(&text).expect("the spec is JSON")["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| item.as_object().map_or(0, serde_json::Map::len))
            .sum();
    assert!(
        stdout.contains(&format!("Tested: {operations}")),
        "not every one of the spec's {operations} operations was tested:\n{stdout}"
    );

    let narrowed = dir.join("narrowed.json");
    let mut value: Value = serde_json::from_str(&text).expect("the spec is JSON");
    narrow(&mut value);
    std::fs::write(&narrowed, value.to_string()).expect("write the narrowed spec");
    schemathesis(&version, dir, &narrowed, &url, CHECKS);
    drop(tollgate);
}

/// Runs schemathesis on `spec` against `url` with `checks` (25 examples per operation, a
/// fixed seed: about ten seconds); its output, after asserting that it found nothing.
fn schemathesis(version: &str, dir: &Path, spec: &Path, url: &str, checks: &str) -> String {
    let output = Command::new("schemathesis")
        .current_dir(dir)
        .arg("run")
        .arg(spec)
        .args(["--url", url, "--checks", checks])
        .args(["--header", "Authorization: Bearer s3cret"])
        .args(["--max-examples", "25", "--seed", "15", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--request-timeout", "5"])
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{version} on {}: the server's answers and the spec disagree (fix the server, or the \
         spec if the server is right):\n{stdout}\n{stderr}",
        spec.display()
    );
    stdout
}

/// Narrows the request bodies to what the configuration serves: its policy names, rates
/// small enough to run out, two keys, small costs.
fn narrow(spec: &mut Value) {
    let schemas = &mut spec["components"]["schemas"];
    let named = &mut schemas["NamedPolicyRequest"]["properties"];
    named["policy"]["enum"] = json!(["login", "trial", "tokens"]);
    let inline = &mut schemas["InlinePolicyRequest"]["properties"];
    inline["limits"]["pattern"] = json!("^[1-3]/(second|minute|hour)$");
    inline["burst"]["maximum"] = json!(5);
    inline["ban_after"]["pattern"] = json!("^[1-2]/minute$");
    inline["ban_for"]["enum"] = json!(["1 hour", "1 minute", null]);
    for request in ["NamedPolicyRequest", "InlinePolicyRequest"] {
        let properties = &mut schemas[request]["properties"];
        properties["key"]["enum"] = json!(["alice", "bob"]);
        properties["cost"]["maximum"] = json!(4);
    }
}
