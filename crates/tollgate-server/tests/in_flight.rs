//! The check API's concurrency slots over real `tollgate serve` processes: acquire and
//! release, a full key answered 429 with `Retry-After`, leases that expire when never
//! released, and three processes over one Redis sharing one count of slots.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::time::Duration;

use redis_support::RedisServer;
use serde_json::Value;
use support::{Reply, Tollgate, post, request, write_config};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[policies.export]
limits = "1000/minute"
max_in_flight = 2

[policies.brief]
limits = "1000/minute"
max_in_flight = 1
lease_ttl = "300ms"

[policies.plain]
limits = "5/minute"
"#;

fn json(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|err| panic!("{err}: {reply:?}"))
}

fn acquire(addr: std::net::SocketAddr, policy: &str, key: &str) -> Reply {
    post(
        addr,
        "/v1/acquire",
        &format!(r#"{{"policy": "{policy}", "key": "{key}"}}"#),
    )
}

fn release(addr: std::net::SocketAddr, policy: &str, key: &str, lease: &str) -> Reply {
    let body = format!(r#"{{"policy": "{policy}", "key": "{key}", "lease": "{lease}"}}"#);
    post(addr, "/v1/release", &body)
}

/// The lease of an acquire that got one.
fn lease(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{reply:?}");
    let answer = json(reply);
    assert_eq!(answer["allowed"], true);
    answer["lease"].as_str().expect("a lease").to_owned()
}

#[test]
fn acquire_and_release_through_the_check_api() {
    let path = write_config("tollgate.toml", CONFIG);
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &[]);
    let api = server.api();
    let first = acquire(api, "export", "alice");
    let answer = json(&first);
    assert_eq!(
        (answer["limit"].as_u64(), answer["remaining"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(answer["expires_ms"], 60_000);
    let first = lease(&first);
    assert_eq!(first.len(), 32);
    lease(&acquire(api, "export", "alice"));
    let full = acquire(api, "export", "alice");
    assert_eq!(full.status, 429, "{full:?}");
    assert_eq!(json(&full)["allowed"], false);
    assert!(full.header("retry-after").is_some());
    // Another key has its own slots.
    lease(&acquire(api, "export", "bob"));
    // A release frees a slot, once; a lease of another key frees nothing.
    assert_eq!(
        json(&release(api, "export", "bob", &first))["released"],
        false
    );
    assert_eq!(
        json(&release(api, "export", "alice", &first))["released"],
        true
    );
    assert_eq!(
        json(&release(api, "export", "alice", &first))["released"],
        false
    );
    lease(&acquire(api, "export", "alice"));
    assert_eq!(acquire(api, "export", "alice").status, 429);
    // Mistakes are 4xx saying what is wrong.
    let garbage = release(api, "export", "alice", "not-a-lease");
    assert_eq!(garbage.status, 400);
    assert!(
        json(&garbage)["error"]
            .as_str()
            .expect("an error")
            .contains("lease")
    );
    let plain = acquire(api, "plain", "alice");
    assert_eq!(plain.status, 400);
    assert!(
        json(&plain)["error"]
            .as_str()
            .expect("an error")
            .contains("max_in_flight")
    );
    assert_eq!(acquire(api, "nope", "alice").status, 404);
    // Counted under the policy's in-flight series.
    let metrics = request(api, "GET", "/metrics", &[], "");
    assert!(
        metrics
            .body
            .contains(r#"tollgate_hits_total{policy="export:in-flight",outcome="denied"} 2"#),
        "{}",
        metrics.body
    );
}

#[test]
fn leases_never_released_expire() {
    let path = write_config("tollgate.toml", CONFIG);
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &[]);
    let api = server.api();
    let held = acquire(api, "brief", "carol");
    assert_eq!(json(&held)["expires_ms"], 300);
    lease(&held);
    assert_eq!(acquire(api, "brief", "carol").status, 429);
    std::thread::sleep(Duration::from_millis(400));
    lease(&acquire(api, "brief", "carol"));
}

#[test]
fn three_servers_over_redis_share_one_count_of_slots() {
    let redis = RedisServer::start();
    let path = write_config("tollgate.toml", CONFIG);
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let servers: Vec<Tollgate> = (0..3).map(|_| Tollgate::serve(&args, &[])).collect();
    let apis: Vec<_> = servers.iter().map(Tollgate::api).collect();
    // Two slots among the three servers.
    let mut leases = Vec::new();
    let mut refused = 0;
    for i in 0..9 {
        let reply = acquire(apis[i % 3], "export", "tenant");
        match reply.status {
            200 => leases.push(lease(&reply)),
            429 => refused += 1,
            _ => panic!("{reply:?}"),
        }
    }
    assert_eq!((leases.len(), refused), (2, 7));
    // Released through another server than the one that acquired it.
    for (i, lease) in leases.iter().enumerate() {
        assert_eq!(
            json(&release(apis[(i + 1) % 3], "export", "tenant", lease))["released"],
            true
        );
    }
    lease(&acquire(apis[2], "export", "tenant"));
    // A lease in Redis expires by itself, by Redis's clock.
    lease(&acquire(apis[0], "brief", "dave"));
    assert_eq!(acquire(apis[1], "brief", "dave").status, 429);
    std::thread::sleep(Duration::from_millis(400));
    lease(&acquire(apis[2], "brief", "dave"));
}

/// The README's example of a concurrency limit is a configuration `check-config` accepts as
/// written.
#[test]
fn the_readme_concurrency_example_is_valid() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("## Concurrency limits").expect("the section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("its end")];
    let (ok, _, stderr) = support::check_config(&write_config("tollgate.toml", block));
    assert!(ok, "{stderr}");
    let config = tollgate_server::Config::parse(block, "README.md").expect("valid");
    assert_eq!(config.in_flight["export"].max(), 5);
}
