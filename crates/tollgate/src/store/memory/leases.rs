//! [`LeaseTable`]: the live concurrency leases of one limit, per key, in shards each behind
//! its own lock, the keys counted in the store's [`Budget`]; and [`PreparedMemoryLeases`], a
//! concurrency limit prepared for a [`MemoryStore`] (its table), with the in-place acquire and
//! release.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smallvec::SmallVec;

use super::MemoryStore;
use super::budget::{Budget, BudgetMember};
use super::stored_key::{DigestKey, StoredKey};
use crate::clock::Timestamp;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};

/// The leases of one key: (id, expiry in nanoseconds), at most the limit's `max`.
type KeyLeases = SmallVec<[(LeaseId, u64); 4]>;

/// One shard: the keys holding leases.
struct LeaseShard {
    keys: hashbrown::HashMap<StoredKey, KeyLeases, foldhash::fast::RandomState>,
    /// Acquires since the last sweep; a sweep costs O(keys), so it waits for that many.
    acquires_since_sweep: usize,
    /// Picks which eighth of the keys the next eviction drops.
    evictions: u64,
    /// The latest time seen: what a sweep for another table counts as now.
    latest: u64,
}

/// The live leases of one concurrency limit.
///
/// A key is kept while it holds a lease, live or not yet swept: its expired leases go when it
/// acquires again, when its shard sweeps (once it has served twice as many acquires as it
/// holds keys) and when the budget needs room; a key whose last lease is released goes at
/// once. Each key holds at most `max` leases, and the keys count against the store's budget
/// like those of the rate tables: at the budget, a shard holding its share drops expired
/// leases, then a randomly chosen eighth of its keys (their slots free early, as an evicted
/// rate key starts afresh); a shard holding less takes room from another table first.
pub(crate) struct LeaseTable {
    limit: ConcurrencyLimit,
    ttl_nanos: u64,
    shards: Box<[Mutex<LeaseShard>]>,
    hasher: foldhash::fast::RandomState,
    budget: Arc<Budget>,
}

impl fmt::Debug for LeaseTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseTable")
            .field("limit", &self.limit)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// Bits 40 and up of the hash pick the shard, as in the rate tables.
const SHARD_SHIFT: u32 = 40;

impl LeaseTable {
    /// A table for `limit` in the budget's number of shards, counting its keys against
    /// `budget`. The caller registers it with the budget.
    pub(crate) fn new(limit: ConcurrencyLimit, budget: Arc<Budget>) -> Self {
        let ttl_nanos = u64::try_from(limit.lease_ttl().as_nanos()).unwrap_or(u64::MAX);
        Self {
            limit,
            ttl_nanos,
            shards: (0..budget.shards())
                .map(|_| {
                    Mutex::new(LeaseShard {
                        keys: hashbrown::HashMap::default(),
                        acquires_since_sweep: 0,
                        evictions: 0,
                        latest: 0,
                    })
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            budget,
        }
    }

    fn hash(&self, key: &StoredKey) -> u64 {
        self.hasher.hash_one((key.0[0], key.0[1]))
    }

    fn lock(&self, hash: u64) -> MutexGuard<'_, LeaseShard> {
        let index = (hash >> SHARD_SHIFT) as usize & (self.shards.len() - 1);
        // Nothing here panics while a shard is half-updated.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot of `key` for `lease` at `now` (nanoseconds), or tells it is full.
    pub(crate) fn acquire(&self, key: StoredKey, lease: LeaseId, now: u64) -> Acquisition {
        let hash = self.hash(&key);
        let mut shard = self.lock(hash);
        shard.latest = shard.latest.max(now);
        shard.acquires_since_sweep += 1;
        if shard.acquires_since_sweep > 2 * shard.keys.len().max(64) {
            self.sweep(&mut shard, now, false);
        }
        let expiry = now.saturating_add(self.ttl_nanos);
        if let Some(leases) = shard.keys.get_mut(&key) {
            leases.retain(|(_, expires)| *expires > now);
            let in_flight = u32::try_from(leases.len()).unwrap_or(u32::MAX);
            if in_flight >= self.limit.max() {
                let earliest = leases.iter().map(|(_, expires)| *expires).min();
                let retry = earliest.map_or(0, |expires| expires - now);
                return Acquisition::Full {
                    in_flight,
                    retry_after: std::time::Duration::from_nanos(retry),
                };
            }
            leases.push((lease, expiry));
            return Acquisition::Acquired {
                in_flight: in_flight + 1,
            };
        }
        self.make_room(&mut shard, now);
        shard
            .keys
            .insert(key, SmallVec::from_elem((lease, expiry), 1));
        self.budget.inserted();
        Acquisition::Acquired { in_flight: 1 }
    }

    /// Gives back the slot `lease` holds: whether it was live at `now`. An expired lease is
    /// dropped without freeing anything; an unknown one changes nothing.
    pub(crate) fn release(&self, key: StoredKey, lease: LeaseId, now: u64) -> bool {
        let hash = self.hash(&key);
        let mut shard = self.lock(hash);
        let Some(leases) = shard.keys.get_mut(&key) else {
            return false;
        };
        let Some(index) = leases.iter().position(|(id, _)| *id == lease) else {
            return false;
        };
        let (_, expires) = leases.swap_remove(index);
        if leases.is_empty() {
            shard.keys.remove(&key);
            self.budget.removed(1);
        }
        expires > now
    }

    /// Drops the keys whose leases have all expired at `now` and, when `evict` is set, a
    /// randomly chosen eighth of the others (at least one key when the shard holds any).
    /// Returns the keys dropped.
    fn sweep(&self, shard: &mut LeaseShard, now: u64, evict: bool) -> usize {
        let round = shard.evictions % 8;
        shard.evictions += u64::from(evict);
        let (mut expired, mut evicted) = (0usize, 0usize);
        shard.keys.retain(|key, leases| {
            leases.retain(|(_, expires)| *expires > now);
            if leases.is_empty() {
                expired += 1;
                false
            } else if evict && self.hash(key) >> 61 == round {
                evicted += 1;
                false
            } else {
                true
            }
        });
        if evict
            && evicted == 0
            && let Some(key) = shard.keys.keys().next().copied()
        {
            shard.keys.remove(&key);
            evicted = 1;
        }
        let counts = &self.budget;
        counts
            .expired
            .fetch_add(expired as u64, std::sync::atomic::Ordering::Relaxed);
        counts
            .evicted
            .fetch_add(evicted as u64, std::sync::atomic::Ordering::Relaxed);
        counts.removed(expired + evicted);
        shard.acquires_since_sweep = 0;
        expired + evicted
    }

    /// Frees room in a shard holding at least `share` keys: expired keys first, an eighth
    /// of its keys too if that freed less than an eighth of the share.
    fn shrink(&self, shard: &mut LeaseShard, now: u64, share: usize) -> usize {
        let freed = self.sweep(shard, now, false);
        if freed >= (share / 8).max(1) {
            return freed;
        }
        freed + self.sweep(shard, now, true)
    }

    /// Makes room for one more key when the budget is full, as the rate tables do.
    fn make_room(&self, shard: &mut LeaseShard, now: u64) {
        if !self.budget.is_full() {
            return;
        }
        let share = self.budget.shard_share();
        let len = shard.keys.len();
        if len >= share {
            self.shrink(shard, now, share);
        } else if self.budget.reclaim(share) == 0 {
            if len > 0 {
                self.shrink(shard, now, share);
            } else {
                self.budget.reclaim(0);
            }
        }
    }
}

impl BudgetMember for LeaseTable {
    fn banned(&self, _now: u64) -> usize {
        0
    }

    fn give_up(&self, shard: usize, share: usize) -> usize {
        let Ok(mut shard) = self.shards[shard & (self.shards.len() - 1)].try_lock() else {
            return 0;
        };
        if shard.keys.len() <= share {
            return 0;
        }
        let at = shard.latest;
        self.shrink(&mut shard, at, share)
    }
}

/// A table dropped (its limit gone) gives its keys back to the budget.
impl Drop for LeaseTable {
    fn drop(&mut self) {
        let keys = self
            .shards
            .iter_mut()
            .map(|shard| {
                shard
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .keys
                    .len()
            })
            .sum();
        self.budget.unregister(keys);
    }
}

/// A concurrency limit prepared for a [`MemoryStore`]: its table of leases.
///
/// ```
/// use tollgate::{ConcurrencyLimit, MemoryStore, PreparedMemoryLeases, Store};
///
/// let store = MemoryStore::new();
/// let uploads: PreparedMemoryLeases = store.prepare_leases("uploads", &ConcurrencyLimit::new(2)?);
/// assert!(format!("{uploads:?}").contains("max: 2"));
/// # Ok::<(), tollgate::ConcurrencyLimitError>(())
/// ```
#[derive(Clone)]
pub struct PreparedMemoryLeases {
    pub(super) table: Arc<LeaseTable>,
    pub(super) digest_key: DigestKey,
}

impl fmt::Debug for PreparedMemoryLeases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table.fmt(f)
    }
}

impl MemoryStore {
    /// Takes a concurrency slot in place: what [`Store::acquire`] does, without the future.
    pub(crate) fn acquire_in_place(
        &self,
        leases: &PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> Acquisition {
        let key = StoredKey::new(key, &leases.digest_key);
        leases.table.acquire(key, lease, now.as_nanos())
    }

    /// Releases a concurrency slot in place: what [`Store::release`] does, without the future.
    pub(crate) fn release_in_place(
        &self,
        leases: &PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> bool {
        let key = StoredKey::new(key, &leases.digest_key);
        leases.table.release(key, lease, now.as_nanos())
    }
}
