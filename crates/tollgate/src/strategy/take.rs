//! [`take`]: several units of a key's allowance charged at once, for a quota lease that an
//! instance then spends without asking the store again.

use super::{RateState, TickDecision, TickRate, binding, longest_wait, report};

/// The share of a key's remaining room one [`take`] grants at most beyond what it needs:
/// `⌈room / LEASE_SHARE⌉`. A key far from its limit lends large leases; near it, single
/// units, so that the last units are not stranded in one instance while others are denied.
///
/// ```
/// assert_eq!(tollgate::strategy::LEASE_SHARE, 8);
/// ```
pub const LEASE_SHARE: u64 = 8;

/// What [`take`] granted, in ticks.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{take, FixedWindow};
/// use tollgate::Policy;
///
/// let limits = Policy::fixed_window("80/minute".parse()?).limits(Duration::from_secs(1));
/// let grant = take(&mut [FixedWindow::default()], &limits, 0, 1, 50);
/// assert_eq!(grant.granted, 10); // ⌈80 / 8⌉
/// assert_eq!(grant.horizon, Some(60)); // spend them within the window
/// # Ok::<(), tollgate::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickGrant {
    /// Units charged, between the `need` and the `want` asked for; 0 when the `need` did
    /// not fit (nothing was charged).
    pub granted: u64,
    /// The decision after the charge, as [`super::apply`] reports it; for a grant of 0, the
    /// denial of a hit of `need` units, with its exact `retry_after`.
    pub decision: TickDecision,
    /// Ticks from `now` within which the granted units must be spent for the policy's
    /// guarantee to hold exactly (the end of the shortest live window, for the fixed window
    /// and the sliding window counter); `None` when no window ends them (token bucket,
    /// sliding window log).
    pub horizon: Option<u64>,
}

/// Charges between `need` and `want` units at `now` to every rate of a policy, all or none:
/// a *quota lease*, units charged before they are spent, so that whoever spends them later
/// never admits more than the states were charged.
///
/// The grant is `need` plus whatever more of `want` the key can spare: at most
/// `⌈room / LEASE_SHARE⌉` units, where `room` is the fewest units a rate has left, and never
/// fewer than `need`. It is 0 (nothing charged) exactly when a hit of `need` units would be
/// denied now, with the same `retry_after`. A grant of `g` leaves the states as a hit of
/// `g` would.
///
/// `need` is at least 1 (a 0 counts as 1) and `want` at least `need`; both must fit the
/// policy's [`crate::Policy::max_cost`], like a hit's cost. A take never reserves a delayed
/// slot (see [`TickRate::max_delay`]): it grants only units that fit now.
///
/// **What spending later means.** Units taken at `t` and spent up to `T` later are admitted
/// later than they were charged. For the fixed window and the sliding window counter, units
/// spent before [`TickGrant::horizon`] (their window's end) keep the guarantee exact: no
/// window admits more than its limit. For the token bucket, the units admitted in any
/// interval `I` are at most `burst + rate × (|I| + T)`; for the sliding window log, a window
/// of length `W` admits at most the limit plus the units leased and not yet spent when it
/// starts (units charged before it), so at most twice the limit.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{take, TokenBucket};
/// use tollgate::Policy;
///
/// let limits = Policy::token_bucket("4/second".parse()?)?.limits(Duration::from_millis(1));
/// let mut state = [TokenBucket::default()];
/// let sizes: Vec<u64> = (0..5).map(|_| take(&mut state, &limits, 0, 1, 100).granted).collect();
/// assert_eq!(sizes, [1, 1, 1, 1, 0]); // ⌈4 / 8⌉ = 1 at a time, then none
/// let denied = take(&mut state, &limits, 0, 1, 100).decision;
/// assert_eq!(denied.retry_after, Some(250));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn take<S: RateState>(
    states: &mut [S],
    limits: &[TickRate],
    now: u64,
    need: u64,
    want: u64,
) -> TickGrant {
    let rates = states.len().min(limits.len());
    let (states, limits) = (&mut states[..rates], &limits[..rates]);
    let need = need.max(1);
    let want = want.max(need);
    if rates == 0 {
        return TickGrant {
            granted: want,
            decision: TickDecision::UNLIMITED,
            horizon: None,
        };
    }
    if let Some((i, ticks)) = longest_wait(states, limits, now, need) {
        return TickGrant {
            granted: 0,
            decision: report(&states[i], &limits[i], now, Some(ticks)),
            horizon: None,
        };
    }
    let room = states
        .iter()
        .zip(limits)
        .map(|(state, limit)| state.remaining(limit, now))
        .min()
        .unwrap_or(0);
    let share = room.div_ceil(LEASE_SHARE).clamp(need, want);
    let granted = if share > need && longest_wait(states, limits, now, share).is_none() {
        share
    } else {
        need
    };
    for (state, limit) in states.iter_mut().zip(limits) {
        state.consume(limit, now, granted);
    }
    let horizon = states
        .iter()
        .zip(limits)
        .filter_map(|(state, limit)| state.lease_horizon(limit, now))
        .min();
    TickGrant {
        granted,
        decision: binding(states, limits, now),
        horizon,
    }
}

impl TickGrant {
    /// This grant with its times in [`std::time::Duration`]s, for ticks of length `tick`:
    /// what a store returns from [`crate::Store::take`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::strategy::{take, FixedWindow};
    /// use tollgate::Policy;
    ///
    /// let limits = Policy::fixed_window("80/minute".parse()?).limits(Duration::from_secs(1));
    /// let grant = take(&mut [FixedWindow::default()], &limits, 0, 1, 50);
    /// let grant = grant.into_grant(Duration::from_secs(1), 0);
    /// assert_eq!((grant.granted(), grant.horizon()), (10, Some(Duration::from_secs(60))));
    /// assert_eq!(grant.give_back_before(), Some(60));
    /// # Ok::<(), tollgate::ParseError>(())
    /// ```
    /// The units may be given back before `now + horizon`, in the store's ticks (`now` is
    /// the take's time in those ticks).
    pub fn into_grant(self, tick: std::time::Duration, now: u64) -> crate::Grant {
        let horizon = self.horizon.map(|ticks| {
            let nanos = u128::from(ticks) * tick.as_nanos();
            crate::store::grant::nanos_to_duration(nanos)
        });
        // A horizon of 0 (a ban's single units) leaves nothing unspent to give back.
        let before = self
            .horizon
            .filter(|&ticks| ticks > 0)
            .map(|ticks| now.saturating_add(ticks));
        crate::Grant::new(
            self.granted,
            self.decision.into_decision(tick),
            horizon,
            before,
        )
    }
}
