//! The failure modes against a store that fails on command.

use std::time::Duration;

use futures_executor::block_on;
use tollgate::testing::FlakyStore;
use tollgate::{
    Decision, Error, Failover, FailureMode, Limiter, ManualClock, Policy, PolicyHandle, Rate,
};

type Handle = PolicyHandle<Failover<FlakyStore>>;

fn limiter(
    mode: FailureMode,
) -> (
    Limiter<Failover<FlakyStore>>,
    Handle,
    FlakyStore,
    ManualClock,
) {
    let flaky = FlakyStore::new();
    let clock = ManualClock::new();
    let limiter = Limiter::new(Failover::new(flaky.clone(), mode)).with_clock(clock.clone());
    let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(2).into()));
    (limiter, p, flaky, clock)
}

fn hit(p: &Handle) -> Result<Decision, Error> {
    block_on(p.hit("k"))
}

fn refund(p: &Handle) -> Result<(), Error> {
    block_on(p.refund("k", 1))
}

#[test]
fn allow_fails_open_and_counts_errors() {
    let (limiter, p, flaky, _clock) = limiter(FailureMode::Allow);
    flaky.set_down(true);
    for _ in 0..5 {
        let d = hit(&p).expect("answer");
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
    assert!(hit(&p).expect("answer").allowed());
    assert!(hit(&p).expect("answer").allowed());
    assert!(!hit(&p).expect("answer").allowed(), "counted again");
}

#[test]
fn deny_returns_the_store_error() {
    let (_limiter, p, flaky, _clock) = limiter(FailureMode::Deny);
    flaky.set_down(true);
    let err = hit(&p).expect_err("store down");
    assert!(matches!(&err, Error::Store(e) if e.is_timeout()), "{err}");
    assert_eq!(err.to_string(), "store timed out: flaky store is down");
}

#[test]
fn fallback_counts_locally_then_switches_back_after_a_probe() {
    let (limiter, p, flaky, clock) = limiter(FailureMode::Fallback);
    flaky.set_down(true);
    assert!(hit(&p).expect("answer").allowed());
    assert!(limiter.store().is_falling_back());
    assert!(hit(&p).expect("answer").allowed());
    assert!(!hit(&p).expect("answer").allowed(), "the fallback counts");
    // The store comes back; hits stay local until the next probe is due.
    flaky.set_down(false);
    let served = flaky.served();
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL / 2);
    hit(&p).expect("answer");
    assert_eq!(flaky.served(), served);
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
    assert!(hit(&p).expect("answer").allowed(), "the store's own count");
    assert!(!limiter.store().is_falling_back());
    assert_eq!(flaky.served(), served + 1);
    // A store that fails again sends hits back to memory at once.
    flaky.set_down(true);
    clock.advance(Duration::from_secs(1));
    assert!(!hit(&p).expect("answer").allowed(), "memory still counts 2");
}

#[test]
fn failing_open_reports_the_tightest_rate_and_keeps_kill_switches() {
    let flaky = FlakyStore::new();
    flaky.set_down(true);
    let limiter = Limiter::new(Failover::new(flaky, FailureMode::Allow));
    let two = limiter.policy(
        "two",
        Policy::fixed_window("10/second; 5/minute".parse().expect("rates")),
    );
    let off = limiter.policy(
        "off",
        Policy::fixed_window("0/hour".parse().expect("rates")),
    );
    let d = block_on(two.hit("k")).expect("answer");
    assert!(d.allowed());
    assert_eq!(
        (d.limit(), d.remaining(), d.window()),
        (5, 5, Duration::from_secs(60))
    );
    let d = block_on(off.hit("k")).expect("answer");
    assert!(
        !d.allowed(),
        "a kill switch denies even while the store is down"
    );
    assert_eq!(d.retry_after(), Some(Duration::from_secs(3600)));
}

#[test]
fn refunds_reach_the_store_while_it_answers() {
    for mode in [FailureMode::Allow, FailureMode::Deny, FailureMode::Fallback] {
        let (limiter, p, _flaky, _clock) = limiter(mode);
        assert!(hit(&p).expect("answer").allowed());
        assert!(hit(&p).expect("answer").allowed());
        refund(&p).expect("refunded");
        assert!(hit(&p).expect("answer").allowed(), "{mode}");
        assert!(!hit(&p).expect("answer").allowed(), "{mode}");
        assert_eq!(limiter.store().errors(), 0);
    }
}

#[test]
fn a_failed_refund_is_counted_and_swallowed_failing_open() {
    let (limiter, p, flaky, _clock) = limiter(FailureMode::Allow);
    hit(&p).expect("answer");
    hit(&p).expect("answer");
    flaky.set_down(true);
    refund(&p).expect("swallowed");
    assert_eq!(limiter.store().errors(), 1);
    flaky.set_down(false);
    assert!(
        !hit(&p).expect("answer").allowed(),
        "the refund was lost, not applied later"
    );
}

#[test]
fn a_failed_refund_is_returned_failing_closed() {
    let (limiter, p, flaky, _clock) = limiter(FailureMode::Deny);
    hit(&p).expect("answer");
    flaky.set_down(true);
    let err = refund(&p).expect_err("store down");
    assert!(matches!(&err, Error::Store(e) if e.is_timeout()), "{err}");
    assert_eq!(limiter.store().errors(), 1);
}

#[test]
fn falling_back_refunds_in_memory_where_the_hits_went() {
    let (limiter, p, flaky, clock) = limiter(FailureMode::Fallback);
    // A hit charged to the store, then the store fails as the refund comes: the refund is
    // swallowed, and the failure sends later hits to memory.
    hit(&p).expect("answer");
    flaky.set_down(true);
    refund(&p).expect("swallowed");
    assert_eq!(limiter.store().errors(), 1);
    assert!(limiter.store().is_falling_back());
    // Hits and refunds now both go to memory, without probing the store.
    assert!(hit(&p).expect("answer").allowed());
    assert!(hit(&p).expect("answer").allowed());
    assert!(!hit(&p).expect("answer").allowed());
    refund(&p).expect("refunded in memory");
    assert!(hit(&p).expect("answer").allowed(), "memory gave it back");
    assert!(!hit(&p).expect("answer").allowed());
    flaky.set_down(false);
    let served = flaky.served();
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL * 2);
    refund(&p).expect("refunded in memory");
    assert!(
        limiter.store().is_falling_back(),
        "a refund does not probe the store"
    );
    assert_eq!(flaky.served(), served);
    // The next hit probes; the store answers with its own count (the first hit: 1 of 2).
    assert!(hit(&p).expect("answer").allowed());
    assert!(!limiter.store().is_falling_back());
    assert!(!hit(&p).expect("answer").allowed(), "the store is full");
}
