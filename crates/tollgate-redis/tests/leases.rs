//! Concurrency leases in Redis: the Lua scripts (`acquire.lua`, `release.lua`) against the
//! memory store over random sequences of acquires, releases (of leases given, and of leases
//! never given) and time, in client-time mode; and, by the Redis server's own clock, leases
//! that expire by themselves and keys that go with their last lease.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use tollgate::{Acquisition, ConcurrencyLimit, LeaseId, MemoryStore, Store, Timestamp};
use tollgate_redis::RedisStore;

/// What a `SystemClock` reads in 2026, in nanoseconds (whole microseconds, as Redis keeps).
const NOW_2026: u64 = 1_780_000_000_000_000_000;

/// One step: the clock moves by `advance` ms, then key `key` acquires, or releases the lease
/// `pick` picks among those given (or one never given).
type Step = (u64, u8, bool, u8);

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..=5, 0u64..=40],
            0u8..3,
            any::<bool>(),
            any::<u8>(),
        ),
        1..80,
    )
}

#[test]
fn redis_leases_match_the_memory_store() {
    let server = support::RedisServer::start();
    let (redis, rt) = support::compare::client_time_store(&server);
    let mut runner = TestRunner::new(Config {
        cases: 60,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&(1u32..=4, 1u64..=30, steps()), |(max, ttl, steps)| {
            let limit = ConcurrencyLimit::new(max)
                .and_then(|limit| limit.with_lease_ttl(Duration::from_millis(ttl)))
                .expect("a valid limit");
            let memory = MemoryStore::new();
            let name = format!(
                "case{}",
                case.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let in_memory = memory.prepare_leases(&name, &limit);
            let in_redis = redis.prepare_leases(&name, &limit);
            let mut given: Vec<(u8, LeaseId)> = Vec::new();
            let mut now = NOW_2026;
            for (index, (advance, key, acquire, pick)) in steps.into_iter().enumerate() {
                now += advance * 1_000_000;
                let at = Timestamp::from_nanos(now);
                let key = [b'k', key];
                if acquire {
                    let lease = LeaseId::random();
                    let want = memory.acquire_now(&in_memory, &key, lease, at);
                    let got = rt
                        .block_on(redis.acquire(&in_redis, &key, lease, at))
                        .expect("redis answers");
                    prop_assert_eq!(got, want, "step {}", index);
                    if matches!(want, Acquisition::Acquired { .. }) {
                        given.push((key[1], lease));
                    }
                } else {
                    let lease = match given.get(usize::from(pick) % given.len().max(1)) {
                        Some(&(_, lease)) if pick % 4 != 0 => lease,
                        _ => LeaseId::random(),
                    };
                    let want = memory.release_now(&in_memory, &key, lease, at);
                    let got = rt
                        .block_on(redis.release(&in_redis, &key, lease, at))
                        .expect("redis answers");
                    prop_assert_eq!(got, want, "step {}", index);
                }
            }
            Ok(())
        })
        .expect("the Lua scripts agree with the memory store");
}

/// The memory store's answers, which never wait.
trait AtOnce {
    fn acquire_now(
        &self,
        leases: &<MemoryStore as Store>::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> Acquisition;
    fn release_now(
        &self,
        leases: &<MemoryStore as Store>::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> bool;
}

impl AtOnce for MemoryStore {
    fn acquire_now(
        &self,
        leases: &<MemoryStore as Store>::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> Acquisition {
        futures_executor::block_on(self.acquire(leases, key, lease, now)).expect("memory")
    }

    fn release_now(
        &self,
        leases: &<MemoryStore as Store>::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> bool {
        futures_executor::block_on(self.release(leases, key, lease, now)).expect("memory")
    }
}

#[test]
fn leases_expire_by_the_redis_clock_and_keys_with_them() {
    let server = support::RedisServer::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = RedisStore::connect(&server.uri())
            .await
            .expect("connect")
            .with_timeout(Duration::from_secs(5));
        let limit = ConcurrencyLimit::new(1)
            .and_then(|limit| limit.with_lease_ttl(Duration::from_millis(300)))
            .expect("limit");
        let leases = store.prepare_leases("uploads", &limit);
        let now = Timestamp::from_nanos(0); // ignored: the server's TIME counts
        let first = LeaseId::random();
        let taken = store.acquire(&leases, b"alice", first, now).await;
        assert_eq!(taken.expect("acquire"), Acquisition::Acquired { in_flight: 1 });
        let ttl: i64 = server.cli(&["PTTL", "tollgate:uploads:inflight:alice"]).trim().parse().expect("a number");
        assert!((1..=300).contains(&ttl), "the key lives as long as its lease: {ttl}");
        let full = store.acquire(&leases, b"alice", LeaseId::random(), now).await;
        assert!(matches!(full.expect("acquire"), Acquisition::Full { in_flight: 1, retry_after } if retry_after <= Duration::from_millis(300)));
        // A lease never given frees nothing.
        assert!(!store.release(&leases, b"alice", LeaseId::random(), now).await.expect("release"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(server.cli(&["EXISTS", "tollgate:uploads:inflight:alice"]).trim(), "0");
        let again = store.acquire(&leases, b"alice", LeaseId::random(), now).await;
        assert_eq!(again.expect("acquire"), Acquisition::Acquired { in_flight: 1 });
        // The expired lease, released late, frees nothing.
        assert!(!store.release(&leases, b"alice", first, now).await.expect("release"));
        let still_full = store.acquire(&leases, b"alice", LeaseId::random(), now).await;
        assert!(matches!(still_full.expect("acquire"), Acquisition::Full { .. }));
    });
}
