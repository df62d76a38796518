//! The failure policies against a store that fails on command.

use std::time::Duration;

use futures_executor::block_on;
use tollgate::{
    Decision, Error, Failover, FailurePolicy, FlakyStore, Limiter, ManualClock, Policy, Rate,
};

fn limiter(policy: FailurePolicy) -> (Limiter<Failover<FlakyStore>>, FlakyStore, ManualClock) {
    let flaky = FlakyStore::new();
    let clock = ManualClock::new();
    let limiter = Limiter::new(Failover::new(flaky.clone(), policy))
        .with_clock(clock.clone())
        .with_policy("p", Policy::fixed_window(Rate::per_hour(2).into()));
    (limiter, flaky, clock)
}

fn hit(limiter: &Limiter<Failover<FlakyStore>>) -> Result<Decision, Error> {
    block_on(limiter.hit("p", "k"))
}

fn refund(limiter: &Limiter<Failover<FlakyStore>>) -> Result<(), Error> {
    block_on(limiter.refund("p", "k", 1))
}

#[test]
fn allow_fails_open_and_counts_errors() {
    let (limiter, flaky, _clock) = limiter(FailurePolicy::Allow);
    flaky.set_down(true);
    for _ in 0..5 {
        let d = hit(&limiter).expect("answer");
        assert!(d.allowed());
        assert_eq!(
            (d.limit(), d.remaining()),
            (2, 2),
            "reports the full allowance"
        );
        assert_eq!(d.window(), Duration::from_secs(3600));
    }
    assert_eq!(limiter.store().errors(), 5);
    flaky.set_down(false);
    assert!(hit(&limiter).expect("answer").allowed());
    assert!(hit(&limiter).expect("answer").allowed());
    assert!(!hit(&limiter).expect("answer").allowed(), "counted again");
}

#[test]
fn deny_returns_the_store_error() {
    let (limiter, flaky, _clock) = limiter(FailurePolicy::Deny);
    flaky.set_down(true);
    let err = hit(&limiter).expect_err("store down");
    assert!(matches!(&err, Error::Store(e) if e.is_timeout()), "{err}");
    assert_eq!(err.to_string(), "store timed out: flaky store is down");
}

#[test]
fn fallback_counts_locally_then_switches_back_after_a_probe() {
    let (limiter, flaky, clock) = limiter(FailurePolicy::Fallback);
    flaky.set_down(true);
    assert!(hit(&limiter).expect("answer").allowed());
    assert!(limiter.store().is_falling_back());
    assert!(hit(&limiter).expect("answer").allowed());
    assert!(
        !hit(&limiter).expect("answer").allowed(),
        "the fallback counts"
    );
    // The store comes back; hits stay local until the next probe is due.
    flaky.set_down(false);
    let served = flaky.served();
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL / 2);
    hit(&limiter).expect("answer");
    assert_eq!(flaky.served(), served);
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
    assert!(
        hit(&limiter).expect("answer").allowed(),
        "the store's own count"
    );
    assert!(!limiter.store().is_falling_back());
    assert_eq!(flaky.served(), served + 1);
    // A store that fails again sends hits back to memory at once.
    flaky.set_down(true);
    clock.advance(Duration::from_secs(1));
    assert!(
        !hit(&limiter).expect("answer").allowed(),
        "memory still counts 2"
    );
}

#[test]
fn failing_open_reports_the_tightest_rate_and_keeps_kill_switches() {
    let flaky = FlakyStore::new();
    flaky.set_down(true);
    let limiter = Limiter::new(Failover::new(flaky, FailurePolicy::Allow))
        .with_policy(
            "two",
            Policy::fixed_window("10/second; 5/minute".parse().expect("rates")),
        )
        .with_policy(
            "off",
            Policy::fixed_window("0/hour".parse().expect("rates")),
        );
    let d = block_on(limiter.hit("two", "k")).expect("answer");
    assert!(d.allowed());
    assert_eq!(
        (d.limit(), d.remaining(), d.window()),
        (5, 5, Duration::from_secs(60))
    );
    let d = block_on(limiter.hit("off", "k")).expect("answer");
    assert!(
        !d.allowed(),
        "a kill switch denies even while the store is down"
    );
    assert_eq!(d.retry_after(), Some(Duration::from_secs(3600)));
}

#[test]
fn refunds_reach_the_store_while_it_answers() {
    for policy in [
        FailurePolicy::Allow,
        FailurePolicy::Deny,
        FailurePolicy::Fallback,
    ] {
        let (limiter, _flaky, _clock) = limiter(policy);
        assert!(hit(&limiter).expect("answer").allowed());
        assert!(hit(&limiter).expect("answer").allowed());
        refund(&limiter).expect("refunded");
        assert!(hit(&limiter).expect("answer").allowed(), "{policy}");
        assert!(!hit(&limiter).expect("answer").allowed(), "{policy}");
        assert_eq!(limiter.store().errors(), 0);
    }
}

#[test]
fn a_failed_refund_is_counted_and_swallowed_failing_open() {
    let (limiter, flaky, _clock) = limiter(FailurePolicy::Allow);
    hit(&limiter).expect("answer");
    hit(&limiter).expect("answer");
    flaky.set_down(true);
    refund(&limiter).expect("swallowed");
    assert_eq!(limiter.store().errors(), 1);
    flaky.set_down(false);
    assert!(
        !hit(&limiter).expect("answer").allowed(),
        "the refund was lost, not applied later"
    );
}

#[test]
fn a_failed_refund_is_returned_failing_closed() {
    let (limiter, flaky, _clock) = limiter(FailurePolicy::Deny);
    hit(&limiter).expect("answer");
    flaky.set_down(true);
    let err = refund(&limiter).expect_err("store down");
    assert!(matches!(&err, Error::Store(e) if e.is_timeout()), "{err}");
    assert_eq!(limiter.store().errors(), 1);
}

#[test]
fn falling_back_refunds_in_memory_where_the_hits_went() {
    let (limiter, flaky, clock) = limiter(FailurePolicy::Fallback);
    // A hit charged to the store, then the store fails as the refund comes: the refund is
    // swallowed, and the failure sends later hits to memory.
    hit(&limiter).expect("answer");
    flaky.set_down(true);
    refund(&limiter).expect("swallowed");
    assert_eq!(limiter.store().errors(), 1);
    assert!(limiter.store().is_falling_back());
    // Hits and refunds now both go to memory, without probing the store.
    assert!(hit(&limiter).expect("answer").allowed());
    assert!(hit(&limiter).expect("answer").allowed());
    assert!(!hit(&limiter).expect("answer").allowed());
    refund(&limiter).expect("refunded in memory");
    assert!(
        hit(&limiter).expect("answer").allowed(),
        "memory gave it back"
    );
    assert!(!hit(&limiter).expect("answer").allowed());
    flaky.set_down(false);
    let served = flaky.served();
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL * 2);
    refund(&limiter).expect("refunded in memory");
    assert!(
        limiter.store().is_falling_back(),
        "a refund does not probe the store"
    );
    assert_eq!(flaky.served(), served);
    // The next hit probes; the store answers with its own count (the first hit: 1 of 2).
    assert!(hit(&limiter).expect("answer").allowed());
    assert!(!limiter.store().is_falling_back());
    assert!(
        !hit(&limiter).expect("answer").allowed(),
        "the store is full"
    );
}
