//! [`PolicyHandle`]: a policy prepared over a limiter's store, hit without a lookup.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::clock::{Clock, HitClock, Timestamp};
use crate::decision::Decision;
use crate::key::{Key, KeyBytes};
use crate::limiter::error::Error;
use crate::limiter::store_call::StoreCall;
use crate::policy::Policy;
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError, SyncStore};

/// A policy prepared over a [`crate::Limiter`]'s store: what every hit goes through.
///
/// Made by [`crate::Limiter::policy`] (a named policy) or [`crate::Limiter::inline`] (a policy
/// chosen per request). It is owned and cheap to clone (an `Arc`), holds no borrow of the
/// limiter, and finds its prepared state without a lookup, so keep one per policy and hit
/// it directly. Clones share the counts.
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let clock = ManualClock::new();
/// let ping = Limiter::new(MemoryStore::new())
///     .with_clock(clock.clone())
///     .policy("ping", Policy::fixed_window(Rate::per_minute(3).into()));
///
/// for _ in 0..3 {
///     assert!(ping.hit("203.0.113.7").await?.allowed());
/// }
/// clock.advance(Duration::from_secs(20));
/// let denied = ping.hit("203.0.113.7").await?;
/// assert_eq!(denied.retry_after(), Some(Duration::from_secs(40)));
/// assert!(ping.hit("198.51.100.1").await?.allowed()); // another client
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
pub struct PolicyHandle<S: Store = MemoryStore> {
    prepared: Arc<PreparedPolicy<S>>,
}

/// What a handle points at.
struct PreparedPolicy<S: Store> {
    store: Arc<S>,
    clock: HitClock,
    /// The name the store scopes the counts by.
    name: Box<str>,
    policy: Policy,
    /// [`Policy::max_cost`], worked out once.
    max_cost: u64,
    prepared: S::Prepared,
}

impl<S: Store> Clone for PolicyHandle<S> {
    fn clone(&self) -> Self {
        Self {
            prepared: Arc::clone(&self.prepared),
        }
    }
}

impl<S: Store> fmt::Debug for PolicyHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyHandle")
            .field("name", &self.prepared.name)
            .field("policy", &self.prepared.policy.to_string())
            .finish()
    }
}

impl<S: Store> PolicyHandle<S> {
    /// Prepares `policy` under `name` in `store`.
    pub(crate) fn prepare(
        store: &Arc<S>,
        clock: &Arc<dyn Clock>,
        name: &str,
        policy: Policy,
    ) -> Self {
        Self {
            prepared: Arc::new(PreparedPolicy {
                prepared: store.prepare(name, &policy),
                store: Arc::clone(store),
                clock: HitClock::new(clock),
                name: name.into(),
                max_cost: policy.max_cost(),
                policy,
            }),
        }
    }

    /// The name the policy was prepared under (for an inline policy, `{scope}|{policy}`).
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let policy = Policy::fixed_window(Rate::per_minute(5).into());
    /// assert_eq!(limiter.policy("login", policy.clone()).name(), "login");
    /// assert_eq!(limiter.inline("plans", &policy).name(), "plans|5/minute (fixed-window)");
    /// ```
    pub fn name(&self) -> &str {
        &self.prepared.name
    }

    /// The policy.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Strategy};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let api = limiter.policy("api", Policy::token_bucket("10/second".parse()?)?.with_burst(20)?);
    /// assert_eq!(api.policy().strategy(), Strategy::TokenBucket);
    /// assert_eq!(api.policy().burst(), Some(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn policy(&self) -> &Policy {
        &self.prepared.policy
    }

    /// The largest cost one hit may have ([`Policy::max_cost`]).
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let export = limiter.policy("export", Policy::fixed_window("10/second; 50/hour".parse()?));
    /// assert_eq!(export.max_cost(), 10);
    /// assert!(export.hit_sync("u1", export.max_cost())?.allowed());
    /// assert!(export.hit_sync("u2", export.max_cost() + 1).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_cost(&self) -> u64 {
        self.prepared.max_cost
    }

    /// Whether `other` is a clone of this handle (the same prepared policy).
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let a = limiter.policy("a", Policy::fixed_window(Rate::per_second(1).into()));
    /// assert!(a.same_as(&a.clone()));
    /// assert!(!a.same_as(&limiter.policy("a", a.policy().clone())));
    /// ```
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.prepared, &other.prepared)
    }

    /// Charges one unit to `key`: [`PolicyHandle::hit_cost`] with a cost of 1.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let api = Limiter::new(MemoryStore::new())
    ///     .policy("api", Policy::fixed_window(Rate::per_minute(2).into()));
    /// let first = api.hit("alice").await?;
    /// assert!(first.allowed());
    /// assert_eq!((first.limit(), first.remaining()), (2, 1));
    /// assert_eq!(api.hit("alice").await?.remaining(), 0);
    /// assert!(!api.hit("alice").await?.allowed());
    /// assert!(api.hit("bob").await?.allowed()); // each key has its own count
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn hit<K: Key + ?Sized>(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'_, S, K> {
        self.hit_cost(key, 1)
    }

    /// Charges `cost` units to `key`, to every rate of the policy or to none.
    ///
    /// A cost of 0 is a [peek](PolicyHandle::peek). A cost larger than the policy could
    /// ever allow is refused with [`Error::CostExceedsLimit`] rather than denied with a
    /// misleading wait.
    ///
    /// ```
    /// use tollgate::{Error, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let bucket = Policy::token_bucket(Rate::per_minute(10).into()).expect("a valid token bucket");
    /// let export = Limiter::new(MemoryStore::new()).policy("export", bucket);
    /// assert_eq!(export.hit_cost("u1", 6).await?.remaining(), 4);
    /// assert!(!export.hit_cost("u1", 6).await?.allowed());
    /// assert!(matches!(
    ///     export.hit_cost("u1", 11).await,
    ///     Err(Error::CostExceedsLimit { cost: 11, max_cost: 10, .. })
    /// ));
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn hit_cost<K: Key + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'_, S, K> {
        StoreCall::new(
            self.check_cost(cost)
                .map(|now| self.store_hit_key(&key.key_bytes(), now, cost)),
        )
    }

    /// Reports on `key` without charging anything: `allowed` says whether a hit of one unit
    /// would be allowed now.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let api = Limiter::new(MemoryStore::new())
    ///     .policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
    /// assert_eq!(api.peek("k").await?.remaining(), 1);
    /// api.hit("k").await?;
    /// let peek = api.peek("k").await?;
    /// assert!(!peek.allowed());
    /// assert_eq!(peek.remaining(), 0);
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn peek<K: Key + ?Sized>(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'_, S, K> {
        self.hit_cost(key, 0)
    }

    /// Gives `cost` units back to `key`: for *deduct-when*, a hit charged before a request
    /// ran that should not count after all.
    ///
    /// Charging before the request runs means parallel requests see each other; refunding
    /// after the response means only the ones that matter count (failed logins, say).
    /// Refund only what a hit was allowed to charge; each strategy gives units back its own
    /// way (see [`crate::strategy::refund`]), and a hit refunded at once leaves every later
    /// decision as if it had never been made. A cost of 0 does nothing. As for
    /// [`PolicyHandle::hit_cost`], a cost larger than any hit could have charged is refused
    /// with [`Error::CostExceedsLimit`]: it is a mistake in the caller, not something to
    /// clamp silently. [`crate::Admission`] does this for a request meeting several policies.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let login = Limiter::new(MemoryStore::new())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(1).into()));
    /// // Count only failed logins: charge first, give it back if the login succeeds.
    /// assert!(login.hit("alice").await?.allowed());
    /// let login_succeeded = true;
    /// if login_succeeded {
    ///     login.refund("alice", 1).await?;
    /// }
    /// assert!(login.hit("alice").await?.allowed()); // the refund made room
    /// assert!(!login.hit("alice").await?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn refund<K: Key + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<(), Error>> + Send + use<'_, S, K> {
        StoreCall::new(
            self.check_cost(cost)
                .map(|now| self.store_refund(&key.key_bytes(), now, cost)),
        )
    }

    /// Charges `cost` units to `key` whatever the room left: a *late charge*, for a cost
    /// learnt only after the request was let through (the tokens of an LLM's answer). The key
    /// may go into debt, and its next hits wait until the debt is repaid; see
    /// [`crate::strategy::overdraw`] for what debt means for each strategy. Returns the
    /// decision after the charge, as [`PolicyHandle::peek`] gives it: whether a hit of one
    /// unit would be allowed now, and when.
    ///
    /// Any cost is accepted, even one above what a hit may cost: each rate is charged up to
    /// twice its capacity, so a key owes at most one capacity, and the rest is forgiven. A
    /// late charge is never a breach (see [`crate::Ban`]). [`crate::Settlement::settle_costs`]
    /// charges an admitted request's response this way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, MemoryStore, Policy};
    ///
    /// # futures_executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let tokens = Limiter::new(MemoryStore::new())
    ///     .with_clock(clock.clone())
    ///     .policy("tokens", Policy::token_bucket("1000/minute".parse()?)?);
    /// assert!(tokens.peek("alice").await?.allowed()); // some allowance left: let it through
    /// let after = tokens.overdraw("alice", 1_500).await?; // the answer took 1500 tokens
    /// assert!(!after.allowed());
    /// assert_eq!(after.retry_after(), Some(Duration::from_millis(30_060))); // 501 tokens' refill
    /// clock.advance(Duration::from_millis(30_060));
    /// assert!(tokens.hit("alice").await?.allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn overdraw<K: Key + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'_, S, K> {
        StoreCall::new(Ok(self.store_overdraw(&key.key_bytes(), self.now(), cost)))
    }

    /// Forgets `key`'s counts (and a ban): its next hit is its first.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let api = Limiter::new(MemoryStore::new())
    ///     .policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
    /// api.hit("k").await?;
    /// api.reset("k").await?;
    /// assert!(api.hit("k").await?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn reset<K: Key + ?Sized>(&self, key: &K) -> Result<(), Error> {
        let prepared = &*self.prepared;
        Ok(prepared
            .store
            .reset(&prepared.prepared, &key.key_bytes())
            .await?)
    }

    /// Refuses a cost the policy could never allow; otherwise the time of the hit.
    #[inline]
    fn check_cost(&self, cost: u64) -> Result<Timestamp, Error> {
        let prepared = &*self.prepared;
        if cost > prepared.max_cost {
            return Err(self.cost_exceeds_limit(cost));
        }
        Ok(prepared.clock.now())
    }

    /// The error for a cost above [`Policy::max_cost`]: out of line, so that the check
    /// inlines into every hit.
    #[cold]
    fn cost_exceeds_limit(&self, cost: u64) -> Error {
        Error::CostExceedsLimit {
            policy: self.prepared.name.to_string(),
            cost,
            max_cost: self.prepared.max_cost,
        }
    }

    /// Hands a hit whose cost fits to the store, at `now`.
    #[inline]
    pub(crate) fn store_hit(
        &self,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'_, S> {
        let prepared = &*self.prepared;
        prepared.store.hit(&prepared.prepared, key, now, cost)
    }

    /// [`PolicyHandle::store_hit`] with the key as its [`KeyBytes`] (see [`Store::hit_key`]).
    #[inline]
    fn store_hit_key(
        &self,
        key: &KeyBytes<'_>,
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'_, S> {
        let prepared = &*self.prepared;
        prepared.store.hit_key(&prepared.prepared, key, now, cost)
    }

    /// Hands a refund to the store, at `now`; a cost of 0 never reaches it.
    #[inline]
    pub(crate) fn store_refund(
        &self,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'_, S> {
        let prepared = &*self.prepared;
        let refund = (cost > 0).then(|| prepared.store.refund(&prepared.prepared, key, now, cost));
        async move {
            match refund {
                Some(refund) => refund.await,
                None => Ok(()),
            }
        }
    }

    /// Hands a late charge to the store, at `now`.
    #[inline]
    pub(crate) fn store_overdraw(
        &self,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'_, S> {
        let prepared = &*self.prepared;
        prepared.store.overdraw(&prepared.prepared, key, now, cost)
    }

    /// Whether the store answers at once ([`Store::answers_immediately`]).
    #[inline]
    pub(crate) fn answers_immediately(&self) -> bool {
        self.prepared.store.answers_immediately()
    }

    /// The time now, in the policy's clock.
    #[inline]
    pub(crate) fn now(&self) -> Timestamp {
        self.prepared.clock.now()
    }
}

impl<S: SyncStore> PolicyHandle<S> {
    /// Charges `cost` units to `key` (0: a peek) without a future: the store answers at
    /// once, so code that is not async (and hot loops) can skip the `.await`. Otherwise as
    /// [`PolicyHandle::hit_cost`].
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let api = Limiter::new(MemoryStore::new())
    ///     .policy("api", Policy::fixed_window(Rate::per_minute(2).into()));
    /// assert!(api.hit_sync("k", 2)?.allowed());
    /// assert!(!api.hit_sync("k", 1)?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    #[inline]
    pub fn hit_sync<K: Key + ?Sized>(&self, key: &K, cost: u64) -> Result<Decision, Error> {
        let now = self.check_cost(cost)?;
        match poll_once(self.store_hit_key(&key.key_bytes(), now, cost)) {
            Some(decision) => Ok(decision?),
            None => Err(Error::Store(StoreError::unavailable(
                "a store that promised to answer at once kept a hit waiting",
            ))),
        }
    }
}

/// Polls `future` in place once: its output if it was ready.
#[inline]
pub(super) fn poll_once<T>(future: impl Future<Output = T>) -> Option<T> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}
