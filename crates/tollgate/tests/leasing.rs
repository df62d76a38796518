//! The `Leasing` store: with leases off it decides exactly as the store behind; with leases
//! on, several instances over one shared store never admit more than the policy allows
//! (fixed window and counter: per window; token bucket: `burst + rate × (|I| + T)`), admit
//! nearly all of it under load, answer most hits without a call, repeat denials locally until
//! the `retry_after`, give back unspent units only while their window lasts, and keep a
//! sliding window counter's estimate over what they admitted within the limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_executor::block_on;
use proptest::prelude::*;
use tollgate::{
    Leasing, MemoryStore, Policy, PreparedLeasing, PreparedMemory, QuotaLease, Store, Timestamp,
};

const MS: u64 = 1_000_000;

fn lease(ms: u64) -> QuotaLease {
    QuotaLease::lasting(Duration::from_millis(ms)).expect("in range")
}

type Instance = Leasing<Arc<MemoryStore>>;

/// `n` instances leasing for `lease_ms` from one shared memory store, each with `policy`
/// prepared.
fn fleet(
    n: usize,
    lease_ms: u64,
    policy: &Policy,
) -> (
    Vec<(Instance, PreparedLeasing<PreparedMemory>)>,
    Arc<MemoryStore>,
) {
    let shared = Arc::new(MemoryStore::new());
    let instances = (0..n)
        .map(|_| {
            let store = Leasing::new(Arc::clone(&shared)).with_lease(lease(lease_ms));
            let prepared = store.prepare("p", policy);
            (store, prepared)
        })
        .collect();
    (instances, shared)
}

fn hit(
    store: &Instance,
    p: &PreparedLeasing<PreparedMemory>,
    key: &[u8],
    at: u64,
    cost: u64,
) -> bool {
    block_on(store.hit(p, key, Timestamp::from_nanos(at), cost))
        .expect("memory")
        .allowed()
}

proptest! {
    /// Leases off: every decision is the store's own.
    #[test]
    fn off_decides_exactly_as_the_store(
        strategy in 0usize..4,
        amount in 1u64..=20,
        steps in prop::collection::vec((0u64..=400, 0u8..3, 0u64..=3, 0u8..10), 1..150),
    ) {
        let rates = format!("{amount}/second").parse().expect("rates");
        let policy = Policy::new(tollgate::Strategy::ALL[strategy], rates).expect("policy")
            .with_quota_lease(QuotaLease::Off);
        let plain = MemoryStore::new();
        let p = plain.prepare("p", &policy);
        let leasing = Leasing::new(MemoryStore::new()).with_lease(lease(250));
        let l = leasing.prepare("p", &policy);
        prop_assert_eq!(l.lease(), None);
        let mut now = 0;
        for (advance, key, cost, op) in steps {
            now += advance * MS;
            let at = Timestamp::from_nanos(now);
            let key = [key];
            match op {
                0 => {
                    block_on(plain.refund(&p, &key, at, cost)).expect("memory");
                    block_on(leasing.refund(&l, &key, at, cost)).expect("memory");
                }
                1 => {
                    block_on(plain.reset(&p, &key)).expect("memory");
                    block_on(leasing.reset(&l, &key)).expect("memory");
                }
                _ => {
                    let a = block_on(plain.hit(&p, &key, at, cost)).expect("memory");
                    let b = block_on(leasing.hit(&l, &key, at, cost)).expect("memory");
                    prop_assert_eq!(a, b);
                }
            }
        }
        prop_assert_eq!(leasing.stats().hits, 0);
    }

    /// Leases on: 4 instances hitting one key in turn never admit more than the limit in a
    /// fixed window, whatever the times and costs.
    #[test]
    fn a_fleet_never_passes_a_fixed_window(
        amount in 1u64..=60,
        lease_ms in 1u64..=400,
        steps in prop::collection::vec((0u64..=30, 0usize..4, 1u64..=3), 1..400),
    ) {
        let policy = Policy::fixed_window(format!("{amount}/second").parse().expect("rates"));
        let (fleet, _) = fleet(4, lease_ms, &policy);
        let mut admitted: HashMap<u64, u64> = HashMap::new();
        let (mut now, mut window_start) = (0, None::<u64>);
        for (advance, who, cost) in steps {
            now += advance * MS;
            let cost = cost.min(amount);
            let (store, p) = &fleet[who];
            if hit(store, p, b"k", now, cost) {
                // Windows start at the first hit after the previous one ended.
                let start = match window_start {
                    Some(start) if now < start + 1_000 * MS => start,
                    _ => now,
                };
                window_start = Some(start);
                *admitted.entry(start).or_default() += cost;
                prop_assert!(admitted[&start] <= amount, "{admitted:?}");
            }
        }
    }
}

/// Under a load of twice the limit from 4 instances, at least 95% of the limit is admitted
/// in every whole window, never more than it, with fewer than 1 call in 10 hits.
#[test]
fn a_fleet_admits_nearly_the_limit_with_few_calls() {
    let amount = 1_000;
    let policy = Policy::fixed_window(format!("{amount}/second").parse().expect("rates"));
    let (fleet, _) = fleet(4, 250, &policy);
    let mut per_window = [0u64; 10];
    // 2000 hits a second, 500 from each instance, for 10 seconds.
    for i in 0..20_000u64 {
        let now = i * MS / 2;
        let (store, p) = &fleet[(i % 4) as usize];
        if hit(store, p, b"hot", now, 1) {
            per_window[(now / (1_000 * MS)) as usize] += 1;
        }
    }
    for (w, &n) in per_window.iter().enumerate() {
        assert!(n <= amount, "window {w}: {n}");
        assert!(n * 100 >= amount * 95, "window {w}: {n}");
    }
    let (hits, calls): (u64, u64) = fleet
        .iter()
        .map(|(store, _)| (store.stats().hits, store.stats().store_calls))
        .fold((0, 0), |(h, c), (sh, sc)| (h + sh, c + sc));
    assert_eq!(hits, 20_000);
    assert!(calls * 10 < hits, "{calls} calls for {hits} hits");
    assert!(
        fleet
            .iter()
            .all(|(store, _)| store.stats().local_denials > 0)
    );
}

/// A token bucket leased for T admits at most burst + rate × (|I| + T) in any interval I.
#[test]
fn a_leased_token_bucket_stays_within_its_loosened_bound() {
    let policy = Policy::token_bucket("100/second".parse().expect("rates"))
        .expect("policy")
        .with_burst(20)
        .expect("burst");
    let t = 100;
    let (fleet, _) = fleet(3, t, &policy);
    let mut admitted = Vec::new();
    for i in 0..6_000u64 {
        let now = i * MS;
        let (store, p) = &fleet[(i % 3) as usize];
        if hit(store, p, b"k", now, 1) {
            admitted.push(now);
        }
    }
    // Every interval from one admission to another.
    for (a, &start) in admitted.iter().enumerate() {
        for (b, &end) in admitted.iter().enumerate().skip(a) {
            let span_ms = (end - start) / MS;
            let bound = 20 + 100 * (span_ms + t) / 1_000;
            assert!(
                (b - a + 1) as u64 <= bound + 1,
                "{} in {span_ms} ms",
                b - a + 1
            );
        }
    }
    assert!(admitted.len() >= 550, "{}", admitted.len());
}

/// After a denial, hits are denied without a call until the store's retry_after; a reset
/// forgets the denial and the lease.
#[test]
fn denials_are_repeated_locally_until_the_retry_after() {
    let policy = Policy::fixed_window("2/second".parse().expect("rates"));
    let (fleet, shared) = fleet(1, 250, &policy);
    let (store, p) = &fleet[0];
    assert!(hit(store, p, b"k", 0, 1));
    assert!(hit(store, p, b"k", MS, 1));
    let calls = store.stats().store_calls;
    let denied = block_on(store.hit(p, b"k", Timestamp::from_nanos(2 * MS), 1)).expect("memory");
    assert_eq!(denied.retry_after(), Some(Duration::from_millis(998)));
    for ms in [3, 500, 999] {
        let again =
            block_on(store.hit(p, b"k", Timestamp::from_nanos(ms * MS), 1)).expect("memory");
        assert_eq!(again.retry_after(), Some(Duration::from_millis(1_000 - ms)));
    }
    assert_eq!(store.stats().store_calls, calls + 1);
    assert_eq!(store.stats().local_denials, 3);
    assert!(hit(store, p, b"k", 1_000 * MS, 1), "the window has passed");
    block_on(store.reset(p, b"k")).expect("memory");
    let plain = shared.prepare("p", &policy);
    let fresh = block_on(shared.hit(&plain, b"k", Timestamp::from_nanos(1_000 * MS), 0));
    assert_eq!(fresh.expect("memory").remaining(), 2);
    assert!(
        hit(store, p, b"k", 1_000 * MS, 2),
        "a reset forgets the denial"
    );
}

/// Unspent units come back to the store while their window lasts (at the next take or the
/// sweep), and never after it: a give-back must not free room in the next window.
#[test]
fn unspent_units_come_back_only_within_their_window() {
    let policy = Policy::fixed_window("800/second".parse().expect("rates"));
    let (fleet, shared) = fleet(1, 100, &policy);
    let (store, p) = &fleet[0];
    let plain = shared.prepare("p", &policy);
    let remaining = |at: u64| {
        block_on(shared.hit(&plain, b"k", Timestamp::from_nanos(at), 0))
            .expect("memory")
            .remaining()
    };
    assert!(hit(store, p, b"k", 0, 1));
    assert!(hit(store, p, b"k", MS, 1)); // a lease at 2 a ms: 100 wanted
    assert_eq!(remaining(MS), 800 - 1 - 100);
    assert_eq!(block_on(store.sweep(Timestamp::from_nanos(200 * MS))), 99);
    assert_eq!(remaining(200 * MS), 800 - 2);
    // A lease taken late in the window ends with it; its units are not given back after.
    assert!(hit(store, p, b"k", 990 * MS, 1));
    assert!(hit(store, p, b"k", 991 * MS, 1));
    assert_eq!(block_on(store.sweep(Timestamp::from_nanos(1_001 * MS))), 0);
    assert_eq!(remaining(1_001 * MS), 800);
    assert!(store.stats().units_dropped > 0);
}

/// Hits of several units spend what the lease holds and take the rest; peeks are answered
/// from the lease.
#[test]
fn costly_hits_and_peeks() {
    let policy = Policy::fixed_window("80/second".parse().expect("rates"));
    let (fleet, _) = fleet(1, 250, &policy);
    let (store, p) = &fleet[0];
    let mut allowed = 0;
    for i in 0..40 {
        if hit(store, p, b"k", i * MS, 3) {
            allowed += 3;
        }
        let peek = block_on(store.hit(p, b"k", Timestamp::from_nanos(i * MS), 0)).expect("memory");
        assert_eq!(peek.allowed(), allowed < 80, "after {allowed}");
    }
    assert_eq!(allowed, 78, "26 hits of 3 fit in 80");
}

/// A table full of keys evicts one, whose unspent units are given back at the sweep.
#[test]
fn evicted_leases_are_given_back() {
    let policy = Policy::token_bucket("1000/second".parse().expect("rates")).expect("policy");
    let shared = Arc::new(MemoryStore::new());
    let store = Leasing::new(Arc::clone(&shared))
        .with_lease(lease(1_000))
        .with_max_keys(16);
    let p = store.prepare("p", &policy);
    for key in 0..200u8 {
        block_on(store.hit(&p, &[key], Timestamp::from_nanos(0), 1)).expect("memory");
        block_on(store.hit(&p, &[key], Timestamp::from_nanos(MS), 1)).expect("memory");
    }
    let stats = store.stats();
    assert!(stats.leases_evicted > 0, "{stats:?}");
    let back = block_on(store.sweep(Timestamp::from_nanos(2 * MS)));
    assert!(back > 0, "{:?}", store.stats());
}

/// A sliding window counter leased by 4 instances keeps its guarantee exactly: at every
/// admission, the estimate over what was *admitted* (previous window weighted by its
/// overlap, plus the current window) stays within the limit.
#[test]
fn a_leased_sliding_window_counter_keeps_its_estimate_within_the_limit() {
    let (amount, window) = (100u64, 1_000 * MS);
    let policy = Policy::sliding_window_counter(format!("{amount}/second").parse().expect("rates"));
    let (fleet, _) = fleet(4, 250, &policy);
    // A hit every 2 ms from the first, so the store's windows run back to back from 0.
    let mut admitted: HashMap<u64, u64> = HashMap::new();
    for i in 0..10_000u64 {
        let now = i * 2 * MS / 3;
        let (store, p) = &fleet[(i % 4) as usize];
        if !hit(store, p, b"k", now, 1) {
            continue;
        }
        let w = now / window;
        *admitted.entry(w).or_default() += 1;
        let previous = w
            .checked_sub(1)
            .map_or(0, |p| admitted.get(&p).copied().unwrap_or(0));
        let elapsed = now - w * window;
        // previous × (W − elapsed) / W + current ≤ limit, in integers.
        let estimate = u128::from(previous) * u128::from(window - elapsed)
            + u128::from(admitted[&w]) * u128::from(window);
        assert!(
            estimate <= u128::from(amount) * u128::from(window),
            "at {now}: previous {previous}, current {}",
            admitted[&w]
        );
    }
    let total: u64 = admitted.values().sum();
    assert!(total >= 600, "{total} admitted in 6.7 s");
}

/// A sliding window log leased for T by 4 instances: every trailing window of W admits at
/// most the limit plus the units leased and unspent when it started, here at most twice the
/// limit; and never gives units back.
#[test]
fn a_leased_sliding_window_log_stays_within_its_loosened_bound() {
    let (amount, window) = (40u64, 1_000 * MS);
    let policy = Policy::sliding_window_log(format!("{amount}/second").parse().expect("rates"))
        .expect("policy");
    let (fleet, _) = fleet(4, 250, &policy);
    let mut admitted = Vec::new();
    for i in 0..12_000u64 {
        let now = i * MS / 2;
        let (store, p) = &fleet[(i % 4) as usize];
        if hit(store, p, b"k", now, 1) {
            admitted.push(now);
        }
    }
    for (a, &start) in admitted.iter().enumerate() {
        let within = admitted[a..]
            .iter()
            .take_while(|&&t| t < start + window)
            .count();
        assert!(
            within as u64 <= 2 * amount,
            "{within} in the window from {start}"
        );
    }
    assert!(admitted.len() as u64 >= 5 * amount, "{}", admitted.len());
    assert!(
        fleet
            .iter()
            .all(|(store, _)| store.stats().units_given_back == 0)
    );
}
