//! The server's logs as an operator reads them: `--log-format json` lines with the listen
//! addresses and reloads, and denials at debug level (`RUST_LOG`) with their policy and the
//! client's key escaped.

mod support;

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Tollgate, free_port, post, request, write_config};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[policies.login]
limits = "1/minute"
"#;

/// The log's lines once one satisfies `wanted` (within 10 s), each parsed as JSON (a line
/// that is not JSON fails the test).
fn json_lines_until(log: &Path, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).expect("read the log");
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        let lines: Vec<Value> = complete
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("a log line that is not JSON ({err}): {line:?}"))
            })
            .collect();
        if lines.iter().any(&wanted) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no such line in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

#[test]
fn json_logs_say_where_each_listener_listens_and_why_a_reload_was_refused() {
    let config = write_config("tollgate.toml", CONFIG);
    let log = config.with_file_name("tollgate.log");
    let server = Tollgate::serve_logging_to(
        &[
            "--log-format",
            "json",
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &[],
        Stdio::from(File::create(&log).expect("create the log")),
    );
    let api = server.api().to_string();
    let lines = json_lines_until(&log, |line| message(line) == "listening");
    let listening = lines
        .iter()
        .find(|line| message(line) == "listening")
        .expect("a listening line");
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["listener"], "check API");
    assert_eq!(listening["fields"]["addr"], api.as_str());

    std::fs::write(&config, "[policies.login]\nlimits = \"5/minit\"\n").expect("rewrite");
    server.signal("HUP");
    let lines = json_lines_until(&log, |line| {
        message(line) == "configuration not reloaded, the old one stays"
    });
    let refused = lines
        .iter()
        .find(|line| message(line).starts_with("configuration not reloaded"))
        .expect("the refusal");
    assert_eq!(refused["level"], "ERROR");
    let reason = refused["fields"]["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("policies.login.limits: invalid rate"),
        "{reason}"
    );
}

#[test]
fn denials_are_logged_at_debug_with_policy_and_escaped_key() {
    let config = write_config("tollgate.toml", CONFIG);
    let log = config.with_file_name("tollgate.log");
    let server = Tollgate::serve_with_env(
        &[
            "--log-format",
            "json",
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &[],
        &[("RUST_LOG", "tollgate=debug")],
        Stdio::from(File::create(&log).expect("create the log")),
    );
    // A key with a newline and a quote, as a client may send.
    let body = r#"{"policy": "login", "key": "user\n\"42"}"#;
    assert_eq!(post(server.api(), "/v1/check", body).status, 200);
    assert_eq!(post(server.api(), "/v1/check", body).status, 429);
    let lines = json_lines_until(&log, |line| message(line) == "denied");
    let denials: Vec<&Value> = lines
        .iter()
        .filter(|line| message(line) == "denied")
        .collect();
    assert_eq!(denials.len(), 1, "one denial: {denials:?}");
    let denied = &denials[0];
    assert_eq!(denied["level"], "DEBUG");
    assert_eq!(denied["fields"]["policy"], "login");
    assert_eq!(denied["fields"]["key"], r#"user\n\"42"#);
    assert_eq!(denied["fields"]["shadow"], false);

    // Without debug, no denial is logged.
    let quiet_log = config.with_file_name("quiet.log");
    let quiet = Tollgate::serve_with_env(
        &[
            "--log-format",
            "json",
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &[],
        &[("RUST_LOG", "info")],
        Stdio::from(File::create(&quiet_log).expect("create the log")),
    );
    assert_eq!(post(quiet.api(), "/v1/check", body).status, 200);
    assert_eq!(post(quiet.api(), "/v1/check", body).status, 429);
    let lines = json_lines_until(&quiet_log, |line| message(line) == "listening");
    assert!(lines.iter().all(|line| message(line) != "denied"));
}

/// The proxy's denials are logged by the same line as the check API's: the engine's.
#[test]
fn proxy_denials_are_logged_alike() {
    let config = write_config(
        "tollgate.toml",
        &format!(
            "{CONFIG}\n[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:{}\"\n\
             default_policy = \"login\"\n",
            free_port()
        ),
    );
    let log = config.with_file_name("tollgate.log");
    let server = Tollgate::serve_with_env(
        &[
            "--log-format",
            "json",
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &["proxy"],
        &[("RUST_LOG", "tollgate=debug")],
        Stdio::from(File::create(&log).expect("create the log")),
    );
    let proxy = server.addr("proxy");
    // The first is let through (to an upstream that is not there), the second denied.
    assert_eq!(request(proxy, "GET", "/", &[], "").status, 502);
    assert_eq!(request(proxy, "GET", "/", &[], "").status, 429);
    let lines = json_lines_until(&log, |line| message(line) == "denied");
    let denied = lines
        .iter()
        .find(|line| message(line) == "denied")
        .expect("the denial");
    // The name the count is kept under: the proxy's default limit (policy login).
    assert_eq!(denied["fields"]["policy"], "proxy:default");
    // The layer's key (a tag byte before the address), escaped.
    assert_eq!(denied["fields"]["key"], "\\x00127.0.0.1");
}
