//! [`StoreError`]: a store could not answer; and [`PendingHit`], a hit that timed out but that
//! the store may still apply.

use std::error::Error as StdError;
use std::fmt;

/// A store could not answer: its backend is unreachable, timed out, or failed.
///
/// ```
/// use tollgate::StoreError;
///
/// let err = StoreError::timeout("redis at 127.0.0.1:6379 did not answer within 50ms");
/// assert!(err.is_timeout());
/// assert_eq!(err.to_string(), "store timed out: redis at 127.0.0.1:6379 did not answer within 50ms");
/// ```
#[derive(Debug)]
pub struct StoreError {
    timeout: bool,
    source: Box<dyn StdError + Send + Sync>,
    /// A hit that timed out but may still be applied.
    pending: Option<PendingHit>,
}

impl StoreError {
    /// The backend failed or is unreachable.
    ///
    /// ```
    /// use std::error::Error as _;
    /// use tollgate::StoreError;
    ///
    /// let err = StoreError::unavailable("connection refused");
    /// assert!(!err.is_timeout());
    /// assert_eq!(err.to_string(), "store unavailable: connection refused");
    /// assert_eq!(err.source().map(|source| source.to_string()).as_deref(), Some("connection refused"));
    /// ```
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            timeout: false,
            source: source.into(),
            pending: None,
        }
    }

    /// The backend did not answer in time.
    pub fn timeout(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            timeout: true,
            source: source.into(),
            pending: None,
        }
    }

    /// Whether the store gave up waiting, rather than being told no.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// Attaches the hit that failed (by a timeout) but that the store may still apply: see
    /// [`PendingHit`].
    ///
    /// ```
    /// use tollgate::{PendingHit, StoreError};
    ///
    /// let mut err = StoreError::timeout("no answer").with_pending(PendingHit::new(|| {}));
    /// assert!(err.take_pending().is_some());
    /// assert!(err.take_pending().is_none()); // taken once
    /// ```
    pub fn with_pending(mut self, hit: PendingHit) -> Self {
        self.pending = Some(hit);
        self
    }

    /// Takes the hit that failed but that the store may still apply, if the store said so.
    /// Whoever answers for the failed hit takes it, and gives it back if the answer refused
    /// the request ([`PendingHit::give_back`]); dropping it keeps whatever the store does.
    pub fn take_pending(&mut self) -> Option<PendingHit> {
        self.pending.take()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.timeout {
            "store timed out"
        } else {
            "store unavailable"
        };
        write!(f, "{what}: {}", self.source)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// A hit that failed by a timeout but that the store may still apply later (a Redis script
/// already queued when the caller stopped waiting): the store watches for its late outcome.
///
/// The answer given for the failed hit decides what a late charge means. If the request was
/// let through (failing open, or allowed by a fallback count), the charge is fair: drop the
/// `PendingHit`. If the request was refused (failing closed, or denied by a fallback count),
/// call [`PendingHit::give_back`]: should the store turn out to have charged the hit, it gives
/// the charge back, so that one request is not refused now *and* counted against the client
/// later. A [`crate::Failover`] does this for the hits it answers for.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use tollgate::PendingHit;
///
/// let given_back = Arc::new(AtomicBool::new(false));
/// let hit = PendingHit::new({
///     let given_back = Arc::clone(&given_back);
///     move || given_back.store(true, Ordering::SeqCst)
/// });
/// hit.give_back();
/// assert!(given_back.load(Ordering::SeqCst));
/// ```
pub struct PendingHit {
    give_back: Box<dyn FnOnce() + Send + Sync>,
}

impl PendingHit {
    /// A pending hit that `give_back` gives back if the store charges it (now or when its
    /// outcome arrives).
    pub fn new(give_back: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            give_back: Box::new(give_back),
        }
    }

    /// The request this hit was for was refused: if the store charges the hit (or has), it
    /// gives the charge back.
    pub fn give_back(self) {
        (self.give_back)();
    }
}

impl fmt::Debug for PendingHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingHit(..)")
    }
}
