//! The [`Store`] trait, the narrow seam between the limiter and where states live, and the
//! stores of this crate: [`MemoryStore`](memory::MemoryStore), [`Failover`](failover::Failover)
//! [`Leasing`](leasing::Leasing) and, behind the `test-util` feature,
//! [`FlakyStore`](testing::FlakyStore). [`StoreError`] is in `error.rs`.

mod error;
pub(crate) mod failover;
pub(crate) mod grant;
pub(crate) mod leasing;
pub(crate) mod memory;
#[cfg(feature = "test-util")]
pub mod testing;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::key::KeyBytes;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};
use crate::policy::Policy;
use crate::store::grant::{GiveBack, Grant};
pub use error::{PendingHit, StoreError};

/// Where the state of each (policy, key) lives, and the atomic application of hits (and
/// refunds) to it.
///
/// A store keeps states and applies the pure functions of [`crate::strategy`] to them
/// atomically; it never implements a strategy of its own. [`crate::MemoryStore`] keeps them
/// in this process; a Redis store shares them between processes.
///
/// A policy is first *prepared* under its name: the store turns it into whatever it needs to
/// apply hits quickly (a table, a script and its arguments). Preparing the same name with the
/// same policy again should find the same counts, so that a configuration reload keeps them.
///
/// ```
/// use tollgate::{MemoryStore, Policy, Rate, Store, Timestamp};
///
/// # futures_executor::block_on(async {
/// let store = MemoryStore::new();
/// let login = store.prepare("login", &Policy::fixed_window(Rate::per_minute(1).into()));
/// let now = Timestamp::from_nanos(0);
/// assert!(store.hit(&login, b"alice", now, 1).await?.allowed());
/// assert!(!store.hit(&login, b"alice", now, 1).await?.allowed());
/// store.refund(&login, b"alice", now, 1).await?; // the hit should not have counted
/// assert!(store.hit(&login, b"alice", now, 1).await?.allowed());
/// store.reset(&login, b"alice").await?;
/// assert!(store.hit(&login, b"alice", now, 1).await?.allowed());
/// # Ok::<(), tollgate::StoreError>(())
/// # }).unwrap();
/// ```
pub trait Store: Send + Sync + 'static {
    /// A policy prepared for this store.
    type Prepared: Send + Sync + fmt::Debug + 'static;

    /// Prepares `policy` under `name`; `name` scopes the keys, so two policies never share
    /// a count.
    fn prepare(&self, name: &str, policy: &Policy) -> Self::Prepared;

    /// Applies a hit of `cost` units to `key` at `now`, atomically: see
    /// [`crate::strategy::apply`] for the semantics, including cost 0 (a peek).
    ///
    /// `cost` is at most the policy's [`Policy::max_cost`]. A store that keeps its own time
    /// (such as Redis's server clock) may use it instead of `now`.
    ///
    /// The future does not borrow `key` (a store copies what it needs before returning it),
    /// so callers need not keep the key's bytes alive, and futures stay small.
    fn hit<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, Self>;

    /// [`Store::hit`] with the key as its [`KeyBytes`], which may hold it in a form quicker
    /// to store than its bytes (an IPv4 address's text, packed in registers). A store that
    /// overrides it must decide exactly as [`Store::hit`] does on the same bytes; by
    /// default it is that.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use tollgate::{Key, MemoryStore, Policy, Rate, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// let store = MemoryStore::new();
    /// let login = store.prepare("login", &Policy::fixed_window(Rate::per_minute(1).into()));
    /// let now = Timestamp::from_nanos(0);
    /// let ip = Ipv4Addr::new(192, 0, 2, 1);
    /// assert!(store.hit_key(&login, &ip.key_bytes(), now, 1).await?.allowed());
    /// assert!(!store.hit(&login, b"192.0.2.1", now, 1).await?.allowed()); // the same key
    /// # Ok::<(), tollgate::StoreError>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    fn hit_key<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &KeyBytes<'_>,
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, Self> {
        self.hit(policy, key, now, cost)
    }

    /// Gives `cost` units back to `key` at `now`, atomically: see
    /// [`crate::strategy::refund`] for the semantics of each strategy. Cost 0 changes nothing.
    ///
    /// For *deduct-when*: a hit charged before a request ran, given back once the response
    /// shows it should not count. A key with no state (never hit, forgotten or expired) is
    /// left alone; a refund never creates state. `cost` may be anything, the give-back
    /// saturates, but callers normally refund what a hit was allowed to charge. A store that
    /// keeps its own time may use it instead of `now`, as for [`Store::hit`].
    ///
    /// The future does not borrow `key`, as for [`Store::hit`].
    fn refund<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a, Self>;

    /// Charges `cost` units to `key` at `now` whatever the room left (a *late charge*, a
    /// cost learnt after the request was let through), atomically: see
    /// [`crate::strategy::overdraw`] for what the debt it may leave means for each strategy,
    /// and [`crate::strategy::overdraw_banned`] for a policy with a ban. Returns the decision
    /// after the charge, as a peek gives it: whether a hit of one unit would be allowed now.
    ///
    /// Any `cost` is accepted: each rate is charged up to twice its capacity, the rest is
    /// forgiven. Cost 0 is a peek. A late charge is never a breach. A store that keeps its
    /// own time may use it instead of `now`, and the future does not borrow `key`, as for
    /// [`Store::hit`].
    ///
    /// ```
    /// use tollgate::{MemoryStore, Policy, Rate, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// let store = MemoryStore::new();
    /// let tokens = store.prepare("tokens", &Policy::fixed_window(Rate::per_minute(100).into()));
    /// let now = Timestamp::from_nanos(0);
    /// let after = store.overdraw(&tokens, b"alice", now, 130).await?; // 30 units of debt
    /// assert!(!after.allowed());
    /// assert_eq!(store.hit(&tokens, b"alice", now, 0).await?.remaining(), 0);
    /// # Ok::<(), tollgate::StoreError>(())
    /// # }).unwrap();
    /// ```
    fn overdraw<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, Self>;

    /// Gives back the unspent units of an earlier grant (as [`Store::refund`] does, but only
    /// while the store's time is before [`GiveBack::before`]), then charges between `need`
    /// and `want` units to `key` at `now` at once, atomically: a *quota lease*, units
    /// charged now to be spent later without asking the store again. See
    /// [`crate::strategy::take`] for how many are granted (0 exactly when a hit of `need`
    /// would be denied, with its `retry_after`) and what spending them later means.
    ///
    /// A `need` of 0 only gives back, and reports as a peek does, granting nothing.
    /// Otherwise `want` is at least `need`, both at most the policy's
    /// [`Policy::max_cost`]. A take grants only units that fit now (it never reserves a
    /// delayed slot). A store that keeps its own time may use it instead of `now`, and the
    /// future does not borrow `key`, as for [`Store::hit`]. A take that fails may still have
    /// been charged: the units are then lost to the key until its state resets, never
    /// admitted twice.
    ///
    /// The default gives back with [`Store::refund`] (whatever the deadline: it grants no
    /// unspent units, so only its own callers' mistakes could be given back) and charges
    /// exactly `need` with [`Store::hit`], with a horizon of zero (nothing left to spend
    /// later): correct for any store, but one or two round trips per lease. A policy with a ban is charged that way
    /// by every store of this crate, so that a denial counts as a breach exactly as a hit's.
    ///
    /// ```
    /// use tollgate::{GiveBack, MemoryStore, Policy, Rate, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// let store = MemoryStore::new();
    /// let api = store.prepare("api", &Policy::fixed_window(Rate::per_minute(16).into()));
    /// let now = Timestamp::from_nanos(0);
    /// let grant = store.take(&api, b"alice", now, 1, 10, GiveBack::NONE).await?;
    /// assert_eq!(grant.granted(), 2); // ⌈16 / 8⌉
    /// let rest = store.take(&api, b"alice", now, 14, 14, GiveBack::NONE).await?;
    /// assert_eq!(rest.granted(), 14);
    /// let denied = store.take(&api, b"alice", now, 1, 10, GiveBack::NONE).await?;
    /// assert_eq!(denied.granted(), 0);
    /// assert_eq!(denied.decision().retry_after(), Some(std::time::Duration::from_secs(60)));
    /// // The first grant's 2 units were not spent: given back before its window ends.
    /// let unspent = GiveBack::new(2, grant.give_back_before());
    /// let again = store.take(&api, b"alice", now, 1, 1, unspent).await?;
    /// assert_eq!((again.granted(), again.decision().remaining()), (1, 1));
    /// # Ok::<(), tollgate::StoreError>(())
    /// # }).unwrap();
    /// ```
    fn take<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send + use<'a, Self> {
        let _ = want;
        let refund = self.refund(policy, key, now, give_back.units());
        let hit = self.hit(policy, key, now, need);
        async move {
            refund.await?;
            let decision = hit.await?;
            let granted = if decision.allowed() { need } else { 0 };
            Ok(Grant::new(granted, decision, Some(Duration::ZERO), None))
        }
    }

    /// Forgets `key`'s state under `policy` (its counts, and a ban): its next hit is its
    /// first.
    fn reset(
        &self,
        policy: &Self::Prepared,
        key: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A concurrency limit prepared for this store.
    type PreparedLeases: Send + Sync + fmt::Debug + 'static;

    /// Prepares a concurrency limit under `name`; `name` scopes the keys, so two limits
    /// never share a count. Preparing the same name again finds the same leases.
    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> Self::PreparedLeases;

    /// Takes a concurrency slot of `key` at `now` for `lease`, atomically: drops the key's
    /// expired leases, and adds `lease` (expiring after the limit's lease time) unless the
    /// key holds as many live leases as the limit allows. A store that keeps its own time
    /// may use it instead of `now`. The future does not borrow `key`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Acquisition, ConcurrencyLimit, LeaseId, MemoryStore, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// let store = MemoryStore::new();
    /// let limit = ConcurrencyLimit::new(1)?.with_lease_ttl(Duration::from_secs(10))?;
    /// let uploads = store.prepare_leases("uploads", &limit);
    /// let (first, second) = (LeaseId::random(), LeaseId::random());
    /// let now = Timestamp::from_nanos(0);
    /// assert_eq!(store.acquire(&uploads, b"alice", first, now).await?, Acquisition::Acquired { in_flight: 1 });
    /// let full = store.acquire(&uploads, b"alice", second, now).await?;
    /// assert_eq!(full, Acquisition::Full { in_flight: 1, retry_after: Duration::from_secs(10) });
    /// assert!(store.release(&uploads, b"alice", first, now).await?);
    /// assert!(!store.release(&uploads, b"alice", first, now).await?); // released once
    /// assert!(matches!(store.acquire(&uploads, b"alice", second, now).await?, Acquisition::Acquired { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn acquire<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a, Self>;

    /// Gives back the slot `lease` of `key` holds: whether a live lease was released. A
    /// lease that is unknown, released already or expired changes nothing (it never frees a
    /// slot another lease holds). The future does not borrow `key`.
    fn release<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a, Self>;

    /// Whether every future this store returns is ready when first polled (it never waits
    /// on I/O, like [`crate::MemoryStore`]): the run-time twin of [`SyncStore`], for code
    /// generic over any store. Callers may then drive a hit to completion in place instead of
    /// allocating for a wait. `false` unless a store says otherwise.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate::{Failover, FailureMode, MemoryStore, Store};
    ///
    /// assert!(MemoryStore::new().answers_immediately());
    /// assert!(Arc::new(MemoryStore::new()).answers_immediately());
    /// assert!(Failover::new(MemoryStore::new(), FailureMode::Allow).answers_immediately());
    /// ```
    fn answers_immediately(&self) -> bool {
        false
    }

    /// How many failure domains this store's keys fall into: parts of the store that fail
    /// independently, such as the hash slots of a Redis Cluster (a dead master fails the keys
    /// of its slots, and only those). A [`crate::Failover`] falls back to memory for the keys
    /// of a failing domain only. 1 unless a store says otherwise.
    ///
    /// ```
    /// use tollgate::{MemoryStore, Store};
    ///
    /// assert_eq!(MemoryStore::new().failure_domains(), 1);
    /// ```
    fn failure_domains(&self) -> usize {
        1
    }

    /// The failure domain `key` of `policy` lives in, below [`Store::failure_domains`];
    /// 0 unless a store says otherwise. Asked only while some domain fails, so a store that
    /// must hash the key to answer costs nothing while it is healthy.
    ///
    /// ```
    /// use tollgate::{MemoryStore, Policy, Rate, Store};
    ///
    /// let store = MemoryStore::new();
    /// let p = store.prepare("p", &Policy::fixed_window(Rate::per_minute(5).into()));
    /// assert_eq!(store.failure_domain(&p, b"alice"), 0);
    /// ```
    fn failure_domain(&self, policy: &Self::Prepared, key: &[u8]) -> usize {
        let _ = (policy, key);
        0
    }
}

/// A [`Store`] whose every future is ready when first polled: it never waits on I/O, as
/// [`crate::MemoryStore`] does not. Policy handles over such a store can be hit without a
/// future ([`crate::PolicyHandle::hit_sync`]), from code that is not async or from a hot loop.
///
/// Implement it only for a store that keeps this promise, and return `true` from
/// [`Store::answers_immediately`]; a hit that is kept waiting anyway fails with a
/// [`StoreError`] instead of blocking.
///
/// ```
/// use tollgate::{Limiter, MemoryStore, Policy, Rate, SyncStore};
///
/// fn first_hit_allowed<S: SyncStore>(limiter: &Limiter<S>) -> bool {
///     let api = limiter.policy("api", Policy::fixed_window(Rate::per_second(1).into()));
///     api.hit_sync("k", 1).is_ok_and(|decision| decision.allowed())
/// }
/// assert!(first_hit_allowed(&Limiter::new(MemoryStore::new())));
/// ```
pub trait SyncStore: Store {}

impl<S: SyncStore> SyncStore for Arc<S> {}

/// A shared store: several limiters (or other users) over one set of counts.
///
/// ```
/// use std::sync::Arc;
/// use tollgate::{Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let store = Arc::new(MemoryStore::new());
/// let policy = Policy::fixed_window(Rate::per_minute(1).into());
/// let first = Limiter::new(Arc::clone(&store)).policy("p", policy.clone());
/// let second = Limiter::new(Arc::clone(&store)).policy("p", policy);
/// assert!(first.hit("k").await?.allowed());
/// assert!(!second.hit("k").await?.allowed());
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
impl<S: Store> Store for Arc<S> {
    type Prepared = S::Prepared;

    fn prepare(&self, name: &str, policy: &Policy) -> Self::Prepared {
        (**self).prepare(name, policy)
    }

    fn hit<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        (**self).hit(policy, key, now, cost)
    }

    fn hit_key<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &KeyBytes<'_>,
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        (**self).hit_key(policy, key, now, cost)
    }

    fn refund<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a, S> {
        (**self).refund(policy, key, now, cost)
    }

    fn overdraw<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        (**self).overdraw(policy, key, now, cost)
    }

    fn take<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send + use<'a, S> {
        (**self).take(policy, key, now, need, want, give_back)
    }

    fn reset(
        &self,
        policy: &Self::Prepared,
        key: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).reset(policy, key)
    }

    type PreparedLeases = S::PreparedLeases;

    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> Self::PreparedLeases {
        (**self).prepare_leases(name, limit)
    }

    fn acquire<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a, S> {
        (**self).acquire(leases, key, lease, now)
    }

    fn release<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a, S> {
        (**self).release(leases, key, lease, now)
    }

    fn answers_immediately(&self) -> bool {
        (**self).answers_immediately()
    }

    fn failure_domains(&self) -> usize {
        (**self).failure_domains()
    }

    fn failure_domain(&self, policy: &Self::Prepared, key: &[u8]) -> usize {
        (**self).failure_domain(policy, key)
    }
}
