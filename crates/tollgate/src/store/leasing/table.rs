//! [`LeaseTable`]: one leased policy's entries, in shards behind their own locks, within a
//! cap of keys, with the give-backs that evictions and failed calls leave for the sweep.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::entry::{Counts, LeaseEntry};
use crate::store::grant::GiveBack;

/// Shards per table.
const SHARDS: usize = 16;

/// One shard: the entries of its keys.
type Shard = HashMap<Box<[u8]>, LeaseEntry>;

/// The entries of one leased policy.
#[derive(Debug)]
pub(crate) struct LeaseTable {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Keys one shard holds at most.
    per_shard: usize,
    /// Give-backs owed and not sent yet (evicted leases, failed calls), at most
    /// `per_shard * SHARDS`.
    owed: Mutex<Vec<(Box<[u8]>, GiveBack)>>,
    /// Whether unspent units go back to the store (not for a sliding window log).
    pub(crate) gives_back: bool,
}

impl LeaseTable {
    /// A table of at most `max_keys` keys (rounded up to a multiple of the shards).
    pub(crate) fn new(max_keys: usize, gives_back: bool) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            owed: Mutex::new(Vec::new()),
            gives_back,
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let i = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on `key`'s entry, made at `now` if there is none; a full shard first
    /// evicts one entry (an idle one if it finds one), whose unspent units are owed back.
    pub(crate) fn with<T>(
        &self,
        key: &[u8],
        now: u64,
        counts: &mut Counts,
        f: impl FnOnce(&mut LeaseEntry, &mut Counts) -> T,
    ) -> T {
        let mut shard = self.shard(key);
        if let Some(entry) = shard.get_mut(key) {
            return f(entry, counts);
        }
        if shard.len() >= self.per_shard {
            let victim = shard
                .iter()
                .find(|(_, entry)| entry.left == 0)
                .or_else(|| shard.iter().next())
                .map(|(key, _)| key.clone());
            if let Some(mut evicted) = victim.and_then(|victim| shard.remove_entry(&victim))
                && evicted.1.left > 0
            {
                counts.leases_evicted += 1;
                let give_back = evicted.1.surrender(self.gives_back, counts);
                self.owe(evicted.0, give_back, counts);
            }
        }
        let entry = shard
            .entry(key.into())
            .or_insert_with(|| LeaseEntry::new(now));
        f(entry, counts)
    }

    /// Forgets `key`'s entry (a reset): its lease and its denial.
    pub(crate) fn forget(&self, key: &[u8]) {
        self.shard(key).remove(key);
    }

    /// Records a give-back to send later; dropped (and counted) when the queue is full.
    pub(crate) fn owe(&self, key: Box<[u8]>, give_back: GiveBack, counts: &mut Counts) {
        if give_back.units() == 0 {
            return;
        }
        let mut owed = self.owed.lock().unwrap_or_else(PoisonError::into_inner);
        if owed.len() < self.per_shard * SHARDS {
            owed.push((key, give_back));
        } else {
            counts.units_dropped += give_back.units();
        }
    }

    /// Ends the leases that expired by `now`, forgets the keys idle for `idle` ns, and
    /// returns every give-back owed.
    pub(crate) fn sweep(
        &self,
        now: u64,
        idle: u64,
        counts: &mut Counts,
    ) -> Vec<(Box<[u8]>, GiveBack)> {
        let mut due =
            std::mem::take(&mut *self.owed.lock().unwrap_or_else(PoisonError::into_inner));
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.retain(|key, entry| {
                let give_back = entry.expire(now, self.gives_back, counts);
                if give_back.units() > 0 {
                    due.push((key.clone(), give_back));
                }
                !entry.idle(now, idle)
            });
        }
        due
    }
}
