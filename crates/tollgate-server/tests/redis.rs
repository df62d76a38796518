//! Three `tollgate serve` processes over one Redis let exactly the limit through, under
//! concurrent load; a reload keeps the counts in Redis, inline ones included; a dead Redis
//! is answered by the failure mode.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_support::RedisServer;
use support::{Tollgate, post, request, write_config};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[policies.shared]
limits = "50/minute"

[policies.bucket]
limits = "10/minute"
strategy = "token-bucket"
"#;

#[test]
fn three_servers_share_one_count_under_load() {
    let redis = RedisServer::start();
    let path = write_config("tollgate.toml", CONFIG);
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let servers: Vec<Tollgate> = (0..3).map(|_| Tollgate::serve(&args, &[])).collect();
    let addrs: Arc<Vec<_>> = Arc::new(servers.iter().map(Tollgate::api).collect());
    for (policy, limit) in [("shared", 50), ("bucket", 10)] {
        let allowed = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let (addrs, allowed) = (Arc::clone(&addrs), Arc::clone(&allowed));
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let addr = addrs[(t + i) % addrs.len()];
                        let body = format!(r#"{{"policy": "{policy}", "key": "tenant-1"}}"#);
                        let reply = post(addr, "/v1/check", &body);
                        assert!([200, 429].contains(&reply.status), "{reply:?}");
                        if reply.status == 200 {
                            allowed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no thread panicked");
        }
        assert_eq!(
            allowed.load(Ordering::SeqCst),
            limit,
            "{policy}: 150 tries over 3 servers"
        );
    }
}

#[test]
fn dead_redis_follows_on_storage_error() {
    let mut redis = RedisServer::start();
    let mut servers = Vec::new();
    for policy in ["deny", "allow", "fallback"] {
        let config = format!("{CONFIG}\n").replace(
            "[server]\n",
            &format!("[server]\non_storage_error = \"{policy}\"\n"),
        );
        let path = write_config("tollgate.toml", &config);
        let args = [
            "--config",
            path.to_str().expect("utf-8"),
            "--storage",
            &redis.uri(),
        ];
        servers.push((policy, Tollgate::serve(&args, &[])));
    }
    let health = request(servers[0].1.api(), "GET", "/healthz", &[], "");
    assert_eq!(health.status, 200);
    redis.kill();
    let check = r#"{"policy": "bucket", "key": "k"}"#;
    for (policy, server) in &servers {
        let started = std::time::Instant::now();
        let reply = post(server.api(), "/v1/check", check);
        assert!(started.elapsed().as_secs() < 3, "{policy}: a bounded wait");
        match *policy {
            "deny" => {
                assert_eq!(reply.status, 503, "{reply:?}");
                assert_eq!(reply.json()["error"], "rate limit store unavailable");
                assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
            }
            _ => assert_eq!(reply.status, 200, "{policy}: {reply:?}"),
        }
        // Live whatever the storage does; ready (degraded) while the failure mode answers.
        assert_eq!(request(server.api(), "GET", "/livez", &[], "").status, 200);
        for path in ["/readyz", "/healthz"] {
            let health = request(server.api(), "GET", path, &[], "");
            let (status, said) = match *policy {
                "deny" => (503, "storage unreachable"),
                _ => (200, "degraded"),
            };
            assert_eq!(health.status, status, "{policy} {path}: {health:?}");
            assert_eq!(health.json()["status"], said, "{policy} {path}");
            assert!(health.json()["error"].is_string(), "{policy} {path}");
        }
        let metrics = request(server.api(), "GET", "/metrics", &[], "");
        assert!(
            !metrics.body.contains("tollgate_storage_errors_total 0"),
            "{}",
            metrics.body
        );
        if *policy == "fallback" {
            assert!(
                metrics.body.contains("tollgate_storage_fallback 1"),
                "{}",
                metrics.body
            );
        }
    }
}

#[test]
fn a_reload_keeps_named_and_inline_counts_in_redis() {
    let redis = RedisServer::start();
    let path = write_config("tollgate.toml", CONFIG);
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let server = Tollgate::serve(&args, &[]);
    let inline = r#"{"limits": "1/hour", "strategy": "token-bucket", "key": "k"}"#;
    let bucket = r#"{"policy": "bucket", "key": "k", "cost": 10}"#;
    assert_eq!(post(server.api(), "/v1/check", inline).status, 200);
    assert_eq!(post(server.api(), "/v1/check", bucket).status, 200);
    std::fs::write(
        &path,
        format!("{CONFIG}\n[policies.new]\nlimits = \"1/minute\"\n"),
    )
    .expect("rewrite config");
    server.signal("HUP");
    let new = r#"{"policy": "new", "key": "k"}"#;
    let reloaded = (0..100).any(|_| {
        let found = post(server.api(), "/v1/peek", new).status == 200;
        if !found {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        found
    });
    assert!(reloaded, "the new policy appeared");
    assert_eq!(post(server.api(), "/v1/check", inline).status, 429);
    assert_eq!(post(server.api(), "/v1/check", bucket).status, 429);
}

#[test]
fn readiness_asks_for_a_write_a_full_redis_refuses() {
    let redis = RedisServer::start();
    let config = write_config(
        "tollgate.toml",
        "[server]\non_storage_error = \"deny\"\n[policies.login]\nlimits = \"5/minute\"\n",
    );
    let args = [
        "--config",
        config.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let server = Tollgate::serve(&args, &[]);
    assert_eq!(request(server.api(), "GET", "/readyz", &[], "").status, 200);
    // Over maxmemory with noeviction, Redis still answers reads but refuses every write.
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let check = post(
        server.api(),
        "/v1/check",
        r#"{"policy": "login", "key": "k"}"#,
    );
    assert_eq!(check.status, 503, "{check:?}");
    for path in ["/readyz", "/healthz"] {
        let health = request(server.api(), "GET", path, &[], "");
        assert_eq!(health.status, 503, "{path}: {health:?}");
        assert!(
            health.json()["error"]
                .as_str()
                .is_some_and(|error| error.contains("OOM")),
            "{path}: {health:?}"
        );
    }
    assert_eq!(request(server.api(), "GET", "/livez", &[], "").status, 200);
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(request(server.api(), "GET", "/readyz", &[], "").status, 200);
}
