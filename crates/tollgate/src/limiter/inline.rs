//! The registry of inline policies: policies not named in advance, prepared on first use,
//! found again without allocating, and bounded by evicting one not used lately.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use foldhash::fast::RandomState;
use hashbrown::{Equivalent, HashMap};

use crate::limiter::handle::PolicyHandle;
use crate::policy::Policy;
use crate::store::Store;

/// The most distinct inline policies a [`crate::Limiter`] keeps. Preparing one more evicts a
/// policy that has not been used since the last eviction looked at it (a second-chance
/// sweep): busy policies stay, and requests choosing ever new policies only evict each other.
/// An evicted policy's counts start afresh if it comes back; evictions are counted
/// ([`crate::Limiter::evicted_inline_policies`]).
///
/// ```
/// use tollgate::{Limiter, MemoryStore, Policy, Rate, MAX_INLINE_POLICIES};
///
/// let limiter = Limiter::new(MemoryStore::new());
/// let plan = |n: usize| Policy::fixed_window(Rate::per_hour(n as u32 + 1).into());
/// for n in 0..MAX_INLINE_POLICIES {
///     limiter.inline("plans", &plan(n));
/// }
/// assert_eq!(limiter.evicted_inline_policies(), 0); // all kept
/// limiter.inline("plans", &plan(MAX_INLINE_POLICIES));
/// assert_eq!(limiter.evicted_inline_policies(), 1); // one more evicts one
/// ```
pub const MAX_INLINE_POLICIES: usize = 1024;

/// Inline policies by scope and policy, shared by every clone of a limiter (so a server
/// that rebuilds its configuration keeps their counts).
pub(crate) struct InlinePolicies<S: Store> {
    handles: RwLock<HashMap<InlineId, Kept<S>, RandomState>>,
    evicted: AtomicU64,
}

/// A kept policy, and whether it was used since the last eviction sweep passed it.
struct Kept<S: Store> {
    handle: PolicyHandle<S>,
    used: AtomicBool,
}

/// What an inline policy is registered under.
#[derive(PartialEq, Eq, Hash)]
struct InlineId {
    scope: Box<str>,
    policy: Policy,
}

/// An [`InlineId`] borrowed, to look one up without allocating. It hashes as the id does
/// (the derived `Hash` of a struct hashes its fields in order, and `Box<str>` as `str`).
struct InlineLookup<'a> {
    scope: &'a str,
    policy: &'a Policy,
}

impl Hash for InlineLookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.scope.hash(state);
        self.policy.hash(state);
    }
}

impl Equivalent<InlineId> for InlineLookup<'_> {
    fn equivalent(&self, id: &InlineId) -> bool {
        *self.scope == *id.scope && *self.policy == id.policy
    }
}

impl<S: Store> Default for InlinePolicies<S> {
    fn default() -> Self {
        Self {
            handles: RwLock::default(),
            evicted: AtomicU64::new(0),
        }
    }
}

impl<S: Store> InlinePolicies<S> {
    /// The handle of `policy` in `scope`, made by `prepare` (given its name,
    /// `{scope}|{policy}`) on first use.
    pub(crate) fn get_or_prepare(
        &self,
        scope: &str,
        policy: &Policy,
        prepare: impl FnOnce(&str) -> PolicyHandle<S>,
    ) -> PolicyHandle<S> {
        let lookup = InlineLookup { scope, policy };
        if let Some(kept) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&lookup)
        {
            return kept.touch();
        }
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = handles.get(&lookup) {
            return kept.touch();
        }
        if handles.len() >= MAX_INLINE_POLICIES {
            evict_one(&mut handles);
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        let handle = prepare(&format!("{scope}|{policy}"));
        handles.insert(
            InlineId {
                scope: scope.into(),
                policy: policy.clone(),
            },
            Kept {
                handle: handle.clone(),
                used: AtomicBool::new(true),
            },
        );
        handle
    }

    /// How many inline policies are kept.
    pub(crate) fn len(&self) -> usize {
        self.handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many were evicted to make room.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

impl<S: Store> Kept<S> {
    /// The handle, marked as used (a write only when it was not already).
    fn touch(&self) -> PolicyHandle<S> {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        self.handle.clone()
    }
}

/// Removes one policy not used since a sweep last passed it: every used one passed over
/// loses its mark, so a second sweep always finds one.
fn evict_one<S: Store>(handles: &mut HashMap<InlineId, Kept<S>, RandomState>) {
    for _ in 0..2 {
        let mut evicted = false;
        handles.retain(|_, kept| {
            evicted || kept.used.swap(false, Ordering::Relaxed) || {
                evicted = true;
                false
            }
        });
        if evicted {
            return;
        }
    }
}
