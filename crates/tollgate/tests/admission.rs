//! Admissions: a request meeting several policies is charged all or none, reports what each
//! charge came to and the decision closest to denying, and is settled after its response.

use futures_executor::block_on;
use proptest::prelude::*;
use tollgate::testing::FlakyStore;
use tollgate::{
    Admission, Charge, ChargeResult, Limiter, ManualClock, MemoryStore, Policy, PolicyHandle, Rate,
    Verdict,
};

/// A limiter with a manual clock, and two fixed-window policies per hour: `small` (2) and
/// `large` (5).
fn two_policies() -> (PolicyHandle, PolicyHandle) {
    let limiter = Limiter::new(MemoryStore::new()).with_clock(ManualClock::new());
    let small = limiter.policy("small", Policy::fixed_window(Rate::per_hour(2).into()));
    let large = limiter.policy("large", Policy::fixed_window(Rate::per_hour(5).into()));
    (small, large)
}

fn remaining<S: tollgate::SyncStore>(policy: &PolicyHandle<S>, key: &str) -> u64 {
    policy.hit_sync(key, 0).expect("peek").remaining()
}

fn decide<S: tollgate::Store>(admission: Admission<S>) -> Verdict<S> {
    block_on(admission.decide())
}

#[test]
fn a_refusal_gives_back_what_the_others_charged_and_skips_the_rest() {
    let (small, large) = two_policies();
    let request = || {
        Admission::new()
            .charge(Charge::new(large.clone(), "k", 1))
            .charge(Charge::new(small.clone(), "k", 1))
            .charge(Charge::new(large.clone(), "other", 1))
    };
    for _ in 0..2 {
        let verdict = decide(request());
        assert!(verdict.is_admitted());
        assert!(verdict.refused_by().is_none());
    }
    let refused = decide(request());
    assert!(!refused.is_admitted());
    let (index, result) = refused.refused_by().expect("refused");
    assert_eq!(index, 1);
    assert!(matches!(result, ChargeResult::Denied(d) if d.retry_after().is_some()));
    assert!(matches!(refused.results()[0], ChargeResult::Allowed(_)));
    assert!(matches!(refused.results()[2], ChargeResult::Skipped));
    assert_eq!(refused.closest().map(|(i, d)| (i, d.limit())), Some((1, 2)));
    assert!(refused.into_settlement().is_empty());
    // Only the two admitted requests count.
    assert_eq!(remaining(&large, "k"), 3);
    assert_eq!(remaining(&large, "other"), 3);
    assert_eq!(remaining(&small, "k"), 0);
}

#[test]
fn deciding_every_charge_reports_each_and_still_gives_all_back() {
    let (small, large) = two_policies();
    let request = || {
        Admission::new()
            .charge(Charge::new(small.clone(), "k", 2))
            .charge(Charge::new(large.clone(), "k", 1))
            .decide_every_charge()
    };
    assert!(decide(request()).is_admitted());
    let refused = decide(request());
    assert_eq!(refused.refused_by().map(|(i, _)| i), Some(0));
    match &refused.results()[1] {
        ChargeResult::Allowed(decision) => assert_eq!(decision.remaining(), 3),
        other => panic!("decided, not skipped: {other:?}"),
    }
    assert_eq!(
        remaining(&large, "k"),
        4,
        "the second charge was given back"
    );
}

#[test]
fn the_closest_decision_is_the_one_with_the_fewest_units_left() {
    let (small, large) = two_policies();
    let verdict = decide(
        Admission::new()
            .charge(Charge::new(large.clone(), "k", 1))
            .charge(Charge::new(small.clone(), "k", 1))
            .charge(Charge::new(large.clone(), "j", 5)),
    );
    assert!(verdict.is_admitted());
    let (index, decision) = verdict.closest().expect("a decision");
    assert_eq!((index, decision.remaining()), (2, 0));
    // Of equals, the first.
    let tie = decide(
        Admission::new()
            .charge(Charge::new(large.clone(), "x", 4))
            .charge(Charge::new(small.clone(), "x", 1)),
    );
    assert_eq!(tie.closest().map(|(i, d)| (i, d.remaining())), Some((0, 1)));
    assert!(decide(Admission::<MemoryStore>::new()).closest().is_none());
}

#[test]
fn a_shadow_charge_is_counted_and_reported_but_never_refuses() {
    let (small, large) = two_policies();
    let request = || {
        Admission::new()
            .charge(Charge::new(small.clone(), "k", 1).shadow())
            .charge(Charge::new(large.clone(), "k", 1))
    };
    for _ in 0..2 {
        let verdict = decide(request());
        assert!(verdict.is_admitted());
        // Headers describe enforced limits: the shadow one (fewer left) is not the closest.
        assert_eq!(verdict.closest().map(|(i, _)| i), Some(1));
    }
    let verdict = decide(request());
    assert!(verdict.is_admitted(), "the shadow limit would have denied");
    assert!(matches!(
        verdict.results()[0],
        ChargeResult::ShadowDenied(_)
    ));
    assert_eq!(remaining(&large, "k"), 2);
    // When the enforced limit refuses, the shadow charge is given back too.
    let verdict = decide(
        Admission::new()
            .charge(Charge::new(large.clone(), "s", 1).shadow())
            .charge(Charge::new(small.clone(), "k", 1)),
    );
    assert_eq!(verdict.refused_by().map(|(i, _)| i), Some(1));
    assert_eq!(remaining(&large, "s"), 5);
}

#[test]
fn decisions_describe_every_enforced_charge_or_the_refusing_one() {
    let (small, large) = two_policies();
    let listed = |verdict: &Verdict, shadow: bool| -> Vec<(usize, u64)> {
        verdict
            .decisions(shadow)
            .map(|(index, decision)| (index, decision.remaining()))
            .collect()
    };
    let request = |shadow_cost: u64| {
        Admission::new()
            .charge(Charge::new(large.clone(), "k", 1))
            .charge(Charge::new(small.clone(), "shadow", shadow_cost).shadow())
            .charge(Charge::new(small.clone(), "k", 1))
    };
    let first = decide(request(1));
    assert_eq!(listed(&first, false), [(0, 4), (2, 1)]);
    assert_eq!(listed(&first, true), [(0, 4), (1, 1), (2, 1)]);
    assert!(!first.shadow_denied());
    assert_eq!(first.closest_with_shadow().map(|(i, _)| i), Some(1));
    // The shadow charge is over its limit (one unit left, two asked): listed only on
    // request, and then the closest, as it would have refused; the enforced closest stays.
    let second = decide(request(2));
    assert!(second.is_admitted() && second.shadow_denied());
    assert_eq!(listed(&second, true), [(0, 3), (1, 1), (2, 0)]);
    assert_eq!(second.closest_with_shadow().map(|(i, _)| i), Some(1));
    assert_eq!(second.closest().map(|(i, _)| i), Some(2));
    // A shadow cost the policy never allows is a shadow denial too, with no decision.
    let too_big = decide(Admission::new().charge(Charge::new(small.clone(), "x", 3).shadow()));
    assert!(too_big.is_admitted() && too_big.shadow_denied());
    assert!(listed(&too_big, true).is_empty());
    // Refused by `small`: only the refusing decision describes the request, shadow or not.
    let refused = decide(request(1));
    assert_eq!(refused.refused_by().map(|(i, _)| i), Some(2));
    assert_eq!(listed(&refused, true), [(2, 0)]);
    assert_eq!(refused.closest_with_shadow().map(|(i, _)| i), Some(2));
}

#[test]
fn a_cost_that_can_never_fit_refuses_without_charging() {
    let (small, large) = two_policies();
    let verdict = decide(
        Admission::new()
            .charge(Charge::new(large.clone(), "k", 1))
            .charge(Charge::new(small.clone(), "k", 3)),
    );
    assert!(matches!(
        verdict.refused_by(),
        Some((
            1,
            ChargeResult::CostExceedsLimit {
                cost: 3,
                max_cost: 2
            }
        ))
    ));
    assert!(verdict.closest().is_none(), "no decision to show");
    assert_eq!(remaining(&large, "k"), 5);
    assert_eq!(remaining(&small, "k"), 2);
}

#[test]
fn a_peek_refuses_when_one_unit_would_not_fit_and_charges_nothing() {
    let (small, _) = two_policies();
    let peek = || decide(Admission::new().charge(Charge::new(small.clone(), "k", 0)));
    assert!(peek().is_admitted());
    assert_eq!(remaining(&small, "k"), 2);
    small.hit_sync("k", 2).expect("hit");
    assert!(!peek().is_admitted());
}

#[test]
fn a_store_failure_stops_the_admission_and_gives_back_what_was_charged() {
    let (up, down) = (FlakyStore::new(), FlakyStore::new());
    let first = Limiter::new(up).policy("first", Policy::fixed_window(Rate::per_hour(3).into()));
    let second =
        Limiter::new(down.clone()).policy("second", Policy::fixed_window(Rate::per_hour(3).into()));
    down.set_down(true);
    let verdict = decide(
        Admission::new()
            .charge(Charge::new(first.clone(), "k", 1))
            .charge(Charge::new(second.clone(), "k", 1))
            .charge(Charge::new(first.clone(), "j", 1))
            .decide_every_charge(),
    );
    let (index, result) = verdict.refused_by().expect("refused");
    assert_eq!(index, 1);
    assert!(matches!(result, ChargeResult::Failed(err) if err.is_timeout()));
    assert!(
        matches!(verdict.results()[2], ChargeResult::Skipped),
        "a store failure stops even an every-charge admission"
    );
    assert_eq!(remaining(&first, "k"), 3);
    assert_eq!(remaining(&first, "j"), 3);
}

#[test]
fn a_shadow_charge_whose_store_fails_fails_the_admission() {
    let (up, down) = (FlakyStore::new(), FlakyStore::new());
    let enforced =
        Limiter::new(up).policy("enforced", Policy::fixed_window(Rate::per_hour(3).into()));
    let shadow =
        Limiter::new(down.clone()).policy("shadow", Policy::fixed_window(Rate::per_hour(3).into()));
    down.set_down(true);
    let verdict = decide(
        Admission::new()
            .charge(Charge::new(enforced.clone(), "k", 1))
            .charge(Charge::new(shadow, "k", 1).shadow())
            .charge(Charge::new(enforced.clone(), "j", 1)),
    );
    assert!(
        !verdict.is_admitted(),
        "a failing store never lets a request through"
    );
    assert!(matches!(
        verdict.refused_by(),
        Some((1, ChargeResult::Failed(_)))
    ));
    assert!(matches!(verdict.results()[2], ChargeResult::Skipped));
    assert_eq!(remaining(&enforced, "k"), 3, "given back");
}

#[test]
fn settling_gives_back_the_charges_whose_response_does_not_count() {
    let (small, large) = two_policies();
    let verdict = decide(
        Admission::new()
            .charge(Charge::new(large.clone(), "k", 2).settle_after())
            .charge(Charge::new(small.clone(), "k", 1))
            .charge(Charge::new(large.clone(), "j", 1).settle_after()),
    );
    assert!(verdict.is_admitted());
    let settlement = verdict.into_settlement();
    assert!(!settlement.is_empty());
    let mut asked = Vec::new();
    block_on(settlement.settle(|index| {
        asked.push(index);
        index == 2 // the charge on "j" counts; the one on "k" does not
    }))
    .expect("settled");
    assert_eq!(
        asked,
        [0, 2],
        "only charges made with settle_after are asked about"
    );
    assert_eq!(remaining(&large, "k"), 5);
    assert_eq!(remaining(&large, "j"), 4);
    assert_eq!(
        remaining(&small, "k"),
        1,
        "a charge without settle_after stays"
    );
}

#[test]
fn a_settlement_the_store_cannot_take_reports_its_error() {
    let flaky = FlakyStore::new();
    let login =
        Limiter::new(flaky.clone()).policy("login", Policy::fixed_window(Rate::per_hour(3).into()));
    let verdict =
        decide(Admission::new().charge(Charge::new(login.clone(), "k", 1).settle_after()));
    flaky.set_down(true);
    let err = block_on(verdict.into_settlement().settle(|_| false)).expect_err("store down");
    assert!(err.is_timeout());
    flaky.set_down(false);
    assert_eq!(remaining(&login, "k"), 2, "the charge stayed");
}

/// One admission of the property test: a cost for each of two policies (on the same key),
/// the order they are charged in, and whether the request's response counts.
#[derive(Debug, Clone)]
struct Request {
    costs: [u64; 2],
    second_first: bool,
    every: bool,
    settle_after: [bool; 2],
    counts: bool,
}

fn requests() -> impl Strategy<Value = Vec<Request>> {
    let request = (
        [0..4u64, 0..4u64],
        any::<bool>(),
        any::<bool>(),
        [any::<bool>(), any::<bool>()],
        any::<bool>(),
    )
        .prop_map(
            |(costs, second_first, every, settle_after, counts)| Request {
                costs,
                second_first,
                every,
                settle_after,
                counts,
            },
        );
    prop::collection::vec(request, 1..40)
}

proptest! {
    /// Against a naive model (two counters that never reset): a request is admitted exactly
    /// when every charge fits (a cost of 0 fits when one unit would), what is charged is
    /// exactly the admitted requests' costs minus what settlements gave back, and neither
    /// count ever exceeds its limit.
    #[test]
    fn admissions_match_a_model_of_all_or_none(
        limits in [1..6u64, 1..6u64],
        requests in requests(),
    ) {
        let limiter = Limiter::new(MemoryStore::new()).with_clock(ManualClock::new());
        let policies = [
            limiter.policy("a", Policy::fixed_window(Rate::per_hour(limits[0] as u32).into())),
            limiter.policy("b", Policy::fixed_window(Rate::per_hour(limits[1] as u32).into())),
        ];
        let mut used = [0u64; 2];
        for request in &requests {
            let order: [usize; 2] = if request.second_first { [1, 0] } else { [0, 1] };
            let fits = |i: usize| {
                let cost = request.costs[i];
                cost <= limits[i] && used[i] + cost.max(1) <= limits[i]
            };
            let expected = fits(0) && fits(1);
            let mut admission = Admission::new();
            for &i in &order {
                let mut charge = Charge::new(policies[i].clone(), "k", request.costs[i]);
                if request.settle_after[i] {
                    charge = charge.settle_after();
                }
                admission.push(charge);
            }
            if request.every {
                admission = admission.decide_every_charge();
            }
            let verdict = block_on(admission.decide());
            prop_assert_eq!(verdict.is_admitted(), expected, "{:?} with {:?} used", request, used);
            if !expected {
                let first_refusing = order.iter().position(|&i| !fits(i));
                prop_assert_eq!(verdict.refused_by().map(|(index, _)| index), first_refusing);
                if !request.every && first_refusing == Some(0) {
                    prop_assert!(matches!(verdict.results()[1], ChargeResult::Skipped));
                }
                continue;
            }
            block_on(verdict.into_settlement().settle(|_| request.counts)).expect("settled");
            for (i, used) in used.iter_mut().enumerate() {
                if request.counts || !request.settle_after[i] {
                    *used += request.costs[i];
                }
            }
            for i in 0..2 {
                prop_assert!(used[i] <= limits[i]);
                prop_assert_eq!(remaining(&policies[i], "k"), limits[i] - used[i]);
            }
        }
    }
}
