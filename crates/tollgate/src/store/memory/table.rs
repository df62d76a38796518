//! [`Table`]: the states of one policy, in shards each behind its own lock.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;

use super::budget::{Budget, BudgetMember};
use super::stored_key::StoredKey;
use crate::store::grant::GiveBack;
use crate::strategy::{
    BanRule, BanState, RateState, TickDecision, TickGrant, TickRate, apply, apply_banned, overdraw,
    overdraw_banned, refund, take,
};

/// The states of one key, one per rate: inline for the common single rate, boxed for more;
/// and, for a policy with a ban, the key's [`BanState`] beside them ([`Banned`]).
///
/// The operations take the policy's ban rule, which only [`Banned`] slots read: a table of
/// slots without a ban does exactly what it did before bans existed.
pub(crate) trait Slots: Send + 'static {
    /// The strategy's state for one rate.
    type State: RateState;

    /// Whether these slots keep a ban state.
    const BANS: bool = false;

    /// Fresh states for `rates` rates.
    fn fresh(rates: usize) -> Self;

    fn states(&self) -> &[Self::State];

    fn states_mut(&mut self) -> &mut [Self::State];

    /// Applies a hit; see [`apply`]. Inlined into the table's one hot call site.
    #[inline(always)]
    fn hit(
        &mut self,
        limits: &[TickRate],
        _: Option<&BanRule>,
        now: u64,
        cost: u64,
    ) -> TickDecision {
        apply(self.states_mut(), limits, now, cost)
    }

    /// Applies a late charge; see [`overdraw`].
    fn overdraw(&mut self, limits: &[TickRate], now: u64, cost: u64) -> TickDecision {
        overdraw(self.states_mut(), limits, now, cost)
    }

    /// Charges a quota lease; see [`take`]. Slots with a ban charge exactly `need` by a hit
    /// (see [`crate::Store::take`]).
    fn take(
        &mut self,
        limits: &[TickRate],
        rule: Option<&BanRule>,
        now: u64,
        need: u64,
        want: u64,
    ) -> TickGrant {
        if Self::BANS {
            let need = need.max(1);
            let decision = self.hit(limits, rule, now, need);
            let granted = if decision.allowed { need } else { 0 };
            return TickGrant {
                granted,
                decision,
                horizon: Some(0),
            };
        }
        take(self.states_mut(), limits, now, need, want)
    }

    /// Whether new slots that took a hit with `outcome` hold anything worth keeping.
    #[inline]
    fn worth_keeping(&self, outcome: &TickDecision, cost: u64) -> bool {
        outcome.allowed && cost > 0
    }

    /// Ticks until what the slots keep beside the rates' states is fresh.
    fn extra_reset_after(&self, _: Option<&BanRule>, _now: u64) -> u64 {
        0
    }

    /// Whether the key is banned at `now`.
    fn banned(&self, _now: u64) -> bool {
        false
    }
}

impl<S: RateState> Slots for [S; 1] {
    type State = S;

    fn fresh(_: usize) -> Self {
        [S::default()]
    }

    fn states(&self) -> &[S] {
        self
    }

    fn states_mut(&mut self) -> &mut [S] {
        self
    }
}

impl<S: RateState> Slots for Box<[S]> {
    type State = S;

    fn fresh(rates: usize) -> Self {
        vec![S::default(); rates].into_boxed_slice()
    }

    fn states(&self) -> &[S] {
        self
    }

    fn states_mut(&mut self) -> &mut [S] {
        self
    }
}

/// The slots `C` of a policy with a ban, and the key's ban state.
pub(crate) struct Banned<C> {
    rates: C,
    ban: BanState,
}

impl<C: Slots> Slots for Banned<C> {
    type State = C::State;

    const BANS: bool = true;

    fn fresh(rates: usize) -> Self {
        Self {
            rates: C::fresh(rates),
            ban: BanState::default(),
        }
    }

    fn states(&self) -> &[C::State] {
        self.rates.states()
    }

    fn states_mut(&mut self) -> &mut [C::State] {
        self.rates.states_mut()
    }

    fn hit(
        &mut self,
        limits: &[TickRate],
        rule: Option<&BanRule>,
        now: u64,
        cost: u64,
    ) -> TickDecision {
        match rule {
            Some(rule) => apply_banned(
                &mut self.ban,
                rule,
                self.rates.states_mut(),
                limits,
                now,
                cost,
            ),
            None => apply(self.rates.states_mut(), limits, now, cost),
        }
    }

    fn overdraw(&mut self, limits: &[TickRate], now: u64, cost: u64) -> TickDecision {
        overdraw_banned(&self.ban, self.rates.states_mut(), limits, now, cost)
    }

    fn worth_keeping(&self, outcome: &TickDecision, cost: u64) -> bool {
        self.rates.worth_keeping(outcome, cost) || self.ban != BanState::default()
    }

    fn extra_reset_after(&self, rule: Option<&BanRule>, now: u64) -> u64 {
        rule.map_or(0, |rule| self.ban.reset_after(rule, now))
    }

    fn banned(&self, now: u64) -> bool {
        self.ban.banned_for(now) > 0
    }
}

/// A table of one policy's states, whatever its strategy: what a prepared memory policy holds.
pub(crate) trait PolicyTable: BudgetMember + fmt::Debug {
    /// Applies a hit; see [`apply`] (and [`apply_banned`] for a policy with a ban).
    fn hit(&self, key: StoredKey, now: u64, cost: u64) -> TickDecision;

    /// Applies a late charge; see [`overdraw`].
    fn overdraw(&self, key: StoredKey, now: u64, cost: u64) -> TickDecision;

    /// Gives units back to a key; see [`refund`]. A key not tracked is left untracked.
    fn refund(&self, key: StoredKey, now: u64, cost: u64);

    /// Gives units back (if `now` is before their deadline), then charges a quota lease
    /// (see [`take`]); a `need` of 0 only gives back, and reports as a peek.
    fn take(
        &self,
        key: StoredKey,
        now: u64,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> TickGrant;

    /// Forgets a key.
    fn reset(&self, key: StoredKey);
}

/// A lock-protected shard, alone on its cache lines so that shards do not slow each other.
#[repr(align(128))]
struct Padded<T>(T);

/// One shard: a hash table of `(key, states)`.
struct Shard<C> {
    entries: HashTable<(StoredKey, C)>,
    /// Hits since the last sweep; a sweep costs O(capacity), so it waits for that many hits.
    hits_since_sweep: usize,
    /// Picks which eighth of the keys the next eviction drops.
    evictions: u64,
    /// The latest time a key was inserted at: what another table sweeping this shard to
    /// take room from it counts as now (freshness only grows with time, so an earlier time
    /// never drops a state that still matters).
    inserted_at: u64,
}

/// The states of one policy: `shards` hash tables, each behind a mutex, chosen by bits of
/// the key's hash that the tables themselves do not use.
///
/// Idle keys are dropped by sweeps that ride on hits: a shard sweeps (drops every state that
/// has become fresh) when it has served twice as many hits as it has slots, and then sweeps one
/// other shard in turn; it also sweeps before it grows. The keys count against the store's
/// [`Budget`]: an insert into a full budget first makes room (see [`Table::make_room`]).
pub(crate) struct Table<C> {
    limits: Box<[TickRate]>,
    /// The policy's ban, read by [`Banned`] slots only.
    ban: Option<BanRule>,
    shards: Box<[Padded<Mutex<Shard<C>>>]>,
    hasher: foldhash::fast::RandomState,
    budget: Arc<Budget>,
    /// The shard that the next sweep also sweeps, so that traffic anywhere in the table
    /// eventually sweeps shards that get no hits of their own.
    sweep_cursor: AtomicUsize,
}

impl<C> fmt::Debug for Table<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("limits", &self.limits)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// Bits 40 and up of the hash pick the shard; hashbrown uses the low bits for the bucket
/// and the top 7 for its tags.
const SHARD_SHIFT: u32 = 40;

impl<C: Slots> Table<C> {
    /// A table for `limits` in the budget's number of shards (a power of two, at most
    /// 1024), counting its keys against `budget`. The caller registers it with the budget.
    pub(crate) fn new(limits: Box<[TickRate]>, ban: Option<BanRule>, budget: Arc<Budget>) -> Self {
        let shards = budget.shards();
        debug_assert!(shards.is_power_of_two() && shards <= 1024);
        Self {
            limits,
            ban,
            shards: (0..shards)
                .map(|_| {
                    Padded(Mutex::new(Shard {
                        entries: HashTable::new(),
                        hits_since_sweep: 0,
                        evictions: 0,
                        inserted_at: 0,
                    }))
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            budget,
            sweep_cursor: AtomicUsize::new(0),
        }
    }

    fn hash(&self, key: &StoredKey) -> u64 {
        self.hasher.hash_one((key.0[0], key.0[1]))
    }

    fn lock(&self, hash: u64) -> MutexGuard<'_, Shard<C>> {
        let index = (hash >> SHARD_SHIFT) as usize & (self.shards.len() - 1);
        // A panic cannot leave a shard half-updated (apply and the table never panic), so a
        // poisoned lock is still consistent.
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a key's states are all indistinguishable from fresh at `now`, so that it may
    /// be forgotten.
    fn is_fresh(&self, slots: &C, now: u64) -> bool {
        !slots
            .states()
            .iter()
            .zip(&*self.limits)
            .any(|(state, limit)| state.reset_after(limit, now) > 0)
            && slots.extra_reset_after(self.ban.as_ref(), now) == 0
    }

    /// Inserts `slots` for `key` (of hash `hash`) into the locked `shard`, making room first.
    fn insert(&self, shard: &mut Shard<C>, hash: u64, key: StoredKey, slots: C, now: u64) {
        self.make_room(shard, now);
        shard
            .entries
            .insert_unique(hash, (key, slots), |(k, _)| self.hash(k));
        shard.inserted_at = shard.inserted_at.max(now);
        self.budget.inserted();
    }

    /// Applies a hit to a key the locked `shard` does not track: to fresh slots, kept if
    /// they hold anything. Out of line, so that the hit of a tracked key is one call site.
    #[cold]
    #[inline(never)]
    fn hit_untracked(
        &self,
        shard: &mut Shard<C>,
        hash: u64,
        key: StoredKey,
        now: u64,
        cost: u64,
    ) -> TickDecision {
        let mut slots = C::fresh(self.limits.len());
        let outcome = slots.hit(&self.limits, self.ban.as_ref(), now, cost);
        if slots.worth_keeping(&outcome, cost) {
            self.insert(shard, hash, key, slots, now);
        }
        outcome
    }

    /// Drops the states that are fresh at `now` and, when `evict` is set, a randomly chosen
    /// eighth of the others (which eighth turns with each eviction; at least one key when
    /// the shard holds any). Returns the keys dropped.
    fn sweep(&self, shard: &mut Shard<C>, now: u64, evict: bool) -> usize {
        let round = shard.evictions % 8;
        shard.evictions += u64::from(evict);
        let (mut expired, mut evicted) = (0usize, 0usize);
        shard.entries.retain(|(key, slots)| {
            if self.is_fresh(slots, now) {
                expired += 1;
                false
            } else if evict && self.hash(key) >> 61 == round {
                evicted += 1;
                false
            } else {
                true
            }
        });
        if evict && evicted == 0 && !shard.entries.is_empty() {
            // A small shard may hold no key of this eighth: drop the first in the table's
            // order (which the secret hash seed decides), so that an eviction always frees.
            let mut first = true;
            shard.entries.retain(|_| !std::mem::take(&mut first));
            evicted = 1;
        }
        self.budget
            .expired
            .fetch_add(expired as u64, Ordering::Relaxed);
        self.budget
            .evicted
            .fetch_add(evicted as u64, Ordering::Relaxed);
        self.budget.removed(expired + evicted);
        shard.hits_since_sweep = 0;
        let wanted = (shard.entries.len() * 2).max(16);
        if shard.entries.capacity() > wanted * 2 {
            shard.entries.shrink_to(wanted, |(key, _)| self.hash(key));
        }
        expired + evicted
    }

    /// Frees room in a shard that holds at least `share` keys: drops its fresh states and,
    /// if that freed less than an eighth of the share, evicts an eighth of its keys too (so
    /// that the next time the budget is full is some inserts away). Returns the keys freed.
    fn shrink(&self, shard: &mut Shard<C>, now: u64, share: usize) -> usize {
        let freed = self.sweep(shard, now, false);
        if freed >= (share / 8).max(1) {
            return freed;
        }
        freed + self.sweep(shard, now, true)
    }

    /// Sweeps the locked shard, then the next shard in turn if its lock is free.
    fn sweep_with_neighbour(&self, shard: &mut Shard<C>, now: u64) {
        self.sweep(shard, now, false);
        let next = self.sweep_cursor.fetch_add(1, Ordering::Relaxed) & (self.shards.len() - 1);
        // try_lock: never wait for another shard while holding one (it may be ours, too).
        if let Ok(mut other) = self.shards[next].0.try_lock() {
            self.sweep(&mut other, now, false);
        }
    }

    /// Makes room for one more key. When the store's budget is full, a shard holding at
    /// least its share pays itself ([`Table::shrink`]); one holding less takes room from
    /// another table's shard holding more than its share ([`Budget::reclaim`]), or pays
    /// itself if none can give any; an empty shard that cannot pay takes room from any
    /// shard holding keys. A shard about to grow sweeps first when enough hits have passed
    /// to pay for it.
    fn make_room(&self, shard: &mut Shard<C>, now: u64) {
        let len = shard.entries.len();
        if self.budget.is_full() {
            let share = self.budget.shard_share();
            if len >= share {
                self.shrink(shard, now, share);
            } else if self.budget.reclaim(share) == 0 {
                if len > 0 {
                    self.shrink(shard, now, share);
                } else {
                    // Every shard at or under its share, as when many policies hold a key or
                    // two each: inserting here without freeing would pass the budget by a
                    // key for every empty shard of every policy.
                    self.budget.reclaim(0);
                }
            }
        } else if len == shard.entries.capacity() && shard.hits_since_sweep >= len / 2 {
            self.sweep(shard, now, false);
        }
    }
}

impl<C: Slots> PolicyTable for Table<C> {
    fn hit(&self, key: StoredKey, now: u64, cost: u64) -> TickDecision {
        let hash = self.hash(&key);
        let mut shard = self.lock(hash);
        shard.hits_since_sweep += 1;
        if shard.hits_since_sweep > 2 * shard.entries.capacity().max(64) {
            self.sweep_with_neighbour(&mut shard, now);
        }
        if let Some((_, slots)) = shard.entries.find_mut(hash, |(k, _)| *k == key) {
            return slots.hit(&self.limits, self.ban.as_ref(), now, cost);
        }
        self.hit_untracked(&mut shard, hash, key, now, cost)
    }

    fn overdraw(&self, key: StoredKey, now: u64, cost: u64) -> TickDecision {
        let hash = self.hash(&key);
        let mut shard = self.lock(hash);
        if let Some((_, slots)) = shard.entries.find_mut(hash, |(k, _)| *k == key) {
            return slots.overdraw(&self.limits, now, cost);
        }
        let mut slots = C::fresh(self.limits.len());
        let outcome = slots.overdraw(&self.limits, now, cost);
        if !self.is_fresh(&slots, now) {
            self.insert(&mut shard, hash, key, slots, now);
        }
        outcome
    }

    fn refund(&self, key: StoredKey, now: u64, cost: u64) {
        if cost == 0 {
            return;
        }
        let hash = self.hash(&key);
        let mut shard = self.lock(hash);
        let Ok(mut entry) = shard.entries.find_entry(hash, |(k, _)| *k == key) else {
            return;
        };
        let slots = &mut entry.get_mut().1;
        refund(slots.states_mut(), &self.limits, now, cost);
        // A refund that leaves the key fresh (the usual deduct-when case: its only hit given
        // back) drops it at once rather than at the next sweep.
        if self.is_fresh(slots, now) {
            entry.remove();
            self.budget.expired.fetch_add(1, Ordering::Relaxed);
            self.budget.removed(1);
        }
    }

    fn take(
        &self,
        key: StoredKey,
        now: u64,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> TickGrant {
        let hash = self.hash(&key);
        let mut shard = self.lock(hash);
        if let Some((_, slots)) = shard.entries.find_mut(hash, |(k, _)| *k == key) {
            if give_back.allowed_at(now) {
                refund(slots.states_mut(), &self.limits, now, give_back.units());
            }
            if need == 0 {
                return TickGrant {
                    granted: 0,
                    decision: slots.hit(&self.limits, self.ban.as_ref(), now, 0),
                    horizon: None,
                };
            }
            return slots.take(&self.limits, self.ban.as_ref(), now, need, want);
        }
        if need == 0 {
            return TickGrant {
                granted: 0,
                decision: C::fresh(self.limits.len()).hit(&self.limits, self.ban.as_ref(), now, 0),
                horizon: None,
            };
        }
        let mut slots = C::fresh(self.limits.len());
        let grant = slots.take(&self.limits, self.ban.as_ref(), now, need, want);
        if slots.worth_keeping(&grant.decision, grant.granted) {
            self.insert(&mut shard, hash, key, slots, now);
        }
        grant
    }

    fn reset(&self, key: StoredKey) {
        let hash = self.hash(&key);
        let mut shard = self.lock(hash);
        if let Ok(entry) = shard.entries.find_entry(hash, |(k, _)| *k == key) {
            entry.remove();
            self.budget.removed(1);
        }
    }
}

impl<C: Slots> BudgetMember for Table<C> {
    fn banned(&self, now: u64) -> usize {
        if !C::BANS {
            return 0;
        }
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
                shard
                    .entries
                    .iter()
                    .filter(|(_, slots)| slots.banned(now))
                    .count()
            })
            .sum()
    }

    fn give_up(&self, shard: usize, share: usize) -> usize {
        let Ok(mut shard) = self.shards[shard & (self.shards.len() - 1)].0.try_lock() else {
            return 0;
        };
        if shard.entries.len() <= share {
            return 0;
        }
        let at = shard.inserted_at;
        self.shrink(&mut shard, at, share)
    }
}

/// A table dropped (its policy gone) gives its keys back to the budget.
impl<C> Drop for Table<C> {
    fn drop(&mut self) {
        let keys = self
            .shards
            .iter_mut()
            .map(|shard| {
                shard
                    .0
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum();
        self.budget.unregister(keys);
    }
}
