//! `[server] max_keys` bounds the keys the server tracks in memory over all policies (inline
//! ones included), and is restart-only; the switch of hits to memory when Redis fails, and
//! back, is logged once each and kept in the metrics.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_support::RedisServer;
use support::{Tollgate, post, request, write_config};
use tollgate_server::{Config, ServerState, check_api_router};
use tower::ServiceExt;

/// The value of the unlabelled metric `name` in `text`.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

async fn call(state: &Arc<ServerState>, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::from(body.to_owned()))
        .expect("a request");
    let response = check_api_router(Arc::clone(state))
        .oneshot(request)
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn max_keys_bounds_the_keys_of_every_policy_together() {
    let config = Config::parse(
        "[server]\nmax_keys = 500\n\n[policies.login]\nlimits = \"5/hour\"\n",
        "tollgate.toml",
    )
    .expect("config");
    let state = Arc::new(
        ServerState::new(&config, config.storage.open().await.expect("open")).expect("state"),
    );
    // A quiet named policy, then a flood of distinct inline policies and keys.
    for user in 0..10 {
        let body = format!(r#"{{"policy": "login", "key": "user-{user}"}}"#);
        assert_eq!(call(&state, "POST", "/v1/check", &body).await.0, 200);
    }
    for policy in 1..=40 {
        for key in 0..100 {
            let body = format!(r#"{{"limits": "{policy}/hour", "key": "flood-{key}"}}"#);
            assert_eq!(call(&state, "POST", "/v1/check", &body).await.0, 200);
        }
    }
    let (status, text) = call(&state, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let keys = metric(&text, "tollgate_memory_keys");
    let evicted = metric(&text, "tollgate_memory_keys_evicted_total");
    assert!(keys <= 500, "{keys} keys tracked");
    assert_eq!(keys + evicted, 4_010, "nothing expires within the hour");
    // The quiet policy kept its keys through the flood: each has one hit of five counted.
    for user in 0..10 {
        let body = format!(r#"{{"policy": "login", "key": "user-{user}"}}"#);
        let (_, reply) = call(&state, "POST", "/v1/peek", &body).await;
        assert!(reply.contains(r#""remaining":4"#), "user-{user}: {reply}");
    }
}

/// Reads the log file until it holds `wanted` (at most 10 s).
fn wait_for_log(log: &std::path::Path, wanted: &str) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(wanted) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {wanted:?} in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_switch_to_memory_and_back_is_logged_once_each_and_counted() {
    let mut redis = RedisServer::start();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstorage = \"{}\"\non_storage_error = \"fallback\"\n\
         max_keys = 1000\n\n[policies.api]\nlimits = \"1000/hour\"\n",
        redis.uri()
    );
    let path = write_config("tollgate.toml", &config);
    let log = path.with_file_name("tollgate.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let server = Tollgate::serve_logging_to(
        &["--config", path.to_str().expect("utf-8")],
        &[],
        Stdio::from(log_file),
    );
    let check = |key: &str| {
        let body = format!(r#"{{"policy": "api", "key": "{key}"}}"#);
        assert_eq!(post(server.api(), "/v1/check", &body).status, 200);
    };
    check("before");
    redis.kill();
    // Many checks while Redis is down: failures, probes, hits in memory.
    let down = Instant::now();
    while down.elapsed() < Duration::from_millis(800) {
        check("while-down");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_log(&log, "storage failing, counting in memory");
    redis.restart();
    let back = Instant::now();
    loop {
        check("after");
        let metrics = request(server.api(), "GET", "/metrics", &[], "").body;
        if metric(&metrics, "tollgate_storage_fallback") == 0 {
            assert_eq!(
                metric(&metrics, "tollgate_storage_fallback_switches_total"),
                1
            );
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "never back in redis"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = wait_for_log(&log, "storage answering again");
    assert_eq!(
        text.matches("storage failing, counting in memory").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("storage answering again").count(), 1, "{text}");
    let failing = text
        .lines()
        .find(|line| line.contains("storage failing"))
        .expect("the line");
    assert!(failing.contains("WARN"), "{failing}");
    assert!(failing.contains("store "), "with its cause: {failing}");

    // max_keys is restart-only: a reload that changes it is refused, the old config stays.
    std::fs::write(
        &path,
        config.replace("max_keys = 1000", "max_keys = 2000")
            + "\n[policies.later]\nlimits = \"1/minute\"\n",
    )
    .expect("rewrite config");
    server.signal("HUP");
    let text = wait_for_log(&log, "configuration not reloaded");
    assert!(text.contains("server.max_keys"), "{text}");
    let later = r#"{"policy": "later", "key": "k"}"#;
    assert_eq!(post(server.api(), "/v1/peek", later).status, 404);
}
