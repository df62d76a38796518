//! Test doubles, behind the `test-util` feature: [`FlakyStore`], a memory store that fails on
//! command, to test what happens when a store fails.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::policy::Policy;
use crate::store::memory::{MemoryStore, PreparedMemory};
use crate::store::{Store, StoreError, SyncStore};

/// A [`MemoryStore`] that fails while set down: for testing a failure mode, a `503`, or an
/// application's own handling of store errors without killing a real backend.
///
/// Clones share the counts and the switch. While down, hits and refunds fail with a timeout
/// error (`store timed out: flaky store is down`); resets still succeed.
///
/// ```
/// use tollgate::testing::FlakyStore;
/// use tollgate::{Error, Limiter, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let flaky = FlakyStore::new();
/// let p = Limiter::new(flaky.clone()).policy("p", Policy::fixed_window(Rate::per_minute(5).into()));
/// assert!(p.hit("k").await.is_ok());
/// flaky.set_down(true);
/// assert!(matches!(p.hit("k").await, Err(Error::Store(_))));
/// flaky.set_down(false);
/// assert_eq!(p.hit("k").await.unwrap().remaining(), 3);
/// assert_eq!(flaky.served(), 2);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct FlakyStore {
    store: MemoryStore,
    down: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    /// Hits and refunds to let through before one fails; 0 when none is due to fail.
    fail_after: Arc<AtomicU64>,
}

impl FlakyStore {
    /// A store that is up, with no counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether hits and refunds fail.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Whether hits and refunds fail.
    ///
    /// ```
    /// use tollgate::testing::FlakyStore;
    ///
    /// let flaky = FlakyStore::new();
    /// assert!(!flaky.is_down());
    /// flaky.clone().set_down(true); // clones share the switch
    /// assert!(flaky.is_down());
    /// ```
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// The hits answered so far (failed ones not included).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Fails one call: after the next `calls` hits and refunds succeed, the one after fails,
    /// and the store answers again (to fail a request half way).
    ///
    /// ```
    /// use tollgate::testing::FlakyStore;
    /// use tollgate::{Limiter, Policy, Rate};
    ///
    /// let flaky = FlakyStore::new();
    /// let p = Limiter::new(flaky.clone()).policy("p", Policy::fixed_window(Rate::per_hour(5).into()));
    /// flaky.fail_after(1);
    /// assert!(p.hit_sync("k", 1).is_ok());
    /// assert!(p.hit_sync("k", 1).is_err());
    /// assert_eq!(p.hit_sync("k", 1).expect("up again").remaining(), 3);
    /// ```
    pub fn fail_after(&self, calls: u64) {
        self.fail_after.store(calls + 1, Ordering::SeqCst);
    }

    /// Whether this call fails: the store is down, or it is the call [`FlakyStore::fail_after`]
    /// set to fail.
    fn fails(&self) -> bool {
        let due = self
            .fail_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok_and(|before| before == 1);
        due || self.is_down()
    }

    fn down_error() -> StoreError {
        StoreError::timeout("flaky store is down")
    }
}

/// Every call is answered before its future is returned.
impl SyncStore for FlakyStore {}

impl Store for FlakyStore {
    type Prepared = PreparedMemory;

    fn answers_immediately(&self) -> bool {
        true
    }

    fn prepare(&self, name: &str, policy: &Policy) -> PreparedMemory {
        self.store.prepare(name, policy)
    }

    fn hit<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        std::future::ready(if self.fails() {
            Err(Self::down_error())
        } else {
            self.served.fetch_add(1, Ordering::SeqCst);
            Ok(self.store.hit_in_place(policy, key, now, cost))
        })
    }

    fn refund<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a> {
        std::future::ready(if self.fails() {
            Err(Self::down_error())
        } else {
            self.store.refund_in_place(policy, key, now, cost);
            Ok(())
        })
    }

    async fn reset(&self, policy: &PreparedMemory, key: &[u8]) -> Result<(), StoreError> {
        self.store.reset(policy, key).await
    }
}
