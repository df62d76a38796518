//! Hits that timed out, which Redis may still apply: their replies are awaited in the
//! background (a bounded number at a time, for a bounded time), counted, and a late charge of
//! a request that was refused is given back ([`LateHits::watch`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tollgate::{PendingHit, StoreError};

use crate::connection::Reply;
use crate::prepared::Numbers;

/// How long the reply of a hit that timed out is still waited for.
pub(crate) const LATE_REPLY_WAIT: Duration = Duration::from_secs(10);

/// How many replies of timed-out hits are waited for at once; past that, a timed-out hit's
/// outcome is not learnt (and never given back).
pub(crate) const MAX_WATCHED: usize = 1024;

/// What a [`RedisStore`](crate::RedisStore) knows of its hits that timed out: Redis may still
/// have applied them after the caller stopped waiting.
///
/// ```no_run
/// use tollgate_redis::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let late = store.late_hits();
/// assert!(late.charged_late <= late.timed_out);
/// assert!(late.given_back <= late.charged_late);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LateHitStats {
    /// Hits that timed out.
    pub timed_out: u64,
    /// Of those, hits whose reply arrived after the timeout saying Redis charged them.
    pub charged_late: u64,
    /// Of those, charges given back because the request they were for was refused.
    pub given_back: u64,
    /// Timed-out hits whose outcome was not waited for: too many were waited for already.
    pub unwatched: u64,
}

/// The counts behind [`LateHitStats`], and how many replies are waited for now.
#[derive(Debug, Default)]
pub(crate) struct LateHits {
    timed_out: AtomicU64,
    charged_late: AtomicU64,
    given_back: AtomicU64,
    unwatched: AtomicU64,
    watching: AtomicUsize,
}

/// What is known of one timed-out hit, shared by its watcher and its [`PendingHit`].
struct Watch {
    /// The request was refused: a charge is to be given back.
    refused: bool,
    /// Whether Redis charged the hit, once its reply arrived.
    charged: Option<bool>,
    /// The refund, until it is sent.
    refund: Option<Reply<i64>>,
}

impl LateHits {
    pub(crate) fn stats(&self) -> LateHitStats {
        LateHitStats {
            timed_out: self.timed_out.load(Ordering::Relaxed),
            charged_late: self.charged_late.load(Ordering::Relaxed),
            given_back: self.given_back.load(Ordering::Relaxed),
            unwatched: self.unwatched.load(Ordering::Relaxed),
        }
    }

    /// Counts a hit of `cost` units that timed out with `err` and, unless too many are
    /// watched already (or it charges nothing), waits in the background for its `reply`.
    /// Returns `err` with the [`PendingHit`] whose give-back sends `refund` once the reply
    /// shows the hit was charged (at once if it already has).
    pub(crate) fn watch(
        self: &Arc<Self>,
        err: StoreError,
        reply: Reply<Numbers>,
        cost: u64,
        refund: Reply<i64>,
    ) -> StoreError {
        match self.pending(reply, cost, refund) {
            Some(pending) => err.with_pending(pending),
            None => err,
        }
    }

    fn pending(
        self: &Arc<Self>,
        reply: Reply<Numbers>,
        cost: u64,
        refund: Reply<i64>,
    ) -> Option<PendingHit> {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        if cost == 0 {
            return None;
        }
        if self.watching.fetch_add(1, Ordering::AcqRel) >= MAX_WATCHED {
            self.watching.fetch_sub(1, Ordering::AcqRel);
            self.unwatched.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let watch = Arc::new(Mutex::new(Watch {
            refused: false,
            charged: None,
            refund: Some(refund),
        }));
        let (late, watched) = (Arc::clone(self), Arc::clone(&watch));
        runtime.spawn(async move {
            let reply = tokio::time::timeout(LATE_REPLY_WAIT, reply).await;
            late.watching.fetch_sub(1, Ordering::AcqRel);
            // An allowed hit of some units was charged.
            let charged = matches!(reply, Ok(Ok(reply)) if reply.allowed());
            if charged {
                late.charged_late.fetch_add(1, Ordering::Relaxed);
            }
            let refund = {
                let mut watch = watched.lock().unwrap_or_else(PoisonError::into_inner);
                watch.charged = Some(charged);
                if charged && watch.refused {
                    watch.refund.take()
                } else {
                    None
                }
            };
            if let Some(refund) = refund {
                late.give_back(refund).await;
            }
        });
        let late = Arc::clone(self);
        Some(PendingHit::new(move || {
            let refund = {
                let mut watch = watch.lock().unwrap_or_else(PoisonError::into_inner);
                watch.refused = true;
                if watch.charged == Some(true) {
                    watch.refund.take()
                } else {
                    None
                }
            };
            if let Some(refund) = refund {
                runtime.spawn(async move { late.give_back(refund).await });
            }
        }))
    }

    /// Sends a late charge's refund, and counts it given back once Redis confirms.
    async fn give_back(&self, refund: Reply<i64>) {
        if let Ok(Ok(_)) = tokio::time::timeout(LATE_REPLY_WAIT, refund).await {
            self.given_back.fetch_add(1, Ordering::Relaxed);
        }
    }
}
