//! [`Leasing`]: a [`Store`] over a shared store that serves hits from *quota leases*: units
//! of a key's allowance charged to the shared store at once ([`Store::take`]) and spent here
//! without a round trip, and denials repeated here until the store's `retry_after`.
//!
//! # Guarantees
//!
//! Every unit is charged to the shared store before it is spent, so however many instances
//! lease from one store, and whatever they do (crash included), they never admit more than
//! the store charged. What that means per strategy, for leases of lifetime `T`:
//!
//! - fixed window and sliding window counter: exact. A lease ends with the window it was
//!   charged to (its lifetime is the shorter of `T` and the window's end), and unspent units
//!   are given back only while that window lasts (the store drops a later give-back).
//! - token bucket: units admitted in any interval `I` are at most `burst + rate × (|I| + T)`.
//! - sliding window log: a window of length `W` admits at most the limit plus the units
//!   leased and not yet spent when it starts (at most twice the limit); unspent units are
//!   never given back (a give-back could free a later unit's slot).
//!
//! What leases cost is *under*-admission: units leased by one instance are not available to
//! another until they are spent or given back. A lease takes the units its hit needs plus at
//! most an eighth of the room left (rounded up; see [`crate::strategy::take`]) and at most
//! the key's rate here times `T`, so near the limit leases are single units; an instance that
//! dies holds at most its leases' units, for at most `T` (or until the window ends).
//!
//! Local denials: after the store denies a hit of `c` units, hits of `c` or more are denied
//! here until the store's `retry_after` has passed. That is exact unless units come back in
//! the meantime (another instance's give-back, a refund), which this instance then does not
//! see until the wait is over: conservative, never an over-admission.
//!
//! Not leased (every hit goes to the store): policies with a ban (every denial must count as
//! a breach) or a `max_delay` (a lease does not reserve slots), and policies whose
//! [`QuotaLease`] is off. Refunds, late charges and resets pass through; a reset also drops
//! the key's lease and denial here.

mod entry;
mod option;
mod table;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use entry::{Counts, Step, nanos};
pub use option::{InvalidQuotaLease, LeaseStats, MAX_LEASE, MIN_LEASE, QuotaLease};
use table::LeaseTable;

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};
use crate::policy::{Policy, Strategy};
use crate::store::grant::{GiveBack, Grant};
use crate::store::{Store, StoreError};

/// Keys one leased policy tracks at most, by default.
pub const DEFAULT_MAX_LEASED_KEYS: usize = 100_000;

/// A store that leases units from `S` (a shared store such as Redis) and spends them here;
/// see the [module docs](self) for what it guarantees. Policies are leased for the store's
/// default lifetime ([`Leasing::with_lease`]; none: off) unless they choose otherwise
/// ([`Policy::with_quota_lease`]).
///
/// Cloning is cheap and shares the store, the leases and the counts: keep a clone to
/// [`Leasing::sweep`] (every half lease lifetime or so, from whatever runtime the application
/// has) and read [`Leasing::stats`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Leasing, Limiter, MemoryStore, Policy, QuotaLease};
///
/// # futures_executor::block_on(async {
/// let lease = QuotaLease::lasting(Duration::from_millis(250))?;
/// let store = Leasing::new(MemoryStore::new()).with_lease(lease);
/// let limiter = Limiter::new(store.clone());
/// let api = limiter.policy("api", Policy::fixed_window("800/second".parse()?));
/// for _ in 0..50 {
///     assert!(api.hit("alice").await?.allowed());
/// }
/// let stats = store.stats();
/// assert_eq!(stats.hits, 50);
/// assert!(stats.store_calls < 10, "{stats:?}"); // most hits spent leased units
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Leasing<S: Store> {
    shared: Arc<Shared<S>>,
    /// The default for policies that do not choose; each clone keeps its own.
    lease: QuotaLease,
    max_keys: usize,
}

impl<S: Store> Clone for Leasing<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            lease: self.lease,
            max_keys: self.max_keys,
        }
    }
}

/// What clones share: the store behind, the leased policies (for the sweep) and the counts.
#[derive(Debug)]
struct Shared<S: Store> {
    store: S,
    tables: Mutex<Vec<Weak<Leased<S::Prepared>>>>,
    stats: Stats,
}

/// [`LeaseStats`] as atomics.
#[derive(Debug, Default)]
struct Stats([AtomicU64; 10]);

const HITS: usize = 0;
const STORE_CALLS: usize = 1;
const LEASES_TAKEN: usize = 2;
const UNITS_LEASED: usize = 3;
const LOCAL_ALLOWED: usize = 4;
const LOCAL_DENIALS: usize = 5;
const LEASES_EXPIRED: usize = 6;
const LEASES_EVICTED: usize = 7;
const UNITS_GIVEN_BACK: usize = 8;
const UNITS_DROPPED: usize = 9;

impl Stats {
    fn add(&self, i: usize, n: u64) {
        if n > 0 {
            self.0[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    fn counts(&self, counts: Counts) {
        self.add(LOCAL_ALLOWED, counts.local_allowed);
        self.add(LOCAL_DENIALS, counts.local_denials);
        self.add(LEASES_EXPIRED, counts.leases_expired);
        self.add(LEASES_EVICTED, counts.leases_evicted);
        self.add(UNITS_DROPPED, counts.units_dropped);
    }

    fn get(&self, i: usize) -> u64 {
        self.0[i].load(Ordering::Relaxed)
    }
}

/// A policy prepared for a [`Leasing`] store: the policy prepared for the store behind,
/// and its leases here when it is leased.
#[derive(Debug)]
pub struct PreparedLeasing<P> {
    leased: Arc<Leased<P>>,
}

#[derive(Debug)]
struct Leased<P> {
    prepared: P,
    /// `None`: not leased, every hit goes to the store.
    table: Option<LeaseTable>,
    /// The lease lifetime in ns.
    lifetime: u64,
    max_cost: u64,
}

impl<S: Store> Leasing<S> {
    /// `store` with leasing off for every policy that does not turn it on itself.
    pub fn new(store: S) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                tables: Mutex::new(Vec::new()),
                stats: Stats::default(),
            }),
            lease: QuotaLease::Off,
            max_keys: DEFAULT_MAX_LEASED_KEYS,
        }
    }

    /// Leases for every policy prepared through this handle that does not choose otherwise
    /// (clones made before keep their own default; all share the counts and the sweep).
    #[must_use]
    pub fn with_lease(self, lease: QuotaLease) -> Self {
        Self { lease, ..self }
    }

    /// Tracks at most `max_keys` keys per leased policy prepared through this handle
    /// (default [`DEFAULT_MAX_LEASED_KEYS`]); a new key past it evicts one, whose unspent
    /// units are given back at the next sweep.
    #[must_use]
    pub fn with_max_keys(self, max_keys: usize) -> Self {
        Self {
            max_keys: max_keys.max(1),
            ..self
        }
    }

    /// The store behind.
    pub fn inner(&self) -> &S {
        &self.shared.store
    }

    /// What this store has counted so far.
    pub fn stats(&self) -> LeaseStats {
        let s = &self.shared.stats;
        LeaseStats {
            hits: s.get(HITS),
            store_calls: s.get(STORE_CALLS),
            leases_taken: s.get(LEASES_TAKEN),
            units_leased: s.get(UNITS_LEASED),
            local_allowed: s.get(LOCAL_ALLOWED),
            local_denials: s.get(LOCAL_DENIALS),
            leases_expired: s.get(LEASES_EXPIRED),
            leases_evicted: s.get(LEASES_EVICTED),
            units_given_back: s.get(UNITS_GIVEN_BACK),
            units_dropped: s.get(UNITS_DROPPED),
        }
    }

    /// Ends the leases expired by `now` and gives their unspent units back to the store
    /// (with those owed by evictions and failed calls), and forgets keys idle for a lease
    /// lifetime; returns the units given back. Call it about every lease lifetime: leases of
    /// keys that are hit again end then anyway, but idle keys' units come back only here.
    /// A give-back that fails is dropped: its units are lost until their window ends.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Clock, Leasing, Limiter, ManualClock, MemoryStore, Policy, QuotaLease};
    ///
    /// # futures_executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let lease = QuotaLease::lasting(Duration::from_millis(100))?;
    /// let store = Leasing::new(MemoryStore::new()).with_lease(lease);
    /// let api = Limiter::new(store.clone()).with_clock(clock.clone())
    ///     .policy("api", Policy::fixed_window("800/minute".parse()?));
    /// api.hit("alice").await?;
    /// clock.advance(Duration::from_millis(1));
    /// api.hit("alice").await?; // a lease of 100 units at this rate: 99 left
    /// clock.advance(Duration::from_millis(200));
    /// assert_eq!(store.sweep(clock.now()).await, 99);
    /// assert_eq!(api.peek("alice").await?.remaining(), 798);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn sweep(&self, now: Timestamp) -> u64 {
        let tables: Vec<Arc<Leased<S::Prepared>>> = {
            let mut tables = self
                .shared
                .tables
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            tables.retain(|table| table.strong_count() > 0);
            tables.iter().filter_map(Weak::upgrade).collect()
        };
        let mut given_back = 0;
        for leased in tables {
            let Some(table) = &leased.table else { continue };
            let mut counts = Counts::default();
            let due = table.sweep(now.as_nanos(), leased.lifetime, &mut counts);
            self.shared.stats.counts(counts);
            for (key, give_back) in due {
                self.shared.stats.add(STORE_CALLS, 1);
                let back = self
                    .shared
                    .store
                    .take(&leased.prepared, &key, now, 0, 0, give_back);
                if back.await.is_ok() {
                    self.shared.stats.add(UNITS_GIVEN_BACK, give_back.units());
                    given_back += give_back.units();
                } else {
                    self.shared.stats.add(UNITS_DROPPED, give_back.units());
                }
            }
        }
        given_back
    }

    /// A hit of a leased policy: from the lease, or a denial repeated here, or a take.
    async fn leased_hit(
        &self,
        leased: &Leased<S::Prepared>,
        table: &LeaseTable,
        key: Vec<u8>,
        now: Timestamp,
        cost: u64,
    ) -> Result<Decision, StoreError> {
        let shared = &self.shared;
        shared.stats.add(HITS, 1);
        let at = now.as_nanos();
        let mut counts = Counts::default();
        let step = table.with(&key, at, &mut counts, |entry, counts| {
            entry.before(
                at,
                cost,
                leased.lifetime,
                leased.max_cost,
                table.gives_back,
                counts,
            )
        });
        shared.stats.counts(counts);
        let (need, want, give_back, have) = match step {
            Step::Answered(decision) => return Ok(decision),
            Step::Take {
                need,
                want,
                give_back,
                have,
            } => (need, want, give_back, have),
        };
        shared.stats.add(STORE_CALLS, 1);
        let grant: Result<Grant, StoreError> = shared
            .store
            .take(&leased.prepared, &key, now, need, want, give_back)
            .await;
        let mut counts = Counts::default();
        let answer = match grant {
            Ok(grant) => {
                shared.stats.add(UNITS_GIVEN_BACK, give_back.units());
                if need > 0 && grant.granted() > 0 {
                    shared.stats.add(LEASES_TAKEN, 1);
                    shared.stats.add(UNITS_LEASED, grant.granted());
                }
                Ok(table.with(&key, at, &mut counts, |entry, _| {
                    entry.after(at, cost, have, &grant, leased.lifetime)
                }))
            }
            Err(err) => {
                table.with(&key, at, &mut counts, |entry, _| entry.restore(have));
                table.owe(key.into(), give_back, &mut counts);
                Err(err)
            }
        };
        shared.stats.counts(counts);
        answer
    }
}

impl<S: Store> Store for Leasing<S> {
    type Prepared = PreparedLeasing<S::Prepared>;

    /// Prepares `policy` in the store behind and, when it is leased, a table of its leases
    /// here (a reload prepares a new one: the old leases' units are lost until they end).
    fn prepare(&self, name: &str, policy: &Policy) -> Self::Prepared {
        let shared = &self.shared;
        let lease = policy.quota_lease().unwrap_or(self.lease);
        let lifetime = lease
            .lifetime()
            .filter(|_| policy.ban.is_none() && policy.max_delay().is_none());
        let gives_back = policy.strategy() != Strategy::SlidingWindowLog;
        let leased = Arc::new(Leased {
            prepared: shared.store.prepare(name, policy),
            table: lifetime.map(|_| LeaseTable::new(self.max_keys, gives_back)),
            lifetime: lifetime.map_or(0, nanos),
            max_cost: policy.max_cost(),
        });
        if leased.table.is_some() {
            let mut tables = shared.tables.lock().unwrap_or_else(PoisonError::into_inner);
            tables.retain(|table| table.strong_count() > 0);
            tables.push(Arc::downgrade(&leased));
        }
        PreparedLeasing { leased }
    }

    fn hit<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        let leased = &*policy.leased;
        let key = key.to_vec();
        async move {
            match &leased.table {
                Some(table) => self.leased_hit(leased, table, key, now, cost).await,
                None => {
                    self.shared
                        .store
                        .hit(&leased.prepared, &key, now, cost)
                        .await
                }
            }
        }
    }

    fn refund<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a, S> {
        self.shared
            .store
            .refund(&policy.leased.prepared, key, now, cost)
    }

    fn overdraw<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        self.shared
            .store
            .overdraw(&policy.leased.prepared, key, now, cost)
    }

    /// Takes straight from the store behind: a [`Leasing`] store is the one that leases.
    fn take<'a>(
        &'a self,
        policy: &'a Self::Prepared,
        key: &[u8],
        now: Timestamp,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send + use<'a, S> {
        self.shared
            .store
            .take(&policy.leased.prepared, key, now, need, want, give_back)
    }

    async fn reset(&self, policy: &Self::Prepared, key: &[u8]) -> Result<(), StoreError> {
        if let Some(table) = &policy.leased.table {
            table.forget(key);
        }
        self.shared.store.reset(&policy.leased.prepared, key).await
    }

    type PreparedLeases = S::PreparedLeases;

    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> Self::PreparedLeases {
        self.shared.store.prepare_leases(name, limit)
    }

    fn acquire<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a, S> {
        self.shared.store.acquire(leases, key, lease, now)
    }

    fn release<'a>(
        &'a self,
        leases: &'a Self::PreparedLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a, S> {
        self.shared.store.release(leases, key, lease, now)
    }

    fn answers_immediately(&self) -> bool {
        self.shared.store.answers_immediately()
    }

    fn failure_domains(&self) -> usize {
        self.shared.store.failure_domains()
    }

    fn failure_domain(&self, policy: &Self::Prepared, key: &[u8]) -> usize {
        self.shared
            .store
            .failure_domain(&policy.leased.prepared, key)
    }
}

/// The lease lifetime as a [`Duration`], for a policy prepared by [`Leasing`]: `None` when
/// it is not leased.
impl<P> PreparedLeasing<P> {
    /// How long this policy's leases last; `None` when it is not leased.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Leasing, MemoryStore, Policy, QuotaLease, Store};
    ///
    /// let store = Leasing::new(MemoryStore::new())
    ///     .with_lease(QuotaLease::lasting(Duration::from_millis(250))?);
    /// let api = store.prepare("api", &Policy::fixed_window("10/second".parse()?));
    /// assert_eq!(api.lease(), Some(Duration::from_millis(250)));
    /// let off = Policy::fixed_window("10/second".parse()?).with_quota_lease(QuotaLease::Off);
    /// assert_eq!(store.prepare("off", &off).lease(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease(&self) -> Option<Duration> {
        self.leased
            .table
            .as_ref()
            .map(|_| Duration::from_nanos(self.leased.lifetime))
    }
}
