//! One count across processes: 4 OS processes × 32 tasks hit one key with a limit of 500
//! through one Redis, and through a 3-master Redis Cluster; exactly 500 get through.

mod support;

use std::process::Command;

use tollgate::Strategy;

/// Runs 4 `load` processes at once against `uri` and returns the total allowed.
fn allowed_by_four_processes(uri: &str, strategy: Strategy, limits: &str, keys: u64) -> u64 {
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(support::load_example())
                .args([uri, strategy.name(), limits, &keys.to_string(), "32", "20"])
                .output()
        })
        .map(|spawn| spawn.expect("load example (built by cargo test)"))
        .collect();
    children
        .iter()
        .map(|out| {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let allowed = stdout
                .split("\"allowed\": ")
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse::<u64>().ok());
            allowed.unwrap_or_else(|| panic!("no count in {stdout}"))
        })
        .sum()
}

#[test]
fn four_processes_one_redis_exactly_the_limit() {
    let server = support::RedisServer::start();
    for strategy in Strategy::ALL {
        // 4 × 32 × 20 = 2560 hits on one key, 500 allowed per day.
        let allowed = allowed_by_four_processes(&server.uri(), strategy, "500/day", 1);
        assert_eq!(allowed, 500, "{strategy}");
        server.cli(&["FLUSHALL"]);
    }
}

#[test]
fn four_processes_one_cluster_exactly_the_limit() {
    let cluster = support::RedisCluster::start();
    let uri = cluster.uri();
    for strategy in [Strategy::FixedWindow, Strategy::TokenBucket] {
        let allowed = allowed_by_four_processes(&uri, strategy, "500/day", 1);
        assert_eq!(allowed, 500, "{strategy}");
    }
    // 64 keys spread over every master's slots: each key gets exactly its limit of 5.
    let allowed = allowed_by_four_processes(&uri, Strategy::SlidingWindowLog, "5/day", 64);
    assert_eq!(allowed, 64 * 5);
    let masters_with_keys = cluster
        .nodes
        .iter()
        .filter(|n| n.cli(&["DBSIZE"]).trim().parse::<u64>().unwrap_or(0) > 0)
        .count();
    assert_eq!(masters_with_keys, 3, "keys landed on every master");
}
