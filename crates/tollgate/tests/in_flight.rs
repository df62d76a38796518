//! Concurrency slots: the memory store's leases against a naive model (never more than `max`
//! live leases per key, an expired lease frees its slot, releasing an unknown or expired
//! lease frees nothing), admissions taking slots and rate charges all or none, the key
//! budget holding under a flood of keys, and a failing store under each failure mode.

use std::time::Duration;

use proptest::prelude::*;
use tollgate::testing::FlakyStore;
use tollgate::{
    Acquisition, Admission, Charge, ChargeResult, ConcurrencyLimit, Failover, FailureMode,
    InFlight, LeaseId, Limiter, ManualClock, MemoryStore, Policy, Rate, SlotResult, Store,
    Timestamp,
};

/// One step: the clock moves by `advance` ms, then key `key` acquires, or releases the lease
/// picked by `pick` among those it was given (or one never given, when it has none or
/// `pick` is 255).
#[derive(Debug, Clone)]
struct Step {
    advance: u64,
    key: u8,
    acquire: bool,
    pick: u8,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..=5, 0u64..=40],
            0u8..3,
            any::<bool>(),
            any::<u8>(),
        )
            .prop_map(|(advance, key, acquire, pick)| Step {
                advance,
                key,
                acquire,
                pick,
            }),
        1..150,
    )
}

/// The naive model: every lease ever given, with its key, expiry (ms) and whether it was
/// released; live ones are those not released and not yet expired.
#[derive(Default)]
struct Model {
    leases: Vec<(u8, LeaseId, u64, bool)>,
}

impl Model {
    fn live(&self, key: u8, now: u64) -> Vec<u64> {
        self.leases
            .iter()
            .filter(|&&(k, _, expires, released)| k == key && !released && expires > now)
            .map(|&(_, _, expires, _)| expires)
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn memory_leases_match_the_naive_model(max in 1u32..=4, ttl in 1u64..=30, steps in steps()) {
        let store = MemoryStore::new();
        let limit = ConcurrencyLimit::new(max)
            .and_then(|limit| limit.with_lease_ttl(Duration::from_millis(ttl)))
            .expect("a valid limit");
        let leases = store.prepare_leases("model", &limit);
        let mut model = Model::default();
        let mut now = 0u64;
        let mut next_id = 1u128;
        for step in steps {
            now += step.advance;
            let at = Timestamp::from_nanos(now * 1_000_000);
            let key = [step.key];
            if step.acquire {
                let lease = LeaseId::from_u128(next_id);
                next_id += 1;
                let got = futures_executor::block_on(store.acquire(&leases, &key, lease, at))
                    .expect("memory never fails");
                let live = model.live(step.key, now);
                let in_flight = u32::try_from(live.len()).expect("small");
                let expected = if in_flight < max {
                    model.leases.push((step.key, lease, now + ttl, false));
                    Acquisition::Acquired { in_flight: in_flight + 1 }
                } else {
                    let earliest = live.iter().min().copied().expect("full means leases");
                    Acquisition::Full {
                        in_flight,
                        retry_after: Duration::from_millis(earliest - now),
                    }
                };
                prop_assert_eq!(got, expected);
                prop_assert!(model.live(step.key, now).len() <= max as usize);
            } else {
                let given: Vec<usize> = model
                    .leases
                    .iter()
                    .enumerate()
                    .filter(|(_, lease)| lease.0 == step.key)
                    .map(|(index, _)| index)
                    .collect();
                let (lease, expected) = match given.get(usize::from(step.pick) % given.len().max(1)) {
                    Some(&index) if step.pick != 255 => {
                        let (_, id, expires, released) = model.leases[index];
                        model.leases[index].3 = true;
                        (id, !released && expires > now)
                    }
                    _ => (LeaseId::from_u128(u128::MAX - u128::from(step.pick)), false),
                };
                let released = futures_executor::block_on(store.release(&leases, &key, lease, at))
                    .expect("memory never fails");
                prop_assert_eq!(released, expected);
            }
        }
    }
}

#[test]
fn a_full_slot_charges_nothing_and_a_denied_charge_gives_the_slot_back() {
    let limiter = Limiter::new(MemoryStore::new());
    let slots = limiter.concurrency("slots", ConcurrencyLimit::new(1).expect("limit"));
    let rate = limiter.policy("rate", Policy::fixed_window(Rate::per_minute(2).into()));
    let request = || {
        Admission::new()
            .slot(InFlight::new(slots.clone(), "alice"))
            .charge(Charge::new(rate.clone(), "alice", 1))
    };
    futures_executor::block_on(async {
        let mut first = request().decide().await;
        assert!(first.is_admitted());
        let held = first.take_leases();
        // The slot is held: refused, and the rate is not charged.
        let full = request().decide().await;
        assert!(!full.is_admitted());
        assert!(matches!(
            full.refused_by_slot(),
            Some((0, SlotResult::Full(_)))
        ));
        assert!(matches!(full.results(), [ChargeResult::Skipped]));
        assert!(
            full.refusing_decision()
                .is_some_and(|d| d.retry_after().is_some())
        );
        assert_eq!(rate.peek("alice").await.expect("peek").remaining(), 1);
        held.release().await.expect("release");
        // The last unit of the rate: admitted, slot released.
        let mut second = request().decide().await;
        assert!(second.is_admitted());
        second.take_leases().release().await.expect("release");
        // The rate is spent: refused by the charge, and the slot it took is given back.
        let denied = request().decide().await;
        assert!(matches!(
            denied.refused_by(),
            Some((0, ChargeResult::Denied(_)))
        ));
        assert!(denied.refused_by_slot().is_none());
        let (lease, _) = slots.acquire("alice").await.expect("acquire");
        assert!(lease.is_some(), "the denied request's slot was given back");
    });
}

#[test]
fn leases_expire_after_their_time() {
    let clock = ManualClock::new();
    let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    let limit = ConcurrencyLimit::new(2)
        .and_then(|limit| limit.with_lease_ttl(Duration::from_secs(5)))
        .expect("limit");
    let slots = limiter.concurrency("slots", limit);
    futures_executor::block_on(async {
        let (first, _) = slots.acquire("k").await.expect("acquire");
        clock.advance(Duration::from_secs(2));
        assert!(slots.acquire("k").await.expect("acquire").0.is_some());
        let (none, full) = slots.acquire("k").await.expect("acquire");
        assert!(none.is_none());
        assert_eq!(full.retry_after(), Some(Duration::from_secs(3)));
        clock.advance(Duration::from_secs(3)); // the first lease expires
        assert!(slots.acquire("k").await.expect("acquire").0.is_some());
        // Releasing the expired lease frees nothing: the key is still full.
        assert!(
            !slots
                .release("k", first.expect("lease"))
                .await
                .expect("release")
        );
        assert!(slots.acquire("k").await.expect("acquire").0.is_none());
    });
}

#[test]
fn a_flood_of_keys_stays_within_the_budget() {
    let store = MemoryStore::with_max_keys(1_000);
    let limiter = Limiter::new(store.clone());
    let slots = limiter.concurrency("slots", ConcurrencyLimit::new(3).expect("limit"));
    let rate = limiter.policy("rate", Policy::fixed_window(Rate::per_hour(5).into()));
    rate.hit_sync("alice", 1).expect("hit");
    futures_executor::block_on(async {
        for client in 0..20_000u32 {
            slots.acquire(&client).await.expect("acquire");
        }
    });
    let stats = store.stats();
    assert!(stats.keys <= 1_001, "{stats:?}");
    assert!(stats.evicted > 0);
    // The flood evicted its own keys, not the rate policy's.
    assert_eq!(rate.hit_sync("alice", 0).expect("peek").remaining(), 4);
}

#[test]
fn a_failing_store_answers_by_the_failure_mode() {
    let limit = ConcurrencyLimit::new(1).expect("limit");
    let now = Timestamp::from_nanos(0);
    let acquire = |mode| {
        let flaky = FlakyStore::new();
        flaky.set_down(true);
        let failover = Failover::new(flaky, mode);
        let leases = failover.prepare_leases("slots", &limit);
        let first =
            futures_executor::block_on(failover.acquire(&leases, b"k", LeaseId::random(), now));
        let second =
            futures_executor::block_on(failover.acquire(&leases, b"k", LeaseId::random(), now));
        (first.ok(), second.ok())
    };
    assert_eq!(acquire(FailureMode::Deny), (None, None));
    // Failing open: let in, nothing counted.
    let open = Some(Acquisition::Acquired { in_flight: 0 });
    assert_eq!(acquire(FailureMode::Allow), (open, open));
    // Falling back: counted in this process.
    let (first, second) = acquire(FailureMode::Fallback);
    assert_eq!(first, Some(Acquisition::Acquired { in_flight: 1 }));
    assert!(matches!(
        second,
        Some(Acquisition::Full { in_flight: 1, .. })
    ));
}

#[test]
fn a_delayed_request_turned_away_frees_its_slot_too() {
    let limiter = Limiter::new(MemoryStore::new()).with_clock(ManualClock::new());
    let slots = limiter.concurrency("slots", ConcurrencyLimit::new(1).expect("limit"));
    let bucket = Policy::token_bucket(Rate::per_second(10).into())
        .and_then(|policy| policy.with_burst(1))
        .and_then(|policy| policy.with_max_delay(Duration::from_secs(1)))
        .expect("policy");
    let paced = limiter.policy("paced", bucket);
    futures_executor::block_on(async {
        // The bucket's one token goes to another key's request, so this one must wait.
        let other = Admission::new().charge(Charge::new(paced.clone(), "alice", 1));
        assert!(other.decide().await.is_admitted());
        let waiting = Admission::new()
            .slot(InFlight::new(slots.clone(), "alice"))
            .charge(Charge::new(paced.clone(), "alice", 1))
            .decide()
            .await;
        assert_eq!(waiting.delay(), Duration::from_millis(100));
        // A front end with no room for one more waiting request turns it away.
        waiting.withdraw().await.expect("withdraw");
        let (lease, _) = slots.acquire("alice").await.expect("acquire");
        assert!(
            lease.is_some(),
            "the slot of the request turned away is free"
        );
    });
}
