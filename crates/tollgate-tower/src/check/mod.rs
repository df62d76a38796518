//! [`HttpLimiter`]: the compiled limits, and the check each request goes through: which
//! limits it meets, its keys and costs, one [`Admission`] over them, and the response that
//! renders the verdict.
//!
//! - `prepared.rs`: one compiled limit: the policy a request meets under it, and the key it
//!   is counted under.

mod prepared;
mod waiting;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use foldhash::fast::RandomState;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use smallvec::SmallVec;
use std::collections::HashMap;
use tollgate::{
    Admission, Charge, ChargeResult, InFlight, Limiter, MemoryStore, Settlement, SlotResult, Store,
};

use crate::client_ip::{ClientIp, TrustedProxies};
use crate::headers::{Described, HeaderPolicies, HeaderStyle};
use crate::key::{KeyExtractor, RequestKey};
use crate::middleware::SlotRelease;
use crate::respond::{self, Breach};
pub(crate) use prepared::{LimitPolicy, PreparedLimit};
pub(crate) use waiting::{DEFAULT_MAX_WAITING, WaitingPermit, WaitingRoom};

pub(crate) type Predicate = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;
pub(crate) type BreachFn = Arc<dyn Fn(&Parts, &Breach) + Send + Sync>;
pub(crate) type RejectionFn = Arc<dyn Fn(&Breach) -> Response<Body> + Send + Sync>;
pub(crate) type PeerFn = Arc<dyn Fn(&http::Extensions) -> Option<std::net::IpAddr> + Send + Sync>;

/// Declared limits compiled over a store: build one with [`HttpLimiter::builder`], then put
/// [`HttpLimiter::layer`] in front of a router or service. Cloning is cheap and shares the
/// counts.
///
/// Which limits a request meets:
/// - none, if its route is exempt or an exempt-when predicate holds;
/// - otherwise the application limits (one count per key across all routes), plus the
///   limits declared on its route, or, if its route has none (for the request's method), the
///   default limits (counted per route). A route whose only limits are shadow ones
///   ([`crate::Limit::shadow`]) meets the default limits too.
///
/// A route is axum's matched path (`/users/{id}`), or the request's path for other Tower
/// services. Every limit a request meets charges it, all or none (one
/// [`tollgate::Admission`]): when one denies, the charges of the others are given back.
///
/// ```
/// use axum::{Router, routing::get};
/// use tollgate_tower::{HttpLimiter, Limit, key};
///
/// let limiter = HttpLimiter::builder()
///     .default_limit("100/minute")
///     .route("/login", Limit::new("5/minute"))
///     .route("/search", Limit::new("10/minute").key(key::header("x-api-key").or(key::client_ip())))
///     .exempt("/health")
///     .build()?;
/// let app: Router = Router::new()
///     .route("/login", get(|| async { "login" }))
///     .route("/search", get(|| async { "results" }))
///     .route("/health", get(|| async { "ok" }))
///     .layer(limiter.layer());
/// // Serve it with the peer address available:
/// // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
/// # Ok::<(), tollgate_tower::BuildError>(())
/// ```
pub struct HttpLimiter<S: Store = MemoryStore> {
    rules: Arc<Rules<S>>,
}

impl<S: Store> Clone for HttpLimiter<S> {
    fn clone(&self) -> Self {
        Self {
            rules: Arc::clone(&self.rules),
        }
    }
}

impl<S: Store> fmt::Debug for HttpLimiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = &*self.rules;
        let names = |limits: &[Arc<PreparedLimit<S>>]| -> Vec<String> {
            limits.iter().map(|limit| limit.name.to_string()).collect()
        };
        let mut routes: Vec<_> = rules
            .routes
            .iter()
            .map(|(path, limits)| (path.to_string(), names(limits)))
            .collect();
        routes.sort();
        f.debug_struct("HttpLimiter")
            .field("application", &names(&rules.application))
            .field("defaults", &names(&rules.defaults))
            .field("routes", &routes)
            .field("exempt", &rules.exempt)
            .field("proxies", &rules.proxies)
            .field("headers", &rules.headers)
            .field("header_policies", &rules.header_policies)
            .field("headers_include_shadow", &rules.headers_include_shadow)
            .finish_non_exhaustive()
    }
}

impl<S: Store> HttpLimiter<S> {
    /// The limiter compiled from `rules`.
    pub(crate) fn new(rules: Rules<S>) -> Self {
        Self {
            rules: Arc::new(rules),
        }
    }

    /// The store the counts live in.
    ///
    /// ```
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().default_limit("5/minute").build()?;
    /// assert_eq!(limiter.store().stats().keys, 0);
    /// send(&limiter, get("/"));
    /// assert_eq!(limiter.store().stats().keys, 1);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn store(&self) -> &S {
        self.rules.limiter.store()
    }

    /// How many requests wait for a reserved slot now, and the most that may (see
    /// [`crate::Limit::max_delay`] and [`crate::Builder::max_waiting`]).
    ///
    /// ```
    /// let limiter = tollgate_tower::HttpLimiter::builder().build()?;
    /// assert_eq!(limiter.waiting_requests(), (0, 1024));
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn waiting_requests(&self) -> (usize, usize) {
        self.rules.waiting.occupancy()
    }

    pub(crate) fn rules(&self) -> &Arc<Rules<S>> {
        &self.rules
    }
}

/// What an [`HttpLimiter`] holds: the compiled limits and how to answer.
pub(crate) struct Rules<S: Store> {
    /// The store and the clock; it prepares the policies of dynamic limits.
    pub(crate) limiter: Limiter<S>,
    pub(crate) key: Arc<dyn KeyExtractor>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) headers: HeaderStyle,
    pub(crate) header_policies: HeaderPolicies,
    pub(crate) headers_include_shadow: bool,
    pub(crate) application: Vec<Arc<PreparedLimit<S>>>,
    pub(crate) defaults: Vec<Arc<PreparedLimit<S>>>,
    /// Limits by route; a route listed here does not meet the defaults, unless none of its
    /// enforced limits applies to the request's method.
    pub(crate) routes: HashMap<Box<str>, Vec<Arc<PreparedLimit<S>>>, RandomState>,
    pub(crate) exempt: HashSet<Box<str>, RandomState>,
    pub(crate) exempt_when: Vec<Predicate>,
    pub(crate) on_breach: Option<BreachFn>,
    pub(crate) rejection: RejectionFn,
    pub(crate) peer: PeerFn,
    /// The requests waiting for a reserved slot (see `builder/delay.rs`).
    pub(crate) waiting: Arc<WaitingRoom>,
    /// Whether requests wait for their reserved slot, or go at once (a replay).
    pub(crate) wait_for_delays: bool,
}

/// What the check of a request decided.
pub(crate) enum RequestCheck<S: Store> {
    /// No limit applies (or none charges anything).
    Exempt,
    /// Every limit allowed it; what to do once it has been answered.
    Admitted(Pending<S>),
    /// Denied (or the store failed): the response to send.
    Rejected(Response<Body>),
}

/// An admitted request's charges that its response may give back, and the decisions its
/// headers describe.
pub(crate) struct Pending<S: Store> {
    settlement: Settlement<S>,
    /// The limit of each charge of the admission, when there is something to settle or
    /// describe.
    limits: SmallVec<[Arc<PreparedLimit<S>>; 2]>,
    described: Described,
    /// For a request admitted with a delay: how long it waits for its reserved slot, and its
    /// place in the waiting room meanwhile.
    wait: Option<(Duration, WaitingPermit)>,
    /// The concurrency slots the request holds, released when dropped: by the response
    /// body once sent, or with the pending request if it never gets one.
    slots: Option<SlotRelease>,
}

impl<S: Store> Pending<S> {
    /// The wait before the request may run, if it has one, taken out of the pending
    /// settlement: the permit is to be dropped when the wait is over.
    pub(crate) fn take_wait(&mut self) -> Option<(Duration, WaitingPermit)> {
        self.wait.take()
    }

    /// Whether the request must wait before it runs.
    pub(crate) fn waits(&self) -> bool {
        self.wait.is_some()
    }

    /// Takes the concurrency slots, for the response body to hold.
    pub(crate) fn take_slots(&mut self) -> Option<SlotRelease> {
        self.slots.take()
    }
}

impl<S: Store> Rules<S> {
    /// Whether checks and settlements complete when first polled (the store never waits).
    pub(crate) fn answers_immediately(&self) -> bool {
        self.limiter.store().answers_immediately()
    }

    /// Checks the request with head `parts` against its limits, charging them.
    pub(crate) async fn check(&self, parts: &mut Parts) -> RequestCheck<S> {
        let matched = parts.extensions.get::<MatchedPath>().cloned();
        let route = matched
            .as_ref()
            .map_or(parts.uri.path(), MatchedPath::as_str);
        if self.exempt.contains(route) || self.exempt_when.iter().any(|exempt| exempt(parts)) {
            return RequestCheck::Exempt;
        }
        let method = &parts.method;
        let own: &[Arc<PreparedLimit<S>>] = self.routes.get(route).map_or(&[], Vec::as_slice);
        // The defaults, unless an enforced limit of the route's own applies: a route's
        // shadow limits never change what is enforced.
        let defaults: &[Arc<PreparedLimit<S>>] = if own
            .iter()
            .any(|limit| !limit.shadow && limit.applies_to(method))
        {
            &[]
        } else {
            &self.defaults
        };
        if self.application.is_empty() && own.is_empty() && defaults.is_empty() {
            return RequestCheck::Exempt;
        }
        if let Some(peer) = (self.peer)(&parts.extensions) {
            let client = self.proxies.resolve(peer, &parts.headers);
            parts.extensions.insert(ClientIp(client));
        }
        // Only the defaults are split by route, and by matched route only: unmatched paths
        // share one count, so inventing paths does not earn new allowances.
        let route_key = matched.as_ref().map_or("", MatchedPath::as_str);
        let mut admission = Admission::new();
        let mut charged: SmallVec<[&Arc<PreparedLimit<S>>; 4]> = SmallVec::new();
        // Each charge's key, for the breach if it denies.
        let mut keys: SmallVec<[RequestKey; 4]> = SmallVec::new();
        // The concurrency limits, with their keys.
        let mut slotted: Vec<(&Arc<PreparedLimit<S>>, RequestKey)> = Vec::new();
        let limits = self.application.iter().chain(defaults).chain(own);
        for limit in limits.filter(|limit| limit.applies_to(&parts.method)) {
            if let LimitPolicy::Concurrency(handle) = &limit.policy {
                let key = self.key_of(limit, parts);
                let store_key = limit.store_key(&parts.method, route_key, &key);
                admission = admission.slot(InFlight::new(handle.clone(), &*store_key));
                slotted.push((limit, key));
                continue;
            }
            let handle = match limit.handle_for(parts, &self.limiter) {
                Ok(Some(handle)) => handle,
                Ok(None) => continue,
                Err(message) => {
                    tracing::error!("{message}");
                    return RequestCheck::Rejected(respond::json_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &message,
                    ));
                }
            };
            let cost = limit.cost.as_ref().map_or(1, |cost| cost(parts));
            if cost == 0 {
                continue;
            }
            let key = self.key_of(limit, parts);
            let charge = Charge::new(
                handle,
                &*limit.store_key(&parts.method, route_key, &key),
                cost,
            );
            let charge = if limit.shadow {
                charge.shadow()
            } else {
                charge
            };
            admission.push(
                if limit.deduct_when.is_some() || limit.charge_after.is_some() {
                    charge.settle_after()
                } else {
                    charge
                },
            );
            charged.push(limit);
            keys.push(key);
        }
        if charged.is_empty() && slotted.is_empty() {
            return RequestCheck::Exempt;
        }
        let mut verdict = admission.decide().await;
        for ((limit, key), result) in slotted.iter().zip(verdict.slot_results()) {
            if let Some(observe) = &limit.on_decision {
                match result {
                    SlotResult::Acquired(decision) => {
                        observe(&ChargeResult::Allowed(*decision), key);
                    }
                    SlotResult::Full(decision) => observe(&ChargeResult::Denied(*decision), key),
                    _ => {}
                }
            }
        }
        for ((limit, result), key) in charged.iter().zip(verdict.results()).zip(&keys) {
            if let Some(observe) = &limit.on_decision
                && !matches!(result, ChargeResult::Skipped)
            {
                observe(result, key);
            }
        }
        if let Some(err) = verdict.give_back_error() {
            tracing::warn!("rate limit store failed to give a charge back: {err}");
        }
        if let Some(hook) = &self.on_breach {
            for (index, result) in verdict.results().iter().enumerate() {
                if let ChargeResult::ShadowDenied(decision) = result {
                    let breach = Breach {
                        limit_name: Arc::clone(&charged[index].name),
                        key: keys[index].clone(),
                        decision: *decision,
                        shadow: true,
                    };
                    hook(parts, &breach);
                }
            }
        }
        if let Some((index, result)) = verdict.refused_by_slot() {
            let (limit, key) = slotted.swap_remove(index);
            return RequestCheck::Rejected(match result {
                SlotResult::Full(decision) => {
                    self.refusal(parts, limit, key, &ChargeResult::Denied(*decision))
                }
                SlotResult::Failed(err) => {
                    tracing::warn!(limit = %limit.name, "rate limit store failed: {err}");
                    respond::store_unavailable()
                }
                other => {
                    tracing::error!(limit = %limit.name, "concurrency slot refused with {other:?}");
                    respond::json_error(StatusCode::INTERNAL_SERVER_ERROR, "rate limit failed")
                }
            });
        }
        if let Some((index, result)) = verdict.refused_by() {
            let key = keys.swap_remove(index);
            return RequestCheck::Rejected(self.refusal(parts, charged[index], key, result));
        }
        let delay = verdict.delay();
        let wait = if delay.is_zero() || !self.wait_for_delays {
            None
        } else if let Some(permit) = self.waiting.enter() {
            Some((delay, permit))
        } else {
            // The room is full: turned away, and its reserved slots are free again.
            if let Err(err) = verdict.withdraw().await {
                tracing::warn!("rate limit store failed to give a reservation back: {err}");
            }
            return RequestCheck::Rejected(waiting::room_full(delay));
        };
        let described = if self.headers == HeaderStyle::None {
            Described::default()
        } else {
            Described::of(&verdict, self.header_policies, self.headers_include_shadow)
        };
        let slots = SlotRelease::of(verdict.take_leases());
        let settlement = verdict.into_settlement();
        let limits = if settlement.is_empty() && described.is_empty() {
            SmallVec::new()
        } else {
            charged.iter().map(|limit| Arc::clone(limit)).collect()
        };
        RequestCheck::Admitted(Pending {
            settlement,
            limits,
            described,
            wait,
            slots,
        })
    }

    /// The key `limit` counts the request with head `parts` against.
    fn key_of(&self, limit: &PreparedLimit<S>, parts: &Parts) -> RequestKey {
        limit
            .key
            .as_ref()
            .unwrap_or(&self.key)
            .extract(parts)
            .unwrap_or(RequestKey::UNKNOWN)
    }

    /// The response to a request `limit` refused with `result` (its charge keyed on `key`):
    /// the rejection of a denial (after the on-breach hook), a 429 without `Retry-After` for a
    /// cost the limit never allows (waiting will not help), or a 503 for a store failure.
    fn refusal(
        &self,
        parts: &Parts,
        limit: &PreparedLimit<S>,
        key: RequestKey,
        result: &ChargeResult,
    ) -> Response<Body> {
        match result {
            ChargeResult::Denied(decision) => {
                let breach = Breach {
                    limit_name: Arc::clone(&limit.name),
                    key,
                    decision: *decision,
                    shadow: false,
                };
                if let Some(hook) = &self.on_breach {
                    hook(parts, &breach);
                }
                let mut response = (self.rejection)(&breach);
                if response.status() == StatusCode::TOO_MANY_REQUESTS
                    && !response.headers().contains_key(header::RETRY_AFTER)
                {
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(breach.retry_after_secs()),
                    );
                }
                limit
                    .headers
                    .render(self.headers, decision, response.headers_mut());
                response
            }
            &ChargeResult::CostExceedsLimit { cost, max_cost } => {
                let error = tollgate::Error::CostExceedsLimit {
                    policy: limit.name.to_string(),
                    cost,
                    max_cost,
                };
                respond::json_error(StatusCode::TOO_MANY_REQUESTS, &error.to_string())
            }
            ChargeResult::Failed(err) => {
                tracing::warn!(limit = %limit.name, "rate limit store failed: {err}");
                respond::store_unavailable()
            }
            other => {
                tracing::error!(limit = %limit.name, "rate limit refused with {other:?}");
                respond::json_error(StatusCode::INTERNAL_SERVER_ERROR, "rate limit failed")
            }
        }
    }

    /// Settles an admitted request once answered with `response` (`None` if the service
    /// failed): gives back the charges that do not count, charges the responses' late costs,
    /// and writes the headers.
    pub(crate) async fn settle(
        &self,
        pending: Pending<S>,
        response: Option<&mut http::response::Parts>,
    ) {
        // Slots still held (the service failed) are released as `pending` goes.
        let Pending {
            settlement,
            limits,
            described,
            wait: _,
            slots: _,
        } = pending;
        if !settlement.is_empty() {
            let answered = response.as_deref();
            let settled = settlement
                .settle_costs(|index, charged| limits[index].settled_cost(answered, charged))
                .await;
            if let Err(err) = settled {
                tracing::warn!("rate limit store failed to give a charge back: {err}");
            }
        }
        if let Some(response) = response {
            described.render(
                self.headers,
                |index| &limits[index].headers,
                &mut response.headers,
            );
        }
    }
}
