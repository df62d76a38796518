//! [`PreparedLimit`]: one declared limit compiled over a limiter: its policy (or how to pick
//! one per request), its key, cost, deduct-when and late cost, and its rate-limit fields.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use smallvec::SmallVec;
use tollgate::{
    Ban, ConcurrencyHandle, Key, Limiter, Policy, PolicyHandle, Rates, Store, Strategy,
};

use crate::builder::limit::{CostFn, DecisionFn, DeductFn, DynamicFn, LateCostFn};
use crate::headers::LimitHeaders;
use crate::key::{KeyExtractor, RequestKey};

/// A declared limit, ready to check requests.
pub(crate) struct PreparedLimit<S: Store> {
    /// The name breaches and logs show: its declared name, else where it was declared.
    pub(crate) name: Arc<str>,
    /// Its rate-limit fields, partly rendered.
    pub(crate) headers: LimitHeaders,
    /// Counted and reported, never denying.
    pub(crate) shadow: bool,
    pub(crate) policy: LimitPolicy<S>,
    pub(crate) key: Option<Arc<dyn KeyExtractor>>,
    pub(crate) per_method: bool,
    /// The methods it applies to; all if `None`.
    pub(crate) methods: Option<Arc<[http::Method]>>,
    /// Counts each route apart (the default limits).
    pub(crate) per_route: bool,
    pub(crate) cost: Option<CostFn>,
    pub(crate) deduct_when: Option<DeductFn>,
    /// The cost of the response, charged when it is ready.
    pub(crate) charge_after: Option<LateCostFn>,
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
        ban: Option<Ban>,
        /// Checked once on a fast rate; a fixed window's bound depends on the rates given.
        max_delay: Option<std::time::Duration>,
        scope: String,
    },
    /// A concurrency limit: a slot per request in flight, no charge.
    Concurrency(ConcurrencyHandle<S>),
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
    /// it unlimited (and for a concurrency limit, which charges no policy), `Err` naming what
    /// the dynamic limit got wrong.
    pub(crate) fn handle_for(
        &self,
        parts: &Parts,
        limiter: &Limiter<S>,
    ) -> Result<Option<PolicyHandle<S>>, String> {
        let (rates_for, strategy, burst, ban, max_delay, scope) = match &self.policy {
            LimitPolicy::Fixed(handle) => return Ok(Some(handle.clone())),
            LimitPolicy::Concurrency(_) => return Ok(None),
            LimitPolicy::Dynamic {
                rates_for,
                strategy,
                burst,
                ban,
                max_delay,
                scope,
            } => (rates_for, strategy, burst, ban, max_delay, scope),
        };
        let Some(notation) = rates_for(parts) else {
            return Ok(None);
        };
        let wrong = |error: &dyn fmt::Display| format!("dynamic limit {:?}: {error}", self.name);
        let rates: Rates = notation.parse().map_err(|err| wrong(&err))?;
        let policy = Policy::from_parts(*strategy, rates, *burst)
            .and_then(|policy| match *max_delay {
                Some(max_delay) => policy.with_max_delay(max_delay),
                None => Ok(policy),
            })
            .map_err(|err| wrong(&err))?;
        let policy = match ban {
            Some(ban) => policy.with_ban(*ban),
            None => policy,
        };
        Ok(Some(limiter.inline(scope, &policy)))
    }

    /// What a request this limit charged `charged` up front costs in the end, once answered
    /// with `response` (`None` if the service failed): nothing if deduct-when says it does
    /// not count (or the service failed), else the late cost of the response if there is one,
    /// else what it was charged.
    pub(crate) fn settled_cost(
        &self,
        response: Option<&http::response::Parts>,
        charged: u64,
    ) -> u64 {
        if let Some(counts) = &self.deduct_when
            && !response.is_some_and(|response| counts(response))
        {
            return 0;
        }
        match (&self.charge_after, response) {
            (Some(cost), Some(response)) => cost(response),
            _ => charged,
        }
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
