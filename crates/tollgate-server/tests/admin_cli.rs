//! `tollgate peek` and `tollgate reset`: on a running server over memory (`--server`), and
//! directly in a Redis that a running server counts in (`--storage`), a reset clears what
//! the check API counted, and a peek shows what it sees; mistakes fail with what is wrong.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::process::Command;

use redis_support::RedisServer;
use serde_json::Value;
use support::{Tollgate, free_port, post, write_config};

const CONFIG: &str = r#"
[server]
admin_token = "s3cret"

[policies.login]
limits = "2/minute"
"#;

/// Runs `tollgate args...` with `env`: (success, stdout, stderr).
fn tollgate(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("the tollgate binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Checks `key` under `login` on the server at `api` until it is denied.
fn exhaust(api: std::net::SocketAddr, key: &str) {
    let body = format!(r#"{{"policy": "login", "key": "{key}"}}"#);
    for _ in 0..2 {
        assert_eq!(post(api, "/v1/check", &body).status, 200);
    }
    assert_eq!(post(api, "/v1/check", &body).status, 429);
}

#[test]
fn reset_on_a_server_clears_what_its_check_api_exhausted() {
    let config = write_config("tollgate.toml", CONFIG);
    let server = Tollgate::serve(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let api = server.api();
    let url = format!("http://{api}");
    exhaust(api, "user:42");

    let (ok, out, err) = tollgate(
        &["peek", "--policy", "login", "user:42", "--server", &url],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("login user:42: denied, 0 of 2 left, whole again in "),
        "{out}"
    );
    let (ok, out, err) = tollgate(
        &[
            "peek", "--policy", "login", "user:7", "--server", &url, "--json",
        ],
        &[],
    );
    assert!(ok, "{err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (answer["allowed"].as_bool(), answer["remaining"].as_u64()),
        (Some(true), Some(2))
    );

    // Without the token, or with a wrong one: refused, and nothing is cleared.
    let (ok, _, err) = tollgate(
        &["reset", "--policy", "login", "user:42", "--server", &url],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("401") && err.contains("--token"), "{err}");
    let (ok, _, err) = tollgate(
        &["reset", "--policy", "login", "user:42", "--server", &url],
        &[("TOLLGATE_ADMIN_TOKEN", "wrong")],
    );
    assert!(!ok && err.contains("401"), "{err}");
    assert_eq!(
        post(api, "/v1/check", r#"{"policy": "login", "key": "user:42"}"#).status,
        429
    );

    let (ok, out, err) = tollgate(
        &[
            "reset", "--policy", "login", "user:42", "--server", &url, "--token", "s3cret",
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "login user:42: reset");
    let (ok, out, err) = tollgate(
        &[
            "peek", "--policy", "login", "user:42", "--server", &url, "--json",
        ],
        &[("TOLLGATE_ADMIN_TOKEN", "s3cret")],
    );
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("JSON")["remaining"],
        2
    );
    assert_eq!(
        post(api, "/v1/check", r#"{"policy": "login", "key": "user:42"}"#).status,
        200
    );

    // The token from the environment works as well as the flag.
    let (ok, _, err) = tollgate(
        &[
            "reset", "--policy", "login", "user:42", "--server", &url, "--json",
        ],
        &[("TOLLGATE_ADMIN_TOKEN", "s3cret")],
    );
    assert!(ok, "{err}");

    let (ok, _, err) = tollgate(
        &["peek", "--policy", "signup", "user:42", "--server", &url],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains(r#"unknown policy "signup"; configured: login (404"#),
        "{err}"
    );
}

#[test]
fn mistakes_fail_with_what_is_wrong() {
    let config = write_config("tollgate.toml", CONFIG);
    let config = config.to_str().expect("utf-8");
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    for (args, expected) in [
        (
            vec!["peek", "--policy", "login", "k", "--server", &nowhere],
            "cannot reach the server at http://127.0.0.1:",
        ),
        (
            vec!["peek", "--policy", "login", "k", "--server", "ftp://x"],
            "expected http://HOST:PORT",
        ),
        (vec!["reset", "--policy", "login", "k"], "give --server URL"),
        // Flags that would be ignored are refused.
        (
            vec![
                "reset", "--policy", "login", "k", "--config", config, "--token", "t",
            ],
            "--server",
        ),
        (
            vec![
                "peek", "--policy", "login", "k", "--config", config, "--server", &nowhere,
            ],
            "cannot be used with",
        ),
        (
            vec!["reset", "--policy", "login", "k", "--config", config],
            "the storage is memory://",
        ),
        (
            vec![
                "peek",
                "--policy",
                "login",
                "k",
                "--config",
                "/nonexistent/t.toml",
            ],
            "/nonexistent/t.toml: cannot read",
        ),
        (
            vec![
                "peek",
                "--policy",
                "login",
                "k",
                "--config",
                config,
                "--storage",
                "redis://127.0.0.1:1",
            ],
            "cannot open storage",
        ),
    ] {
        let (ok, _, err) = tollgate(&args, &[]);
        assert!(!ok, "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn reset_in_redis_clears_the_count_a_running_server_sees() {
    let redis = RedisServer::start();
    let config = write_config("tollgate.toml", CONFIG);
    let config = config.to_str().expect("utf-8");
    let storage = redis.uri();
    let server = Tollgate::serve(
        &[
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--storage",
            &storage,
        ],
        &[],
    );
    let api = server.api();
    exhaust(api, "user:42");
    post(api, "/v1/check", r#"{"policy": "login", "key": "user:7"}"#);

    let direct = [
        "--policy",
        "login",
        "--config",
        config,
        "--storage",
        &storage,
        "--json",
    ];
    let peek = |key: &str| {
        let (ok, out, err) = tollgate(&[&["peek", key][..], &direct[..]].concat(), &[]);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).expect("JSON")
    };
    // What the server counted, seen in the storage.
    assert_eq!(peek("user:42")["allowed"], false);
    assert_eq!(peek("user:7")["remaining"], 1);

    let (ok, out, err) = tollgate(
        &[
            "reset",
            "user:42",
            "--policy",
            "login",
            "--config",
            config,
            "--storage",
            &storage,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "login user:42: reset");
    assert_eq!(peek("user:42")["remaining"], 2);
    assert_eq!(
        peek("user:7")["remaining"],
        1,
        "only the key given is reset"
    );
    assert_eq!(
        post(api, "/v1/check", r#"{"policy": "login", "key": "user:42"}"#).status,
        200
    );

    let (ok, _, err) = tollgate(
        &[
            "reset",
            "user:42",
            "--policy",
            "signup",
            "--config",
            config,
            "--storage",
            &storage,
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains(r#"unknown policy "signup""#), "{err}");
}
