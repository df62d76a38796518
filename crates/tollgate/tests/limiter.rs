//! Edges of every strategy through policy handles over the memory store, with a manual clock:
//! window boundaries, cost 0, cost larger than the limit, several rates, kill switches,
//! times that go backwards; and inline policies.

use std::time::Duration;

use futures_executor::block_on;
use tollgate::{
    Decision, Error, Limiter, ManualClock, MemoryStore, Policy, PolicyHandle, Rate, Strategy,
};

const NS: Duration = Duration::from_nanos(1);

/// The policy `p` over a fresh memory store, with a manual clock.
fn limiter(policy: Policy) -> (PolicyHandle, ManualClock) {
    let clock = ManualClock::new();
    let p = Limiter::new(MemoryStore::new())
        .with_clock(clock.clone())
        .policy("p", policy);
    (p, clock)
}

fn hit(p: &PolicyHandle, cost: u64) -> Decision {
    block_on(p.hit_cost("k", cost)).expect("decision")
}

#[test]
fn fixed_window_boundary_is_exact() {
    let (limiter, clock) = limiter(Policy::fixed_window(Rate::per_second(2).into()));
    clock.advance(Duration::from_millis(300)); // the window is [0.3 s, 1.3 s)
    assert!(hit(&limiter, 2).allowed());
    clock.advance(Duration::from_millis(1000) - NS);
    let d = hit(&limiter, 1);
    assert!(!d.allowed());
    assert_eq!(d.retry_after(), Some(NS));
    clock.advance(NS);
    let d = hit(&limiter, 1);
    assert!(d.allowed());
    assert_eq!(d.reset_after(), Duration::from_secs(1));
}

#[test]
fn sliding_window_log_boundary_is_exact() {
    let (limiter, clock) =
        limiter(Policy::sliding_window_log(Rate::per_second(2).into()).expect("in bounds"));
    assert!(hit(&limiter, 1).allowed()); // at 0
    clock.advance(Duration::from_millis(400));
    assert!(hit(&limiter, 1).allowed()); // at 0.4 s
    let d = hit(&limiter, 1);
    assert_eq!(d.retry_after(), Some(Duration::from_millis(600)));
    clock.advance(Duration::from_millis(600) - NS);
    assert!(!hit(&limiter, 1).allowed());
    clock.advance(NS); // 1 s: the hit at 0 has left the window, the one at 0.4 s has not
    assert!(hit(&limiter, 1).allowed());
    let d = hit(&limiter, 1);
    assert_eq!(d.retry_after(), Some(Duration::from_millis(400)));
}

#[test]
fn sliding_window_counter_weighs_the_previous_window() {
    let (limiter, clock) = limiter(Policy::sliding_window_counter(Rate::per_minute(4).into()));
    assert!(hit(&limiter, 4).allowed()); // window [0, 60 s) full
    clock.advance(Duration::from_secs(75)); // previous weighs 4 × 45/60 = 3
    let d = hit(&limiter, 0);
    assert_eq!(d.remaining(), 1);
    let d = hit(&limiter, 2);
    assert!(!d.allowed());
    assert_eq!(d.retry_after(), Some(Duration::from_secs(15)));
    assert!(hit(&limiter, 1).allowed());
    clock.advance(Duration::from_secs(105)); // 180 s: both windows behind, fresh
    assert_eq!(hit(&limiter, 0).remaining(), 4);
}

#[test]
fn token_bucket_refills_continuously() {
    let (limiter, clock) =
        limiter(Policy::token_bucket(Rate::per_second(4).into()).expect("bucket"));
    assert!(hit(&limiter, 4).allowed());
    let d = hit(&limiter, 3);
    assert_eq!(d.retry_after(), Some(Duration::from_millis(750)));
    clock.advance(Duration::from_millis(500));
    assert_eq!(hit(&limiter, 0).remaining(), 2);
    assert!(hit(&limiter, 2).allowed());
    assert_eq!(hit(&limiter, 0).reset_after(), Duration::from_secs(1));
}

#[test]
fn cost_zero_is_a_peek_for_every_strategy() {
    for strategy in Strategy::ALL {
        let store = MemoryStore::new();
        let p = Limiter::new(store.clone())
            .with_clock(ManualClock::new())
            .policy(
                "p",
                Policy::new(strategy, Rate::per_minute(2).into()).expect("policy"),
            );
        // A peek on an unknown key reports the full limit and stores nothing.
        let peek = block_on(p.peek("k")).expect("peek");
        assert!(peek.allowed());
        assert_eq!(peek.remaining(), 2);
        assert_eq!(store.stats().keys, 0, "{strategy}");
        assert!(hit(&p, 1).allowed());
        for _ in 0..5 {
            assert_eq!(hit(&p, 0).remaining(), 1, "{strategy}");
        }
        assert!(hit(&p, 1).allowed());
        let peek = hit(&p, 0);
        assert!(!peek.allowed(), "{strategy}: nothing left");
        assert!(peek.retry_after().is_some());
    }
}

#[test]
fn cost_above_the_limit_is_its_own_error() {
    for strategy in Strategy::ALL {
        let (limiter, _clock) = limiter(
            Policy::new(strategy, "10/second; 5/minute".parse().expect("rates")).expect("policy"),
        );
        assert!(hit(&limiter, 5).allowed(), "{strategy}");
        let err = block_on(limiter.hit_cost("k", 6)).expect_err("cost 6 > 5");
        assert!(
            matches!(
                err,
                Error::CostExceedsLimit {
                    cost: 6,
                    max_cost: 5,
                    ..
                }
            ),
            "{strategy}: {err}"
        );
        assert!(err.to_string().contains("can never fit"), "{err}");
    }
    // A token bucket's burst is its capacity.
    let bucket = Policy::token_bucket(Rate::per_second(1).into())
        .and_then(|bucket| bucket.with_burst(3))
        .expect("burst");
    let (limiter, _clock) = limiter(bucket);
    assert!(hit(&limiter, 3).allowed());
    assert!(block_on(limiter.hit_cost("k", 4)).is_err());
}

/// "3/second; 5/minute": at 0 three hits pass and a fourth is denied by the second rate;
/// at 2 s only two more fit the minute. Had the denied hit been charged to the minute, only
/// one would.
#[test]
fn several_rates_charge_all_or_nothing() {
    for strategy in Strategy::ALL {
        let (limiter, clock) = limiter(
            Policy::new(strategy, "3/second; 5/minute".parse().expect("rates")).expect("policy"),
        );
        for _ in 0..3 {
            assert!(hit(&limiter, 1).allowed(), "{strategy}");
        }
        let denied = hit(&limiter, 1);
        assert!(!denied.allowed(), "{strategy}");
        assert_eq!(denied.limit(), 3, "{strategy}: the per-second rate binds");
        clock.advance(Duration::from_secs(2));
        let d = hit(&limiter, 1);
        assert!(d.allowed(), "{strategy}");
        assert_eq!(
            (d.limit(), d.remaining()),
            (5, 1),
            "{strategy}: the minute binds now"
        );
        assert!(hit(&limiter, 1).allowed(), "{strategy}");
        let denied = hit(&limiter, 1);
        assert!(!denied.allowed(), "{strategy}");
        assert_eq!(denied.limit(), 5, "{strategy}");
        assert_eq!(denied.window(), Duration::from_secs(60));
    }
}

#[test]
fn zero_is_a_kill_switch() {
    for strategy in Strategy::ALL {
        let (limiter, _clock) =
            limiter(Policy::new(strategy, "0/second".parse().expect("rate")).expect("policy"));
        for cost in [0, 1, 1000] {
            let d = hit(&limiter, cost);
            assert!(!d.allowed(), "{strategy} cost {cost}");
            assert_eq!(d.retry_after(), Some(Duration::from_secs(1)));
            assert_eq!((d.limit(), d.remaining()), (0, 0));
        }
    }
}

#[test]
fn time_going_backwards_never_lets_more_through() {
    for strategy in Strategy::ALL {
        let (limiter, clock) =
            limiter(Policy::new(strategy, Rate::per_minute(3).into()).expect("policy"));
        clock.set(tollgate::Timestamp::from_nanos(10_000_000_000));
        assert!(hit(&limiter, 3).allowed());
        clock.set(tollgate::Timestamp::from_nanos(5_000_000_000));
        let d = hit(&limiter, 1);
        assert!(!d.allowed(), "{strategy}");
        assert!(d.retry_after().is_some_and(|r| r > Duration::ZERO));
    }
}

#[test]
fn reset_forgets_a_key() {
    let (limiter, _clock) = limiter(Policy::fixed_window(Rate::per_minute(1).into()));
    assert!(hit(&limiter, 1).allowed());
    assert!(!hit(&limiter, 1).allowed());
    block_on(limiter.reset("k")).expect("reset");
    assert!(hit(&limiter, 1).allowed());
}

#[test]
fn keys_compare_by_canonical_bytes() {
    let (limiter, _clock) = limiter(Policy::fixed_window(Rate::per_minute(1).into()));
    let ip: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
    assert!(block_on(limiter.hit(&ip)).expect("hit").allowed());
    assert!(!block_on(limiter.hit("192.0.2.1")).expect("hit").allowed());
    // Long keys (stored as digests) are told apart.
    let long_a = "user:00000000000000000000000000000001";
    let long_b = "user:00000000000000000000000000000002";
    assert!(block_on(limiter.hit(long_a)).expect("hit").allowed());
    assert!(block_on(limiter.hit(long_b)).expect("hit").allowed());
    assert!(!block_on(limiter.hit(long_a)).expect("hit").allowed());
}

fn refund(p: &PolicyHandle, cost: u64) {
    block_on(p.refund("k", cost)).expect("refund");
}

/// Deduct-when: charge before the request, give it back after when it should not count.
/// A hit refunded at once is as if it had never been made, for every strategy, including
/// after the window has moved on.
#[test]
fn a_refunded_hit_lets_the_next_one_through() {
    for strategy in Strategy::ALL {
        let (limiter, clock) =
            limiter(Policy::new(strategy, Rate::per_minute(3).into()).expect("policy"));
        clock.advance(Duration::from_secs(90));
        assert!(hit(&limiter, 2).allowed(), "{strategy}");
        assert!(hit(&limiter, 1).allowed(), "{strategy}");
        assert!(!hit(&limiter, 1).allowed(), "{strategy}");
        refund(&limiter, 1);
        let d = hit(&limiter, 1);
        assert!(d.allowed(), "{strategy}: the refund made room");
        assert_eq!(d.remaining(), 0, "{strategy}");
        refund(&limiter, 3);
        assert_eq!(hit(&limiter, 0).remaining(), 3, "{strategy}: fresh again");
        // Refunding more, or with nothing charged, never makes room beyond the limit.
        refund(&limiter, 3);
        assert!(hit(&limiter, 3).allowed(), "{strategy}");
        assert!(!hit(&limiter, 1).allowed(), "{strategy}");
    }
}

#[test]
fn refund_checks_the_cost_like_a_hit() {
    let store = MemoryStore::new();
    let limiter = Limiter::new(store.clone()).policy(
        "p",
        Policy::fixed_window("10/second; 5/minute".parse().expect("rates")),
    );
    let err = block_on(limiter.refund("k", 6)).expect_err("cost 6 > 5");
    assert!(
        matches!(
            err,
            Error::CostExceedsLimit {
                cost: 6,
                max_cost: 5,
                ..
            }
        ),
        "{err}"
    );
    // A refund of a key never hit, or of cost 0, stores nothing.
    refund(&limiter, 5);
    refund(&limiter, 0);
    assert_eq!(store.stats().keys, 0);
    assert!(hit(&limiter, 5).allowed());
    block_on(limiter.refund("k", 0)).expect("cost 0");
    assert!(!hit(&limiter, 1).allowed(), "cost 0 gave nothing back");
    block_on(limiter.refund("k", 5)).expect("refund");
    assert!(hit(&limiter, 5).allowed());
}

#[test]
fn inline_policies_are_prepared_once_per_scope() {
    let limiter = Limiter::new(MemoryStore::new());
    let two = Policy::fixed_window(Rate::per_minute(2).into());
    block_on(async {
        let s = limiter.inline("s", &two);
        assert_eq!(s.name(), "s|2/minute (fixed-window)");
        assert_eq!(s.hit_cost("k", 2).await?.remaining(), 0);
        assert!(!s.hit_cost("k", 1).await?.allowed());
        // Found again, not prepared again: the same handle, the same count.
        let again = limiter.inline("s", &two);
        assert!(again.same_as(&s));
        again.refund("k", 1).await?;
        assert!(s.hit_cost("k", 1).await?.allowed());
        s.reset("k").await?;
        assert_eq!(s.hit_cost("k", 1).await?.remaining(), 1);
        assert!(matches!(
            s.hit_cost("k", 3).await,
            Err(Error::CostExceedsLimit {
                cost: 3,
                max_cost: 2,
                ..
            })
        ));
        // Another scope is another count.
        assert_eq!(
            limiter
                .inline("t", &two)
                .hit_cost("k", 2)
                .await?
                .remaining(),
            0
        );
        Ok::<(), Error>(())
    })
    .expect("no store errors");
}

/// A flood of distinct inline policies (a client sending a new one with every request) never
/// holds more than the bound, and evicts only policies not used lately: one in use keeps
/// its counts.
#[test]
fn a_flood_of_inline_policies_evicts_the_unused_ones_and_is_counted() {
    use tollgate::MAX_INLINE_POLICIES;
    let store = MemoryStore::new();
    let limiter = Limiter::new(store.clone());
    let busy = Policy::fixed_window(Rate::per_hour(2).into());
    limiter.inline("s", &busy).hit_sync("k", 1).expect("hit");
    let flood = 3 * MAX_INLINE_POLICIES as u64;
    for n in 0..flood {
        let policy = Policy::fixed_window(Rate::per_hour(1_000 + n as u32).into());
        limiter
            .inline("flood", &policy)
            .hit_sync("k", 1)
            .expect("hit");
        // The busy policy is used all along.
        limiter.inline("s", &busy).hit_sync("k", 0).expect("peek");
    }
    let evicted = limiter.evicted_inline_policies();
    assert_eq!(
        evicted,
        flood + 1 - MAX_INLINE_POLICIES as u64,
        "kept at most the bound"
    );
    assert!(
        store.stats().keys <= MAX_INLINE_POLICIES,
        "{:?}",
        store.stats()
    );
    let again = limiter.inline("s", &busy).hit_sync("k", 1).expect("hit");
    assert_eq!(again.remaining(), 0, "the busy policy kept its count");
}

/// A server rebuilds what it serves from its configuration on a reload, from a clone of the
/// same limiter: inline policies keep their counts, and a named policy prepared again under
/// the same name while the old handle lives finds its counts too.
#[test]
fn counts_outlive_handles_rebuilt_from_a_clone_of_the_limiter() {
    let limiter = Limiter::new(MemoryStore::new());
    let one = Policy::fixed_window(Rate::per_hour(1).into());
    block_on(async {
        let inline = limiter.inline("inline", &one);
        assert!(inline.hit("k").await?.allowed());
        drop(inline);
        let reloaded = limiter.clone();
        assert!(!reloaded.inline("inline", &one).hit("k").await?.allowed());

        let named = limiter.policy("login", one.clone());
        assert!(named.hit("k").await?.allowed());
        let renewed = reloaded.policy("login", one.clone());
        drop(named);
        assert!(!renewed.hit("k").await?.allowed());
        // A changed policy starts afresh.
        let changed = reloaded.policy("login", Policy::fixed_window(Rate::per_hour(2).into()));
        assert!(changed.hit("k").await?.allowed());
        Ok::<(), Error>(())
    })
    .expect("no store errors");
}
