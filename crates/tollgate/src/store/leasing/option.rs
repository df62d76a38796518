//! [`QuotaLease`], a policy's choice of leasing, and [`LeaseStats`], what a
//! [`Leasing`](super::Leasing) store counts.

use std::fmt;
use std::time::Duration;

/// The shortest lease lifetime a policy may ask for.
pub const MIN_LEASE: Duration = Duration::from_millis(1);

/// The longest lease lifetime a policy may ask for: units leased longer would sit unused
/// where another instance could spend them.
pub const MAX_LEASE: Duration = Duration::from_secs(60);

/// Whether a policy's hits are served from quota leases by a [`Leasing`](super::Leasing)
/// store, overriding the store's default ([`Leasing::with_lease`](super::Leasing::with_lease)).
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Policy, QuotaLease};
///
/// let lease = QuotaLease::lasting(Duration::from_millis(250))?;
/// assert_eq!(lease.lifetime(), Some(Duration::from_millis(250)));
/// let policy = Policy::fixed_window("100/second".parse()?).with_quota_lease(QuotaLease::Off);
/// assert_eq!(policy.quota_lease(), Some(QuotaLease::Off));
/// let err = QuotaLease::lasting(Duration::ZERO).unwrap_err();
/// assert_eq!(err.to_string(), "lease 0ns is out of range: it must be between 1ms and 60s, or off");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaLease {
    /// Every hit goes to the store.
    Off,
    /// Units are leased for at most this long (between [`MIN_LEASE`] and [`MAX_LEASE`]).
    Lasting(Duration),
}

impl QuotaLease {
    /// Leases lasting at most `lifetime`; it must lie between [`MIN_LEASE`] and
    /// [`MAX_LEASE`].
    pub fn lasting(lifetime: Duration) -> Result<Self, InvalidQuotaLease> {
        if (MIN_LEASE..=MAX_LEASE).contains(&lifetime) {
            Ok(Self::Lasting(lifetime))
        } else {
            Err(InvalidQuotaLease(lifetime))
        }
    }

    /// The lifetime of a lease; `None` when off.
    pub fn lifetime(self) -> Option<Duration> {
        match self {
            Self::Off => None,
            Self::Lasting(lifetime) => Some(lifetime),
        }
    }
}

/// A lease lifetime outside [`MIN_LEASE`]..=[`MAX_LEASE`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::QuotaLease;
///
/// assert!(QuotaLease::lasting(Duration::from_secs(61)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidQuotaLease(pub Duration);

impl fmt::Display for InvalidQuotaLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lease {:?} is out of range: it must be between {MIN_LEASE:?} and {MAX_LEASE:?}, or off",
            self.0
        )
    }
}

impl std::error::Error for InvalidQuotaLease {}

/// What a [`Leasing`](super::Leasing) store has counted since it was made.
///
/// ```
/// use tollgate::{Leasing, MemoryStore};
///
/// let stats = Leasing::new(MemoryStore::new()).stats();
/// assert_eq!((stats.hits, stats.store_calls), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Hits (peeks included) of leased policies.
    pub hits: u64,
    /// Calls to the store behind, for those hits and for giving units back: with
    /// `hits`, the store calls per hit.
    pub store_calls: u64,
    /// Takes that granted units.
    pub leases_taken: u64,
    /// Units granted by those takes.
    pub units_leased: u64,
    /// Hits allowed from a lease, without a call.
    pub local_allowed: u64,
    /// Hits denied without a call, until the `retry_after` of the store's last denial.
    pub local_denials: u64,
    /// Leases that ended (their lifetime, or their window, ran out) with units unspent.
    pub leases_expired: u64,
    /// Leases dropped to keep the table within its keys, with units unspent.
    pub leases_evicted: u64,
    /// Unspent units sent back to the store.
    pub units_given_back: u64,
    /// Unspent units not given back: their window had ended (they count nowhere else), the
    /// strategy is a sliding window log (a give-back could free a later unit's slot), or
    /// the queue of give-backs was full.
    pub units_dropped: u64,
}
