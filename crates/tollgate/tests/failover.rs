//! The failure modes against a store that fails on command.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_executor::block_on;
use tollgate::testing::FlakyStore;
use tollgate::{
    Decision, Error, Failover, FailoverSwitch, FailureMode, Limiter, ManualClock, Policy,
    PolicyHandle, Rate,
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

/// What an observer heard, as text.
fn observed(failover: Failover<FlakyStore>) -> (Failover<FlakyStore>, Arc<Mutex<Vec<String>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let failover = failover.on_switch({
        let heard = Arc::clone(&heard);
        move |switch: &FailoverSwitch| heard.lock().expect("lock").push(switch.to_string())
    });
    (failover, heard)
}

#[test]
fn each_switch_to_the_fallback_and_back_is_reported_once_with_its_cause() {
    let flaky = FlakyStore::new();
    let clock = ManualClock::new();
    let (failover, heard) = observed(Failover::new(flaky.clone(), FailureMode::Fallback));
    let limiter = Limiter::new(failover).with_clock(clock.clone());
    let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(100).into()));
    hit(&p).expect("answer");
    flaky.set_down(true);
    // Many hits while down: failing ones, probes that fail, and hits counted in memory.
    for _ in 0..20 {
        hit(&p).expect("answer");
        refund(&p).expect("answer");
        clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL / 4);
    }
    assert!(limiter.store().errors() > 1, "probes failed too");
    flaky.set_down(false);
    for _ in 0..5 {
        clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
        hit(&p).expect("answer");
    }
    assert!(!limiter.store().is_falling_back());
    let heard = heard.lock().expect("lock").clone();
    assert_eq!(
        heard,
        [
            "storage failing, counting in memory: store timed out: flaky store is down",
            "storage answering again after 1.2s in memory",
        ]
    );
    assert_eq!(limiter.store().switches(), 1);
}

#[test]
fn only_the_keys_of_a_failing_domain_fall_back() {
    let flaky = FlakyStore::with_domains(2);
    let clock = ManualClock::new();
    let (failover, heard) = observed(Failover::new(flaky.clone(), FailureMode::Fallback));
    let limiter = Limiter::new(failover).with_clock(clock.clone());
    let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(100).into()));
    // b'b' (98) lives in domain 0, b'a' (97) and b'c' (99) in domain 1.
    flaky.set_domain_down(1, true);
    let served = flaky.served();
    for _ in 0..10 {
        block_on(p.hit("a")).expect("answer");
        block_on(p.hit("b")).expect("answer");
        block_on(p.hit("c")).expect("answer");
        clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL / 4);
    }
    assert_eq!(limiter.store().falling_back_domains(), 1);
    assert_eq!(
        flaky.served() - served,
        10,
        "every hit of b reached the store"
    );
    // The store counted b's ten hits; a and c were counted in memory.
    let store =
        Limiter::new(flaky.clone()).policy("p", Policy::fixed_window(Rate::per_hour(100).into()));
    assert_eq!(store.hit_sync("b", 0).expect("peek").remaining(), 90);
    assert_eq!(
        block_on(p.peek("a")).expect("peek").remaining(),
        90,
        "in memory"
    );
    // Domain 0 failing too is no new switch: hits were already falling back.
    flaky.set_domain_down(0, true);
    block_on(p.hit("b")).expect("answer");
    assert_eq!(limiter.store().falling_back_domains(), 2);
    flaky.set_domain_down(0, false);
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
    block_on(p.hit("b")).expect("answer");
    assert_eq!(limiter.store().falling_back_domains(), 1);
    assert!(limiter.store().is_falling_back(), "domain 1 still fails");
    // Domain 1 back: its next probe counts a in the store again, and the switch back is heard.
    flaky.set_domain_down(1, false);
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
    block_on(p.hit("a")).expect("answer");
    assert!(!limiter.store().is_falling_back());
    assert_eq!(
        store.hit_sync("a", 0).expect("peek").remaining(),
        99,
        "a's first hit in the store"
    );
    let heard = heard.lock().expect("lock").clone();
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert!(heard[0].starts_with("storage failing"), "{heard:?}");
    assert!(heard[1].starts_with("storage answering again"), "{heard:?}");
}

/// A store that applies hits after they timed out (as Redis may): a request the failure mode
/// refused has its late charge given back; one it let through keeps it.
#[test]
fn a_late_charge_is_given_back_only_when_the_request_was_refused() {
    for mode in [FailureMode::Deny, FailureMode::Allow, FailureMode::Fallback] {
        let flaky = FlakyStore::new();
        let clock = ManualClock::new();
        let limiter = Limiter::new(Failover::new(flaky.clone(), mode)).with_clock(clock.clone());
        let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(10).into()));
        flaky.set_down(true);
        flaky.apply_late(true);
        let mut allowed = 0;
        for _ in 0..15 {
            if hit(&p).is_ok_and(|decision| decision.allowed()) {
                allowed += 1;
            }
        }
        assert_eq!(
            limiter.store().timed_out_hits(),
            if mode == FailureMode::Fallback { 1 } else { 15 }
        );
        flaky.set_down(false);
        let store = Limiter::new(flaky.clone())
            .policy("p", Policy::fixed_window(Rate::per_hour(10).into()));
        let remaining = store.hit_sync("k", 0).expect("peek").remaining();
        match mode {
            // Every request refused: nothing stays charged.
            FailureMode::Deny => assert_eq!((allowed, remaining), (0, 10), "{mode}"),
            // Every request let through, uncounted: the late charges are their count.
            FailureMode::Allow => assert_eq!((allowed, remaining), (15, 0), "{mode}"),
            // The one hit that reached the store was allowed in memory: its charge stays.
            FailureMode::Fallback => assert_eq!((allowed, remaining), (10, 9), "{mode}"),
        }
    }
}

/// Under fallback, a timed-out probe that memory answers with a denial has its late charge
/// given back: the client is not refused now and charged in the store later.
#[test]
fn a_probe_denied_in_memory_leaves_no_late_charge() {
    let flaky = FlakyStore::new();
    let clock = ManualClock::new();
    let limiter =
        Limiter::new(Failover::new(flaky.clone(), FailureMode::Fallback)).with_clock(clock.clone());
    let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(2).into()));
    flaky.set_down(true);
    flaky.apply_late(true);
    assert!(hit(&p).expect("answer").allowed()); // the first failure, charged late: kept
    assert!(hit(&p).expect("answer").allowed()); // in memory
    for _ in 0..5 {
        clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
        assert!(!hit(&p).expect("answer").allowed()); // probes: charged late, then denied
    }
    assert_eq!(limiter.store().timed_out_hits(), 6);
    flaky.set_down(false);
    let store = Limiter::new(flaky).policy("p", Policy::fixed_window(Rate::per_hour(2).into()));
    assert_eq!(store.hit_sync("k", 0).expect("peek").remaining(), 1);
}

/// A dead Redis Cluster master fails thousands of hash slots at once. Each used to be probed
/// every interval under traffic (27,000 probes a second for 5461 slots, each perhaps waiting
/// out the store's timeout); the probes of one interval are now capped over all domains,
/// and those that succeed give their place back, so recovery is not slowed.
#[test]
fn probes_of_many_failing_domains_are_capped_per_interval() {
    const DOMAINS: u8 = 200;
    let interval = Failover::<FlakyStore>::PROBE_INTERVAL;
    let cap = Failover::<FlakyStore>::MAX_PROBES_PER_INTERVAL;
    let flaky = FlakyStore::with_domains(usize::from(DOMAINS));
    let clock = ManualClock::new();
    let limiter =
        Limiter::new(Failover::new(flaky.clone(), FailureMode::Fallback)).with_clock(clock.clone());
    let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(1000).into()));
    // One key per domain: its first byte is its domain.
    let keys: Vec<[u8; 1]> = (0..DOMAINS).map(|domain| [domain]).collect();
    let hit_all = |rounds: usize| {
        for _ in 0..rounds {
            for key in &keys {
                block_on(p.hit(&key[..])).expect("an answer");
            }
        }
    };
    flaky.set_down(true);
    hit_all(1);
    let store = limiter.store();
    assert_eq!(store.falling_back_domains(), usize::from(DOMAINS));
    assert_eq!(
        store.errors(),
        u64::from(DOMAINS),
        "each domain's first failure"
    );
    // Heavy traffic over five intervals: every domain is due each time, the cap holds.
    for _ in 0..5 {
        clock.advance(interval);
        let errors = store.errors();
        hit_all(3);
        assert_eq!(store.errors() - errors, cap, "probes of one interval");
    }
    assert_eq!(store.falling_back_domains(), usize::from(DOMAINS));
    // The store answers again: the probes succeed and give their places back, so every
    // domain comes back within one interval's traffic.
    flaky.set_down(false);
    clock.advance(interval);
    let served = flaky.served();
    hit_all(1);
    assert_eq!(store.falling_back_domains(), 0);
    assert_eq!(flaky.served() - served, u64::from(DOMAINS));
}
