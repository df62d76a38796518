//! A Redis Cluster loses one of its three masters, under `fallback`: keys living on the
//! healthy masters keep counting in Redis, only the keys of the dead master's slots are
//! counted in memory, and once the master is back its keys count in Redis again.

mod support;

use std::time::{Duration, Instant};

use tollgate::{Failover, FailureMode, Limiter, Policy, Rate, Store, Timestamp};
use tollgate_redis::{PreparedRedis, RedisStore};

/// Generous for a shared 2-core machine: a healthy key's hit must never time out here, or it
/// would fall back for a reason this test is not about.
const TIMEOUT: Duration = Duration::from_millis(500);

/// What Redis holds for `key`: the units left of 1000 (a peek, straight to Redis).
async fn left_in_redis(store: &RedisStore, direct: &PreparedRedis, key: &str) -> u64 {
    store
        .hit(direct, key.as_bytes(), Timestamp::from_nanos(0), 0)
        .await
        .expect("a peek on a live master")
        .remaining()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_sends_only_the_keys_of_its_slots_to_memory() {
    // Without full coverage required, the live masters keep serving their slots once the
    // dead one is marked failed (with it, the whole cluster refuses every key).
    let mut cluster = support::RedisCluster::start_with(&["--cluster-require-full-coverage", "no"]);
    let nodes: Vec<String> = cluster.nodes.iter().map(|node| node.uri()).collect();
    let store = RedisStore::connect_cluster(&nodes)
        .await
        .expect("connect")
        .with_timeout(TIMEOUT);
    assert_eq!(store.failure_domains(), 16384);
    let policy = Policy::fixed_window(Rate::per_hour(1000).into());
    let direct = store.prepare("api", &policy);
    let limiter = Limiter::new(Failover::new(store.clone(), FailureMode::Fallback));
    let api = limiter.policy("api", policy);

    let keys: Vec<String> = (0..30).map(|i| format!("client-{i}")).collect();
    for key in &keys {
        api.hit(key).await.expect("hit");
    }
    // Where each key lives, and its slot as Redis computes it.
    let mut owner = Vec::new();
    for key in &keys {
        let redis_key = String::from_utf8(direct.redis_key(key.as_bytes())).expect("ascii");
        let slot = cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", &redis_key]);
        assert_eq!(
            slot.trim().parse::<usize>().expect("a slot"),
            store.failure_domain(&direct, key.as_bytes()),
            "{redis_key}: the store's slot is Redis's"
        );
        let holders: Vec<usize> = (0..3)
            .filter(|&n| cluster.nodes[n].cli(&["EXISTS", &redis_key]).trim() == "1")
            .collect();
        assert_eq!(holders.len(), 1, "{redis_key} lives on one master");
        owner.push(holders[0]);
    }
    let victim = owner[0];
    let dead: Vec<&String> = keys
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o == victim)
        .map(|(k, _)| k)
        .collect();
    let live: Vec<&String> = keys
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o != victim)
        .map(|(k, _)| k)
        .collect();
    assert!(!live.is_empty(), "30 keys spread over 3 masters");

    cluster.nodes[victim].kill();
    // Hit every key for a while: through the kill and the cluster marking the master failed.
    let mut rounds = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for key in &keys {
            let decision = api.hit(key).await.expect("an answer by the failure mode");
            assert!(decision.allowed(), "{key}: under the limit");
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failover = limiter.store();
    assert!(failover.is_falling_back());
    assert!(failover.falling_back_domains() <= dead.len());
    // Every hit of a live key was counted in Redis.
    for key in &live {
        let left = left_in_redis(&store, &direct, key).await;
        assert_eq!(left, 1000 - 1 - rounds, "{key}: counted in redis");
    }
    // The dead master's keys were counted in memory, and only those.
    assert_eq!(failover.fallback().stats().keys, dead.len());

    // The master comes back (empty, as after a crash without persistence).
    cluster.nodes[victim].restart();
    let back = Instant::now();
    loop {
        for key in &keys {
            api.hit(key).await.expect("an answer");
        }
        let in_redis = dead.iter().all(|key| {
            let redis_key = String::from_utf8(direct.redis_key(key.as_bytes())).expect("ascii");
            cluster.nodes[victim].cli(&["EXISTS", &redis_key]).trim() == "1"
        });
        if in_redis && !failover.is_falling_back() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "the dead master's keys never counted in redis again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        failover.switches(),
        1,
        "one switch to memory for the whole outage"
    );
}
