//! The proxy's routes replayed through the server's own routing: methods, exempt routes,
//! case and path normalisation, trusted proxies and `X-Forwarded-For`, route keys.

use serde_json::{Value, json};

use crate::{limit, report, scratch};

const CONFIG: &str = r#"
[policies.login]
limits = "1/minute"

[policies.api]
limits = "2/minute"

[policies.fallback]
limits = "3/minute"

[proxy]
listen = "127.0.0.1:18099"
upstream = "http://127.0.0.1:3000"
default_policy = "fallback"
trusted_proxies = ["10.0.0.0/8"]

[[proxy.routes]]
path = "/login"
methods = ["POST"]
policy = "login"
ignore_case = true

[[proxy.routes]]
path = "/health"
exempt = true

[[proxy.routes]]
path = "/api/*"
policy = "api"
key = "header:x-api-key"
"#;

/// A line of nginx's `main` format at 12:00:SS.
fn main_line(second: u32, addr: &str, request: &str, forwarded_for: &str) -> String {
    format!(
        "{addr} - - [01/Mar/2026:12:00:{second:02} +0000] \"{request}\" 200 1 \"-\" \"curl/8\" \"{forwarded_for}\"\n"
    )
}

/// Requests, denials, distinct keys and top denied keys of a limit's report.
fn figures(limit: &Value) -> Value {
    json!([
        limit["requests"],
        limit["denied"],
        limit["distinct_keys"],
        limit["top_denied"]
    ])
}

#[test]
fn routes_methods_exemptions_and_trusted_proxies_are_the_proxys() {
    let dir = scratch("proxy");
    std::fs::write(dir.join("proxy.toml"), CONFIG).expect("written");
    let mut log = [
        // Through trusted proxies: the client is the forwarded address.
        main_line(0, "10.0.0.5", "POST /login HTTP/1.1", "203.0.113.9"),
        main_line(1, "10.0.0.5", "POST /LOGIN HTTP/1.1", "203.0.113.9"),
        main_line(2, "10.0.0.6", "POST /x/../login HTTP/1.1", "203.0.113.9"),
        // An untrusted peer's X-Forwarded-For is not believed.
        main_line(3, "198.51.100.1", "POST /login HTTP/1.1", "203.0.113.9"),
        // Not a POST: the default policy, counted for the route /login.
        main_line(4, "198.51.100.1", "GET /login HTTP/1.1", "-"),
        // nginx's line for a request it could not read: nothing to route.
        main_line(5, "198.51.100.1", "-", "-"),
        // Refused by the path step.
        main_line(6, "198.51.100.1", "GET /%zz HTTP/1.1", "-"),
    ]
    .concat();
    for second in 10..15 {
        log.push_str(&main_line(
            second,
            "198.51.100.1",
            "GET /health HTTP/1.1",
            "-",
        ));
    }
    // Unmatched paths share one count of the default policy: the fourth is denied.
    for (second, path) in [(20, "/a"), (21, "/b"), (22, "/c"), (23, "/d")] {
        log.push_str(&main_line(
            second,
            "198.51.100.1",
            &format!("GET {path} HTTP/1.1"),
            "-",
        ));
    }
    std::fs::write(dir.join("access.log"), log).expect("written");
    let report = report(
        &dir,
        &[
            "--config",
            "proxy.toml",
            "--format",
            "main",
            "--replay",
            "proxy",
            "access.log",
        ],
    );
    let config = &report["configs"][0];
    assert_eq!(config["policies"], json!([]), "--replay proxy");
    assert_eq!(
        figures(limit(&report, 0, "route /login [POST]")),
        json!([4, 2, 2, [{"key": "203.0.113.9", "denied": 2}]])
    );
    assert_eq!(
        figures(limit(&report, 0, "default")),
        json!([5, 1, 1, [{"key": "198.51.100.1", "denied": 1}]])
    );
    assert_eq!(
        figures(limit(&report, 0, "route /api/*")),
        json!([0, 0, 0, []])
    );
    assert_eq!(
        config["proxy"],
        json!({"unlimited": 5, "refused": {"400": 1}, "unroutable": 1})
    );
}

#[test]
fn route_keys_come_from_the_logged_headers() {
    let dir = scratch("proxy-keys");
    std::fs::write(dir.join("proxy.toml"), CONFIG).expect("written");
    let line = |second: u32, key: Option<&str>| {
        let key = key
            .map(|key| format!(", \"key\": \"{key}\""))
            .unwrap_or_default();
        format!(
            "{{\"time\": \"2026-03-01T12:00:{second:02}Z\", \"remote_addr\": \"198.51.100.1\", \"request\": \"GET /api/items HTTP/1.1\"{key}}}\n"
        )
    };
    let log = [
        line(0, Some("k1")),
        line(1, Some("k1")),
        line(2, Some("k1")),
        line(3, None),
        line(4, None),
        line(5, Some("k2")),
    ]
    .concat();
    std::fs::write(dir.join("access.jsonl"), log).expect("written");
    let report = report(
        &dir,
        &[
            "--config",
            "proxy.toml",
            "--format",
            "json",
            "--json-field",
            "header:x-api-key=key",
            "--key-field",
            "header:x-api-key",
            "access.jsonl",
        ],
    );
    // The route's key is the header (named in the key, as the proxy counts it); requests
    // without it share one count ("?").
    assert_eq!(
        figures(limit(&report, 0, "route /api/*")),
        json!([6, 1, 3, [{"key": "x-api-key:k1", "denied": 1}]])
    );
    // The check API's policies are keyed by the same header: lines without it meet none.
    assert_eq!(report["without_key"], 2);
    assert_eq!(
        figures(limit(&report, 0, "policy login")),
        json!([4, 2, 2, [{"key": "k1", "denied": 2}]])
    );
}
