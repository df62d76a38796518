//! `GET /dashboard/data` and `GET /dashboard` over HTTP: the numbers, the admin token, and
//! `[server] dashboard = false`.

use serde_json::{Value, json};

use crate::support::{Reply, Tollgate, request, write_config};
use crate::{TOKEN, hit, send_known_traffic, serve};

fn get(server: &Tollgate, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(server.api(), "GET", path, headers, "")
}

fn data(server: &Tollgate) -> Value {
    let reply = get(
        server,
        "/dashboard/data",
        &[("Authorization", "Bearer s3cret")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// The totals of `policy` in `data`.
fn totals(data: &Value, policy: &str) -> Value {
    data["activity"]
        .as_array()
        .expect("activity")
        .iter()
        .find(|entry| entry["name"] == policy)
        .unwrap_or_else(|| panic!("no activity of {policy} in {data}"))["totals"]
        .clone()
}

#[test]
fn the_data_counts_what_was_sent_per_policy_and_lists_the_denied_keys() {
    let server = serve("");
    send_known_traffic(&server, "eve");
    let data = data(&server);
    assert_eq!(
        totals(&data, "login"),
        json!({"allowed": 7, "denied": 3, "shadow_denied": 0})
    );
    assert_eq!(
        totals(&data, "trial"),
        json!({"allowed": 2, "denied": 0, "shadow_denied": 3})
    );
    // Per second over five minutes: the hits are in the last seconds, all of them.
    let denied = data["activity"][0]["denied"].as_array().expect("series");
    assert_eq!(denied.len(), 300);
    assert_eq!(data["window_seconds"], 300);
    assert_eq!(
        data["top_keys"],
        json!([
            {"policy": "trial", "key": "eve", "count": 3, "error": 0},
            {"policy": "login", "key": "mallory", "count": 3, "error": 0},
        ])
    );
    assert_eq!(data["storage"]["status"], "ok");
    assert_eq!(data["storage"]["storage"], "memory://");
    assert_eq!(data["storage"]["falling_back"], false);
    assert_eq!(
        data["config"]["policies"],
        json!([
            {"name": "login", "policy": "7/minute (fixed-window)", "shadow": false},
            {"name": "trial", "policy": "2/minute (fixed-window)", "shadow": true},
        ])
    );
    assert_eq!(data["config"]["admin_token"], true);
    let text = data.to_string();
    assert!(!text.contains(TOKEN), "the token leaks: {text}");
}

#[test]
fn a_long_key_is_cut_and_a_flood_of_keys_stays_a_short_list() {
    let server = serve("");
    let long = "k".repeat(5_000);
    hit(&server, "login", &long, 8);
    assert_eq!(
        data(&server)["top_keys"],
        json!([{"policy": "login", "key": format!("{}…", "k".repeat(96)), "count": 1, "error": 0}])
    );
    for i in 0..200 {
        hit(&server, "trial", &format!("flood-{i}"), 3);
    }
    let data = data(&server);
    let top = data["top_keys"].as_array().expect("top keys");
    assert_eq!(top.len(), 20, "the 20 denied most: {top:?}");
    assert_eq!(totals(&data, "trial")["shadow_denied"], 200);
}

#[test]
fn the_admin_token_guards_the_page_and_its_data() {
    let server = serve("");
    for path in ["/dashboard", "/dashboard/data"] {
        let refused = get(&server, path, &[]);
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert!(refused.body.contains("admin token"), "{}", refused.body);
        let wrong = get(&server, path, &[("Authorization", "Bearer s3cre")]);
        assert_eq!(wrong.status, 401, "{path}");
        let wrong = get(&server, &format!("{path}?token=nope"), &[]);
        assert_eq!(wrong.status, 401, "{path}");
        let right = get(&server, path, &[("Authorization", "bearer  s3cret")]);
        assert_eq!(right.status, 200, "{path}");
        assert_eq!(right.header("cache-control"), Some("no-store"));
    }
    // A browser opens ?token= once: it gets a cookie and leaves the token behind.
    let opened = get(&server, "/dashboard?token=s3cret", &[]);
    assert_eq!(opened.status, 303);
    assert_eq!(opened.header("location"), Some("/dashboard"));
    let cookie = opened.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds the token in hex: {cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value");
    let page = get(
        &server,
        "/dashboard",
        &[("Cookie", &format!("theme=dark; {pair}"))],
    );
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>tollgate dashboard</title>"));
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'nonce-"),
        "{csp}"
    );
    let data = get(&server, "/dashboard/data", &[("Cookie", pair)]);
    assert_eq!(data.status, 200);
    let forged = get(
        &server,
        "/dashboard/data",
        &[("Cookie", "tollgate_dashboard=00")],
    );
    assert_eq!(forged.status, 401);
}

#[test]
fn without_an_admin_token_the_dashboard_is_open() {
    let path = write_config("tollgate.toml", "[server]\nlisten = \"127.0.0.1:0\"\n");
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &[]);
    assert_eq!(get(&server, "/dashboard", &[]).status, 200);
    let data = get(&server, "/dashboard/data", &[]);
    assert_eq!(data.status, 200);
    assert_eq!(data.json()["config"]["admin_token"], false);
}

#[test]
fn a_disabled_dashboard_is_not_found() {
    let server = serve("dashboard = false");
    for path in ["/dashboard", "/dashboard/data", "/dashboard?token=s3cret"] {
        let reply = get(&server, path, &[("Authorization", "Bearer s3cret")]);
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.body.contains("dashboard = false"), "{}", reply.body);
    }
}

#[test]
fn the_proxy_feeds_the_same_dashboard() {
    let config = r#"
[server]
listen = "127.0.0.1:0"

[policies.api]
limits = "1/minute"

[proxy]
listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:1"
default_policy = "api"
"#;
    let path = write_config("tollgate.toml", config);
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let proxy = server.addr("proxy");
    // Allowed (and forwarded to an upstream that is not there), then denied.
    assert_eq!(request(proxy, "GET", "/items", &[], "").status, 502);
    assert_eq!(request(proxy, "GET", "/items", &[], "").status, 429);
    let data = get(&server, "/dashboard/data", &[]).json();
    assert_eq!(
        totals(&data, "api"),
        json!({"allowed": 1, "denied": 1, "shadow_denied": 0})
    );
    assert_eq!(
        data["top_keys"],
        json!([{"policy": "api", "key": "127.0.0.1", "count": 1, "error": 0}])
    );
    assert_eq!(data["config"]["proxy"], true);
}

#[test]
fn a_storage_that_fails_shows_degraded_and_falling_back() {
    let config = "[server]\nlisten = \"127.0.0.1:0\"\non_storage_error = \"fallback\"\n\n\
                  [policies.api]\nlimits = \"1/minute\"\n";
    let path = write_config("tollgate.toml", config);
    // A Redis that is not there.
    let storage = format!("redis://127.0.0.1:{}", crate::support::free_port());
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--storage",
        &storage,
    ];
    let server = Tollgate::serve(&args, &[]);
    // Counted in the memory fallback: allowed, then denied.
    assert_eq!(hit(&server, "api", "tenant-1", 2), [200, 429]);
    let data = get(&server, "/dashboard/data", &[]).json();
    let storage_state = &data["storage"];
    assert_eq!(storage_state["status"], "degraded", "{storage_state}");
    assert_eq!(storage_state["falling_back"], true, "{storage_state}");
    assert_eq!(storage_state["on_storage_error"], "fallback");
    assert!(storage_state["error"].is_string(), "{storage_state}");
    assert_eq!(storage_state["storage"], storage);
    assert_eq!(
        totals(&data, "api"),
        json!({"allowed": 1, "denied": 1, "shadow_denied": 0})
    );
}
