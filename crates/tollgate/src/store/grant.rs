//! [`Grant`]: what [`crate::Store::take`] charged at once, for a quota lease.

use std::time::Duration;

use crate::decision::Decision;

/// Units of a key's allowance charged at once by [`crate::Store::take`], to be spent later
/// without asking the store again (a *quota lease*); see [`crate::strategy::take`] for how
/// many are granted and what spending them later means for each strategy.
///
/// ```
/// use tollgate::{MemoryStore, Policy, Store, Timestamp};
///
/// # futures_executor::block_on(async {
/// let store = MemoryStore::new();
/// let api = store.prepare("api", &Policy::fixed_window("800/minute".parse()?));
/// let grant = store.take(&api, b"alice", Timestamp::from_nanos(0), 1, 64, 0).await?;
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
}

impl Grant {
    /// `granted` units with the `decision` after their charge, to be spent within
    /// `horizon` (`None`: no window ends them).
    ///
    /// ```
    /// use tollgate::{Decision, Grant};
    ///
    /// # fn check(allowed: Decision) {
    /// let grant = Grant::new(3, allowed, None);
    /// assert_eq!(grant.granted(), 3);
    /// # }
    /// ```
    pub fn new(granted: u64, decision: Decision, horizon: Option<Duration>) -> Self {
        Self {
            granted,
            decision,
            horizon,
        }
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
