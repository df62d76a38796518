//! Concurrency slots: [`ConcurrencyLimit`] (how many requests of one key may be in flight at
//! once), [`LeaseId`] (the token that holds a slot) and [`Acquisition`] (what asking for a
//! slot came to).
//!
//! A slot is held by a *lease*: acquired before a request runs, released when its response
//! has ended, and expiring by itself after the limit's lease time, so that a client (or a
//! process) that dies holding one does not hold it forever. Stores keep the live leases of
//! each key ([`crate::Store::acquire`], [`crate::Store::release`]); the limiter's
//! [`Admission`](crate::Admission) acquires them together with its rate charges, all or none.

use std::fmt;
use std::hash::Hasher;
use std::str::FromStr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::decision::Decision;
use crate::strategy::{BanStatus, TickDecision};

/// The most requests of one key a [`ConcurrencyLimit`] may let in flight at once: a store
/// keeps one lease per request in flight, and a Redis acquire's work grows with their number.
///
/// ```
/// assert_eq!(tollgate::MAX_IN_FLIGHT, 10_000);
/// assert!(tollgate::ConcurrencyLimit::new(10_001).is_err());
/// ```
pub const MAX_IN_FLIGHT: u32 = 10_000;

/// How long a lease lives unless released, by default: 60 seconds.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(tollgate::DEFAULT_LEASE_TTL, Duration::from_secs(60));
/// assert_eq!(tollgate::ConcurrencyLimit::new(5)?.lease_ttl(), tollgate::DEFAULT_LEASE_TTL);
/// # Ok::<(), tollgate::ConcurrencyLimitError>(())
/// ```
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// The longest lease time: one day.
const MAX_LEASE_TTL: Duration = Duration::from_secs(86_400);

/// How many requests of one key may be in flight at once, and how long a slot that is never
/// released stays taken.
///
/// ```
/// use std::time::Duration;
/// use tollgate::ConcurrencyLimit;
///
/// let limit = ConcurrencyLimit::new(20)?.with_lease_ttl(Duration::from_secs(30))?;
/// assert_eq!((limit.max(), limit.lease_ttl()), (20, Duration::from_secs(30)));
/// assert_eq!(
///     ConcurrencyLimit::new(0).unwrap_err().to_string(),
///     "invalid concurrency limit: max_in_flight must be from 1 to 10000, not 0"
/// );
/// # Ok::<(), tollgate::ConcurrencyLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConcurrencyLimit {
    max: u32,
    lease_ttl: Duration,
}

impl ConcurrencyLimit {
    /// At most `max` requests in flight at once (1 to [`MAX_IN_FLIGHT`]), leases living
    /// [`DEFAULT_LEASE_TTL`].
    pub fn new(max: u32) -> Result<Self, ConcurrencyLimitError> {
        if !(1..=MAX_IN_FLIGHT).contains(&max) {
            return Err(ConcurrencyLimitError::Max(max));
        }
        Ok(Self {
            max,
            lease_ttl: DEFAULT_LEASE_TTL,
        })
    }

    /// Leases that are never released expire after `ttl`: from 1 ms to one day, in whole
    /// milliseconds (rounded up).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Result<Self, ConcurrencyLimitError> {
        if ttl < Duration::from_millis(1) || ttl > MAX_LEASE_TTL {
            return Err(ConcurrencyLimitError::LeaseTtl(ttl));
        }
        let millis = ttl.as_nanos().div_ceil(1_000_000);
        self.lease_ttl = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        Ok(self)
    }

    /// The most requests in flight at once.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// How long a lease lives unless released.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// The decision describing a key with `in_flight` leases after an acquire: allowed (a
    /// lease taken) or not, the limit and the slots left, and for a full key the time until
    /// its earliest lease expires (the latest a slot frees, unless released sooner).
    pub(crate) fn decision(
        &self,
        acquired: bool,
        in_flight: u32,
        retry_after: Duration,
    ) -> Decision {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let ttl = nanos(self.lease_ttl);
        let retry = nanos(retry_after).max(1);
        Decision::from_ticks(
            TickDecision {
                allowed: acquired,
                limit: u64::from(self.max),
                remaining: u64::from(self.max.saturating_sub(in_flight)),
                reset_after: if acquired { ttl } else { retry },
                retry_after: (!acquired).then_some(retry),
                window: ttl,
                ban: BanStatus::Clear,
                delay: 0,
            },
            Duration::from_nanos(1),
        )
    }
}

/// A [`ConcurrencyLimit`] that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConcurrencyLimitError {
    /// The most in flight is 0 or above [`MAX_IN_FLIGHT`].
    Max(u32),
    /// The lease time is under 1 ms or over a day.
    LeaseTtl(Duration),
}

impl fmt::Display for ConcurrencyLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Max(max) => write!(
                f,
                "invalid concurrency limit: max_in_flight must be from 1 to {MAX_IN_FLIGHT}, not {max}"
            ),
            Self::LeaseTtl(ttl) => write!(
                f,
                "invalid concurrency limit: lease_ttl must be from 1ms to 1 day, not {ttl:?}"
            ),
        }
    }
}

impl std::error::Error for ConcurrencyLimitError {}

/// The token that holds one concurrency slot: 128 random bits, shown as 32 hex digits, so
/// that a client cannot release another client's slot by guessing its lease.
///
/// ```
/// use tollgate::LeaseId;
///
/// let lease = LeaseId::random();
/// assert_ne!(lease, LeaseId::random());
/// let shown = lease.to_string();
/// assert_eq!(shown.len(), 32);
/// assert_eq!(shown.parse::<LeaseId>(), Ok(lease));
/// assert!("not-a-lease".parse::<LeaseId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(u128);

/// The secret key that turns a counter into lease ids (SipHash is a keyed pseudo-random
/// function: without the key, one id says nothing of the next).
static LEASE_SECRET: LazyLock<(u64, u64)> = LazyLock::new(|| {
    use std::hash::BuildHasher;
    let seed = |salt: u64| std::collections::hash_map::RandomState::new().hash_one(salt);
    (seed(0x006c_6561_7365), seed(0x7365_6372_6574))
});

static LEASE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LeaseId {
    /// A fresh, unguessable lease id.
    pub fn random() -> Self {
        let (k0, k1) = *LEASE_SECRET;
        let mut sip = SipHasher24::new_with_keys(k0, k1);
        sip.write_u64(LEASE_COUNTER.fetch_add(1, Ordering::Relaxed));
        Self(sip.finish128().as_u128())
    }

    /// The id with these 128 bits (for tests that need known ids).
    pub fn from_u128(bits: u128) -> Self {
        Self(bits)
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A string that is not a lease id (32 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLeaseId;

impl fmt::Display for InvalidLeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid lease: expected 32 hexadecimal digits")
    }
}

impl std::error::Error for InvalidLeaseId {}

impl FromStr for LeaseId {
    type Err = InvalidLeaseId;

    fn from_str(s: &str) -> Result<Self, InvalidLeaseId> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidLeaseId);
        }
        u128::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| InvalidLeaseId)
    }
}

/// What asking a store for a concurrency slot came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquisition {
    /// The lease was taken; `in_flight` leases of the key are live now, this one included.
    Acquired {
        /// Live leases of the key, this one included.
        in_flight: u32,
    },
    /// Every slot is taken: nothing changed.
    Full {
        /// Live leases of the key.
        in_flight: u32,
        /// The time until the key's earliest lease expires: the latest a slot frees, unless
        /// one is released sooner.
        retry_after: Duration,
    },
}

impl Acquisition {
    /// The decision this describes under `limit`.
    pub(crate) fn decision(&self, limit: &ConcurrencyLimit) -> Decision {
        match *self {
            Acquisition::Acquired { in_flight } => limit.decision(true, in_flight, Duration::ZERO),
            Acquisition::Full {
                in_flight,
                retry_after,
            } => limit.decision(false, in_flight, retry_after),
        }
    }
}
