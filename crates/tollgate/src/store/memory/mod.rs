//! [`MemoryStore`]: the states of every policy and key, in this process.

mod budget;
mod leases;
mod stored_key;
mod table;

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, ready};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use budget::Budget;
use leases::LeaseTable;
pub use leases::PreparedMemoryLeases;
use stored_key::{DigestKey, StoredKey};
use table::{Banned, PolicyTable, Slots, Table};

use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::key::KeyBytes;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};
use crate::policy::{Policy, Strategy};
use crate::store::grant::{GiveBack, Grant};
use crate::store::{Store, StoreError, SyncStore};
use crate::strategy::{
    BanRule, FixedWindow, RateState, SlidingWindowCounter, SlidingWindowLog, TickRate, TokenBucket,
};

/// The default budget of keys a [`MemoryStore`] tracks, over all its policies together.
///
/// ```
/// use tollgate::{MemoryStore, DEFAULT_MAX_KEYS};
///
/// assert_eq!(DEFAULT_MAX_KEYS, 1 << 20);
/// // What `MemoryStore::new` tracks at most.
/// assert_eq!(
///     format!("{:?}", MemoryStore::new()),
///     format!("{:?}", MemoryStore::with_max_keys(DEFAULT_MAX_KEYS)),
/// );
/// ```
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

/// A [`Store`] in this process's memory: fast from many threads, bounded in size.
///
/// # Speed
///
/// A hit hashes the key, locks one of many shards (a power of two, 16 per CPU, up to 1024),
/// finds the key's states and applies the strategy: O(1) for every strategy but the sliding
/// window log, which is O(N) in the worst case (N the rate's amount, when the hit must find
/// how many old entries have to expire).
///
/// # Memory
///
/// A key of up to 15 bytes (an IPv4 address, `user:123456`) is stored inline; a longer one as
/// a 120-bit keyed digest, so no key allocates. A single-rate token bucket costs 24 bytes per
/// key plus the hash table's slack; see `BENCHMARKS.md` for measured figures. The sliding
/// window log is the exception: it keeps one 16-byte entry per distinct hit instant still in
/// the window, up to N per key, so keep it for small amounts (up to a few thousand per
/// window) and use the counter or the token bucket for large ones.
///
/// Idle keys are forgotten once their state is indistinguishable from fresh (a hit would find
/// the full limit available), without a background thread: sweeps ride on hits, a shard
/// sweeping once it has served twice as many hits as it has slots, before it would grow, and
/// when the store's budget of keys is full. A store that receives no hits at all keeps what it
/// has.
///
/// # The budget of keys
///
/// The store tracks at most about [`MemoryStore::with_max_keys`] keys (default
/// [`DEFAULT_MAX_KEYS`]) over all its policies together, so neither a flood of unique keys
/// (key spraying) nor a flood of policies (the check API's inline policies) can exhaust
/// memory. The hit of a key already tracked does no bookkeeping for it; a new key is counted
/// as it is inserted, and so is each key dropped.
///
/// When a new key finds the budget full, room is made where keys are plentiful. The budget
/// is split evenly over the live policies (and each policy's shards): a shard holding at
/// least its share drops its own fresh states and, if that frees less than an eighth of its
/// share, evicts a randomly chosen eighth of its keys; a shard holding less takes room the
/// same way from a shard of another policy holding more than its share. So a flood on one
/// policy evicts that policy's keys, and a policy with few keys keeps them; only when every
/// policy holds its share does each one pay for its own new keys (a policy with many
/// legitimate keys then keeps its share, not more), and a shard with no key to pay with
/// takes room from any shard that has keys. Which keys go depends on a secret hash
/// seed, so a client cannot aim an eviction at a key. The total may pass the budget by a few
/// keys: one per insert racing with another at the budget, and one per insert that found no
/// shard to take room from at that moment.
///
/// An evicted key starts afresh on its next hit, so at the budget a limit may let a client
/// through early; evictions are counted in [`MemoryStats::evicted`], and the fix is a larger
/// budget or keying on coarser identities. The alternatives were worse: refusing untracked
/// keys denies every new client during a flood, and not tracking them lets every new client
/// through.
///
/// ```
/// use tollgate::{Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let store = MemoryStore::with_max_keys(10_000);
/// let api = Limiter::new(store.clone())
///     .policy("api", Policy::token_bucket(Rate::per_second(100).into()).expect("a valid bucket"));
/// api.hit("user:1").await?;
/// assert_eq!(store.stats().keys, 1);
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    digest_key: DigestKey,
    /// The keys every table may track together, and the counts of keys dropped.
    budget: Arc<Budget>,
    /// Tables by policy name, so that preparing the same policy again (a reload) finds the
    /// same counts; dead tables are pruned as new ones are prepared.
    tables: Mutex<HashMap<String, Registered>>,
    /// Lease tables by concurrency limit name, as `tables`.
    lease_tables: Mutex<HashMap<String, (ConcurrencyLimit, Weak<LeaseTable>)>>,
}

struct Registered {
    policy: Policy,
    table: Weak<dyn PolicyTable>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_keys", &self.inner.budget.max())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`MemoryStore`] holds and has dropped.
///
/// ```
/// let stats = tollgate::MemoryStore::new().stats();
/// assert_eq!((stats.keys, stats.expired, stats.evicted), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Keys tracked now, over all live policies.
    pub keys: usize,
    /// Keys dropped because their state had become fresh.
    pub expired: u64,
    /// Keys dropped at the budget while their state still mattered.
    pub evicted: u64,
}

/// A policy prepared for a [`MemoryStore`]: its table of states, and the store's secret for
/// digesting long keys (kept here so that a hit reads nothing of the store itself).
///
/// ```
/// use tollgate::{MemoryStore, Policy, PreparedMemory, Rate, Store, Timestamp};
///
/// # futures_executor::block_on(async {
/// let store = MemoryStore::new();
/// let policy = Policy::fixed_window(Rate::per_minute(1).into());
/// let login: PreparedMemory = store.prepare("login", &policy);
/// let now = Timestamp::from_nanos(0);
/// assert!(store.hit(&login, b"alice", now, 1).await?.allowed());
/// // Prepared again under the same name with an equal policy (a reload): the same counts.
/// let reloaded = store.prepare("login", &policy);
/// assert!(!store.hit(&reloaded, b"alice", now, 1).await?.allowed());
/// # Ok::<(), tollgate::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct PreparedMemory {
    table: Arc<dyn PolicyTable>,
    digest_key: DigestKey,
}

impl fmt::Debug for PreparedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table.fmt(f)
    }
}

impl MemoryStore {
    /// An empty store tracking at most about [`DEFAULT_MAX_KEYS`] keys.
    ///
    /// Clones share the states.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let store = MemoryStore::new();
    /// assert_eq!(store.stats().keys, 0);
    /// let api = Limiter::new(store.clone()).policy("api", Policy::fixed_window(Rate::per_second(5).into()));
    /// api.hit_sync("alice", 1)?;
    /// assert_eq!(store.stats().keys, 1);
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// An empty store tracking at most about `max_keys` keys (at least 1) over all its
    /// policies together: see [the budget of keys](MemoryStore#the-budget-of-keys).
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let store = MemoryStore::with_max_keys(1_000);
    /// let limiter = Limiter::new(store.clone());
    /// let api = limiter.policy("api", Policy::fixed_window(Rate::per_hour(5).into()));
    /// let login = limiter.policy("login", Policy::fixed_window(Rate::per_hour(5).into()));
    /// login.hit_sync("alice", 1)?;
    /// for client in 0..10_000u32 {
    ///     api.hit_sync(&client, 1)?; // a flood of unique keys
    /// }
    /// let stats = store.stats();
    /// assert!(stats.keys <= 1_000); // both policies together
    /// assert!(stats.evicted > 0);
    /// assert_eq!(login.hit_sync("alice", 0)?.remaining(), 4); // the flood evicted its own keys
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                digest_key: DigestKey::random(),
                budget: Arc::new(Budget::new(max_keys, shard_count(max_keys))),
                tables: Mutex::default(),
                lease_tables: Mutex::default(),
            }),
        }
    }

    /// What the store holds and has dropped.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    ///
    /// let store = MemoryStore::with_max_keys(100);
    /// let limiter = Limiter::new(store.clone());
    /// let mut policies = Vec::new();
    /// for policy in 0..10 {
    ///     let p = limiter.policy(&format!("p{policy}"), Policy::fixed_window(Rate::per_hour(5).into()));
    ///     for client in 0..100u32 {
    ///         p.hit_sync(&client, 1)?;
    ///     }
    ///     policies.push(p); // a policy dropped gives its keys back
    /// }
    /// let stats = store.stats();
    /// assert!(stats.keys <= 100);
    /// assert_eq!(stats.keys as u64 + stats.evicted, 1_000);
    /// # Ok::<(), tollgate::Error>(())
    /// ```
    pub fn stats(&self) -> MemoryStats {
        let budget = &self.inner.budget;
        MemoryStats {
            keys: budget.used(),
            expired: budget.expired.load(Ordering::Relaxed),
            evicted: budget.evicted.load(Ordering::Relaxed),
        }
    }

    /// Applies a hit in place: what [`Store::hit`] does, without the future.
    #[inline]
    pub(crate) fn hit_in_place(
        &self,
        policy: &PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> Decision {
        self.hit_stored(policy, StoredKey::new(key, &policy.digest_key), now, cost)
    }

    /// Applies a hit to a key in its stored form.
    #[inline(always)]
    fn hit_stored(
        &self,
        policy: &PreparedMemory,
        key: StoredKey,
        now: Timestamp,
        cost: u64,
    ) -> Decision {
        let outcome = policy.table.hit(key, now.as_nanos(), cost);
        outcome.into_decision(Duration::from_nanos(1))
    }

    /// Gives units back in place: what [`Store::refund`] does, without the future.
    #[inline]
    pub(crate) fn refund_in_place(
        &self,
        policy: &PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) {
        let key = StoredKey::new(key, &policy.digest_key);
        policy.table.refund(key, now.as_nanos(), cost);
    }

    /// `table` with this store's digest key.
    fn prepared(&self, table: Arc<dyn PolicyTable>) -> PreparedMemory {
        PreparedMemory {
            table,
            digest_key: self.inner.digest_key.clone(),
        }
    }

    /// A new, empty table for `policy`, registered with the store's budget.
    fn new_table(&self, policy: &Policy) -> Arc<dyn PolicyTable> {
        let tick = Duration::from_nanos(1);
        let (limits, ban) = (policy.limits(tick), policy.ban_rule(tick));
        let budget = &self.inner.budget;
        match policy.strategy() {
            Strategy::FixedWindow => table_of::<FixedWindow>(limits, ban, budget),
            Strategy::SlidingWindowLog => table_of::<SlidingWindowLog>(limits, ban, budget),
            Strategy::SlidingWindowCounter => table_of::<SlidingWindowCounter>(limits, ban, budget),
            Strategy::TokenBucket => table_of::<TokenBucket>(limits, ban, budget),
        }
    }

    /// How many keys are banned at `now`, over every policy with a ban: a count the memory
    /// store can give (it looks at the keys of those policies, shard by shard), where Redis
    /// could not without scanning every key.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Ban, Clock, Limiter, ManualClock, MemoryStore, Policy, Rate};
    ///
    /// let clock = ManualClock::new();
    /// let store = MemoryStore::new();
    /// let ban = Ban::new(Rate::per_minute(1), Duration::from_secs(60))?;
    /// let login = Limiter::new(store.clone())
    ///     .with_clock(clock.clone())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(1).into()).with_ban(ban));
    /// login.hit_sync("alice", 1)?;
    /// login.hit_sync("alice", 1)?; // a breach: banned for a minute
    /// assert_eq!(store.banned_keys(clock.now()), 1);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(store.banned_keys(clock.now()), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn banned_keys(&self, now: Timestamp) -> usize {
        self.inner.budget.sum(|table| table.banned(now.as_nanos()))
    }

    /// Applies a late charge in place: what [`Store::overdraw`] does, without the future.
    pub(crate) fn overdraw_in_place(
        &self,
        policy: &PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> Decision {
        let key = StoredKey::new(key, &policy.digest_key);
        let outcome = policy.table.overdraw(key, now.as_nanos(), cost);
        outcome.into_decision(Duration::from_nanos(1))
    }
}

/// A new table of `S` states for `limits` (and a ban), registered with `budget`: inline slots
/// for a single rate, boxed ones for more, with a ban state beside them when there is a ban.
fn table_of<S: RateState>(
    limits: Box<[TickRate]>,
    ban: Option<BanRule>,
    budget: &Arc<Budget>,
) -> Arc<dyn PolicyTable> {
    fn table<C: Slots>(
        limits: Box<[TickRate]>,
        ban: Option<BanRule>,
        budget: &Arc<Budget>,
    ) -> Arc<dyn PolicyTable> {
        let table: Arc<dyn PolicyTable> =
            Arc::new(Table::<C>::new(limits, ban, Arc::clone(budget)));
        let member: Arc<dyn budget::BudgetMember> = table.clone();
        budget.register(Arc::downgrade(&member));
        table
    }
    match (limits.len() == 1, ban.is_some()) {
        (true, false) => table::<[S; 1]>(limits, ban, budget),
        (false, false) => table::<Box<[S]>>(limits, ban, budget),
        (true, true) => table::<Banned<[S; 1]>>(limits, ban, budget),
        (false, true) => table::<Banned<Box<[S]>>>(limits, ban, budget),
    }
}

/// Shards for each table: 16 per CPU rounded up to a power of two, at most 1024, and no more
/// than one per 1024 keys of the budget (so a small budget is split evenly).
fn shard_count(max_keys: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let by_cpus = (cpus * 16).next_power_of_two().min(1024);
    let by_keys = (max_keys / 1024).max(1).next_power_of_two();
    by_cpus.min(by_keys)
}

/// Every hit, refund and reset is done before its future is returned.
impl SyncStore for MemoryStore {}

impl Store for MemoryStore {
    type Prepared = PreparedMemory;
    type PreparedLeases = PreparedMemoryLeases;

    /// Returns the table already prepared under `name` if its limit is equal, so that the
    /// leases survive a reload; otherwise a new, empty one.
    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> PreparedMemoryLeases {
        let mut tables = self
            .inner
            .lease_tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let existing = tables
            .get(name)
            .filter(|(prepared, _)| prepared == limit)
            .and_then(|(_, table)| table.upgrade());
        let table = existing.unwrap_or_else(|| {
            tables.retain(|_, (_, table)| table.strong_count() > 0);
            let budget = &self.inner.budget;
            let table = Arc::new(LeaseTable::new(*limit, Arc::clone(budget)));
            let member: Arc<dyn budget::BudgetMember> = table.clone();
            budget.register(Arc::downgrade(&member));
            tables.insert(name.to_owned(), (*limit, Arc::downgrade(&table)));
            table
        });
        PreparedMemoryLeases {
            table,
            digest_key: self.inner.digest_key.clone(),
        }
    }

    fn acquire<'a>(
        &'a self,
        leases: &'a PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a> {
        ready(Ok(self.acquire_in_place(leases, key, lease, now)))
    }

    fn release<'a>(
        &'a self,
        leases: &'a PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a> {
        ready(Ok(self.release_in_place(leases, key, lease, now)))
    }

    fn answers_immediately(&self) -> bool {
        true
    }

    /// Returns the table already prepared under `name` if its policy is equal, so that counts
    /// survive a reload; otherwise a new, empty one.
    fn prepare(&self, name: &str, policy: &Policy) -> PreparedMemory {
        let mut tables = self
            .inner
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(registered) = tables.get(name)
            && registered.policy == *policy
            && let Some(table) = registered.table.upgrade()
        {
            return self.prepared(table);
        }
        tables.retain(|_, registered| registered.table.strong_count() > 0);
        let table = self.new_table(policy);
        tables.insert(
            name.to_owned(),
            Registered {
                policy: policy.clone(),
                table: Arc::downgrade(&table),
            },
        );
        self.prepared(table)
    }

    #[inline]
    fn hit<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        ready(Ok(self.hit_in_place(policy, key, now, cost)))
    }

    /// Takes a short key's packed form as it is (see [`StoredKey::of`]).
    #[inline(always)]
    fn hit_key<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &KeyBytes<'_>,
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        let key = StoredKey::of(key, &policy.digest_key);
        ready(Ok(self.hit_stored(policy, key, now, cost)))
    }

    /// A key the store does not track (never hit, or already fresh) is left alone: a refund
    /// never creates state. A refund that leaves a key fresh drops it at once.
    #[inline]
    fn refund<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a> {
        self.refund_in_place(policy, key, now, cost);
        ready(Ok(()))
    }

    fn overdraw<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        ready(Ok(self.overdraw_in_place(policy, key, now, cost)))
    }

    /// One lock of the key's shard: the give-back and the take together.
    fn take<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send + use<'a> {
        let key = StoredKey::new(key, &policy.digest_key);
        let now = now.as_nanos();
        let grant = policy.table.take(key, now, need, want, give_back);
        ready(Ok(grant.into_grant(Duration::from_nanos(1), now)))
    }

    fn reset(
        &self,
        policy: &PreparedMemory,
        key: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        policy.table.reset(StoredKey::new(key, &policy.digest_key));
        ready(Ok(()))
    }
}
