//! The reverse proxy: requests to `[proxy] listen` are matched to the configured routes,
//! limited by the Tower layer, and forwarded to the upstream.
//!
//! [`proxy_router`] turns a checked [`ProxyConfig`] into an axum [`Router`]:
//!
//! - an exact route `/ping` is the axum route `/ping`; a prefix route `/api/*` is the routes
//!   `/api`, `/api/` and `/api/{*rest}`, which share one count. Everything else reaches a
//!   fallback that is forwarded too and meets `default_policy` (all unmatched paths share one
//!   count, so inventing paths earns nothing). Where an exact route and a prefix route name
//!   the same path, the exact one decides.
//! - a route's `methods` restrict its policy to those methods; requests with other methods
//!   meet `default_policy` (counted per route pattern) and are forwarded all the same.
//! - `exempt = true` routes meet no limit at all.
//! - `ignore_case` and `ignore_trailing_slash` make a route meet the other spellings of its
//!   path; the path step gives such a request the route's spelling (`matching.rs`).
//! - keys are the route's `key` or the proxy's (`ip`, `header:NAME`, `header:NAME,ip`), the
//!   client IP being resolved behind `trusted_proxies`.
//! - a route's `shadow_policy` is applied beside its `policy` as a shadow limit: counted,
//!   never denying; a route with only a shadow policy meets `default_policy` too. A policy
//!   marked `shadow = true` is a shadow limit wherever it is used.
//! - the rate-limit headers name each limit after its policy (`"login";q=5;w=60`).
//! - every decision is counted in the metrics under the policy that made it.
//! - a policy's `max_in_flight` caps the requests of one key in flight at once on each route
//!   that names it as its `policy` (and as `default_policy`), counted apart per route like
//!   its rate; a slot is held until the upstream's response has been sent to the client, or
//!   the client has gone (the Tower layer's [`Limit::concurrency`]). Its decisions are counted
//!   under `{policy}:in-flight`.
//!
//! Allowed requests go to the upstream (`forward.rs`) over a pooled HTTP/1.1 client, bodies
//! streamed both ways, hop-by-hop headers (`Connection` and the fields it names,
//! `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) dropped both
//! ways, `Host` rewritten to the upstream's, `X-Forwarded-For` extended with the peer, and
//! `X-Forwarded-Proto` and `X-Forwarded-Host` set (kept as sent when the peer is a trusted
//! proxy). Denied requests get the layer's `429` with `Retry-After` and the rate-limit
//! headers. An upstream that cannot be reached answers `502 Bad Gateway` with
//! `{"error":"upstream unreachable: ..."}`; one that does not connect or answer within its
//! timeouts (`[proxy] upstream_*_timeout`) answers `504 Gateway Timeout`, and a response
//! body that pauses too long is cut. Such requests stay charged, as every admitted one.
//!
//! Paths go through one step before routing (`path.rs`): malformed escapes, `%00` and
//! dot segments with parameters (`..;`) refused, encoded slashes and backslashes refused or
//! decoded (`escaped_slashes`), then normalised, so `/log%69n` and `/x/../login`
//! meet `/login`'s limit and reach the upstream as `/login`.
//!
//! Upgrades (WebSocket) are not proxied: `Upgrade` is a hop-by-hop field.

mod forward;
pub(crate) mod matching;
pub(crate) mod path;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, any};
use tollgate::Limiter;
use tollgate_tower::key::{self, KeyExtractor};
use tollgate_tower::{BuildError, HttpLimiter, Limit};

use crate::config::{Config, KeySpec, ProxyConfig, RouteConfig};
use crate::state::{ConfiguredPolicy, ServerStore};
use forward::{Upstream, forward};
use futures_util::future::Either;
use path::PathRules;

/// The prefix of the names the proxy's counts are stored under, apart from the check API's.
pub(crate) const NAMESPACE: &str = "proxy:";

/// The proxy described by `config`: its routes limited with the `policies` they name (counts
/// kept through `limiter`, decisions counted in each policy's counters, responses carrying
/// the rate-limit fields `headers` configures), and every request the limits allow forwarded
/// to the upstream.
///
/// Serve it with the peer address available, or per-IP limits and `X-Forwarded-For` cannot
/// know the client: `axum::serve(listener,
/// app.into_make_service_with_connect_info::<SocketAddr>())`. The layer names the proxy's
/// counts `proxy:default` and `proxy:shared:PATH` (`proxy:shared:/api/*`), apart from the
/// check API's policy names such as `login`.
pub(crate) fn proxy_router(
    config: &ProxyConfig,
    policies: &HashMap<String, ConfiguredPolicy>,
    headers: &Config,
    limiter: &Limiter<ServerStore>,
) -> Result<Router, BuildError> {
    let endpoint = any(forward).with_state(Arc::new(Upstream::new(config)));
    // Requests admitted with a delay wait for their slot before they are forwarded.
    limited_router(
        config,
        policies,
        headers,
        limiter,
        endpoint,
        &|limit, _| limit,
        true,
    )
}

/// Where the proxy meets one of its limits, for an observer of its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitSite {
    /// The proxy's `default_policy`.
    Default,
    /// The `index`th route's `policy`, or its `shadow_policy` if `shadow`.
    Route { index: usize, shadow: bool },
}

/// The proxy's routing and limits as [`proxy_router`] builds them, with `endpoint` answering
/// the requests the limits allow (the upstream, or `tollgate simulate`'s stand-in), and each
/// limit passed through `decorate` with where it is met, so that an observer can be hooked
/// on it. Requests admitted with a delay wait for their slot if `wait_for_delays`, else go
/// at once (a replay in virtual time).
pub(crate) fn limited_router(
    config: &ProxyConfig,
    policies: &HashMap<String, ConfiguredPolicy>,
    headers: &Config,
    limiter: &Limiter<ServerStore>,
    endpoint: MethodRouter,
    decorate: &dyn Fn(Limit, LimitSite) -> Limit,
    wait_for_delays: bool,
) -> Result<Router, BuildError> {
    let mut limits = HttpLimiter::builder()
        .limiter(limiter.clone())
        // Apart from the check API's policies in the same store.
        .namespace(NAMESPACE)
        .key(extractor(&config.key))
        .trusting(config.trusted_proxies.clone())
        .headers(headers.headers)
        .header_policies(headers.header_policies)
        .headers_include_shadow(headers.headers_include_shadow)
        .max_waiting(headers.connections.max_waiting)
        .wait_for_delays(wait_for_delays);
    if let Some((name, named)) = config
        .default_policy
        .as_ref()
        .and_then(|name| Some((name, policies.get(name)?)))
    {
        limits = limits.default_limit(decorate(limit(name, named), LimitSite::Default));
        // Not decorated: an observer of rate decisions (simulate) has no use for slots.
        if let Some(in_flight) = in_flight_limit(name, named) {
            limits = limits.default_limit(in_flight);
        }
    }
    // The limits of each route (its policy, its shadow policy), applied to each of its
    // patterns: one count each.
    let route_limits: Vec<Vec<Limit>> = (0..config.routes.len())
        .map(|index| route_limits(config, policies, index, decorate))
        .collect();
    let mut router = Router::new().without_v07_checks();
    for pattern in &config.patterns {
        if pattern.exempt {
            limits = limits.exempt(pattern.pattern.as_str());
        } else {
            for limit in pattern
                .routes
                .iter()
                .flat_map(|&index| &route_limits[index])
            {
                limits = limits.route(pattern.pattern.as_str(), limit.clone());
            }
        }
        router = router.route(&pattern.pattern, endpoint.clone());
    }
    let limits = limits.build()?;
    let routed = router.fallback_service(endpoint).layer(limits.layer());
    // One path step before routing (`path.rs`): `/log%69n` or `/x/../login` meet `/login`'s
    // limit and reach the upstream as `/login`; encoded slashes are refused or decoded;
    // `/LOGIN` is spelled `/login` when that route ignores case.
    let rules = Arc::new(PathRules::new(config));
    Ok(
        Router::new().fallback_service(tower::service_fn(
            move |request: axum::extract::Request| match rules.apply(request) {
                Ok(request) => Either::Left(tower::ServiceExt::oneshot(routed.clone(), request)),
                Err(refusal) => Either::Right(std::future::ready(Ok(refusal.answer()))),
            },
        )),
    )
}

/// The limits of the `index`th route: its policy's and its shadow policy's (none if it is
/// exempt). Each is one shared count for all the route's patterns, stored under the route's
/// path (`/api/*`, `/api/*#2` for the second route with that path, `/api/* shadow` for the
/// shadow policy) and named in the headers after its policy.
fn route_limits(
    config: &ProxyConfig,
    policies: &HashMap<String, ConfiguredPolicy>,
    index: usize,
    decorate: &dyn Fn(Limit, LimitSite) -> Limit,
) -> Vec<Limit> {
    let route: &RouteConfig = &config.routes[index];
    let same_path_before = config.routes[..index]
        .iter()
        .filter(|other| other.path == route.path)
        .count();
    let shared = match same_path_before {
        0 => route.path.clone(),
        n => format!("{}#{}", route.path, n + 1),
    };
    let enforced = route
        .policy
        .as_ref()
        .map(|name| (name, shared.clone(), false));
    let shadow = route
        .shadow_policy
        .as_ref()
        .map(|name| (name, format!("{shared} shadow"), true));
    // The enforced policy's requests in flight, counted apart under `/api/* in-flight`; not
    // decorated (an observer of rate decisions, as simulate's, has no use for slots).
    let in_flight = route.policy.as_ref().and_then(|name| {
        let limit = in_flight_limit(name, policies.get(name)?)?;
        Some((limit, format!("{shared} in-flight"), None))
    });
    enforced
        .into_iter()
        .chain(shadow)
        .filter_map(|(name, shared, shadow)| {
            let mut limit = limit(name, policies.get(name)?);
            if shadow {
                limit = limit.shadow();
            }
            Some((limit, shared, Some(LimitSite::Route { index, shadow })))
        })
        .chain(in_flight)
        .map(|(mut limit, shared, site)| {
            if !route.methods.is_empty() {
                limit = limit.methods(route.methods.iter().cloned());
            }
            if let Some(key) = &route.key {
                limit = limit.key(extractor(key));
            }
            let limit = limit.shared(shared);
            match site {
                Some(site) => decorate(limit, site),
                None => limit,
            }
        })
        .collect()
}

/// The Tower layer's concurrency limit of the policy `named`, configured as `name`, if it
/// sets `max_in_flight`: its decisions counted under `{name}:in-flight`.
fn in_flight_limit(name: &str, named: &ConfiguredPolicy) -> Option<Limit> {
    let in_flight = named.in_flight.as_ref()?;
    let counters = in_flight.counters.clone();
    let configured = in_flight.handle.limit();
    Some(
        Limit::concurrency(configured.max())
            .lease_ttl(configured.lease_ttl())
            .name(name)
            .on_decision(move |result, key| counters.record(key, result)),
    )
}

/// The Tower layer's limit applying the policy `named`, configured as `name`: called so in
/// the headers, a shadow one if the policy is marked so, its decisions counted under its
/// name.
fn limit(name: &str, named: &ConfiguredPolicy) -> Limit {
    let counters = named.front.counters.clone();
    let limit = Limit::policy(named.handle.policy().clone())
        .name(name)
        .on_decision(move |result, key| counters.record(key, result));
    if named.shadow { limit.shadow() } else { limit }
}

/// The key extractor `spec` names.
fn extractor(spec: &KeySpec) -> Arc<dyn KeyExtractor> {
    match spec {
        KeySpec::Ip => Arc::new(key::client_ip()),
        KeySpec::Header { name, or_ip: true } => {
            Arc::new(key::header_named(name.clone()).or(key::client_ip()))
        }
        KeySpec::Header { name, or_ip: false } => Arc::new(key::header_named(name.clone())),
    }
}
