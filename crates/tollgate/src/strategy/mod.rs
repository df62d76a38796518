//! The four strategies as pure state machines; [`apply`], which charges a hit to every rate of
//! a policy or to none; and [`refund`], which gives units back to every rate.
//!
//! Every function here takes the time as an argument and does no I/O. Times and windows are
//! counted in *ticks*, whose length the caller chooses ([`crate::MemoryStore`] uses
//! nanoseconds); a state only ever sees one clock's ticks. These functions are the single
//! source of truth for the semantics: every store keeps states and calls them (or, for
//! Redis, runs a script tested to agree with them).
//!
//! ```
//! use std::time::Duration;
//! use tollgate::strategy::{apply, FixedWindow};
//! use tollgate::Policy;
//!
//! let policy = Policy::fixed_window("3/minute".parse()?);
//! let limits = policy.limits(Duration::from_secs(1)); // ticks of one second
//! let mut state = [FixedWindow::default()];
//! for now in 0..3 {
//!     assert!(apply(&mut state, &limits, now, 1).allowed);
//! }
//! let denied = apply(&mut state, &limits, 3, 1);
//! assert_eq!((denied.allowed, denied.retry_after), (false, Some(57)));
//! # Ok::<(), tollgate::ParseError>(())
//! ```

mod ban;
mod debt;
mod divisor;
mod fixed_window;
mod sliding_window_counter;
mod sliding_window_log;
mod take;
mod tick_rate;
mod token_bucket;

use std::fmt;
use std::time::Duration;

pub use ban::{BanRule, BanState, BanStatus, apply_banned, overdraw_banned};
pub use debt::overdraw;
use divisor::Divisor;
pub use fixed_window::FixedWindow;
pub use sliding_window_counter::SlidingWindowCounter;
pub use sliding_window_log::SlidingWindowLog;
pub use take::{LEASE_SHARE, TickGrant, take};
pub use tick_rate::TickRate;
pub use token_bucket::TokenBucket;

/// The state one strategy keeps for one rate of one key.
///
/// `Default` is the fresh state: a key never seen. Every method is total: it never panics,
/// whatever the inputs, and treats a `now` earlier than the times it has seen as equal to them.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{FixedWindow, RateState, TickRate};
///
/// // 3 units per 60 ticks of one second.
/// let limit = TickRate::new(3, 3, Duration::from_secs(60), Duration::from_secs(1));
/// let mut state = FixedWindow::default();
/// assert_eq!((state.remaining(&limit, 0), state.reset_after(&limit, 0)), (3, 0)); // fresh
/// assert_eq!(state.retry_after(&limit, 0, 3), None);
/// state.consume(&limit, 0, 3);
/// assert_eq!(state.retry_after(&limit, 10, 1), Some(50)); // the window ends at 60
/// state.refund(&limit, 10, 1);
/// assert_eq!(state.remaining(&limit, 10), 1);
/// assert_eq!(state.reset_after(&limit, 10), 50);
/// ```
pub trait RateState: Default + Clone + fmt::Debug + Send + Sync + 'static {
    /// `None` when a hit of `cost` fits at `now`; otherwise the exact number of ticks until
    /// it would fit if nothing else happened: at least 1, and never more than
    /// [`RateState::reset_after`] at `now` (a fresh state takes any hit that fits the
    /// capacity).
    ///
    /// `cost` is at least 1 and at most `limit.capacity()`.
    fn retry_after(&self, limit: &TickRate, now: u64, cost: u64) -> Option<u64>;

    /// Charges `cost` units at `now`. Only called when [`RateState::retry_after`] said the
    /// hit fits.
    fn consume(&mut self, limit: &TickRate, now: u64, cost: u64);

    /// Gives back up to `cost` units at `now`, as if the most recent ones had never been
    /// charged; see [`refund`]. Never leaves the state with more room than a fresh one, and
    /// leaves a state that is fresh at `now` (nothing to give back) as it is.
    ///
    /// `cost` is at least 1; any amount is accepted (the give-back saturates).
    fn refund(&mut self, limit: &TickRate, now: u64, cost: u64);

    /// Charges up to `cost` units at `now` whatever the room left, as a hit of that cost
    /// would be charged, so that the state may go *into debt*; see [`overdraw`] for what debt
    /// means for each strategy. The state never holds more than twice the capacity: the
    /// units beyond are not charged. Any `cost` is accepted.
    fn overdraw(&mut self, limit: &TickRate, now: u64, cost: u64);

    /// Units a hit could still take at `now`.
    fn remaining(&self, limit: &TickRate, now: u64) -> u64;

    /// Ticks until the state is indistinguishable from fresh; 0 when it already is, and a
    /// store may then forget it.
    fn reset_after(&self, limit: &TickRate, now: u64) -> u64;

    /// The longest wait for which this strategy reserves a slot under `limit` (see
    /// [`apply`]): 0, none, unless the strategy can charge a hit to the time it will run at.
    /// The token bucket reserves up to [`TickRate::max_delay`], the fixed window up to the
    /// shorter of it and its window (it reserves in the next window at most).
    fn reservable(_limit: &TickRate) -> u64 {
        0
    }

    /// Charges `cost` units at `now` for a hit that will run at `run_at` (at or after `now`,
    /// and no more than [`RateState::reservable`] ticks after it), where
    /// [`RateState::retry_after`] at `run_at` said it fits. Only called for a strategy that
    /// reserves; the default charges the hit as if it were made at `run_at`, which is exact
    /// for a state that only looks forward in time (the token bucket).
    fn reserve(&mut self, limit: &TickRate, now: u64, run_at: u64, cost: u64) {
        let _ = now;
        self.consume(limit, run_at, cost);
    }

    /// Ticks from `now` during which units charged at `now` may be spent later without
    /// weakening the strategy's guarantee (see [`take`]): until the current window ends for
    /// the fixed window and the sliding window counter; `None` (no such end) for the token
    /// bucket and the sliding window log, whose bound a late spend loosens instead.
    fn lease_horizon(&self, _limit: &TickRate, _now: u64) -> Option<u64> {
        None
    }
}

/// What [`apply`] decided, in ticks. [`crate::Decision`] is the same in [`Duration`]s.
///
/// The numbers describe the *binding* rate: for a denied hit, the rate that makes it wait
/// longest; for an allowed one, the rate with the fewest units left.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{apply, BanStatus, FixedWindow, TickDecision};
/// use tollgate::Policy;
///
/// let policy = Policy::fixed_window("10/second; 3/minute".parse()?);
/// let limits = policy.limits(Duration::from_secs(1)); // ticks of one second
/// let mut states = [FixedWindow::default(), FixedWindow::default()];
/// let decision: TickDecision = apply(&mut states, &limits, 0, 1);
/// // The minute's rate is binding: it has 2 left, the second's 9.
/// assert_eq!(
///     decision,
///     TickDecision {
///         allowed: true, limit: 3, remaining: 2, reset_after: 60, retry_after: None, window: 60,
///         ban: BanStatus::Clear, delay: 0,
///     }
/// );
/// # Ok::<(), tollgate::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickDecision {
    /// Whether the hit was allowed (and charged, unless its cost was 0).
    pub allowed: bool,
    /// The binding rate's capacity.
    pub limit: u64,
    /// Units the binding rate has left after this hit.
    pub remaining: u64,
    /// Ticks until the binding rate's state is fresh again.
    pub reset_after: u64,
    /// For a denied hit, ticks until the same hit would be allowed; `None` when allowed.
    /// Never more than `reset_after`, except for a kill switch (an amount of 0), whose state
    /// is always fresh (`reset_after` 0) and which waits its window.
    pub retry_after: Option<u64>,
    /// The binding rate's window in ticks.
    pub window: u64,
    /// Whether the key is banned after repeated breaches (and whether this hit started the
    /// ban); see [`apply_banned`]. A banned decision is denied, with a `retry_after` of at
    /// least the ban's remaining time.
    pub ban: BanStatus,
    /// For an allowed hit whose slot was reserved (see [`apply`]), the ticks it must wait
    /// before it runs; 0 when it runs at once, and for a denied hit.
    pub delay: u64,
}

impl TickDecision {
    /// This decision with its times in [`Duration`]s, for ticks of length `tick`: what a
    /// store returns from [`crate::Store::hit`].
    ///
    /// A denied decision without a `retry_after` waits its window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::strategy::{BanStatus, TickDecision};
    ///
    /// let ticks = TickDecision {
    ///     allowed: false, limit: 3, remaining: 0, reset_after: 57, retry_after: Some(57), window: 60,
    ///     ban: BanStatus::Clear, delay: 0,
    /// };
    /// let decision = ticks.into_decision(Duration::from_secs(1));
    /// assert_eq!(decision.retry_after(), Some(Duration::from_secs(57)));
    /// ```
    #[inline]
    pub fn into_decision(self, tick: Duration) -> crate::Decision {
        crate::Decision::from_ticks(self, tick)
    }

    /// The outcome of a hit under no limit at all: allowed, nothing to report.
    ///
    /// ```
    /// use tollgate::strategy::{apply, TickDecision, TokenBucket};
    ///
    /// let mut no_states: [TokenBucket; 0] = [];
    /// assert_eq!(apply(&mut no_states, &[], 0, 1), TickDecision::UNLIMITED);
    /// assert!(TickDecision::UNLIMITED.allowed);
    /// ```
    pub const UNLIMITED: TickDecision = TickDecision {
        allowed: true,
        limit: 0,
        remaining: 0,
        reset_after: 0,
        retry_after: None,
        window: 0,
        ban: BanStatus::Clear,
        delay: 0,
    };
}

/// Applies a hit of `cost` units at `now` to the states of a policy's rates, one state per
/// limit: if the hit fits every rate it is charged to all of them, otherwise to none.
///
/// A cost of 0 is a peek: nothing changes, and the outcome says whether a hit of one unit
/// would be allowed now. A limit with an amount of 0 denies every hit, with a `retry_after`
/// of its window (the soonest a changed configuration could matter).
///
/// The cost must not exceed any non-zero limit's capacity (see
/// [`crate::Policy::max_cost`]); such a hit could never fit, and callers refuse it before
/// it gets here. `states` and `limits` pair up one to one; with no limits at all the hit is
/// allowed and nothing is reported.
///
/// **Delay instead of reject.** When the limits have a [`TickRate::max_delay`] and the
/// strategy reserves ([`RateState::reservable`]: the token bucket, and the fixed window up to
/// its window), a hit that would fit `w ≤ max_delay` ticks from now is allowed with a
/// [`TickDecision::delay`] of `w`: its slot is reserved at once, charged to every rate as if
/// the hit were made at `now + w`, so the waits of successive hits add up exactly as they
/// would at the rate and the hits *run* (at `now + delay`) within the limits. A token bucket
/// takes the hit as GCRA with a tolerance widened by `max_delay`; a fixed window charges it
/// to its next window (the rest of the current window's room, if a hit of several units did
/// not fit it, is given up), which starts when the current one ends. A hit that would wait
/// longer is denied, with a `retry_after` of the exact time until the same hit would be
/// allowed with a delay (its wait minus `max_delay`). A kill switch never reserves. A peek
/// reports the delay a hit of one unit would get, reserving nothing.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{apply, TokenBucket};
/// use tollgate::Policy;
///
/// // 10 a second, a burst of 1, waits of up to 250 ms; ticks of 1 ms.
/// let policy = Policy::token_bucket("10/second".parse()?)?.with_burst(1)?;
/// let limits = policy.with_max_delay(Duration::from_millis(250))?.limits(Duration::from_millis(1));
/// let mut state = [TokenBucket::default()];
/// let delays: Vec<Option<u64>> = (0..4)
///     .map(|_| Some(apply(&mut state, &limits, 0, 1)).filter(|d| d.allowed).map(|d| d.delay))
///     .collect();
/// assert_eq!(delays, [Some(0), Some(100), Some(200), None]);
/// assert_eq!(apply(&mut state, &limits, 0, 1).retry_after, Some(50)); // 300 − 250
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{apply, TokenBucket};
/// use tollgate::Policy;
///
/// let policy = Policy::token_bucket("2/second; 3/minute".parse()?)?;
/// let limits = policy.limits(Duration::from_millis(1)); // ticks of 1 ms
/// let mut states = [TokenBucket::default(), TokenBucket::default()];
/// assert!(apply(&mut states, &limits, 0, 2).allowed);
/// let denied = apply(&mut states, &limits, 0, 2); // fits neither bucket: charged to none
/// assert!(!denied.allowed);
/// assert_eq!(denied.retry_after, Some(20_000)); // the minute bucket makes it wait longest
/// assert!(apply(&mut states, &limits, 1_000, 1).allowed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[inline(always)]
pub fn apply<S: RateState>(
    states: &mut [S],
    limits: &[TickRate],
    now: u64,
    cost: u64,
) -> TickDecision {
    debug_assert_eq!(states.len(), limits.len());
    let rates = states.len().min(limits.len());
    let (states, limits) = (&mut states[..rates], &limits[..rates]);
    if rates == 0 {
        return TickDecision::UNLIMITED;
    }
    if let Some((i, ticks)) = longest_wait(states, limits, now, cost.max(1)) {
        let bound = reservable::<S>(limits);
        if ticks > bound {
            return report(&states[i], &limits[i], now, Some(ticks - bound));
        }
        if cost > 0 {
            let run_at = now.saturating_add(ticks);
            for (state, limit) in states.iter_mut().zip(limits) {
                state.reserve(limit, now, run_at, cost);
            }
        }
        return TickDecision {
            delay: ticks,
            ..binding(states, limits, now)
        };
    }
    if cost > 0 {
        for (state, limit) in states.iter_mut().zip(limits) {
            state.consume(limit, now, cost);
        }
    }
    binding(states, limits, now)
}

/// The longest wait every rate reserves a slot for: 0 when one of them does not (or is a
/// kill switch).
#[inline]
fn reservable<S: RateState>(limits: &[TickRate]) -> u64 {
    limits
        .iter()
        .map(|limit| {
            if limit.amount == 0 {
                0
            } else {
                S::reservable(limit)
            }
        })
        .min()
        .unwrap_or(0)
}

/// What [`apply`] would decide for a hit of `cost` at `now`, charging nothing.
#[inline]
pub(crate) fn judge<S: RateState>(
    states: &[S],
    limits: &[TickRate],
    now: u64,
    cost: u64,
) -> TickDecision {
    let rates = states.len().min(limits.len());
    let (states, limits) = (&states[..rates], &limits[..rates]);
    if rates == 0 {
        return TickDecision::UNLIMITED;
    }
    match longest_wait(states, limits, now, cost.max(1)) {
        Some((i, ticks)) => match reservable::<S>(limits) {
            bound if ticks > bound => report(&states[i], &limits[i], now, Some(ticks - bound)),
            _ => TickDecision {
                delay: ticks,
                ..binding(states, limits, now)
            },
        },
        None => binding(states, limits, now),
    }
}

/// The rate that makes a hit of `probe` units wait longest, by index, and its wait; `None`
/// when every rate takes the hit. A kill switch waits its window.
#[inline]
pub(crate) fn longest_wait<S: RateState>(
    states: &[S],
    limits: &[TickRate],
    now: u64,
    probe: u64,
) -> Option<(usize, u64)> {
    let mut wait: Option<(usize, u64)> = None;
    for (i, (state, limit)) in states.iter().zip(limits).enumerate() {
        let rate_wait = if limit.amount == 0 {
            Some(limit.window)
        } else {
            state.retry_after(limit, now, probe)
        };
        if let Some(ticks) = rate_wait
            && wait.is_none_or(|(_, longest)| ticks > longest)
        {
            wait = Some((i, ticks));
        }
    }
    wait
}

/// One rate's numbers at `now`: allowed unless it says how long to wait.
#[inline]
pub(crate) fn report<S: RateState>(
    state: &S,
    limit: &TickRate,
    now: u64,
    retry_after: Option<u64>,
) -> TickDecision {
    let (remaining, reset_after) = if limit.amount == 0 {
        (0, 0)
    } else {
        (state.remaining(limit, now), state.reset_after(limit, now))
    };
    TickDecision {
        allowed: retry_after.is_none(),
        limit: limit.capacity,
        remaining,
        reset_after,
        retry_after,
        window: limit.window,
        ban: BanStatus::Clear,
        delay: 0,
    }
}

/// The allowed decision of the rate with the fewest units left (of equals, the one that
/// resets last; of those, the first).
#[inline]
pub(crate) fn binding<S: RateState>(states: &[S], limits: &[TickRate], now: u64) -> TickDecision {
    let mut binding = report(&states[0], &limits[0], now, None);
    for i in 1..states.len() {
        let other = report(&states[i], &limits[i], now, None);
        if (other.remaining, std::cmp::Reverse(other.reset_after))
            < (binding.remaining, std::cmp::Reverse(binding.reset_after))
        {
            binding = other;
        }
    }
    binding
}

/// Gives `cost` units back at `now` to the states of a policy's rates, one state per limit:
/// the twin of [`apply`] for a hit that should not have counted.
///
/// This is what *deduct-when* needs: charge a hit before a request runs, so that parallel
/// requests see each other, and refund it once the response shows it should not count (a
/// login that succeeded, when only failures count). A hit of `c` units refunded by `c` at the
/// same instant leaves every later decision as if the hit had never been made. Each rate gets
/// the units back its strategy's way:
///
/// - fixed window ([`FixedWindow`]): the count drops by `cost`, saturating at 0, while the
///   window that is live at `now` lasts; an expired window is left alone (there is nothing to
///   give back, and a refund never reaches into the next window);
/// - token bucket ([`TokenBucket`]): the theoretical arrival time moves back by `cost` units'
///   worth of ticks, never below `now`, so the bucket never holds more than its capacity (a
///   full bucket stays as it is);
/// - sliding window log ([`SlidingWindowLog`]): the `cost` most recent units still inside the
///   trailing window are removed;
/// - sliding window counter ([`SlidingWindowCounter`]): `cost` comes off the current window's
///   count, saturating at 0, and whatever is left of it off the previous window's count,
///   saturating too.
///
/// A cost of 0 changes nothing. A refund never leaves a rate with more room than a fresh
/// state (at most the capacity fits at once), whatever the cost. A refund that was never
/// charged still gives units back when it finds some: it is the caller's to refund only the
/// hits it was allowed. `states` and `limits` pair up one to one, as for [`apply`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{apply, refund, SlidingWindowLog};
/// use tollgate::Policy;
///
/// let policy = Policy::sliding_window_log("3/minute".parse()?)?;
/// let limits = policy.limits(Duration::from_secs(1)); // ticks of one second
/// let mut state = [SlidingWindowLog::default()];
/// assert!(apply(&mut state, &limits, 0, 2).allowed);
/// assert!(apply(&mut state, &limits, 10, 1).allowed);
/// assert!(!apply(&mut state, &limits, 20, 1).allowed);
/// refund(&mut state, &limits, 20, 1); // the unit charged at 10 is given back
/// let again = apply(&mut state, &limits, 20, 1);
/// assert_eq!((again.allowed, again.remaining), (true, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn refund<S: RateState>(states: &mut [S], limits: &[TickRate], now: u64, cost: u64) {
    debug_assert_eq!(states.len(), limits.len());
    if cost == 0 {
        return;
    }
    for (state, limit) in states.iter_mut().zip(limits) {
        state.refund(limit, now, cost);
    }
}

/// `a * b / c`, rounded down, computed without overflow; saturates at `u64::MAX`.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    match u64::try_from(product) {
        // A 64-bit division where the product fits, rather than a call for the 128-bit one.
        Ok(product) => product / c.max(1),
        Err(_) => u64::try_from(product / u128::from(c.max(1))).unwrap_or(u64::MAX),
    }
}
