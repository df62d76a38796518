//! [`Budget`]: the keys that every table of one memory store may track together, and how a
//! table that needs room gets it from the others.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, Weak};

/// A table that keeps keys within a [`Budget`]: the tables of rate policies, and those of
/// concurrency leases.
pub(crate) trait BudgetMember: Send + Sync {
    /// How many keys are banned at `now` (0 for a table that keeps no bans).
    fn banned(&self, now: u64) -> usize;

    /// Frees room in shard `shard` (modulo the shard count) if it holds more than `share`
    /// keys and its lock is free: drops what is stale, then evicts if that freed too little
    /// (at least one key). Returns the keys freed.
    fn give_up(&self, shard: usize, share: usize) -> usize;
}

/// A budget of keys shared by the tables (one per policy) of one memory store.
///
/// Every table counts the keys it inserts and removes in `used`; the hit of a key already
/// tracked touches nothing here. A table that inserts while the budget is full makes room
/// first: in its own shard if that shard holds at least its share (the budget split evenly
/// over every shard of every live table), otherwise in a shard of another table that holds
/// more than its share ([`Budget::reclaim`]). So a flood of keys on one policy evicts that
/// policy's keys, and a policy with few keys keeps them. An empty shard that finds no shard
/// above its share takes room from any shard that holds keys.
///
/// `used` may pass `max` by a few keys: one per insert that races with another at the
/// budget, and one per insert that found no shard to take room from (every shard holding
/// keys busy at that moment, and its own shard empty).
pub(crate) struct Budget {
    max: usize,
    /// Shards per table, the same for every table of the store.
    shards: usize,
    /// Keys tracked now, over every table.
    used: AtomicUsize,
    /// Live tables.
    tables: AtomicUsize,
    /// Keys dropped because their state had become fresh.
    pub(crate) expired: AtomicU64,
    /// Keys dropped to keep within the budget while their state still mattered.
    pub(crate) evicted: AtomicU64,
    /// Every table, to take room from; dead ones are pruned as tables are registered.
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    tables: Vec<Weak<dyn BudgetMember>>,
    /// Which table and shard the next reclaim tries first, so that the burden turns.
    turn: usize,
}

impl Budget {
    /// A budget of `max` keys (at least 1) over tables of `shards` shards each.
    pub(crate) fn new(max: usize, shards: usize) -> Self {
        Self {
            max: max.max(1),
            shards,
            used: AtomicUsize::new(0),
            tables: AtomicUsize::new(0),
            expired: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            registry: Mutex::default(),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn shards(&self) -> usize {
        self.shards
    }

    /// Keys tracked now, over every table.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether an insert must make room first.
    pub(crate) fn is_full(&self) -> bool {
        self.used() >= self.max
    }

    /// Counts a key inserted.
    pub(crate) fn inserted(&self) {
        self.used.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `keys` keys removed.
    pub(crate) fn removed(&self, keys: usize) {
        if keys > 0 {
            self.used.fetch_sub(keys, Ordering::Relaxed);
        }
    }

    /// The keys one shard may hold before it pays for its own inserts: the budget split
    /// evenly over every shard of every live table (at least 1).
    pub(crate) fn shard_share(&self) -> usize {
        let shards = self.tables.load(Ordering::Relaxed).max(1) * self.shards;
        (self.max / shards).max(1)
    }

    /// Adds `table` to those that share the budget.
    pub(crate) fn register(&self, table: Weak<dyn BudgetMember>) {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry.tables.retain(|table| table.strong_count() > 0);
        registry.tables.push(table);
        self.tables.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a table gone with the `keys` it held.
    pub(crate) fn unregister(&self, keys: usize) {
        self.tables.fetch_sub(1, Ordering::Relaxed);
        self.removed(keys);
    }

    /// The sum of `count` over every live table.
    pub(crate) fn sum(&self, count: impl Fn(&dyn BudgetMember) -> usize) -> usize {
        let tables: Vec<_> = {
            let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            registry.tables.iter().filter_map(Weak::upgrade).collect()
        };
        tables.iter().map(|table| count(&**table)).sum()
    }

    /// Frees room in some table's shard holding more than `share` keys (its share, or 0 for
    /// any shard holding keys): tries one shard of each table in turn (twice round, each
    /// time another shard), without waiting for a lock. Returns the keys freed (0 when no
    /// shard could give any).
    ///
    /// Called by a table holding one of its own shard locks: other shards are only ever
    /// tried, never waited for, so two tables reclaiming at once cannot deadlock.
    pub(crate) fn reclaim(&self, share: usize) -> usize {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let count = registry.tables.len();
        for _ in 0..2 * count {
            let turn = registry.turn;
            registry.turn = turn.wrapping_add(1);
            let Some(table) = registry.tables[turn % count].upgrade() else {
                continue;
            };
            let freed = table.give_up(turn / count, share);
            if freed > 0 {
                return freed;
            }
        }
        0
    }
}
