//! [`PreparedLimit`]: one declared limit compiled over a limiter: its policy (or how to pick
//! one per request), its key, cost and deduct-when, and its rate-limit fields.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use smallvec::SmallVec;
use tollgate::{Key, Limiter, Policy, PolicyHandle, Rates, Store, Strategy};

use crate::builder::limit::{CostFn, DecisionFn, DeductFn, DynamicFn};
use crate::headers::LimitHeaders;
use crate::key::{KeyExtractor, RequestKey};

/// A declared limit, ready to check requests.
pub(crate) struct PreparedLimit<S: Store> {
    /// The name headers and breaches show.
    pub(crate) name: Arc<str>,
    /// Its rate-limit fields, partly rendered.
    pub(crate) headers: LimitHeaders,
    pub(crate) policy: LimitPolicy<S>,
    pub(crate) key: Option<Arc<dyn KeyExtractor>>,
    pub(crate) per_method: bool,
    /// The methods it applies to; all if `None`.
    pub(crate) methods: Option<Arc<[http::Method]>>,
    /// Counts each route apart (the default limits).
    pub(crate) per_route: bool,
    pub(crate) cost: Option<CostFn>,
    pub(crate) deduct_when: Option<DeductFn>,
    pub(crate) on_decision: Option<DecisionFn>,
}

/// The policy of a limit.
pub(crate) enum LimitPolicy<S: Store> {
    /// One policy, prepared once.
    Fixed(PolicyHandle<S>),
    /// Chosen per request, by the notation `rates_for` returns, and kept as an inline policy
    /// of the limiter under `scope` (unique per limit).
    Dynamic {
        rates_for: DynamicFn,
        strategy: Strategy,
        burst: Option<u64>,
        scope: String,
    },
}

impl<S: Store> fmt::Debug for PreparedLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedLimit")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Room for most keys counted per method or route on the stack.
const ROUTE_KEY: usize = 128;

impl<S: Store> PreparedLimit<S> {
    /// Whether the limit applies to `method`; `GET` covers `HEAD`, which servers answer as
    /// a `GET` without its body.
    pub(crate) fn applies_to(&self, method: &http::Method) -> bool {
        self.methods.as_ref().is_none_or(|methods| {
            methods.contains(method)
                || (method == http::Method::HEAD && methods.contains(&http::Method::GET))
        })
    }

    /// The policy the request with head `parts` meets: `Ok(None)` when a dynamic limit leaves
    /// it unlimited, `Err` naming what the dynamic limit got wrong.
    pub(crate) fn handle_for(
        &self,
        parts: &Parts,
        limiter: &Limiter<S>,
    ) -> Result<Option<PolicyHandle<S>>, String> {
        let (rates_for, strategy, burst, scope) = match &self.policy {
            LimitPolicy::Fixed(handle) => return Ok(Some(handle.clone())),
            LimitPolicy::Dynamic {
                rates_for,
                strategy,
                burst,
                scope,
            } => (rates_for, strategy, burst, scope),
        };
        let Some(notation) = rates_for(parts) else {
            return Ok(None);
        };
        let wrong = |error: &dyn fmt::Display| format!("dynamic limit {:?}: {error}", self.name);
        let rates: Rates = notation.parse().map_err(|err| wrong(&err))?;
        let policy = Policy::from_parts(*strategy, rates, *burst).map_err(|err| wrong(&err))?;
        Ok(Some(limiter.inline(scope, &policy)))
    }

    /// The bytes `key` is counted under: `METHOD ` and `route\0` before its own, as the limit
    /// counts per method or per route.
    pub(crate) fn store_key(
        &self,
        method: &http::Method,
        route: &str,
        key: &RequestKey,
    ) -> SmallVec<[u8; ROUTE_KEY]> {
        let key = key.key_bytes();
        let mut bytes = SmallVec::new();
        if self.per_method {
            bytes.extend_from_slice(method.as_str().as_bytes());
            bytes.push(b' ');
        }
        if self.per_route {
            bytes.extend_from_slice(route.as_bytes());
            bytes.push(0);
        }
        bytes.extend_from_slice(&key);
        bytes
    }
}
