//! The registry of inline policies: policies not named in advance, prepared on first use and
//! found again without allocating.

use std::hash::{Hash, Hasher};
use std::sync::{PoisonError, RwLock};

use foldhash::fast::RandomState;
use hashbrown::{Equivalent, HashMap};

use crate::limiter::error::Error;
use crate::limiter::handle::PolicyHandle;
use crate::policy::Policy;
use crate::store::Store;

/// The most distinct inline policies a [`crate::Limiter`] keeps; more are refused with
/// [`Error::TooManyInlinePolicies`], so requests choosing policies cannot grow memory without
/// bound.
pub const MAX_INLINE_POLICIES: usize = 1024;

/// Inline policies by scope and policy, shared by every clone of a limiter (so a server
/// that rebuilds its configuration keeps their counts).
pub(crate) struct InlinePolicies<S: Store> {
    handles: RwLock<HashMap<InlineId, PolicyHandle<S>, RandomState>>,
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
    ) -> Result<PolicyHandle<S>, Error> {
        let lookup = InlineLookup { scope, policy };
        if let Some(handle) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&lookup)
        {
            return Ok(handle.clone());
        }
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = handles.get(&lookup) {
            return Ok(handle.clone());
        }
        if handles.len() >= MAX_INLINE_POLICIES {
            return Err(Error::TooManyInlinePolicies {
                max: MAX_INLINE_POLICIES,
            });
        }
        let handle = prepare(&format!("{scope}|{policy}"));
        handles.insert(
            InlineId {
                scope: scope.into(),
                policy: policy.clone(),
            },
            handle.clone(),
        );
        Ok(handle)
    }

    /// How many inline policies are kept.
    pub(crate) fn len(&self) -> usize {
        self.handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
