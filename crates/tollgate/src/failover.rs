//! [`Failover`]: what to do when a store fails, as a store around another store.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::strategy::Outcome;
use crate::{Decision, MemoryPolicy, MemoryStore, Policy, Store, StoreError, Timestamp};

/// What a [`Failover`] does when its store fails (is down, or times out).
///
/// ```
/// use tollgate::FailurePolicy;
///
/// assert_eq!("fallback".parse::<FailurePolicy>()?, FailurePolicy::Fallback);
/// assert_eq!(FailurePolicy::Allow.to_string(), "allow");
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailurePolicy {
    /// Fail open: the hit is allowed, uncounted, and the error is counted.
    #[default]
    Allow,
    /// Fail closed: the error is returned (an HTTP layer answers 503).
    Deny,
    /// Count in a local [`MemoryStore`] while the store is failing; probe the store every
    /// [`Failover::PROBE_INTERVAL`] and go back to it as soon as a probe succeeds.
    Fallback,
}

impl FailurePolicy {
    /// The policy's name in configuration files.
    pub const fn name(self) -> &'static str {
        match self {
            FailurePolicy::Allow => "allow",
            FailurePolicy::Deny => "deny",
            FailurePolicy::Fallback => "fallback",
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailurePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            FailurePolicy::Allow,
            FailurePolicy::Deny,
            FailurePolicy::Fallback,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| format!("unknown failure policy {s:?}; expected allow, deny or fallback"))
    }
}

/// A [`Store`] that applies a [`FailurePolicy`] to another store's errors, so that every hit
/// gets an answer.
///
/// ```
/// use std::future::Future;
/// use tollgate::{Decision, FailurePolicy, Failover, Policy, Rate, Store, StoreError, Timestamp};
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
///     async fn reset(&self, _: &(), _: &[u8]) -> Result<(), StoreError> {
///         Err(StoreError::unavailable("connection refused"))
///     }
/// }
///
/// # futures_executor::block_on(async {
/// let policy = Policy::fixed_window(Rate::per_minute(1).into());
/// let now = Timestamp::from_nanos(0);
///
/// let open = Failover::new(Down, FailurePolicy::Allow);
/// let p = open.prepare("p", &policy);
/// assert!(open.hit(&p, b"k", now, 1).await?.allowed());
/// assert!(open.hit(&p, b"k", now, 1).await?.allowed()); // uncounted
/// assert_eq!(open.errors(), 2);
///
/// let closed = Failover::new(Down, FailurePolicy::Deny);
/// let p = closed.prepare("p", &policy);
/// assert!(closed.hit(&p, b"k", now, 1).await.is_err());
///
/// let local = Failover::new(Down, FailurePolicy::Fallback);
/// let p = local.prepare("p", &policy);
/// assert!(local.hit(&p, b"k", now, 1).await?.allowed());
/// assert!(!local.hit(&p, b"k", now, 1).await?.allowed()); // counted in memory
/// assert!(local.is_falling_back());
/// # Ok::<(), StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Failover<S> {
    store: S,
    policy: FailurePolicy,
    fallback: MemoryStore,
    /// Whether hits currently go to `fallback`.
    falling_back: AtomicBool,
    /// When (in the hits' clock) the store was last tried while falling back.
    last_probe: AtomicU64,
    errors: AtomicU64,
}

/// A policy prepared for a [`Failover`]: for its store and for the fallback.
#[derive(Debug)]
pub struct FailoverPolicy<P> {
    prepared: P,
    local: MemoryPolicy,
    /// What an allowed-while-failing hit reports: the policy's capacity and first window.
    capacity: u64,
    window: Duration,
}

impl<S: Store> Failover<S> {
    /// While falling back, the store is tried again at most this often.
    pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

    /// `store`, with `policy` applied to its errors.
    pub fn new(store: S, policy: FailurePolicy) -> Self {
        Self {
            store,
            policy,
            fallback: MemoryStore::new(),
            falling_back: AtomicBool::new(false),
            last_probe: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The failure policy.
    pub fn policy(&self) -> FailurePolicy {
        self.policy
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
        if self.policy == FailurePolicy::Fallback && !self.falling_back.swap(true, Ordering::AcqRel)
        {
            self.last_probe.store(now.as_nanos(), Ordering::Release);
        }
    }
}

impl<S: Store> Store for Failover<S> {
    type Prepared = FailoverPolicy<S::Prepared>;

    fn prepare(&self, name: &str, policy: &Policy) -> Self::Prepared {
        FailoverPolicy {
            prepared: self.store.prepare(name, policy),
            local: self.fallback.prepare(name, policy),
            capacity: policy.max_cost(),
            window: policy.rates()[0].window(),
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
        let key = key.to_vec();
        async move {
            if let Some(attempt) = attempt {
                match attempt.await {
                    Ok(decision) => {
                        self.falling_back.store(false, Ordering::Release);
                        return Ok(decision);
                    }
                    Err(err) => {
                        self.failed(now);
                        match self.policy {
                            FailurePolicy::Deny => return Err(err),
                            FailurePolicy::Allow => return Ok(allowed_uncounted(policy)),
                            FailurePolicy::Fallback => {}
                        }
                    }
                }
            }
            Ok(self.fallback.hit_now(&policy.local, &key, now, cost))
        }
    }

    async fn reset(&self, policy: &Self::Prepared, key: &[u8]) -> Result<(), StoreError> {
        self.fallback.reset(&policy.local, key).await?;
        self.store.reset(&policy.prepared, key).await
    }
}

/// The decision for a hit allowed because the store failed: the full capacity left.
fn allowed_uncounted<P>(policy: &FailoverPolicy<P>) -> Decision {
    let outcome = Outcome {
        allowed: true,
        limit: policy.capacity,
        remaining: policy.capacity,
        reset_after: 0,
        retry_after: None,
        window: u64::try_from(policy.window.as_nanos()).unwrap_or(u64::MAX),
    };
    Decision::from_outcome(outcome, Duration::from_nanos(1))
}
