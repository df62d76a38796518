//! The memory store's bookkeeping: idle keys are dropped, the cap holds, a reload keeps counts,
//! refunds touch only keys it tracks and stay exact under concurrency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use futures_executor::block_on;
use tollgate::{
    Decision, Limiter, ManualClock, MemoryStore, Policy, PreparedMemory, Rate, Store, Strategy,
    Timestamp,
};

/// A hit straight on the store (which never fails).
fn hit(
    store: &MemoryStore,
    policy: &PreparedMemory,
    key: &[u8],
    now: Timestamp,
    cost: u64,
) -> Decision {
    block_on(store.hit(policy, key, now, cost)).expect("the memory store never fails")
}

#[test]
fn idle_keys_are_dropped_once_fresh_without_a_thread() {
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let api = Limiter::new(store.clone())
        .with_clock(clock.clone())
        .policy("api", Policy::fixed_window(Rate::per_second(5).into()));
    block_on(async {
        for key in 0..10_000u32 {
            api.hit(&key).await.expect("hit");
        }
        assert_eq!(store.stats().keys, 10_000);
        clock.advance(Duration::from_secs(1)); // every window has ended
        // Traffic on one key is enough to sweep every shard eventually.
        for key in 0..40_000u32 {
            api.peek(&(key % 97)).await.expect("peek");
        }
    });
    let stats = store.stats();
    assert_eq!(stats.keys, 0, "{stats:?}");
    assert_eq!(stats.expired, 10_000);
    assert_eq!(stats.evicted, 0);
}

#[test]
fn states_that_still_matter_are_not_swept() {
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let api = Limiter::new(store.clone())
        .with_clock(clock.clone())
        .policy(
            "api",
            Policy::sliding_window_log(Rate::per_minute(2).into()).expect("in bounds"),
        );
    block_on(async {
        for key in 0..2_000u32 {
            api.hit(&key).await.expect("hit");
            api.hit(&key).await.expect("hit");
        }
        clock.advance(Duration::from_secs(59));
        for key in 0..50_000u32 {
            api.peek(&(key % 7)).await.expect("peek");
        }
        assert_eq!(store.stats().keys, 2_000);
        // Every key still remembers its two hits.
        for key in 0..2_000u32 {
            assert!(!api.hit(&key).await.expect("hit").allowed());
        }
    });
}

#[test]
fn a_flood_of_unique_keys_stays_under_the_cap_and_is_counted() {
    let store = MemoryStore::with_max_keys(1_000);
    let login = Limiter::new(store.clone())
        .with_clock(ManualClock::new())
        .policy("login", Policy::fixed_window(Rate::per_hour(5).into()));
    block_on(async {
        for key in 0..100_000u32 {
            assert!(login.hit(&key).await.expect("hit").allowed());
        }
    });
    let stats = store.stats();
    assert!(stats.keys <= 1_000, "{stats:?}");
    assert!(stats.keys >= 500, "the cap is not a purge: {stats:?}");
    assert_eq!(stats.evicted as usize + stats.keys, 100_000, "{stats:?}");
}

#[test]
fn preparing_the_same_policy_again_keeps_its_counts() {
    let store = MemoryStore::new();
    let now = Timestamp::from_nanos(0);
    let policy = Policy::fixed_window(Rate::per_minute(2).into());
    let first = store.prepare("login", &policy);
    hit(&store, &first, b"alice", now, 2);
    // A reload prepares the policy again under the same name.
    let again = store.prepare("login", &policy);
    assert!(!hit(&store, &again, b"alice", now, 1).allowed());
    // A changed policy starts afresh; so does another name.
    let changed = store.prepare("login", &Policy::fixed_window(Rate::per_minute(3).into()));
    assert!(hit(&store, &changed, b"alice", now, 1).allowed());
    let other = store.prepare("signup", &policy);
    assert!(hit(&store, &other, b"alice", now, 1).allowed());
    // Dropped policies stop counting towards the store's keys.
    drop((first, again, changed, other));
    assert_eq!(store.stats().keys, 0);
}

#[test]
fn a_limiter_rebuilt_over_the_same_store_reads_the_same_time() {
    let store = MemoryStore::new();
    let policy = Policy::token_bucket(Rate::per_minute(2).into()).expect("bucket");
    let first = Limiter::new(store.clone()).policy("api", policy.clone());
    assert!(first.hit_sync("k", 2).expect("hit").allowed());
    std::thread::sleep(Duration::from_millis(50));
    // A reload: a new limiter, a new clock, the same store and policy.
    let second = Limiter::new(store).policy("api", policy);
    let denied = second.hit_sync("k", 1).expect("hit");
    assert!(!denied.allowed(), "the count survived the reload");
    let wait = denied.retry_after().expect("denied");
    assert!(
        wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
        "a wait within the window, not the process's uptime: {wait:?}"
    );
}

#[test]
fn at_the_cap_fresh_states_go_before_live_ones() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_max_keys(1_000);
    let api = Limiter::new(store.clone())
        .with_clock(clock.clone())
        .policy("api", Policy::fixed_window(Rate::per_second(5).into()));
    for key in 0..1_000u32 {
        api.hit_sync(&key, 1).expect("hit");
    }
    clock.advance(Duration::from_secs(1)); // every one of them is fresh now
    for key in 1_000..1_200u32 {
        api.hit_sync(&key, 1).expect("hit");
    }
    let stats = store.stats();
    assert_eq!(stats.evicted, 0, "{stats:?}");
    assert!(stats.expired >= 200, "{stats:?}");
    assert_eq!(stats.keys as u64 + stats.expired, 1_200, "{stats:?}");
}

#[test]
fn a_refund_never_creates_state_and_drops_a_key_it_leaves_fresh() {
    for strategy in Strategy::ALL {
        let store = MemoryStore::new();
        let policy = store.prepare(
            "login",
            &Policy::new(strategy, Rate::per_minute(2).into()).expect("policy"),
        );
        let now = Timestamp::from_nanos(1_000);
        block_on(store.refund(&policy, b"alice", now, 1)).expect("refund");
        assert_eq!(store.stats().keys, 0, "{strategy}: nothing to give back to");
        assert!(hit(&store, &policy, b"alice", now, 2).allowed());
        block_on(store.refund(&policy, b"alice", now, 1)).expect("refund");
        assert_eq!(store.stats().keys, 1, "{strategy}: one unit still counts");
        assert_eq!(hit(&store, &policy, b"alice", now, 0).remaining(), 1);
        block_on(store.refund(&policy, b"alice", now, 1)).expect("refund");
        let stats = store.stats();
        assert_eq!(
            (stats.keys, stats.expired),
            (0, 1),
            "{strategy}: fresh, dropped"
        );
        assert_eq!(hit(&store, &policy, b"alice", now, 0).remaining(), 2);
    }
}

/// Deduct-when from many threads on one key: each request is charged before it runs and
/// every other one is refunded after. Exactly the limit's worth of requests keep their charge,
/// however the hits and refunds interleave; a lost update would keep more or fewer.
#[test]
fn concurrent_hits_and_refunds_keep_exactly_the_limit() {
    const THREADS: u64 = 8;
    const REQUESTS: u64 = 1_000;
    const LIMIT: u64 = 300;
    for strategy in Strategy::ALL {
        // Per day, so the bucket refills by a negligible 0.004 units per second of test.
        let login = Limiter::new(MemoryStore::new()).policy(
            "login",
            Policy::new(strategy, Rate::per_day(LIMIT as u32).into()).expect("policy"),
        );
        let kept = Arc::new(AtomicU64::new(0));
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (login, kept, start) = (login.clone(), Arc::clone(&kept), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    for request in 0..REQUESTS {
                        if !block_on(login.hit("one-key")).expect("decision").allowed() {
                            continue;
                        }
                        if request % 2 == 0 {
                            block_on(login.refund("one-key", 1)).expect("refund");
                        } else {
                            kept.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert_eq!(kept.load(Ordering::Relaxed), LIMIT, "{strategy}");
        let peek = block_on(login.peek("one-key")).expect("peek");
        assert_eq!(
            peek.remaining(),
            0,
            "{strategy}: the refunds gave back only theirs"
        );
    }
}

/// The budget of keys is the store's, not each policy's: 50 policies flooded with distinct
/// keys from several threads at once stay within it in total, each keeps a fair part of it,
/// and a quiet policy with a few keys keeps every one of them.
#[test]
fn fifty_flooded_policies_share_one_budget_and_a_quiet_one_keeps_its_keys() {
    const BUDGET: usize = 10_000;
    const POLICIES: usize = 50;
    const KEYS_EACH: u32 = 2_000;
    const THREADS: usize = 4;
    let store = MemoryStore::with_max_keys(BUDGET);
    // A manual clock that never moves: no state ever becomes fresh, so only evictions free room.
    let limiter = Limiter::new(store.clone()).with_clock(ManualClock::new());
    let hourly = Policy::fixed_window(Rate::per_hour(1).into());
    let quiet = limiter.policy("quiet", hourly.clone());
    for key in 0..20u32 {
        assert!(quiet.hit_sync(&key, 1).expect("hit").allowed());
    }
    let flooded: Vec<_> = (0..POLICIES)
        .map(|p| limiter.policy(&format!("flooded-{p}"), hourly.clone()))
        .collect();
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (flooded, start) = (flooded.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                // Every thread floods every policy, each with its own keys, interleaved.
                for key in 0..KEYS_EACH / THREADS as u32 {
                    for policy in &flooded {
                        let key = key * THREADS as u32 + thread as u32;
                        assert!(policy.hit_sync(&key, 1).expect("hit").allowed());
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let stats = store.stats();
    // A few keys of slack: one per insert racing another at the budget.
    assert!(stats.keys <= BUDGET + THREADS, "{stats:?}");
    assert!(
        stats.keys >= BUDGET * 3 / 4,
        "the budget is used: {stats:?}"
    );
    let inserted = 20 + POLICIES as u64 * u64::from(KEYS_EACH);
    assert_eq!(stats.keys as u64 + stats.evicted, inserted, "{stats:?}");
    assert_eq!(stats.expired, 0);
    // Each flooded policy still tracks some of its keys: a tracked key is denied (1/hour).
    for policy in &flooded {
        let tracked = (0..KEYS_EACH)
            .filter(|key| policy.hit_sync(key, 0).expect("peek").remaining() == 0)
            .count();
        assert!(tracked >= BUDGET / POLICIES / 4, "{tracked} keys tracked");
    }
    for key in 0..20u32 {
        let peek = quiet.hit_sync(&key, 0).expect("peek");
        assert_eq!(
            peek.remaining(),
            0,
            "the quiet policy's key {key} was evicted"
        );
    }
}

/// A policy that needs room while the budget is held by another takes it from that one, even
/// when the other sees no more traffic.
#[test]
fn a_new_policy_takes_room_from_one_holding_the_whole_budget() {
    let store = MemoryStore::with_max_keys(1_000);
    let limiter = Limiter::new(store.clone()).with_clock(ManualClock::new());
    let hourly = Policy::fixed_window(Rate::per_hour(1).into());
    let old = limiter.policy("old", hourly.clone());
    for key in 0..1_000u32 {
        old.hit_sync(&key, 1).expect("hit");
    }
    assert_eq!(store.stats().keys, 1_000);
    let new = limiter.policy("new", hourly);
    for key in 0..400u32 {
        assert!(new.hit_sync(&key, 1).expect("hit").allowed());
    }
    let stats = store.stats();
    assert!(stats.keys <= 1_000, "{stats:?}");
    // Every key of the new policy is tracked: it held less than its share (half the budget).
    for key in 0..400u32 {
        assert_eq!(new.hit_sync(&key, 0).expect("peek").remaining(), 0, "{key}");
    }
    // A dropped policy gives its keys back.
    drop(old);
    assert_eq!(store.stats().keys, 400);
}

/// A flood of policies (the check API's inline ones, up to 1024), each with a key or two,
/// stays within the budget. A shard with no key that met a full budget used to insert
/// without freeing anything when no shard held more than its share: one key over the budget
/// per empty shard of every policy, ten times a small budget here (and as many keys as the
/// budget again on a host with many CPUs, where a large budget has 1024 shards a policy).
#[test]
fn a_flood_of_policies_with_a_key_each_stays_within_the_budget() {
    const BUDGET: usize = 100;
    let store = MemoryStore::with_max_keys(BUDGET);
    let limiter = Limiter::new(store.clone()).with_clock(ManualClock::new());
    let policies: Vec<_> = (0..1000u32)
        .map(|n| {
            limiter.policy(
                &format!("p{n}"),
                Policy::fixed_window(Rate::per_hour(1 + n).into()),
            )
        })
        .collect();
    for round in 0..2u32 {
        for policy in &policies {
            assert!(policy.hit_sync(&round, 1).expect("hit").allowed());
        }
    }
    let stats = store.stats();
    assert!(stats.keys <= BUDGET, "{stats:?}");
    assert_eq!(stats.keys as u64 + stats.evicted, 2000, "{stats:?}");
}
