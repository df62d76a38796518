//! Test doubles, behind the `test-util` feature: [`FlakyStore`], a memory store that fails on
//! command, to test what happens when a store fails.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};
use crate::policy::Policy;
use crate::store::memory::{MemoryStore, PreparedMemory, PreparedMemoryLeases};
use crate::store::{PendingHit, Store, StoreError, SyncStore};

/// A [`MemoryStore`] that fails while set down: for testing a failure mode, a `503`, or an
/// application's own handling of store errors without killing a real backend.
///
/// Clones share the counts and the switches. While down, hits, refunds and late charges fail with a timeout
/// error (`store timed out: flaky store is down`); resets still succeed.
///
/// It can also play a store of several failure domains ([`FlakyStore::with_domains`]) whose
/// domains fail one by one, and a store that applies hits after they timed out
/// ([`FlakyStore::apply_late`]).
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
#[derive(Debug, Clone)]
pub struct FlakyStore {
    store: MemoryStore,
    down: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    /// Hits and refunds to let through before one fails; 0 when none is due to fail.
    fail_after: Arc<AtomicU64>,
    /// Per failure domain (a key's first byte modulo their number): whether it is down.
    domains_down: Arc<[AtomicBool]>,
    /// Whether a hit that fails is applied anyway, as if it had only timed out.
    apply_late: Arc<AtomicBool>,
}

impl Default for FlakyStore {
    fn default() -> Self {
        Self::with_domains(1)
    }
}

impl FlakyStore {
    /// A store that is up, with no counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store of `domains` failure domains (at least 1): a key's domain is its first byte
    /// modulo `domains` (0 for the empty key), and each can be set down apart.
    ///
    /// ```
    /// use tollgate::testing::FlakyStore;
    /// use tollgate::{Limiter, Policy, Rate};
    ///
    /// let flaky = FlakyStore::with_domains(2);
    /// let p = Limiter::new(flaky.clone()).policy("p", Policy::fixed_window(Rate::per_hour(5).into()));
    /// flaky.set_domain_down(1, true);
    /// assert!(p.hit_sync("b", 1).is_ok()); // b'b' is 98: domain 0
    /// assert!(p.hit_sync("a", 1).is_err()); // b'a' is 97: domain 1
    /// ```
    pub fn with_domains(domains: usize) -> Self {
        Self {
            store: MemoryStore::new(),
            down: Arc::default(),
            served: Arc::default(),
            fail_after: Arc::default(),
            domains_down: (0..domains.max(1))
                .map(|_| AtomicBool::new(false))
                .collect(),
            apply_late: Arc::default(),
        }
    }

    /// Sets whether the hits and refunds of keys of failure domain `domain` fail (a domain
    /// past the last is ignored).
    pub fn set_domain_down(&self, domain: usize, down: bool) {
        if let Some(flag) = self.domains_down.get(domain) {
            flag.store(down, Ordering::SeqCst);
        }
    }

    /// Sets whether a hit that fails is applied anyway, as a Redis that answers after the
    /// caller stopped waiting does: the hit is counted, and its timeout error carries a
    /// [`PendingHit`] that gives the charge back (only if it was charged).
    ///
    /// ```
    /// use tollgate::testing::FlakyStore;
    /// use tollgate::{Policy, Rate, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// let flaky = FlakyStore::new();
    /// let p = flaky.prepare("p", &Policy::fixed_window(Rate::per_hour(5).into()));
    /// let now = Timestamp::from_nanos(0);
    /// flaky.set_down(true);
    /// flaky.apply_late(true);
    /// let mut err = flaky.hit(&p, b"k", now, 1).await.unwrap_err();
    /// assert!(err.is_timeout());
    /// flaky.set_down(false);
    /// assert_eq!(flaky.hit(&p, b"k", now, 0).await?.remaining(), 4); // charged late
    /// err.take_pending().expect("a pending hit").give_back();
    /// assert_eq!(flaky.hit(&p, b"k", now, 0).await?.remaining(), 5); // given back
    /// # Ok::<(), tollgate::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn apply_late(&self, late: bool) {
        self.apply_late.store(late, Ordering::SeqCst);
    }

    /// The failure domain of `key`.
    fn domain_of(&self, key: &[u8]) -> usize {
        key.first()
            .map_or(0, |&byte| usize::from(byte) % self.domains_down.len())
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

    /// Whether this call for `key` fails: the store or the key's domain is down, or it is the
    /// call [`FlakyStore::fail_after`] set to fail.
    fn fails(&self, key: &[u8]) -> bool {
        let due = self
            .fail_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok_and(|before| before == 1);
        due || self.is_down() || self.domains_down[self.domain_of(key)].load(Ordering::SeqCst)
    }

    /// The error of a failed hit: applied anyway and given back on request, when set so.
    fn failed_hit(
        &self,
        policy: &PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> StoreError {
        let err = Self::down_error();
        if !self.apply_late.load(Ordering::SeqCst) {
            return err;
        }
        let charged = self.store.hit_in_place(policy, key, now, cost).allowed() && cost > 0;
        let (store, policy, key) = (self.store.clone(), policy.clone(), key.to_vec());
        err.with_pending(PendingHit::new(move || {
            if charged {
                store.refund_in_place(&policy, &key, now, cost);
            }
        }))
    }

    fn down_error() -> StoreError {
        StoreError::timeout("flaky store is down")
    }
}

/// Every call is answered before its future is returned.
impl SyncStore for FlakyStore {}

impl Store for FlakyStore {
    type Prepared = PreparedMemory;
    type PreparedLeases = PreparedMemoryLeases;

    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> PreparedMemoryLeases {
        self.store.prepare_leases(name, limit)
    }

    fn acquire<'a>(
        &'a self,
        leases: &'a PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a> {
        std::future::ready(if self.fails(key) {
            Err(Self::down_error())
        } else {
            Ok(self.store.acquire_in_place(leases, key, lease, now))
        })
    }

    fn release<'a>(
        &'a self,
        leases: &'a PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a> {
        std::future::ready(if self.fails(key) {
            Err(Self::down_error())
        } else {
            Ok(self.store.release_in_place(leases, key, lease, now))
        })
    }

    fn answers_immediately(&self) -> bool {
        true
    }

    fn prepare(&self, name: &str, policy: &Policy) -> PreparedMemory {
        self.store.prepare(name, policy)
    }

    fn failure_domains(&self) -> usize {
        self.domains_down.len()
    }

    fn failure_domain(&self, _: &PreparedMemory, key: &[u8]) -> usize {
        self.domain_of(key)
    }

    fn hit<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        std::future::ready(if self.fails(key) {
            Err(self.failed_hit(policy, key, now, cost))
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
        std::future::ready(if self.fails(key) {
            Err(Self::down_error())
        } else {
            self.store.refund_in_place(policy, key, now, cost);
            Ok(())
        })
    }

    fn overdraw<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        std::future::ready(if self.fails(key) {
            Err(Self::down_error())
        } else {
            Ok(self.store.overdraw_in_place(policy, key, now, cost))
        })
    }

    async fn reset(&self, policy: &PreparedMemory, key: &[u8]) -> Result<(), StoreError> {
        self.store.reset(policy, key).await
    }
}
