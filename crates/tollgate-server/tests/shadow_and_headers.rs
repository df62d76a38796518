//! Shadow policies and rate-limit fields listing every policy, through `tollgate serve` over
//! memory and over Redis: the check API (named and inline shadow policies), the proxy (a
//! route's policy beside its shadow policy), `/metrics`, and the fields as valid
//! structured-field lists named after the configured policies; and a reload that turns a
//! shadow policy into an enforced one with its counts.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::net::SocketAddr;

use axum::Router;
use redis_support::RedisServer;
use serde_json::json;
use support::{Reply, Tollgate, post, request, write_config};

/// An upstream answering `pong` on every path, on its own runtime in a thread.
fn upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let app = Router::new().fallback(|| async { "pong" });
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            axum::serve(listener, app).await.expect("upstream serves");
        });
    });
    addr
}

/// The configuration: an enforced `login` and its shadow trial `login-next`, a shadow
/// `search-trial`, and a proxy whose `/login` route carries both, whose `/search` route
/// carries only the trial (so it meets the default policy `api`), and whose `/export` route
/// watches the enforced `login` as a shadow. `extra` goes in `[server]`.
fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
headers = "both"
{extra}

[policies.api]
limits = "100/minute"

[policies.login]
limits = "3/minute"

[policies.login-next]
limits = "1/minute"
shadow = true

[policies.search-trial]
limits = "2/minute"
shadow = true

[proxy]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
trusted_proxies = ["127.0.0.1/32"]
default_policy = "api"

[[proxy.routes]]
path = "/login"
policy = "login"
shadow_policy = "login-next"

[[proxy.routes]]
path = "/search"
shadow_policy = "search-trial"

[[proxy.routes]]
path = "/export"
shadow_policy = "login"
"#
    )
}

/// `tollgate serve` with `config`, over `storage` (a Redis URI) or memory.
fn serve(config: &str, storage: Option<&str>) -> Tollgate {
    let path = write_config("tollgate.toml", config);
    let mut args = vec!["--config", path.to_str().expect("utf-8")];
    if let Some(uri) = storage {
        args.extend(["--storage", uri]);
    }
    Tollgate::serve(&args, &["proxy"])
}

/// `GET path` through the proxy, from `client`.
fn get(server: &Tollgate, path: &str, client: &str) -> Reply {
    request(
        server.addr("proxy"),
        "GET",
        path,
        &[("X-Forwarded-For", client)],
        "",
    )
}

/// Every line of the field `name`, combined as HTTP combines them.
fn field(reply: &Reply, name: &str) -> Option<String> {
    let lines: Vec<&str> = reply
        .headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// The members of the structured-field list `name` (RFC 9651) as `name;key=value;...`,
/// strings unquoted: the test fails if the field is not a list of strings with integer
/// parameters.
fn members(reply: &Reply, name: &str) -> Vec<String> {
    let Some(text) = field(reply, name) else {
        return Vec::new();
    };
    let list: sfv::List = sfv::Parser::new(&text)
        .parse()
        .unwrap_or_else(|err| panic!("{name}: {text:?} is not a structured-field list: {err}"));
    list.into_iter()
        .map(|member| {
            let sfv::ListEntry::Item(item) = member else {
                panic!("{name}: {text:?} has an inner list");
            };
            let mut out = item
                .bare_item
                .as_string()
                .unwrap_or_else(|| panic!("{name}: {text:?}: a member is not a string"))
                .as_str()
                .to_owned();
            for (key, value) in &item.params {
                let value = value
                    .as_integer()
                    .unwrap_or_else(|| panic!("{name}: {text:?}: {key:?} is not an integer"));
                out.push_str(&format!(";{}={}", key.as_str(), i64::from(value)));
            }
            out
        })
        .collect()
}

fn metric(server: &Tollgate, policy: &str, outcome: &str) -> u64 {
    let text = request(server.api(), "GET", "/metrics", &[], "").body;
    let prefix = format!(r#"tollgate_hits_total{{policy="{policy}",outcome="{outcome}"}} "#);
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |count| count.parse().expect("a count"))
}

/// The whole scenario over `storage` (a Redis URI) or memory.
fn shadow_policies_and_header_lists(storage: Option<&str>) {
    let server = serve(&config(upstream(), ""), storage);
    let api = server.api();

    // The check API: a shadow policy is counted and never denies.
    let trial = r#"{"policy": "login-next", "key": "user:1"}"#;
    let first = post(api, "/v1/check", trial);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.json()["shadow_denied"], json!(false));
    assert!(
        field(&first, "ratelimit").is_none(),
        "shadow policies are not in the headers"
    );
    assert!(field(&first, "x-ratelimit-limit").is_none());
    let over = post(api, "/v1/check", trial);
    assert_eq!(over.status, 200);
    let body = over.json();
    assert_eq!(
        (&body["allowed"], &body["limit"], &body["remaining"]),
        (&json!(true), &json!(1), &json!(0))
    );
    assert_eq!(
        (&body["retry_after_ms"], &body["shadow_denied"]),
        (&json!(null), &json!(true))
    );
    let reset = body["reset_after_ms"].as_u64().expect("a reset");
    assert!((59_000..=60_000).contains(&reset), "{body}");
    assert!(field(&over, "retry-after").is_none());
    // An enforced policy answers shadow_denied false, and lists itself by name.
    let login = post(api, "/v1/check", r#"{"policy": "login", "key": "user:1"}"#);
    assert_eq!(login.json()["shadow_denied"], json!(false));
    assert_eq!(members(&login, "ratelimit-policy"), ["login;q=3;w=60"]);
    assert_eq!(members(&login, "ratelimit"), ["login;r=2;t=60"]);
    // A named policy's shadow comes from its configuration, not from the body.
    let refused = post(
        api,
        "/v1/check",
        r#"{"policy": "login", "key": "k", "shadow": true}"#,
    );
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["error"]
            .as_str()
            .is_some_and(|error| error.contains("shadow = true")),
        "{refused:?}"
    );

    // Inline: "shadow": true makes the inline limit a shadow one, counted apart from the
    // same limit enforced, and named by its rate in the headers.
    let inline_shadow = r#"{"limits": "1/hour", "shadow": true, "key": "k"}"#;
    let inline = r#"{"limits": "1/hour", "key": "k"}"#;
    assert_eq!(
        post(api, "/v1/check", inline_shadow).json()["shadow_denied"],
        json!(false)
    );
    let would = post(api, "/v1/check", inline_shadow);
    assert_eq!(
        (would.status, would.json()["shadow_denied"].clone()),
        (200, json!(true))
    );
    let enforced = post(api, "/v1/check", inline);
    assert_eq!(enforced.status, 200, "its own count");
    assert_eq!(members(&enforced, "ratelimit"), ["1/hour;r=0;t=3600"]);
    let denied = post(api, "/v1/check", inline);
    assert_eq!(
        (denied.status, denied.json()["shadow_denied"].clone()),
        (429, json!(false))
    );
    // A shadow cost the policy never allows is a shadow denial, not a 400.
    let too_big = post(
        api,
        "/v1/check",
        r#"{"limits": "2/minute", "shadow": true, "key": "big", "cost": 5}"#,
    );
    assert_eq!(too_big.status, 200, "{too_big:?}");
    assert_eq!(
        too_big.json(),
        json!({"allowed": true, "limit": 2, "remaining": 2, "reset_after_ms": 0,
               "retry_after_ms": null, "shadow_denied": true}),
    );

    // The proxy: /login meets `login` (enforced) and `login-next` (shadow).
    let client = "203.0.113.5";
    let statuses: Vec<u16> = (0..4)
        .map(|_| get(&server, "/login", client).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429], "only `login` denies");
    let other = get(&server, "/login", "203.0.113.6");
    assert_eq!(members(&other, "ratelimit-policy"), ["login;q=3;w=60"]);
    assert_eq!(members(&other, "ratelimit"), ["login;r=2;t=60"]);
    // /search has only a shadow policy: it meets the default `api`, and is never denied by
    // the trial.
    let searches: Vec<Reply> = (0..4).map(|_| get(&server, "/search", client)).collect();
    assert!(searches.iter().all(|reply| reply.status == 200));
    assert_eq!(
        members(&searches[3], "ratelimit-policy"),
        ["api;q=100;w=60"]
    );
    assert_eq!(members(&searches[3], "ratelimit"), ["api;r=96;t=60"]);

    // An enforced policy named as a route's shadow_policy is a shadow there.
    let exports: Vec<Reply> = (0..4).map(|_| get(&server, "/export", client)).collect();
    assert!(
        exports.iter().all(|reply| reply.status == 200),
        "{exports:?}"
    );
    assert_eq!(members(&exports[3], "ratelimit-policy"), ["api;q=100;w=60"]);
    assert_eq!(metric(&server, "login", "shadow_denied"), 1);

    // /metrics counts shadow denials per policy, from the check API and the proxy alike.
    assert_eq!(metric(&server, "login-next", "shadow_denied"), 1 + 2);
    assert_eq!(
        metric(&server, "login-next", "allowed"),
        1 + 2,
        "one per client"
    );
    assert_eq!(metric(&server, "search-trial", "shadow_denied"), 2);
    assert_eq!(metric(&server, "search-trial", "allowed"), 2);
    assert_eq!(metric(&server, "login", "denied"), 1);
    assert_eq!(metric(&server, "inline", "shadow_denied"), 1);
    assert_eq!(
        metric(&server, "inline", "invalid"),
        1,
        "the shadow cost beyond its limit"
    );
}

/// With `headers_include_shadow`, the fields list shadow policies too, each under its name,
/// and the legacy fields describe the closest (a shadow denial).
fn shadow_policies_in_the_headers_when_asked(storage: Option<&str>) {
    let server = serve(
        &config(upstream(), "headers_include_shadow = true"),
        storage,
    );
    let client = "198.51.100.7";
    let first = get(&server, "/login", client);
    assert_eq!(
        members(&first, "ratelimit-policy"),
        ["login;q=3;w=60", "login-next;q=1;w=60"]
    );
    assert_eq!(
        members(&first, "ratelimit"),
        ["login;r=2;t=60", "login-next;r=0;t=60"]
    );
    let second = get(&server, "/login", client);
    assert_eq!(second.status, 200);
    assert_eq!(
        members(&second, "ratelimit"),
        ["login;r=1;t=60", "login-next;r=0;t=60"]
    );
    assert_eq!(second.header("x-ratelimit-limit"), Some("1"));
    // The check API lists a shadow policy too now.
    let trial = post(
        server.api(),
        "/v1/check",
        r#"{"policy": "search-trial", "key": "k"}"#,
    );
    assert_eq!(members(&trial, "ratelimit"), ["search-trial;r=1;t=60"]);
    // header_policies = "closest" is tested in the layer; here the default lists every one.
    let search = get(&server, "/search", client);
    assert_eq!(
        members(&search, "ratelimit-policy"),
        ["api;q=100;w=60", "search-trial;q=2;w=60"]
    );
}

#[test]
fn in_memory() {
    shadow_policies_and_header_lists(None);
    shadow_policies_in_the_headers_when_asked(None);
}

#[test]
fn over_redis() {
    let redis = RedisServer::start();
    shadow_policies_and_header_lists(Some(&redis.uri()));
    redis.cli(&["FLUSHALL"]);
    shadow_policies_in_the_headers_when_asked(Some(&redis.uri()));
}

#[tokio::test]
async fn turning_shadow_off_by_a_reload_enforces_the_counts_kept() {
    use std::sync::Arc;

    use tollgate_server::{Config, ServerState, check_api_router};
    use tower::ServiceExt;

    let with = |shadow: bool| {
        let text = format!("[policies.trial]\nlimits = \"2/minute\"\nshadow = {shadow}\n");
        Config::parse(&text, "tollgate.toml").expect("a valid configuration")
    };
    let watched = with(true);
    let store = watched.storage.open().await.expect("memory");
    let state = Arc::new(ServerState::new(&watched, store).expect("valid"));
    let check = || async {
        let request = http::Request::post("/v1/check")
            .body(axum::body::Body::from(r#"{"policy": "trial", "key": "k"}"#))
            .expect("a request");
        let response = check_api_router(Arc::clone(&state))
            .oneshot(request)
            .await
            .expect("an answer");
        response.status().as_u16()
    };
    assert_eq!([check().await, check().await, check().await], [200; 3]);
    state.reload(&with(false)).expect("reloaded");
    // The same policy, enforced now: its count (two units) is kept.
    assert_eq!(check().await, 429);
}
