//! [`Failover`]: what to do when a store fails, as a store around another store.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::policy::{Policy, PolicyError};
use crate::store::memory::{MemoryStore, PreparedMemory};
use crate::store::{Store, StoreError, SyncStore};
use crate::strategy::TickDecision;

/// What a [`Failover`] does when its store fails (is down, or times out).
///
/// ```
/// use tollgate::FailureMode;
///
/// assert_eq!("fallback".parse::<FailureMode>()?, FailureMode::Fallback);
/// assert_eq!(FailureMode::Allow.to_string(), "allow");
/// assert!("open".parse::<FailureMode>().is_err());
/// # Ok::<(), tollgate::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailureMode {
    /// Fail open: the hit is allowed, uncounted, and the error is counted (a policy that is a
    /// kill switch still denies).
    #[default]
    Allow,
    /// Fail closed: the error is returned (an HTTP layer answers 503).
    Deny,
    /// Count in a local [`MemoryStore`] while the store is failing; probe the store every
    /// [`Failover::PROBE_INTERVAL`] and go back to it as soon as a probe succeeds.
    Fallback,
}

impl FailureMode {
    /// The failure mode's name in configuration files: `allow`, `deny` or `fallback`.
    ///
    /// ```
    /// use tollgate::FailureMode;
    ///
    /// assert_eq!(FailureMode::default().name(), "allow");
    /// assert_eq!(FailureMode::Fallback.name(), "fallback");
    /// assert_eq!(FailureMode::Deny.name().parse::<FailureMode>()?, FailureMode::Deny);
    /// # Ok::<(), tollgate::PolicyError>(())
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            FailureMode::Allow => "allow",
            FailureMode::Deny => "deny",
            FailureMode::Fallback => "fallback",
        }
    }
}

impl fmt::Display for FailureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailureMode {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [FailureMode::Allow, FailureMode::Deny, FailureMode::Fallback]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| PolicyError::UnknownFailureMode(s.to_owned()))
    }
}

/// A [`Store`] that applies a [`FailureMode`] to another store's errors, so that every hit
/// gets an answer.
///
/// ```
/// use std::future::Future;
/// use tollgate::{Decision, FailureMode, Failover, Policy, Rate, Store, StoreError, Timestamp};
///
/// /// A store that is always down.
/// #[derive(Debug)]
/// struct Down;
///
/// impl Store for Down {
///     type Prepared = ();
///     fn prepare(&self, _: &str, _: &Policy) {}
///     fn hit<'a>(
///         &'a self, _: &'a (), _: &[u8], _: Timestamp, _: u64,
///     ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
///         std::future::ready(Err(StoreError::unavailable("connection refused")))
///     }
///     fn refund<'a>(
///         &'a self, _: &'a (), _: &[u8], _: Timestamp, _: u64,
///     ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a> {
///         std::future::ready(Err(StoreError::unavailable("connection refused")))
///     }
///     async fn reset(&self, _: &(), _: &[u8]) -> Result<(), StoreError> {
///         Err(StoreError::unavailable("connection refused"))
///     }
/// }
///
/// # futures_executor::block_on(async {
/// let policy = Policy::fixed_window(Rate::per_minute(1).into());
/// let now = Timestamp::from_nanos(0);
///
/// let open = Failover::new(Down, FailureMode::Allow);
/// let p = open.prepare("p", &policy);
/// assert!(open.hit(&p, b"k", now, 1).await?.allowed());
/// assert!(open.hit(&p, b"k", now, 1).await?.allowed()); // uncounted
/// assert_eq!(open.errors(), 2);
///
/// let closed = Failover::new(Down, FailureMode::Deny);
/// let p = closed.prepare("p", &policy);
/// assert!(closed.hit(&p, b"k", now, 1).await.is_err());
///
/// let local = Failover::new(Down, FailureMode::Fallback);
/// let p = local.prepare("p", &policy);
/// assert!(local.hit(&p, b"k", now, 1).await?.allowed());
/// assert!(!local.hit(&p, b"k", now, 1).await?.allowed()); // counted in memory
/// assert!(local.is_falling_back());
/// local.refund(&p, b"k", now, 1).await?; // given back in memory, where the hit went
/// assert!(local.hit(&p, b"k", now, 1).await?.allowed());
/// # Ok::<(), StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Failover<S> {
    store: S,
    mode: FailureMode,
    fallback: MemoryStore,
    /// Whether hits currently go to `fallback`.
    falling_back: AtomicBool,
    /// When (in the hits' clock) the store was last tried while falling back.
    last_probe: AtomicU64,
    errors: AtomicU64,
}

/// A policy prepared for a [`Failover`]: for its store and, under
/// [`FailureMode::Fallback`], for the local store.
///
/// ```
/// use tollgate::{Failover, FailureMode, MemoryStore, Policy, PreparedFailover, PreparedMemory};
/// use tollgate::{Rate, Store, Timestamp};
///
/// # futures_executor::block_on(async {
/// let failover = Failover::new(MemoryStore::new(), FailureMode::Fallback);
/// let policy = Policy::fixed_window(Rate::per_minute(1).into());
/// let login: PreparedFailover<PreparedMemory> = failover.prepare("login", &policy);
/// let now = Timestamp::from_nanos(0);
/// assert!(failover.hit(&login, b"alice", now, 1).await?.allowed());
/// assert!(!failover.hit(&login, b"alice", now, 1).await?.allowed());
/// # Ok::<(), tollgate::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct PreparedFailover<P> {
    prepared: P,
    local: Option<PreparedMemory>,
    /// What a hit gets under [`FailureMode::Allow`] while the store fails: the answer to a
    /// first hit, worked out once.
    uncounted: Decision,
}

impl<S: Store> Failover<S> {
    /// While falling back, the store is tried again at most this often.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::testing::FlakyStore; // behind the `test-util` feature
    /// use tollgate::{Failover, FailureMode, Policy, Rate, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// assert_eq!(Failover::<FlakyStore>::PROBE_INTERVAL, Duration::from_millis(200));
    /// let flaky = FlakyStore::new();
    /// let failover = Failover::new(flaky.clone(), FailureMode::Fallback);
    /// let p = failover.prepare("p", &Policy::fixed_window(Rate::per_minute(100).into()));
    /// let at = |ms| Timestamp::from_nanos(0) + Duration::from_millis(ms);
    /// flaky.set_down(true);
    /// failover.hit(&p, b"k", at(0), 1).await?; // the store fails: counted in memory
    /// flaky.set_down(false);
    /// failover.hit(&p, b"k", at(100), 1).await?; // too soon to try the store again
    /// assert!(failover.is_falling_back());
    /// failover.hit(&p, b"k", at(200), 1).await?; // a probe, and the store answers
    /// assert!(!failover.is_falling_back());
    /// # Ok::<(), tollgate::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

    /// `store`, with `mode` applied to its errors.
    ///
    /// ```
    /// use tollgate::{Failover, FailureMode, Limiter, MemoryStore, Policy, Rate};
    ///
    /// let failover = Failover::new(MemoryStore::new(), FailureMode::Deny);
    /// let api = Limiter::new(failover).policy("api", Policy::fixed_window(Rate::per_second(5).into()));
    /// assert!(api.hit_sync("k", 1)?.allowed()); // a store that works is used as it is
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn new(store: S, mode: FailureMode) -> Self {
        Self {
            store,
            mode,
            fallback: MemoryStore::new(),
            falling_back: AtomicBool::new(false),
            last_probe: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// The wrapped store.
    ///
    /// ```
    /// use tollgate::{Failover, FailureMode, MemoryStore, Policy, Rate, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// let failover = Failover::new(MemoryStore::new(), FailureMode::Allow);
    /// let p = failover.prepare("p", &Policy::fixed_window(Rate::per_minute(5).into()));
    /// failover.hit(&p, b"alice", Timestamp::from_nanos(0), 1).await?;
    /// assert_eq!(failover.store().stats().keys, 1); // counted in the wrapped store
    /// # Ok::<(), tollgate::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }

    /// What a store error means.
    ///
    /// ```
    /// use tollgate::{Failover, FailureMode, MemoryStore};
    ///
    /// assert_eq!(Failover::new(MemoryStore::new(), FailureMode::Deny).mode(), FailureMode::Deny);
    /// ```
    pub fn mode(&self) -> FailureMode {
        self.mode
    }

    /// The store errors seen so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether hits are being counted in the local fallback store.
    pub fn is_falling_back(&self) -> bool {
        self.falling_back.load(Ordering::Relaxed)
    }

    /// Whether a hit at `now` should try the store: always, unless falling back and the last
    /// probe is recent (then one caller claims the probe).
    fn should_try_store(&self, now: Timestamp) -> bool {
        if !self.is_falling_back() {
            return true;
        }
        let last = self.last_probe.load(Ordering::Relaxed);
        let due = now.as_nanos().saturating_sub(last) >= Self::PROBE_INTERVAL.as_nanos() as u64;
        due && self
            .last_probe
            .compare_exchange(last, now.as_nanos(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    fn failed(&self, now: Timestamp) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.mode == FailureMode::Fallback && !self.falling_back.swap(true, Ordering::AcqRel) {
            self.last_probe.store(now.as_nanos(), Ordering::Release);
        }
    }
}

/// The fallback is a memory store, so a failover answers at once when its store does.
impl<S: SyncStore> SyncStore for Failover<S> {}

impl<S: Store> Store for Failover<S> {
    type Prepared = PreparedFailover<S::Prepared>;

    /// As the wrapped store: the fallback is a memory store.
    fn answers_immediately(&self) -> bool {
        self.store.answers_immediately()
    }

    fn prepare(&self, name: &str, policy: &Policy) -> Self::Prepared {
        PreparedFailover {
            prepared: self.store.prepare(name, policy),
            local: (self.mode == FailureMode::Fallback)
                .then(|| self.fallback.prepare(name, policy)),
            uncounted: uncounted(policy),
        }
    }

    fn hit<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        let attempt = self
            .should_try_store(now)
            .then(|| self.store.hit(&policy.prepared, key, now, cost));
        // The fallback may need the key after the store has failed.
        let local = policy.local.as_ref().map(|local| (local, key.to_vec()));
        async move {
            if let Some(attempt) = attempt {
                match attempt.await {
                    Ok(decision) => {
                        self.falling_back.store(false, Ordering::Release);
                        return Ok(decision);
                    }
                    Err(err) => {
                        self.failed(now);
                        match self.mode {
                            FailureMode::Deny => return Err(err),
                            FailureMode::Allow => return Ok(policy.uncounted),
                            FailureMode::Fallback => {}
                        }
                    }
                }
            }
            match local {
                Some((local, key)) => Ok(self.fallback.hit_in_place(local, &key, now, cost)),
                None => Ok(policy.uncounted),
            }
        }
    }

    /// Gives the units back where hits go at the moment: to the store or, while falling back,
    /// to the local store (a refund never probes the store). When the store fails, the error
    /// is counted and, as for a hit, [`FailureMode::Deny`] returns it while
    /// [`FailureMode::Allow`] and [`FailureMode::Fallback`] swallow it: the hit to give
    /// back was charged to the store (or, failing open, not at all), so the local store has
    /// nothing to refund, and at worst the key keeps paying for that hit until its state
    /// resets. Under [`FailureMode::Fallback`] the failure also sends later hits to memory.
    fn refund<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a, S> {
        let local = policy.local.as_ref().filter(|_| self.is_falling_back());
        if let Some(local) = local {
            self.fallback.refund_in_place(local, key, now, cost);
        }
        let attempt = local
            .is_none()
            .then(|| self.store.refund(&policy.prepared, key, now, cost));
        async move {
            let Some(attempt) = attempt else {
                return Ok(());
            };
            match attempt.await {
                Ok(()) => Ok(()),
                Err(err) => {
                    self.failed(now);
                    match self.mode {
                        FailureMode::Deny => Err(err),
                        FailureMode::Allow | FailureMode::Fallback => Ok(()),
                    }
                }
            }
        }
    }

    async fn reset(&self, policy: &Self::Prepared, key: &[u8]) -> Result<(), StoreError> {
        if let Some(local) = &policy.local {
            self.fallback.reset(local, key).await?;
        }
        self.store.reset(&policy.prepared, key).await
    }
}

/// The decision a first hit of one unit gets under `policy`: allowed with the full capacity of
/// its tightest rate, or, for a kill switch, denied until its window has passed.
fn uncounted(policy: &Policy) -> Decision {
    let limits = policy.limits(Duration::from_nanos(1));
    let binding = limits
        .iter()
        .find(|limit| limit.amount() == 0)
        .or_else(|| limits.iter().min_by_key(|limit| limit.capacity()));
    let outcome = match binding {
        Some(limit) => {
            let open = limit.amount() > 0;
            TickDecision {
                allowed: open,
                limit: limit.capacity(),
                remaining: if open { limit.capacity() } else { 0 },
                reset_after: 0,
                retry_after: (!open).then_some(limit.window()),
                window: limit.window(),
            }
        }
        // A policy always has a rate; an empty one would allow everything.
        None => TickDecision::UNLIMITED,
    };
    outcome.into_decision(Duration::from_nanos(1))
}
