//! `tollgate serve` and `tollgate check-config` as processes: the check API's answers,
//! reload, shutdown, configuration errors.

mod support;

use serde_json::json;
use support::{Tollgate, check_config, post, request, write_config};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
headers = "both"
admin_token = "s3cret"

[policies.login]
limits = "2/minute"

[policies.api]
limits = "1/second"
strategy = "token-bucket"
burst = 3
"#;

fn serve(config: &str) -> (Tollgate, std::path::PathBuf) {
    let path = write_config("tollgate.toml", config);
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8 path")], &[]);
    (server, path)
}

#[test]
fn check_allows_then_denies_with_headers() {
    let (server, _) = serve(CONFIG);
    let check = r#"{"policy": "login", "key": "user:42"}"#;
    let first = post(server.api(), "/v1/check", check);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.json(),
        json!({"allowed": true, "limit": 2, "remaining": 1, "reset_after_ms": 60000, "retry_after_ms": null, "shadow_denied": false})
    );
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""login";q=2;w=60"#)
    );
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(post(server.api(), "/v1/check", check).status, 200);
    let denied = post(server.api(), "/v1/check", check);
    assert_eq!(denied.status, 429);
    let body = denied.json();
    assert_eq!(body["allowed"], json!(false));
    let retry_ms = body["retry_after_ms"].as_u64().expect("a wait");
    assert!((59_000..=60_000).contains(&retry_ms), "{body}");
    assert_eq!(denied.header("retry-after"), Some("60"));
    // Another key has its own count; a peek charges nothing.
    assert_eq!(
        post(
            server.api(),
            "/v1/check",
            r#"{"policy":"login","key":"user:7"}"#
        )
        .status,
        200
    );
    let peek = post(
        server.api(),
        "/v1/peek",
        r#"{"policy":"login","key":"user:7"}"#,
    );
    assert_eq!(
        (peek.status, peek.json()["remaining"].clone()),
        (200, json!(1))
    );
    // Cost: the token bucket of 3 takes a cost of 3 once.
    let api = r#"{"policy":"api","key":"k","cost":3}"#;
    assert_eq!(
        post(server.api(), "/v1/check", api).json()["remaining"],
        json!(0)
    );
    assert_eq!(post(server.api(), "/v1/check", api).status, 429);
}

#[test]
fn inline_policies() {
    let (server, _) = serve(CONFIG);
    let inline = r#"{"limits": "1/minute", "strategy": "sliding-window", "key": "k"}"#;
    assert_eq!(post(server.api(), "/v1/check", inline).status, 200);
    assert_eq!(post(server.api(), "/v1/check", inline).status, 429);
    // Another inline policy is another count, whatever the key.
    let other = r#"{"limits": "2/minute", "key": "k"}"#;
    assert_eq!(post(server.api(), "/v1/check", other).status, 200);
}

#[test]
fn mistakes_get_clear_errors_never_a_500() {
    let (server, _) = serve(CONFIG);
    let cases: [(&str, u16, &str); 9] = [
        ("{bad json", 400, "invalid request body"),
        (r#"{"policy": "login"}"#, 400, "missing field `key`"),
        (
            r#"{"policy": "nope", "key": "k"}"#,
            404,
            r#"unknown policy \"nope\"; configured: api, login"#,
        ),
        (
            r#"{"limits": "5/minit", "key": "k"}"#,
            400,
            r#"limits: invalid rate \"5/minit\" at byte 2: unknown unit"#,
        ),
        (
            r#"{"limits": "5/minute", "strategy": "leaky", "key": "k"}"#,
            400,
            "strategy: unknown strategy",
        ),
        (
            r#"{"policy": "login", "limits": "5/minute", "key": "k"}"#,
            400,
            "not both",
        ),
        (r#"{"key": "k"}"#, 400, "missing \\\"policy\\\""),
        (
            r#"{"policy": "login", "key": "k", "cost": 3}"#,
            400,
            "can never fit",
        ),
        (
            r#"{"policy": "login", "key": "k", "colour": "red"}"#,
            400,
            "unknown field `colour`",
        ),
    ];
    for (body, status, message) in cases {
        let reply = post(server.api(), "/v1/check", body);
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        assert!(reply.body.contains(message), "{body}: {}", reply.body);
        assert!(reply.json()["error"].is_string());
    }
}

#[test]
fn reset_needs_the_admin_token() {
    let (server, _) = serve(CONFIG);
    let check = r#"{"policy": "login", "key": "k"}"#;
    post(server.api(), "/v1/check", check);
    post(server.api(), "/v1/check", check);
    assert_eq!(post(server.api(), "/v1/check", check).status, 429);
    assert_eq!(post(server.api(), "/v1/reset", check).status, 401);
    let wrong = [("Authorization", "Bearer guess")];
    assert_eq!(
        request(server.api(), "POST", "/v1/reset", &wrong, check).status,
        401
    );
    let right = [("Authorization", "Bearer s3cret")];
    let reset = request(server.api(), "POST", "/v1/reset", &right, check);
    assert_eq!((reset.status, reset.json()), (200, json!({"reset": true})));
    assert_eq!(post(server.api(), "/v1/check", check).status, 200);

    // Without a token in the config, reset is disabled.
    let (plain, _) =
        serve("[server]\nlisten = \"127.0.0.1:0\"\n[policies.login]\nlimits = \"1/minute\"\n");
    let refused = request(plain.api(), "POST", "/v1/reset", &right, check);
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("admin_token"));
}

#[test]
fn healthz_and_metrics() {
    let (server, _) = serve(CONFIG);
    let health = request(server.api(), "GET", "/healthz", &[], "");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], json!("ok"));
    for _ in 0..3 {
        post(
            server.api(),
            "/v1/check",
            r#"{"policy": "login", "key": "k"}"#,
        );
    }
    post(
        server.api(),
        "/v1/check",
        r#"{"limits": "1/minute", "key": "k"}"#,
    );
    let metrics = request(server.api(), "GET", "/metrics", &[], "");
    assert_eq!(metrics.status, 200);
    for line in [
        r#"tollgate_hits_total{policy="login",outcome="allowed"} 2"#,
        r#"tollgate_hits_total{policy="login",outcome="denied"} 1"#,
        r#"tollgate_hits_total{policy="inline",outcome="allowed"} 1"#,
        "tollgate_check_duration_seconds_count 4",
        "tollgate_storage_errors_total 0",
        "tollgate_storage_fallback 0",
    ] {
        assert!(
            metrics.body.contains(line),
            "missing {line:?} in\n{}",
            metrics.body
        );
    }
}

#[test]
fn no_config_serves_in_memory_on_the_given_address() {
    let server = Tollgate::serve(&["--listen", "127.0.0.1:0"], &[]);
    let reply = post(
        server.api(),
        "/v1/check",
        r#"{"limits": "1/minute", "key": "k"}"#,
    );
    assert_eq!(reply.status, 200);
    let health = request(server.api(), "GET", "/healthz", &[], "");
    assert_eq!(health.json()["storage"], json!("memory://"));
}

#[test]
fn sighup_reloads_and_keeps_counts_of_unchanged_policies() {
    let (server, path) = serve(CONFIG);
    let login = r#"{"policy": "login", "key": "k"}"#;
    assert_eq!(post(server.api(), "/v1/check", login).status, 200);
    let inline = r#"{"limits": "1/hour", "strategy": "sliding-window", "key": "k"}"#;
    assert_eq!(post(server.api(), "/v1/check", inline).status, 200);
    // A new policy, login unchanged.
    std::fs::write(
        &path,
        format!("{CONFIG}\n[policies.search]\nlimits = \"1/minute\"\n"),
    )
    .expect("rewrite config");
    server.signal("HUP");
    let search = r#"{"policy": "search", "key": "k"}"#;
    let mut reloaded = false;
    for _ in 0..100 {
        if post(server.api(), "/v1/peek", search).status == 200 {
            reloaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(reloaded, "the new policy appeared");
    // login's count survived the reload: one left, then denied.
    assert_eq!(
        post(server.api(), "/v1/check", login).json()["remaining"],
        json!(0)
    );
    assert_eq!(post(server.api(), "/v1/check", login).status, 429);
    // So did the inline policy's.
    assert_eq!(post(server.api(), "/v1/check", inline).status, 429);
    // A reload cannot change what is bound or opened: refused, the old configuration stays
    // (the policy added beside the change is not put in force either).
    std::fs::write(
        &path,
        CONFIG.replace("[server]\n", "[server]\non_storage_error = \"deny\"\n")
            + "\n[policies.later]\nlimits = \"1/minute\"\n",
    )
    .expect("rewrite config");
    server.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let later = r#"{"policy": "later", "key": "k"}"#;
    assert_eq!(post(server.api(), "/v1/peek", later).status, 404);
    // An invalid config is refused and the old one stays.
    std::fs::write(&path, "[policies.login]\nlimits = \"5/minit\"\n").expect("rewrite config");
    server.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(post(server.api(), "/v1/peek", search).status, 200);
    assert_eq!(post(server.api(), "/v1/check", login).status, 429);
    assert!(server.stop().success(), "SIGTERM is a clean exit");
}

#[test]
fn check_config_prints_policies_or_says_where_the_mistake_is() {
    let good = write_config("good.toml", CONFIG);
    let (ok, stdout, _) = check_config(&good);
    assert!(ok);
    assert!(
        stdout.contains("policy login: 2/minute (fixed-window)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("policy api: 1/second (token-bucket, burst 3)"),
        "{stdout}"
    );

    let cases = [
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[policies.login]\nlimits = \"5/minit\"\n",
            ":5: policies.login.limits: invalid rate \"5/minit\" at byte 2: unknown unit \"minit\"",
        ),
        (
            "[policies.login]\nlimits = \"5/minute\"\nstrategy = \"leaky-bucket\"\n",
            ":3: policies.login.strategy: unknown strategy \"leaky-bucket\"",
        ),
        (
            "[policies.login]\nlimits = \"5/minute\"\nburst = 10\n",
            ":3: policies.login.burst: burst applies to token-bucket only",
        ),
        (
            "[policies.login]\nlimit = \"5/minute\"\n",
            ":2: unknown field `limit`",
        ),
        (
            "[server]\nlisten = \"localhost\"\n",
            ":2: server.listen: invalid address \"localhost\"",
        ),
        (
            "[server]\non_storage_error = \"ignore\"\n",
            ":2: server.on_storage_error: unknown failure mode \"ignore\"",
        ),
        (
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:9\"\n\n[[proxy.routes]]\npath = \"/ping\"\npolicy = \"nope\"\n",
            ":7: proxy.routes[0].policy: unknown policy \"nope\"",
        ),
        ("[policies.login\n", ":1: "),
    ];
    for (text, expected) in cases {
        let path = write_config("tollgate.toml", text);
        let (ok, _, stderr) = check_config(&path);
        assert!(!ok, "{text}");
        let expected = format!("{}{expected}", path.display());
        assert!(
            stderr.starts_with(&expected),
            "{stderr:?} should start with {expected:?}"
        );
    }
    let (ok, _, stderr) = check_config(std::path::Path::new("/no/such/tollgate.toml"));
    assert!(!ok);
    assert!(
        stderr.contains("/no/such/tollgate.toml: cannot read"),
        "{stderr}"
    );
}
