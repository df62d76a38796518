//! [`Limiter`]: the entry point, holding a store, a clock and named policies.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use crate::{
    Clock, Decision, Key, MemoryStore, MonotonicClock, Policy, Store, StoreError, Timestamp,
};

/// Applies named policies to keys: `limiter.hit("login", &ip)`.
///
/// A limiter holds a [`Store`] (where counts live), a [`Clock`] (read once per hit) and
/// policies by name. Build it once and share it (wrap it in an `Arc`); every method takes
/// `&self`.
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let clock = ManualClock::new();
/// let limiter = Limiter::new(MemoryStore::new())
///     .with_clock(clock.clone())
///     .with_policy("ping", Policy::fixed_window(Rate::per_minute(3).into()));
///
/// for _ in 0..3 {
///     assert!(limiter.hit("ping", "203.0.113.7").await?.allowed());
/// }
/// clock.advance(Duration::from_secs(20));
/// let denied = limiter.hit("ping", "203.0.113.7").await?;
/// assert_eq!(denied.retry_after(), Some(Duration::from_secs(40)));
/// assert!(limiter.hit("ping", "198.51.100.1").await?.allowed()); // another client
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
pub struct Limiter<S: Store = MemoryStore> {
    store: S,
    clock: Arc<dyn Clock>,
    policies: HashMap<Box<str>, PolicyEntry<S>, foldhash::fast::RandomState>,
    /// Policies not named in advance, by scope and policy: see [`Limiter::hit_with`].
    inline: RwLock<InlinePolicies<S>>,
}

/// Inline policies by scope and policy.
type InlinePolicies<S> =
    HashMap<(Box<str>, Policy), Arc<PolicyEntry<S>>, foldhash::fast::RandomState>;

/// The most distinct policies a [`Limiter`] prepares for [`Limiter::hit_with`]; more are
/// refused with [`Error::TooManyInlinePolicies`], so requests choosing policies cannot grow
/// memory without bound.
pub const MAX_INLINE_POLICIES: usize = 1024;

/// A policy with its prepared form and its largest cost.
struct PolicyEntry<S: Store> {
    policy: Policy,
    prepared: S::Prepared,
    max_cost: u64,
}

impl<S: Store> PolicyEntry<S> {
    /// Refuses a cost the policy could never allow (naming it `name()`); otherwise the time
    /// of the hit, read from `clock`.
    #[inline]
    fn admit(
        &self,
        cost: u64,
        name: impl FnOnce() -> String,
        clock: &dyn Clock,
    ) -> Result<Timestamp, Error> {
        if cost > self.max_cost {
            return Err(Error::CostExceedsLimit {
                policy: name(),
                cost,
                max_cost: self.max_cost,
            });
        }
        Ok(clock.now())
    }
}

impl<S: Store + fmt::Debug> fmt::Debug for Limiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut policies: Vec<_> = self
            .policies
            .iter()
            .map(|(name, named)| (name, named.policy.to_string()))
            .collect();
        policies.sort();
        f.debug_struct("Limiter")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("policies", &policies)
            .finish()
    }
}

impl<S: Store> Limiter<S> {
    /// A limiter over `store` with no policies and a [`MonotonicClock`].
    pub fn new(store: S) -> Self {
        Self {
            store,
            clock: Arc::new(MonotonicClock::new()),
            policies: HashMap::default(),
            inline: RwLock::default(),
        }
    }

    /// Replaces the clock (a [`crate::ManualClock`] in tests).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Adds (or replaces) the policy called `name`.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy};
    ///
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("login", Policy::fixed_window("5/minute".parse()?))
    ///     .with_policy("api", Policy::token_bucket("100/second".parse()?));
    /// assert!(limiter.policy("login").is_some());
    /// # Ok::<(), tollgate::ParseError>(())
    /// ```
    pub fn with_policy(mut self, name: impl Into<String>, policy: Policy) -> Self {
        let name: String = name.into();
        let prepared = self.store.prepare(&name, &policy);
        let max_cost = policy.max_cost();
        self.policies.insert(
            name.into_boxed_str(),
            PolicyEntry {
                policy,
                prepared,
                max_cost,
            },
        );
        self
    }

    /// The policy called `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name).map(|named| &named.policy)
    }

    /// The names of the policies, in no particular order.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(|name| &**name)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The policy called `name`, looked up once: hits through it skip the lookup by name.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("api", Policy::token_bucket(Rate::per_second(100).into()));
    /// let api = limiter.named("api").expect("defined above");
    /// for user in ["u1", "u2", "u3"] {
    ///     assert!(api.hit(user).await?.allowed());
    /// }
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn named(&self, name: &str) -> Option<NamedPolicy<'_, S>> {
        let (name, named) = self.policies.get_key_value(name)?;
        Some(NamedPolicy {
            limiter: self,
            name,
            named,
        })
    }

    #[inline]
    fn lookup(&self, name: &str) -> Result<NamedPolicy<'_, S>, Error> {
        self.named(name)
            .ok_or_else(|| Error::UnknownPolicy(name.to_owned()))
    }

    /// Charges one unit to `key` under the policy `name`.
    #[inline]
    pub fn hit<K: Key + ?Sized>(
        &self,
        name: &str,
        key: &K,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'_, S, K> {
        self.hit_cost(name, key, 1)
    }

    /// Charges `cost` units to `key` under the policy `name`, all or nothing.
    ///
    /// A cost of 0 is a [`Limiter::peek`]. A cost larger than the policy could ever allow is
    /// refused with [`Error::CostExceedsLimit`] rather than denied with a misleading wait.
    ///
    /// ```
    /// use tollgate::{Error, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("export", Policy::token_bucket(Rate::per_minute(10).into()));
    /// assert_eq!(limiter.hit_cost("export", "u1", 6).await?.remaining(), 4);
    /// assert!(!limiter.hit_cost("export", "u1", 6).await?.allowed());
    /// assert!(matches!(
    ///     limiter.hit_cost("export", "u1", 11).await,
    ///     Err(Error::CostExceedsLimit { cost: 11, max_cost: 10, .. })
    /// ));
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn hit_cost<K: Key + ?Sized>(
        &self,
        name: &str,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'_, S, K> {
        let started = self.lookup(name).and_then(|policy| policy.start(key, cost));
        async move { Ok(started?.await?) }
    }

    /// Reports on `key` under the policy `name` without charging anything: `allowed` says
    /// whether a hit of one unit would be allowed now.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
    /// assert_eq!(limiter.peek("api", "k").await?.remaining(), 1);
    /// limiter.hit("api", "k").await?;
    /// let peek = limiter.peek("api", "k").await?;
    /// assert!(!peek.allowed());
    /// assert_eq!(peek.remaining(), 0);
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn peek<K: Key + ?Sized>(
        &self,
        name: &str,
        key: &K,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'_, S, K> {
        self.hit_cost(name, key, 0)
    }

    /// Gives `cost` units back to `key` under the policy `name`: for *deduct-when*, a hit
    /// charged before a request ran that should not count after all.
    ///
    /// Charging before the request runs means parallel requests see each other; refunding
    /// after the response means only the ones that matter count (failed logins, say, or
    /// responses with an error status). Refund only what a hit was allowed to charge; each
    /// strategy gives units back its own way (see [`crate::strategy::refund`]), and a hit
    /// refunded at once leaves every later decision as if it had never been made. A cost of
    /// 0 does nothing. As for [`Limiter::hit_cost`], a cost larger than any hit could have
    /// charged is refused with [`Error::CostExceedsLimit`]: it is a mistake in the caller,
    /// not something to clamp silently.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("login", Policy::fixed_window(Rate::per_minute(1).into()));
    /// // Count only failed logins: charge first, give it back if the login succeeds.
    /// assert!(limiter.hit("login", "alice").await?.allowed());
    /// let login_succeeded = true;
    /// if login_succeeded {
    ///     limiter.refund("login", "alice", 1).await?;
    /// }
    /// assert!(limiter.hit("login", "alice").await?.allowed()); // the refund made room
    /// assert!(!limiter.hit("login", "alice").await?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn refund<K: Key + ?Sized>(
        &self,
        name: &str,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<(), Error>> + Send + use<'_, S, K> {
        let started = self
            .lookup(name)
            .and_then(|policy| policy.start_refund(key, cost));
        async move {
            if let Some(refund) = started? {
                refund.await?;
            }
            Ok(())
        }
    }

    /// Forgets `key`'s counts under the policy `name`.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
    /// limiter.hit("api", "k").await?;
    /// limiter.reset("api", "k").await?;
    /// assert!(limiter.hit("api", "k").await?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn reset<K: Key + ?Sized>(&self, name: &str, key: &K) -> Result<(), Error> {
        self.lookup(name)?.reset(key).await
    }
}

impl<S: Store> Limiter<S> {
    /// Charges `cost` units to `key` under `policy`, a policy not named in advance: one
    /// chosen per request (a plan), or sent inline to a check API.
    ///
    /// The policy is prepared on first use under the name `{scope}|{policy}` and kept, so the
    /// same scope and policy find the same counts; `scope` keeps the counts of unrelated
    /// callers apart. At most [`MAX_INLINE_POLICIES`] distinct policies are kept.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let free: Policy = Policy::fixed_window("2/minute".parse()?);
    /// assert!(limiter.hit_with("plans", &free, "alice", 1).await?.allowed());
    /// assert!(limiter.hit_with("plans", &free, "alice", 1).await?.allowed());
    /// assert!(!limiter.hit_with("plans", &free, "alice", 1).await?.allowed());
    /// // Another scope, another count.
    /// assert!(limiter.hit_with("other", &free, "alice", 1).await?.allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn hit_with<K: Key + ?Sized>(
        &self,
        scope: &str,
        policy: &Policy,
        key: &K,
        cost: u64,
    ) -> Result<Decision, Error> {
        let entry = self.inline_entry(scope, policy)?;
        let now = entry.admit(cost, || format!("{scope}|{policy}"), &*self.clock)?;
        Ok(self
            .store
            .hit(&entry.prepared, &key.key_bytes(), now, cost)
            .await?)
    }

    /// Gives `cost` units back to `key` under the inline `policy` of `scope`; see
    /// [`Limiter::hit_with`] and [`Limiter::refund`].
    pub async fn refund_with<K: Key + ?Sized>(
        &self,
        scope: &str,
        policy: &Policy,
        key: &K,
        cost: u64,
    ) -> Result<(), Error> {
        let entry = self.inline_entry(scope, policy)?;
        let now = entry.admit(cost, || format!("{scope}|{policy}"), &*self.clock)?;
        if cost > 0 {
            self.store
                .refund(&entry.prepared, &key.key_bytes(), now, cost)
                .await?;
        }
        Ok(())
    }

    /// Forgets `key`'s counts under the inline `policy` of `scope`; see [`Limiter::hit_with`].
    pub async fn reset_with<K: Key + ?Sized>(
        &self,
        scope: &str,
        policy: &Policy,
        key: &K,
    ) -> Result<(), Error> {
        let entry = self.inline_entry(scope, policy)?;
        Ok(self.store.reset(&entry.prepared, &key.key_bytes()).await?)
    }

    /// The prepared entry of an inline policy, prepared on first use.
    fn inline_entry(&self, scope: &str, policy: &Policy) -> Result<Arc<PolicyEntry<S>>, Error> {
        let id = (Box::<str>::from(scope), policy.clone());
        if let Some(entry) = self
            .inline
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(Arc::clone(entry));
        }
        let mut inline = self.inline.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = inline.get(&id) {
            return Ok(Arc::clone(entry));
        }
        if inline.len() >= MAX_INLINE_POLICIES {
            return Err(Error::TooManyInlinePolicies {
                max: MAX_INLINE_POLICIES,
            });
        }
        let entry = Arc::new(PolicyEntry {
            prepared: self.store.prepare(&format!("{scope}|{policy}"), policy),
            max_cost: policy.max_cost(),
            policy: policy.clone(),
        });
        inline.insert(id, Arc::clone(&entry));
        Ok(entry)
    }
}

/// One of a [`Limiter`]'s policies, looked up by [`Limiter::named`]; its methods are the
/// limiter's, without the name.
pub struct NamedPolicy<'a, S: Store> {
    limiter: &'a Limiter<S>,
    name: &'a str,
    named: &'a PolicyEntry<S>,
}

impl<S: Store> fmt::Debug for NamedPolicy<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedPolicy")
            .field("name", &self.name)
            .field("policy", &self.named.policy)
            .finish()
    }
}

impl<S: Store> Clone for NamedPolicy<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: Store> Copy for NamedPolicy<'_, S> {}

impl<'a, S: Store> NamedPolicy<'a, S> {
    /// The policy's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The policy.
    pub fn policy(&self) -> &'a Policy {
        &self.named.policy
    }

    /// Charges one unit to `key`; see [`Limiter::hit`].
    #[inline]
    pub fn hit<K: Key + ?Sized>(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'a, S, K> {
        self.hit_cost(key, 1)
    }

    /// Charges `cost` units to `key`; see [`Limiter::hit_cost`].
    #[inline]
    pub fn hit_cost<K: Key + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'a, S, K> {
        let started = self.start(key, cost);
        async move { Ok(started?.await?) }
    }

    /// Reports without charging; see [`Limiter::peek`].
    #[inline]
    pub fn peek<K: Key + ?Sized>(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Decision, Error>> + Send + use<'a, S, K> {
        self.hit_cost(key, 0)
    }

    /// Gives `cost` units back to `key`; see [`Limiter::refund`].
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("export", Policy::token_bucket(Rate::per_hour(10).into()));
    /// let export = limiter.named("export").expect("defined above");
    /// assert_eq!(export.hit_cost("u1", 10).await?.remaining(), 0);
    /// export.refund("u1", 4).await?; // the export failed part way: 4 units back
    /// assert!(export.hit_cost("u1", 4).await?.allowed());
    /// assert!(!export.hit("u1").await?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn refund<K: Key + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<(), Error>> + Send + use<'a, S, K> {
        let started = self.start_refund(key, cost);
        async move {
            if let Some(refund) = started? {
                refund.await?;
            }
            Ok(())
        }
    }

    /// Checks the cost, reads the clock and hands the refund to the store; `None` for a cost
    /// of 0, which has nothing to give back.
    #[inline]
    fn start_refund<K: Key + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<Option<impl Future<Output = Result<(), StoreError>> + Send + use<'a, S, K>>, Error>
    {
        let now = self.admit(cost)?;
        let store: &'a S = &self.limiter.store;
        Ok((cost > 0).then(|| store.refund(&self.named.prepared, &key.key_bytes(), now, cost)))
    }

    /// Checks the cost, reads the clock and hands the hit to the store: everything but the
    /// wait, so that the future holds only the store's.
    #[inline]
    fn start<K: Key + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S, K>, Error>
    {
        let now = self.admit(cost)?;
        let store: &'a S = &self.limiter.store;
        Ok(store.hit(&self.named.prepared, &key.key_bytes(), now, cost))
    }

    /// Refuses a cost the policy could never allow; otherwise the time of the hit.
    #[inline]
    fn admit(&self, cost: u64) -> Result<Timestamp, Error> {
        self.named
            .admit(cost, || self.name.to_owned(), &*self.limiter.clock)
    }

    /// Forgets `key`'s counts; see [`Limiter::reset`].
    pub async fn reset<K: Key + ?Sized>(&self, key: &K) -> Result<(), Error> {
        let store = &self.limiter.store;
        Ok(store.reset(&self.named.prepared, &key.key_bytes()).await?)
    }
}

impl NamedPolicy<'_, MemoryStore> {
    /// Charges `cost` units to `key` (0: a peek) without a future: the memory store never
    /// waits, so code that is not async (and hot loops) can skip the `.await`.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("api", Policy::fixed_window(Rate::per_minute(2).into()));
    /// let api = limiter.named("api").expect("defined above");
    /// assert!(api.hit_now("k", 2)?.allowed());
    /// assert!(!api.hit_now("k", 1)?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    #[inline]
    pub fn hit_now<K: Key + ?Sized>(&self, key: &K, cost: u64) -> Result<Decision, Error> {
        let now = self.admit(cost)?;
        let store = &self.limiter.store;
        Ok(store.hit_now(&self.named.prepared, &key.key_bytes(), now, cost))
    }
}

impl Limiter<MemoryStore> {
    /// Charges `cost` units to `key` under the policy `name` (0: a peek) without a future;
    /// see [`NamedPolicy::hit_now`].
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let limiter = Limiter::new(MemoryStore::new())
    ///     .with_policy("api", Policy::token_bucket(Rate::per_second(1).into()));
    /// assert!(limiter.hit_now("api", "k", 1)?.allowed());
    /// assert!(!limiter.hit_now("api", "k", 1)?.allowed());
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    #[inline]
    pub fn hit_now<K: Key + ?Sized>(
        &self,
        name: &str,
        key: &K,
        cost: u64,
    ) -> Result<Decision, Error> {
        self.lookup(name)?.hit_now(key, cost)
    }
}

/// Why a [`Limiter`] call gave no decision.
///
/// ```
/// use tollgate::{Error, Limiter, MemoryStore};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new());
/// let err = limiter.hit("nope", "k").await.unwrap_err();
/// assert_eq!(err.to_string(), "unknown policy \"nope\"");
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No policy has this name.
    UnknownPolicy(String),
    /// The hit costs more than the policy could ever allow in one go.
    CostExceedsLimit {
        /// The policy's name.
        policy: String,
        /// The cost asked for.
        cost: u64,
        /// The largest cost the policy allows ([`Policy::max_cost`]).
        max_cost: u64,
    },
    /// The store failed.
    Store(StoreError),
    /// [`Limiter::hit_with`] was asked for more distinct policies than it keeps.
    TooManyInlinePolicies {
        /// [`MAX_INLINE_POLICIES`].
        max: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownPolicy(name) => write!(f, "unknown policy {name:?}"),
            Error::CostExceedsLimit {
                policy,
                cost,
                max_cost,
            } => write!(
                f,
                "a hit of cost {cost} can never fit policy {policy:?}, which allows at most {max_cost} at once"
            ),
            Error::Store(err) => err.fmt(f),
            Error::TooManyInlinePolicies { max } => write!(
                f,
                "too many distinct inline policies: at most {max} are kept"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(err)
    }
}
