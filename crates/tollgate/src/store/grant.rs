//! [`Grant`]: what [`crate::Store::take`] charged at once, for a quota lease.

use std::time::Duration;

use crate::decision::Decision;

/// Units of a key's allowance charged at once by [`crate::Store::take`], to be spent later
/// without asking the store again (a *quota lease*); see [`crate::strategy::take`] for how
/// many are granted and what spending them later means for each strategy.
///
/// ```
/// use tollgate::{GiveBack, MemoryStore, Policy, Store, Timestamp};
///
/// # futures_executor::block_on(async {
/// let store = MemoryStore::new();
/// let api = store.prepare("api", &Policy::fixed_window("800/minute".parse()?));
/// let grant = store.take(&api, b"alice", Timestamp::from_nanos(0), 1, 64, GiveBack::NONE).await?;
/// assert_eq!(grant.granted(), 64); // wanted 64, and ⌈800 / 8⌉ = 100 could be spared
/// assert_eq!(grant.decision().remaining(), 736);
/// assert_eq!(grant.horizon(), Some(std::time::Duration::from_secs(60)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    granted: u64,
    decision: Decision,
    horizon: Option<Duration>,
    give_back_before: Option<u64>,
}

impl Grant {
    /// `granted` units with the `decision` after their charge, to be spent within
    /// `horizon` (`None`: no window ends them), and given back, if unspent, only before the
    /// store's tick `give_back_before` (`None`: any time; see [`GiveBack`]).
    ///
    /// ```
    /// use tollgate::{Decision, Grant};
    ///
    /// # fn check(allowed: Decision) {
    /// let grant = Grant::new(3, allowed, None, None);
    /// assert_eq!(grant.granted(), 3);
    /// # }
    /// ```
    pub fn new(
        granted: u64,
        decision: Decision,
        horizon: Option<Duration>,
        give_back_before: Option<u64>,
    ) -> Self {
        Self {
            granted,
            decision,
            horizon,
            give_back_before,
        }
    }

    /// The store's own time (in its ticks, opaque to callers) before which unspent units of
    /// this grant may be given back: the end of the window they were charged to. A give-back
    /// that reaches the store later is dropped, so that it never frees room in a window the
    /// units were not charged to. `None`: any time.
    pub fn give_back_before(&self) -> Option<u64> {
        self.give_back_before
    }

    /// Units charged; 0 when the units needed were denied.
    pub fn granted(&self) -> u64 {
        self.granted
    }

    /// The decision after the charge; for a grant of 0, the denial of the units needed,
    /// with its exact `retry_after`.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// How long from the take the units may be spent with the policy's guarantee exact:
    /// until the live window ends for the fixed window and the sliding window counter;
    /// `None` when no window ends them (token bucket, sliding window log).
    pub fn horizon(&self) -> Option<Duration> {
        self.horizon
    }
}

/// Unspent units of an earlier [`Grant`] to give back before a take
/// ([`crate::Store::take`]): `units`, given back only if the store's time is still before
/// the grant's [`Grant::give_back_before`].
///
/// ```
/// use tollgate::GiveBack;
///
/// assert_eq!(GiveBack::NONE.units(), 0);
/// assert_eq!(GiveBack::new(5, Some(1_000)).before(), Some(1_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveBack {
    units: u64,
    before: Option<u64>,
}

impl GiveBack {
    /// Nothing to give back.
    pub const NONE: GiveBack = GiveBack {
        units: 0,
        before: None,
    };

    /// `units` to give back if the store's time is before `before` (`None`: any time).
    pub fn new(units: u64, before: Option<u64>) -> Self {
        Self { units, before }
    }

    /// The units to give back.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The store's tick they must be given back before; `None`: any time.
    pub fn before(&self) -> Option<u64> {
        self.before
    }

    /// Whether they may be given back at the store's tick `now`.
    pub fn allowed_at(&self, now: u64) -> bool {
        self.units > 0 && self.before.is_none_or(|before| now < before)
    }
}

/// `nanos` as a [`Duration`], saturating at [`Duration::MAX`].
pub(crate) fn nanos_to_duration(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // Below 10^9: fits.
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}
