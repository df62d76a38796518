//! [`Failover`]: what to do when a store fails, as a store around another store.
//!
//! - `mode.rs`: [`FailureMode`], what a store error means.
//! - `charge.rs`: the one path of a hit or a late charge, to the store or to memory.
//! - `domains.rs`: which failure domains count in memory, their probes, and the
//!   [`FailoverSwitch`]es reported.

mod charge;
mod domains;
mod leases;
mod mode;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smallvec::SmallVec;

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};
use crate::policy::Policy;
use crate::store::memory::{MemoryStore, PreparedMemory};
use crate::store::{Store, StoreError, SyncStore};
use crate::strategy::{BanStatus, TickDecision};
use charge::FailoverCharge;
pub use domains::FailoverSwitch;
use domains::{Domains, Route};
pub use leases::PreparedFailoverLeases;
pub use mode::FailureMode;

/// A [`Store`] that applies a [`FailureMode`] to another store's errors, so that every hit
/// gets an answer.
///
/// # Falling back, part by part
///
/// Under [`FailureMode::Fallback`] a failing store sends hits to a local [`MemoryStore`]
/// ([`Failover::with_fallback`] sets its budget of keys), and a hit of a failing part tries
/// the store again at most every [`Failover::PROBE_INTERVAL`] for that part, and at most
/// [`Failover::MAX_PROBES_PER_INTERVAL`] times per interval over all parts together. A store
/// made of parts
/// that fail independently says so ([`Store::failure_domains`], the hash slots of a Redis
/// Cluster): then only the keys of the parts that failed are counted in memory, and keys of
/// healthy parts keep counting in the store. While nothing fails, a hit costs one atomic load
/// more than the store's own (and, under fallback, a copy of its key, kept inline up to 40
/// bytes): no key's domain is worked out until some domain fails. The switch to memory and
/// back is reported once each to [`Failover::on_switch`], with the cause, and counted
/// ([`Failover::switches`]).
///
/// # Hits that time out
///
/// A hit that timed out may still be applied by the store later (a Redis script already
/// queued). Timed-out hits are counted apart ([`Failover::timed_out_hits`]). What the late
/// charge means depends on the answer given in its place:
///
/// - [`FailureMode::Allow`]: the request was let through uncounted, so a late charge is its
///   fair count: kept.
/// - [`FailureMode::Fallback`]: the request was counted in memory. If memory allowed it, the
///   late charge in the store is kept: each store then holds the request once, and each
///   decision reads one store (memory while the part fails, the store after), so no decision
///   counts it twice. If memory denied it, the late charge is given back.
/// - [`FailureMode::Deny`]: the request was refused, so a late charge is given back.
///
/// Giving back needs the store to learn the late outcome: a store that can attaches a
/// [`PendingHit`](crate::PendingHit) to its timeout error (the Redis store does, within limits it documents),
/// and the charge is given back only if the hit was in fact charged, never guessed. What
/// stays unavoidable: a hit whose outcome never arrives is not given back, and a refund of
/// a timed-out hit by a later settlement (deduct-when, or another policy of the request
/// denying) goes where hits go at that moment.
///
/// ```
/// use std::future::Future;
/// use tollgate::{Acquisition, ConcurrencyLimit, Decision, FailureMode, Failover, LeaseId};
/// use tollgate::{Policy, Rate, Store, StoreError, Timestamp};
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
///     fn overdraw<'a>(
///         &'a self, _: &'a (), _: &[u8], _: Timestamp, _: u64,
///     ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
///         std::future::ready(Err(StoreError::unavailable("connection refused")))
///     }
///     async fn reset(&self, _: &(), _: &[u8]) -> Result<(), StoreError> {
///         Err(StoreError::unavailable("connection refused"))
///     }
///     type PreparedLeases = ();
///     fn prepare_leases(&self, _: &str, _: &ConcurrencyLimit) {}
///     fn acquire<'a>(
///         &'a self, _: &'a (), _: &[u8], _: LeaseId, _: Timestamp,
///     ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a> {
///         std::future::ready(Err(StoreError::unavailable("connection refused")))
///     }
///     fn release<'a>(
///         &'a self, _: &'a (), _: &[u8], _: LeaseId, _: Timestamp,
///     ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a> {
///         std::future::ready(Err(StoreError::unavailable("connection refused")))
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
pub struct Failover<S> {
    store: S,
    mode: FailureMode,
    fallback: MemoryStore,
    /// Which failure domains count in memory (under [`FailureMode::Fallback`]), and the
    /// switches reported.
    domains: Domains,
    errors: AtomicU64,
    timed_out_hits: AtomicU64,
}

impl<S: fmt::Debug> fmt::Debug for Failover<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("store", &self.store)
            .field("mode", &self.mode)
            .field("fallback", &self.fallback)
            .field("domains", &self.domains)
            .field("errors", &self.errors)
            .field("timed_out_hits", &self.timed_out_hits)
            .finish()
    }
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

/// A key kept by a hit's future for the fallback (inline up to the size of most keys).
type KeyCopy = SmallVec<[u8; 40]>;

impl<S: Store> Failover<S> {
    /// While falling back, the store is tried again at most this often (for each failing
    /// domain).
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

    /// While falling back, at most this many probes start per [`Failover::PROBE_INTERVAL`],
    /// over every failing domain together; the others wait for a later interval, and their
    /// hits are counted in memory meanwhile. A dead Redis Cluster master owning 5461 hash
    /// slots is so tried 80 times a second, not once per slot per interval (27,000 a second,
    /// each perhaps waiting out the store's timeout). A probe that succeeds gives its place
    /// back, so once the store answers, failing domains come back as fast as their hits
    /// arrive.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::testing::FlakyStore; // behind the `test-util` feature
    /// use tollgate::{Failover, FailureMode, Policy, Rate, Store, Timestamp};
    ///
    /// # futures_executor::block_on(async {
    /// assert_eq!(Failover::<FlakyStore>::MAX_PROBES_PER_INTERVAL, 16);
    /// let flaky = FlakyStore::with_domains(64);
    /// let failover = Failover::new(flaky.clone(), FailureMode::Fallback);
    /// let p = failover.prepare("p", &Policy::fixed_window(Rate::per_minute(100).into()));
    /// let keys: Vec<[u8; 1]> = (0..64).map(|domain| [domain]).collect();
    /// flaky.set_down(true);
    /// for key in &keys {
    ///     failover.hit(&p, key, Timestamp::from_nanos(0), 1).await?; // each domain fails
    /// }
    /// let probe_time = Timestamp::from_nanos(0) + Failover::<FlakyStore>::PROBE_INTERVAL;
    /// for key in &keys {
    ///     failover.hit(&p, key, probe_time, 1).await?; // 16 probes, 48 hits in memory
    /// }
    /// assert_eq!(failover.errors(), 64 + 16);
    /// # Ok::<(), tollgate::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub const MAX_PROBES_PER_INTERVAL: u64 = domains::MAX_PROBES_PER_INTERVAL;

    /// `store`, with `mode` applied to its errors (and, under [`FailureMode::Fallback`], a
    /// [`MemoryStore::new`] to fall back to).
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
        let domains = match mode {
            FailureMode::Fallback => store.failure_domains(),
            FailureMode::Allow | FailureMode::Deny => 1,
        };
        Self {
            store,
            mode,
            fallback: MemoryStore::new(),
            domains: Domains::new(domains),
            errors: AtomicU64::new(0),
            timed_out_hits: AtomicU64::new(0),
        }
    }

    /// Falls back to `fallback` (say, with its own budget of keys) instead of a
    /// [`MemoryStore::new`]. Set it before preparing policies.
    ///
    /// ```
    /// use tollgate::{Failover, FailureMode, MemoryStore};
    ///
    /// let failover = Failover::new(MemoryStore::new(), FailureMode::Fallback)
    ///     .with_fallback(MemoryStore::with_max_keys(10_000));
    /// assert!(format!("{:?}", failover.fallback()).contains("max_keys: 10000"));
    /// ```
    pub fn with_fallback(mut self, fallback: MemoryStore) -> Self {
        self.fallback = fallback;
        self
    }

    /// Calls `observer` at each switch of hits to the fallback and back (under
    /// [`FailureMode::Fallback`]): once when the store starts failing, with the cause, and
    /// once when it answers again; see [`FailoverSwitch`]. `observer` runs on the hit that
    /// switches, while no other switch can happen: keep it short (a log line), and never hit
    /// this failover from it.
    ///
    /// ```
    /// use tollgate::{Failover, FailoverSwitch, FailureMode, MemoryStore};
    ///
    /// let failover = Failover::new(MemoryStore::new(), FailureMode::Fallback)
    ///     .on_switch(|switch: &FailoverSwitch| eprintln!("{switch}"));
    /// # let _ = failover;
    /// ```
    pub fn on_switch(mut self, observer: impl Fn(&FailoverSwitch) + Send + Sync + 'static) -> Self {
        self.domains.set_observer(Arc::new(observer));
        self
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

    /// The local store hits fall back to.
    pub fn fallback(&self) -> &MemoryStore {
        &self.fallback
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

    /// The store errors seen so far (of hits and refunds, timeouts included).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The hits that failed by a timeout so far (counted in [`Failover::errors`] too): the
    /// store may still have applied them.
    ///
    /// ```
    /// use tollgate::testing::FlakyStore; // behind the `test-util` feature
    /// use tollgate::{Failover, FailureMode, Limiter, Policy, Rate};
    ///
    /// let flaky = FlakyStore::new(); // fails with timeouts
    /// let limiter = Limiter::new(Failover::new(flaky.clone(), FailureMode::Allow));
    /// let p = limiter.policy("p", Policy::fixed_window(Rate::per_minute(5).into()));
    /// flaky.set_down(true);
    /// p.hit_sync("k", 1)?;
    /// assert_eq!((limiter.store().errors(), limiter.store().timed_out_hits()), (1, 1));
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn timed_out_hits(&self) -> u64 {
        self.timed_out_hits.load(Ordering::Relaxed)
    }

    /// Whether some hits are being counted in the local fallback store (those of every
    /// failing domain).
    pub fn is_falling_back(&self) -> bool {
        self.domains.failing() > 0
    }

    /// How many failure domains of the store are counted in memory now: 0 or 1 for a store
    /// of one domain, up to 16384 for the hash slots of a Redis Cluster.
    pub fn falling_back_domains(&self) -> usize {
        self.domains.failing()
    }

    /// The switches of hits to the fallback so far (each one reported to
    /// [`Failover::on_switch`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::testing::FlakyStore; // behind the `test-util` feature
    /// use tollgate::{Failover, FailureMode, Limiter, ManualClock, Policy, Rate};
    ///
    /// let flaky = FlakyStore::new();
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::new(Failover::new(flaky.clone(), FailureMode::Fallback)).with_clock(clock.clone());
    /// let p = limiter.policy("p", Policy::fixed_window(Rate::per_minute(5).into()));
    /// for down in [true, false, true, false] {
    ///     flaky.set_down(down);
    ///     clock.advance(Duration::from_secs(1));
    ///     p.hit_sync("k", 1)?;
    /// }
    /// assert_eq!(limiter.store().switches(), 2);
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn switches(&self) -> u64 {
        self.domains.switches()
    }

    /// The failure domain of `key`, when one is needed.
    fn domain(&self, policy: &PreparedFailover<S::Prepared>, key: &[u8]) -> usize {
        self.store.failure_domain(&policy.prepared, key)
    }

    /// Where a hit or refund of `key` goes now.
    fn route(&self, policy: &PreparedFailover<S::Prepared>, key: &[u8], now: Timestamp) -> Route {
        self.domains
            .route(now, Self::PROBE_INTERVAL, || self.domain(policy, key))
    }

    /// Counts `err` and, under [`FailureMode::Fallback`], sends the hits of its domain to
    /// memory (reported if it is the first). `domain` is worked out from `key` if the route
    /// did not.
    fn failed(
        &self,
        err: &StoreError,
        route: Route,
        policy: &PreparedFailover<S::Prepared>,
        key: &[u8],
        now: Timestamp,
    ) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.mode == FailureMode::Fallback {
            let domain = route.domain().unwrap_or_else(|| self.domain(policy, key));
            self.domains.fell_back(domain, now, err);
        }
    }
}

/// The fallback is a memory store, so a failover answers at once when its store does.
impl<S: SyncStore> SyncStore for Failover<S> {}

impl<S: Store> Store for Failover<S> {
    type Prepared = PreparedFailover<S::Prepared>;
    type PreparedLeases = PreparedFailoverLeases<S::PreparedLeases>;

    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> Self::PreparedLeases {
        self.prepare_failover_leases(name, limit)
    }

    /// See [`PreparedFailoverLeases`] for what the failure mode answers.
    fn acquire<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a, S> {
        self.acquire_failover(leases, key, lease, now)
    }

    fn release<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a, S> {
        self.release_failover(leases, key, lease, now)
    }

    /// As the wrapped store: the fallback is a memory store.
    fn answers_immediately(&self) -> bool {
        self.store.answers_immediately()
    }

    fn failure_domains(&self) -> usize {
        self.store.failure_domains()
    }

    fn failure_domain(&self, policy: &Self::Prepared, key: &[u8]) -> usize {
        self.domain(policy, key)
    }

    fn prepare(&self, name: &str, policy: &Policy) -> Self::Prepared {
        PreparedFailover {
            prepared: self.store.prepare(name, policy),
            local: (self.mode == FailureMode::Fallback)
                .then(|| self.fallback.prepare(name, policy)),
            uncounted: uncounted(policy),
        }
    }

    /// A hit goes to the store unless its domain is falling back (and its probe is not
    /// due). When the store fails, the failure mode answers; a hit that timed out and was
    /// answered by a refusal has its late charge given back (see
    /// [hits that time out](Failover#hits-that-time-out)).
    fn hit<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        self.charge(FailoverCharge::Hit, policy, key, now, cost)
    }

    /// Gives the units back where hits of `key` go at the moment: to the store or, while its
    /// domain falls back, to the local store (a refund never probes the store). When the
    /// store fails, the error is counted and, as for a hit, [`FailureMode::Deny`] returns it
    /// while [`FailureMode::Allow`] and [`FailureMode::Fallback`] swallow it: the hit to
    /// give back was charged to the store (or, failing open, not at all), so the local store
    /// has nothing to refund, and at worst the key keeps paying for that hit until its state
    /// resets. Under [`FailureMode::Fallback`] the failure also sends later hits of its
    /// domain to memory.
    fn refund<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a, S> {
        let local = match policy.local.as_ref() {
            Some(local) if self.domains.failing() > 0 => {
                let domain = self.domain(policy, key);
                self.domains.is_failing(domain).then_some(local)
            }
            _ => None,
        };
        if let Some(local) = local {
            self.fallback.refund_in_place(local, key, now, cost);
        }
        let attempt = local
            .is_none()
            .then(|| self.store.refund(&policy.prepared, key, now, cost));
        let key = (self.mode == FailureMode::Fallback).then(|| KeyCopy::from_slice(key));
        async move {
            let Some(attempt) = attempt else {
                return Ok(());
            };
            match attempt.await {
                Ok(()) => Ok(()),
                Err(err) => {
                    let key = key.as_deref().unwrap_or_default();
                    self.failed(&err, Route::Store(None), policy, key, now);
                    match self.mode {
                        FailureMode::Deny => Err(err),
                        FailureMode::Allow | FailureMode::Fallback => Ok(()),
                    }
                }
            }
        }
    }

    /// A late charge goes where hits of `key` go now. When the store fails, the failure mode
    /// answers as for a hit: [`FailureMode::Deny`] returns the error, [`FailureMode::Allow`]
    /// answers as for a first hit (the charge is lost), and [`FailureMode::Fallback`] charges
    /// the local store. A late charge that timed out is left to the store: it is owed whatever
    /// the answer.
    fn overdraw<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        self.charge(FailoverCharge::Overdraw, policy, key, now, cost)
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
                ban: BanStatus::Clear,
                delay: 0,
            }
        }
        // A policy always has a rate; an empty one would allow everything.
        None => TickDecision::UNLIMITED,
    };
    outcome.into_decision(Duration::from_nanos(1))
}
