//! [`Limiter`]: a store and a clock, and the policies prepared over them.
//!
//! - [`PolicyHandle`] (`handle.rs`): one prepared policy, hit without a lookup.
//! - the inline registry (`inline.rs`): policies chosen per request, prepared once.
//! - [`Charge`] (`charge.rs`): one charge of an admission, and what it came to.
//! - [`ConcurrencyHandle`], [`InFlight`], [`HeldLeases`] (`in_flight.rs`): concurrency
//!   slots, taken by an admission before its charges.
//! - [`Admission`] (`admission.rs`): a request meeting several policies, all or none.
//! - [`Verdict`] and [`Settlement`] (`verdict.rs`): what it decided, and what its response
//!   may give back.
//! - `StoreCall` (`store_call.rs`): the future of a handle's call to its store.
//! - [`Error`] (`error.rs`).

mod admission;
mod charge;
mod error;
mod handle;
mod in_flight;
mod inline;
mod store_call;
mod verdict;

use std::fmt;
use std::sync::Arc;

pub use admission::Admission;
pub use charge::{Charge, ChargeResult};
pub use error::Error;
pub use handle::PolicyHandle;
pub use in_flight::{ConcurrencyHandle, HeldLeases, InFlight, SlotResult};
pub use inline::MAX_INLINE_POLICIES;
pub use verdict::{Settlement, Verdict};

use crate::clock::{Clock, MonotonicClock};
use crate::lease::ConcurrencyLimit;
use crate::policy::Policy;
use crate::store::Store;
use crate::store::memory::MemoryStore;
use inline::InlinePolicies;

/// A store, a clock, and the policies prepared over them as [`PolicyHandle`]s.
///
/// Prepare each policy once, with [`Limiter::policy`], and keep its handle; a policy chosen
/// per request (sent inline to a check API, picked by plan) comes from [`Limiter::inline`].
/// A limiter is cheap to clone; clones share the store, the clock and the inline policies.
///
/// ```
/// use tollgate::{Limiter, MemoryStore, Policy};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new());
/// let login = limiter.policy("login", Policy::fixed_window("5/minute".parse()?));
/// let api = limiter.policy("api", Policy::token_bucket("10/second; 1000/hour".parse()?)?);
/// assert!(login.hit("203.0.113.7").await?.allowed());
/// assert_eq!(api.hit_cost("user:42", 3).await?.remaining(), 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Limiter<S: Store = MemoryStore> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    inline: Arc<InlinePolicies<S>>,
}

impl<S: Store> Clone for Limiter<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            inline: Arc::clone(&self.inline),
        }
    }
}

impl<S: Store + fmt::Debug> fmt::Debug for Limiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("inline_policies", &self.inline.len())
            .finish()
    }
}

impl<S: Store> Limiter<S> {
    /// A limiter over `store`, reading a [`MonotonicClock`].
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let limiter = Limiter::new(MemoryStore::with_max_keys(1_000));
    /// let api = limiter.policy("api", Policy::fixed_window(Rate::per_second(5).into()));
    /// assert_eq!(api.hit_sync("k", 2)?.remaining(), 3);
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn new(store: S) -> Self {
        Self {
            store: Arc::new(store),
            clock: Arc::new(MonotonicClock::new()),
            inline: Arc::default(),
        }
    }

    /// Reads time from `clock` instead (a [`crate::ManualClock`] in tests).
    ///
    /// Set it before preparing policies: a handle keeps the clock of the limiter that
    /// prepared it. The inline policies start afresh.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Rate};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    /// let api = limiter.policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
    /// assert!(api.hit_sync("k", 1)?.allowed());
    /// assert!(!api.hit_sync("k", 1)?.allowed());
    /// clock.advance(Duration::from_secs(60)); // time passes only when told
    /// assert!(api.hit_sync("k", 1)?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.inline = Arc::default();
        self
    }

    /// The store.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let api = limiter.policy("api", Policy::fixed_window(Rate::per_second(5).into()));
    /// api.hit_sync("alice", 1)?;
    /// api.hit_sync("bob", 1)?;
    /// assert_eq!(limiter.store().stats().keys, 2);
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, MemoryStore};
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(3));
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(clock);
    /// assert_eq!(limiter.clock().now().as_nanos(), 3_000_000_000);
    /// ```
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// Prepares `policy` under `name`, which scopes its counts in the store: two policies
    /// with different names never share a count.
    ///
    /// Preparing the same name with an equal policy again (a configuration reload) finds the
    /// same counts, in memory while an earlier handle is alive and in Redis always; a changed
    /// policy starts afresh.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let policy = Policy::fixed_window(Rate::per_minute(1).into());
    /// let before = limiter.policy("login", policy.clone());
    /// assert!(before.hit("alice").await?.allowed());
    /// let reloaded = limiter.policy("login", policy);
    /// assert!(!reloaded.hit("alice").await?.allowed()); // the same count
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn policy(&self, name: &str, policy: Policy) -> PolicyHandle<S> {
        PolicyHandle::prepare(&self.store, &self.clock, name, policy)
    }

    /// Prepares a concurrency limit under `name` (which scopes its leases in the store):
    /// how many requests of one key may be in flight at once. Its slots are asked for in an
    /// [`Admission`] with [`crate::InFlight`], or directly with the handle.
    ///
    /// ```
    /// use tollgate::{ConcurrencyLimit, Limiter, MemoryStore};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let uploads = limiter.concurrency("uploads", ConcurrencyLimit::new(20)?);
    /// assert_eq!((uploads.name(), uploads.limit().max()), ("uploads", 20));
    /// # Ok::<(), tollgate::ConcurrencyLimitError>(())
    /// ```
    pub fn concurrency(&self, name: &str, limit: ConcurrencyLimit) -> ConcurrencyHandle<S> {
        ConcurrencyHandle::prepare(&self.store, &self.clock, name, limit)
    }

    /// The handle of `policy` in `scope`, a policy not named in advance: one chosen per
    /// request (a plan), or sent inline to a check API.
    ///
    /// The policy is prepared on first use under the name `{scope}|{policy}` and kept, so the
    /// same scope and policy find the same counts, in every clone of this limiter (a server
    /// rebuilding its configuration keeps them); `scope` keeps the counts of unrelated
    /// callers apart. Finding a kept policy allocates nothing. At most
    /// [`MAX_INLINE_POLICIES`] distinct policies are kept; one more evicts a policy not used
    /// lately (see there).
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let free: Policy = Policy::fixed_window("2/minute".parse()?);
    /// assert!(limiter.inline("plans", &free).hit("alice").await?.allowed());
    /// assert!(limiter.inline("plans", &free).hit("alice").await?.allowed());
    /// assert!(!limiter.clone().inline("plans", &free).hit("alice").await?.allowed());
    /// // Another scope, another count.
    /// assert!(limiter.inline("other", &free).hit("alice").await?.allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn inline(&self, scope: &str, policy: &Policy) -> PolicyHandle<S> {
        self.inline.get_or_prepare(scope, policy, |name| {
            PolicyHandle::prepare(&self.store, &self.clock, name, policy.clone())
        })
    }

    /// How many inline policies were evicted to keep at most [`MAX_INLINE_POLICIES`].
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate, MAX_INLINE_POLICIES};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// for n in 0..=MAX_INLINE_POLICIES as u32 {
    ///     limiter.inline("plans", &Policy::fixed_window(Rate::per_hour(n + 1).into()));
    /// }
    /// assert_eq!(limiter.evicted_inline_policies(), 1);
    /// ```
    pub fn evicted_inline_policies(&self) -> u64 {
        self.inline.evicted()
    }
}
