//! Late charges: [`overdraw`], which charges every rate of a policy whatever the room left,
//! and what the debt it may leave means for each strategy.

#[cfg(doc)]
use super::{FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket};
use super::{RateState, TickDecision, TickRate, judge};

/// Charges `cost` units at `now` to every rate of a policy whatever the room left (a *late
/// charge*: a cost learnt only after the request was let through), then reports as a peek
/// does: whether a hit of one unit would be allowed now, and when.
///
/// A rate charged beyond its capacity is *in debt*, and the key waits until the debt is
/// repaid. Each strategy records the units as an allowed hit of that cost would, so debt
/// means for each:
///
/// - fixed window ([`FixedWindow`]): the window's count passes the capacity; when the window
///   ends, the excess is carried into the next window, which starts right then, so a key in
///   debt D has D units fewer in the next window: it is denied until D more units would have
///   been allowed;
/// - token bucket ([`TokenBucket`]): the theoretical arrival time moves beyond the full
///   depth, so the key waits exactly `D × ⌈W/N⌉` ticks longer: D more units' refill;
/// - sliding window log ([`SlidingWindowLog`]): the units are logged at `now`, so the first
///   D units that leave the trailing window only pay the debt: the key is denied until D
///   more units would have been allowed; and since the units charged late leave the window
///   together, `W` after the charge, it may then be allowed a little sooner than a key that
///   had spent those D units as they came;
/// - sliding window counter ([`SlidingWindowCounter`]): the units count in the current
///   window, so the weighted estimate passes the capacity by D; the debt weighs in full until
///   the window ends and then fades over the next window as the previous window's count
///   does, so the key waits until the estimate is back under the capacity (no later than an
///   exact log would make it wait for D more units).
///
/// A rate's state never holds more than twice its capacity (for the counter: a weighted
/// estimate of twice the capacity): a debt is at most one capacity, and the units of a
/// late charge beyond that are forgiven. So a key in debt waits at most about one more
/// window (or one more full refill) than a full one, and every number stays within the
/// bounds the stores count exactly. A kill switch (an amount of 0) is charged nothing.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{apply, overdraw, TokenBucket};
/// use tollgate::Policy;
///
/// // 10 tokens, one a second, ticks of one second.
/// let policy = Policy::token_bucket("10/10 seconds".parse()?)?;
/// let limits = policy.limits(Duration::from_secs(1));
/// let mut state = [TokenBucket::default()];
/// assert!(apply(&mut state, &limits, 0, 1).allowed); // one token left to let it through
/// let after = overdraw(&mut state, &limits, 0, 13); // the response cost 13 more
/// assert!(!after.allowed);
/// assert_eq!(after.retry_after, Some(5)); // 10 tokens and 4 of debt: 4 + 1 seconds
/// assert!(apply(&mut state, &limits, 5, 1).allowed);
/// // A charge beyond one capacity of debt is forgiven: the key waits at most 20 s.
/// let mut other = [TokenBucket::default()];
/// assert_eq!(overdraw(&mut other, &limits, 0, 1_000).retry_after, Some(11));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn overdraw<S: RateState>(
    states: &mut [S],
    limits: &[TickRate],
    now: u64,
    cost: u64,
) -> TickDecision {
    debug_assert_eq!(states.len(), limits.len());
    if cost > 0 {
        for (state, limit) in states.iter_mut().zip(limits) {
            state.overdraw(limit, now, cost);
        }
    }
    judge(states, limits, now, 0)
}
