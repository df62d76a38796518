//! Bans and late charges through the engine: the memory store keeps a ban beside a key's
//! counts (a reset lifts it, a refund never drops it, the store counts current bans), late
//! charges settle an admission at its response's cost, and a failover answers late charges
//! by its failure mode.

use std::time::Duration;

use futures_executor::block_on;
use tollgate::testing::FlakyStore;
use tollgate::{
    Admission, Ban, Charge, Clock, Failover, FailureMode, Limiter, ManualClock, MemoryStore,
    Policy, PolicyHandle, Rate, Store,
};

/// `per_minute` per minute, banning for an hour after 2 breaches within 10 minutes, over
/// `store` with `clock`.
fn banning<S: Store>(store: S, clock: &ManualClock, per_minute: u32) -> PolicyHandle<S> {
    let ban = Ban::new(
        "2/10 minutes".parse().expect("rate"),
        Duration::from_secs(3600),
    );
    let policy =
        Policy::fixed_window(Rate::per_minute(per_minute).into()).with_ban(ban.expect("ban"));
    Limiter::new(store)
        .with_clock(clock.clone())
        .policy("login", policy)
}

#[test]
fn a_ban_holds_whatever_the_counts_and_a_reset_lifts_it() {
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let login = banning(store.clone(), &clock, 1);
    assert!(login.hit_sync("alice", 1).expect("hit").allowed());
    assert!(!login.hit_sync("alice", 1).expect("hit").banned()); // one breach
    let banned = login.hit_sync("alice", 1).expect("hit");
    assert!(banned.banned() && banned.ban_started());
    assert_eq!(banned.retry_after(), Some(Duration::from_secs(3600)));
    assert!(login.hit_sync("bob", 1).expect("hit").allowed()); // another key
    // The window resets in a minute; the ban holds for the hour.
    clock.advance(Duration::from_secs(61));
    let still = login.hit_sync("alice", 1).expect("hit");
    assert!(!still.allowed() && still.banned() && !still.ban_started());
    assert_eq!(still.retry_after(), Some(Duration::from_secs(3539)));
    assert_eq!(store.banned_keys(clock.now()), 1);
    // A refund that leaves the counts fresh drops a key at once, but not a banned one.
    block_on(login.refund("alice", 1)).expect("refund");
    assert!(login.hit_sync("alice", 0).expect("peek").banned());
    block_on(login.reset("alice")).expect("reset");
    assert!(login.hit_sync("alice", 1).expect("hit").allowed());
    assert_eq!(store.banned_keys(clock.now()), 0);
}

#[test]
fn a_ban_ends_by_itself_and_the_breaches_count_again_from_none() {
    let clock = ManualClock::new();
    let login = banning(MemoryStore::new(), &clock, 1);
    login.hit_sync("alice", 1).expect("hit");
    login.hit_sync("alice", 1).expect("breach");
    assert!(login.hit_sync("alice", 1).expect("breach").ban_started());
    clock.advance(Duration::from_secs(3600));
    assert!(login.hit_sync("alice", 1).expect("hit").allowed());
    // One breach after the ban is not two: the count started again.
    let breach = login.hit_sync("alice", 1).expect("breach");
    assert!(!breach.allowed() && !breach.banned());
    assert_eq!(breach.retry_after(), Some(Duration::from_secs(60)));
}

#[test]
fn a_policy_with_a_ban_keeps_counts_apart_from_the_same_rates_without() {
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let limiter = Limiter::new(store.clone()).with_clock(clock.clone());
    let rates: tollgate::Rates = Rate::per_minute(1).into();
    let plain = limiter.policy("login", Policy::fixed_window(rates.clone()));
    assert!(plain.hit_sync("alice", 1).expect("hit").allowed());
    // A reload that adds a ban starts afresh (its states have another shape).
    let banning = banning(store, &clock, 1);
    assert!(banning.hit_sync("alice", 1).expect("hit").allowed());
}

#[test]
fn a_settlement_gives_back_or_charges_late_what_the_response_cost() {
    let clock = ManualClock::new();
    let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    let tokens = limiter.policy("tokens", Policy::fixed_window(Rate::per_minute(100).into()));
    let admit = |cost| {
        let verdict = block_on(
            Admission::new()
                .charge(Charge::new(tokens.clone(), "k", cost).settle_after())
                .decide(),
        );
        assert!(verdict.is_admitted());
        verdict.into_settlement()
    };
    // 10 up front, 4 in the end: 6 given back.
    block_on(admit(10).settle_costs(|_, charged| charged - 6)).expect("settle");
    assert_eq!(tokens.hit_sync("k", 0).expect("peek").remaining(), 96);
    // 1 up front, 200 in the end: 199 charged late, but the window holds twice its capacity
    // at most, so 195 are: a debt of 100, and the rest forgiven.
    block_on(admit(1).settle_costs(|_, _| 200)).expect("settle");
    let peek = tokens.hit_sync("k", 0).expect("peek");
    assert!(!peek.allowed());
    // The debt of 100 takes the whole next window: two windows from the first hit.
    assert_eq!(peek.retry_after(), Some(Duration::from_secs(120)));
    clock.advance(Duration::from_secs(119));
    assert!(!tokens.hit_sync("k", 1).expect("hit").allowed());
    clock.advance(Duration::from_secs(1));
    assert!(tokens.hit_sync("k", 1).expect("hit").allowed());
}

#[test]
fn a_failover_answers_late_charges_by_its_failure_mode() {
    let policy = Policy::fixed_window(Rate::per_minute(5).into());
    let flaky = FlakyStore::new();
    let closed =
        Limiter::new(Failover::new(flaky.clone(), FailureMode::Deny)).policy("p", policy.clone());
    let local =
        Limiter::new(Failover::new(flaky.clone(), FailureMode::Fallback)).policy("p", policy);
    flaky.set_down(true);
    assert!(block_on(closed.overdraw("k", 7)).is_err());
    let after = block_on(local.overdraw("k", 7)).expect("counted in memory");
    assert!(!after.allowed());
    assert!(!local.hit_sync("k", 1).expect("fallback").allowed()); // 7 of 5: in debt
    flaky.set_down(false);
    assert!(block_on(closed.overdraw("k", 2)).expect("up").allowed());
}
