//! Bans after repeated breaches and charges after the response, end to end against `tollgate
//! serve`: in memory (the check API, inline policies, the proxy inheriting a policy's ban,
//! reset, metrics) and over Redis with three processes (a ban set through one is honoured
//! by the others, late charges from all are counted).

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use redis_support::RedisServer;
use serde_json::json;
use support::{Reply, Tollgate, free_port, post, request, write_config};

/// A policy banning after 2 breaches within 10 minutes for an hour; a token count for late
/// charges; and a proxy to nothing (allowed requests get 502) limited by the banning policy.
fn config(proxy_port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "s3cret"

[policies.login]
limits = "1/minute"
ban_after = "2/10 minutes"
ban_for = "1 hour"

[policies.tokens]
limits = "1000/minute"

[proxy]
listen = "127.0.0.1:{proxy_port}"
upstream = "http://127.0.0.1:1"
default_policy = "login"
"#
    )
}

fn check(server: &Tollgate, body: &str) -> Reply {
    post(server.api(), "/v1/check", body)
}

fn metrics(server: &Tollgate) -> String {
    request(server.api(), "GET", "/metrics", &[], "").body
}

#[test]
fn a_client_that_keeps_breaching_is_banned_until_reset() {
    let path = write_config("tollgate.toml", &config(0));
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let login = r#"{"policy": "login", "key": "alice"}"#;
    assert_eq!(check(&server, login).status, 200);
    let breach = check(&server, login);
    assert_eq!(breach.status, 429);
    assert_eq!(breach.json().get("banned"), None);
    let banned = check(&server, login);
    assert_eq!(banned.status, 429);
    assert_eq!(banned.header("retry-after"), Some("3600"));
    assert_eq!(banned.json()["banned"], json!(true));
    assert_eq!(banned.json()["retry_after_ms"], json!(3_600_000));
    // A peek sees the ban and changes nothing; another key is free.
    let peek = post(server.api(), "/v1/peek", login);
    assert_eq!(
        (peek.status, peek.json()["banned"].clone()),
        (429, json!(true))
    );
    assert_eq!(
        check(&server, r#"{"policy": "login", "key": "bob"}"#).status,
        200
    );
    let text = metrics(&server);
    assert!(
        text.contains(r#"tollgate_bans_total{policy="login"} 1"#),
        "{text}"
    );
    assert!(text.contains("tollgate_banned_keys 1"), "{text}");
    // A reset lifts the ban.
    let reset = request(
        server.api(),
        "POST",
        "/v1/reset",
        &[("Authorization", "Bearer s3cret")],
        login,
    );
    assert_eq!(reset.status, 200);
    assert_eq!(check(&server, login).status, 200);
    assert!(metrics(&server).contains("tollgate_banned_keys 0"));
}

#[test]
fn the_proxy_bans_with_its_policy() {
    let port = free_port();
    let path = write_config("tollgate.toml", &config(port));
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let proxy = server.addr("proxy");
    let get = || request(proxy, "GET", "/anything", &[], "");
    assert_eq!(get().status, 502); // allowed, and forwarded to nothing
    assert_eq!(get().status, 429);
    let banned = get();
    assert_eq!(banned.status, 429);
    assert_eq!(banned.header("retry-after"), Some("3600"));
    assert_eq!(banned.json()["banned"], json!(true));
    let text = metrics(&server);
    assert!(
        text.contains(r#"tollgate_bans_total{policy="login"} 1"#),
        "{text}"
    );
}

#[test]
fn inline_checks_may_carry_a_ban() {
    let path = write_config("tollgate.toml", &config(0));
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let body =
        r#"{"limits": "1/minute", "ban_after": "1/minute", "ban_for": "90 seconds", "key": "k"}"#;
    assert_eq!(check(&server, body).status, 200);
    let banned = check(&server, body);
    assert_eq!(banned.header("retry-after"), Some("90"));
    assert_eq!(banned.json()["banned"], json!(true));
    // The same limits without the ban are another policy, with a count of its own.
    assert_eq!(
        check(&server, r#"{"limits": "1/minute", "key": "k"}"#).status,
        200
    );
    for (body, message) in [
        (
            r#"{"limits": "1/minute", "ban_after": "1/minute", "key": "k"}"#,
            "give both \"ban_after\"",
        ),
        (
            r#"{"limits": "1/minute", "ban_after": "0/minute", "ban_for": "1 hour", "key": "k"}"#,
            "ban_after: a ban needs at least one breach per window, not 0",
        ),
        (
            r#"{"limits": "1/minute", "ban_after": "1/minute", "ban_for": "1 fortnight", "key": "k"}"#,
            "ban_for: invalid duration \"1 fortnight\" at byte 2",
        ),
        (
            r#"{"policy": "login", "ban_after": "1/minute", "ban_for": "1 hour", "key": "k"}"#,
            "ban_after and ban_for go with inline limits",
        ),
    ] {
        let refused = check(&server, body);
        assert_eq!(refused.status, 400, "{body}");
        let error = refused.json()["error"]
            .as_str()
            .expect("an error")
            .to_owned();
        assert!(error.starts_with(message), "{body}: {error}");
    }
}

#[test]
fn a_late_charge_puts_the_key_in_debt_and_is_never_refused() {
    let path = write_config("tollgate.toml", &config(0));
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let charge = |cost: u64| {
        let body = format!(r#"{{"policy": "tokens", "key": "alice", "cost": {cost}}}"#);
        post(server.api(), "/v1/charge", &body)
    };
    let first = charge(600);
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["allowed"], json!(true));
    assert_eq!(first.json()["remaining"], json!(400));
    let over = charge(900); // 1500 of 1000: 500 owed
    assert_eq!(over.status, 200);
    assert_eq!(over.json()["allowed"], json!(false));
    assert_eq!(over.json()["remaining"], json!(0));
    assert!(over.json()["retry_after_ms"].as_u64().is_some());
    assert_eq!(over.header("retry-after"), None);
    let denied = check(&server, r#"{"policy": "tokens", "key": "alice"}"#);
    assert_eq!(denied.status, 429);
    // The window ends in a minute; the next starts with the 500 owed.
    let wait = denied.json()["retry_after_ms"].as_u64().expect("a wait");
    assert!((59_000..=60_000).contains(&wait), "{wait}");
    // Charging more is never refused, whatever the cost.
    assert_eq!(charge(u64::MAX).status, 200);
    let missing = post(
        server.api(),
        "/v1/charge",
        r#"{"policy": "tokens", "key": "alice"}"#,
    );
    assert_eq!(missing.status, 400);
    assert!(
        missing.json()["error"]
            .as_str()
            .expect("error")
            .starts_with("missing \"cost\"")
    );
    let text = metrics(&server);
    assert!(
        text.contains(r#"tollgate_charges_total{policy="tokens"} 3"#),
        "{text}"
    );
}

/// A late charge on a shadow policy is counted like any other, but its debt never denies:
/// it is reported as `shadow_denied`.
#[test]
fn a_late_charge_on_a_shadow_policy_reports_its_debt_as_shadow_denied() {
    let path = write_config(
        "tollgate.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[policies.trial]\nlimits = \"10/minute\"\nshadow = true\n",
    );
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &[]);
    let charge = |cost: u64| {
        let body = format!(r#"{{"policy": "trial", "key": "alice", "cost": {cost}}}"#);
        post(server.api(), "/v1/charge", &body)
    };
    let within = charge(4);
    assert_eq!(within.status, 200);
    assert_eq!(
        (
            within.json()["allowed"].clone(),
            within.json()["shadow_denied"].clone()
        ),
        (json!(true), json!(false))
    );
    let over = charge(20); // 24 of 10: in debt, but only watched
    assert_eq!(over.status, 200);
    assert_eq!(
        (
            over.json()["allowed"].clone(),
            over.json()["shadow_denied"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(over.json()["retry_after_ms"], json!(null));
    let checked = check(&server, r#"{"policy": "trial", "key": "alice"}"#);
    assert_eq!(checked.status, 200);
    assert_eq!(checked.json()["shadow_denied"], json!(true));
}

const REDIS_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[policies.login]
limits = "1/minute"
ban_after = "2/10 minutes"
ban_for = "1 hour"

[policies.tokens]
limits = "1000/minute"
"#;

#[test]
fn three_servers_over_redis_share_bans_and_late_charges() {
    let redis = RedisServer::start();
    let path = write_config("tollgate.toml", REDIS_CONFIG);
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let servers: Vec<Tollgate> = (0..3).map(|_| Tollgate::serve(&args, &[])).collect();
    let login = r#"{"policy": "login", "key": "alice"}"#;
    // The hit, the breach and the ban, each through another server.
    assert_eq!(check(&servers[0], login).status, 200);
    assert_eq!(check(&servers[1], login).status, 429);
    let banned = check(&servers[2], login);
    assert_eq!(banned.json()["banned"], json!(true));
    assert!(metrics(&servers[2]).contains(r#"tollgate_bans_total{policy="login"} 1"#));
    for server in &servers {
        let seen = check(server, login);
        assert_eq!(seen.status, 429);
        assert_eq!(seen.json()["banned"], json!(true), "{seen:?}");
        let wait = seen.json()["retry_after_ms"].as_u64().expect("a wait");
        assert!((3_500_000..=3_600_000).contains(&wait), "{wait}");
    }
    // Late charges through every server add up: 3 x 300 leaves 100, a fourth puts the key
    // in debt, and every server then refuses it.
    for server in &servers {
        let body = r#"{"policy": "tokens", "key": "alice", "cost": 300}"#;
        let reply = post(server.api(), "/v1/charge", body);
        assert_eq!(
            (reply.status, reply.json()["allowed"].clone()),
            (200, json!(true))
        );
    }
    let last = post(
        servers[0].api(),
        "/v1/charge",
        r#"{"policy": "tokens", "key": "alice", "cost": 300}"#,
    );
    assert_eq!(last.json()["allowed"], json!(false));
    for server in &servers {
        let peek = post(
            server.api(),
            "/v1/peek",
            r#"{"policy": "tokens", "key": "alice"}"#,
        );
        assert_eq!(
            (peek.status, peek.json()["remaining"].clone()),
            (429, json!(0))
        );
    }
}

/// The README's example of a ban is a configuration `check-config` accepts as written.
#[test]
fn the_readme_ban_example_is_valid() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme
        .find("## Bans after repeated breaches")
        .expect("the section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("its end")];
    let (ok, stdout, stderr) = support::check_config(&write_config("tollgate.toml", block));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("policy login: 5/minute (fixed-window, ban after 3/10 minutes for 1 hour)"),
        "{stdout}"
    );
}
