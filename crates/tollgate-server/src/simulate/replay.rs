//! One configuration's replay: every request of the log through its check-API policies (by
//! the chosen key field) and through its proxy (the server's own routing, path step, keys and
//! trusted proxies, built by [`limited_router`]), in virtual time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use axum::routing::any;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use tollgate::{
    ChargeResult, Clock, Failover, Key, Leasing, Limiter, ManualClock, MemoryStore, PolicyHandle,
    Timestamp,
};
use tollgate_redis::AnyStore;
use tollgate_tower::{BuildError, Limit, PeerAddr};

use crate::config::{Config, ProxyConfig};
use crate::http::proxy::{LimitSite, limited_router};
use crate::metrics::Metrics;
use crate::simulate::KeyField;
use crate::simulate::log::Entry;
use crate::simulate::tally::Tally;
use crate::state::configured_policies;

/// One configuration being replayed.
#[derive(Debug)]
pub(crate) struct Replay {
    clock: ManualClock,
    /// The check API's policies, by name, with what they saw.
    pub(crate) policies: Vec<(String, PolicyHandle, Tally)>,
    pub(crate) proxy: Option<ProxyReplay>,
}

/// The proxy of a configuration being replayed.
#[derive(Debug)]
pub(crate) struct ProxyReplay {
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
    /// Where each limit is met, in the order of the tallies.
    pub(crate) sites: Vec<(LimitSite, String)>,
    observed: Arc<Mutex<Observed>>,
    /// Requests no limit counted (exempt routes, no default policy), and requests the path
    /// step or the router refused (by status), and lines without a request to route.
    pub(crate) unlimited: u64,
    pub(crate) refused: HashMap<u16, u64>,
    pub(crate) unroutable: u64,
}

/// What the proxy's limits reported during one request, and so far.
#[derive(Debug)]
struct Observed {
    tallies: Vec<Tally>,
    /// Whether the request in flight met a limit.
    met: bool,
}

impl ProxyReplay {
    /// What each limit saw, in the order of [`ProxyReplay::sites`].
    pub(crate) fn tallies(&self) -> Vec<Tally> {
        self.observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tallies
            .clone()
    }
}

impl Replay {
    /// The replay of `config` (checked), with timelines starting at `start` and at most
    /// `max_keys` keys tracked per limit; the check API's policies only if `policies`, the
    /// proxy only if `proxy` (and configured).
    pub(crate) fn new(
        config: &Config,
        start: u64,
        max_keys: usize,
        (policies, proxy): (bool, bool),
    ) -> Result<Self, String> {
        let clock = ManualClock::new();
        clock.set(Timestamp::from_nanos(start));
        let memory = MemoryStore::with_max_keys(config.storage.max_keys());
        let limiter = Limiter::new(memory).with_clock(clock.clone());
        let policies = if policies {
            config
                .policies
                .iter()
                .map(|(name, policy)| {
                    let handle = limiter.policy(name, policy.clone());
                    (name.clone(), handle, Tally::new(start, max_keys))
                })
                .collect()
        } else {
            Vec::new()
        };
        let proxy = match (&config.proxy, proxy) {
            (Some(section), true) => Some(ProxyReplay::new(
                config,
                section,
                &clock,
                (start, max_keys),
            )?),
            _ => None,
        };
        Ok(Self {
            clock,
            policies,
            proxy,
        })
    }

    /// Replays `entry` at `time` (never earlier than the previous entry's), its check-API
    /// key being `key` (`None`: the line lacks the key field, and meets no policy).
    #[inline]
    pub(crate) fn replay(&mut self, entry: &Entry<'_>, time: u64, key: Option<&str>) {
        self.clock.set(Timestamp::from_nanos(time));
        if let Some(key) = key {
            for (_, handle, tally) in &mut self.policies {
                // A memory store always answers; a hit it refuses (never with a cost of 1)
                // would be counted as a denial.
                let denied = match handle.hit_sync(key, 1) {
                    Ok(decision) => !decision.allowed(),
                    Err(_) => true,
                };
                tally.record(key.as_bytes(), denied, time);
            }
        }
        if let Some(proxy) = &mut self.proxy {
            proxy.replay(entry);
        }
    }
}

impl ProxyReplay {
    /// The replay of `proxy`, the `[proxy]` section of `config`.
    fn new(
        config: &Config,
        proxy: &ProxyConfig,
        clock: &ManualClock,
        (start, max_keys): (u64, usize),
    ) -> Result<Self, String> {
        let memory = MemoryStore::with_max_keys(config.storage.max_keys());
        let store = Failover::new(
            Leasing::new(AnyStore::Memory(memory)),
            config.on_storage_error,
        );
        let limiter = Limiter::new(store).with_clock(clock.clone());
        let policies = configured_policies(&limiter, &Metrics::new(), config);
        let observed = Arc::new(Mutex::new(Observed {
            tallies: Vec::new(),
            met: false,
        }));
        let sites = Mutex::new(Vec::new());
        let decorate = |limit: Limit, site: LimitSite| {
            let mut sites = sites.lock().unwrap_or_else(PoisonError::into_inner);
            let index = sites.len();
            sites.push((site, limit_policy(proxy, site)));
            observed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .tallies
                .push(Tally::new(start, max_keys));
            let observed = Arc::clone(&observed);
            let clock = clock.clone();
            limit.on_decision(move |result, key| {
                let denied = !matches!(result, ChargeResult::Allowed(_));
                let mut observed = observed.lock().unwrap_or_else(PoisonError::into_inner);
                observed.met = true;
                let time = clock.now().as_nanos();
                observed.tallies[index].record(key.key_bytes().as_ref(), denied, time);
            })
        };
        // The limits' own answers, without an upstream: every request allowed reaches it.
        let endpoint = any(|| async { StatusCode::OK });
        // In virtual time: a request let through with a delay is counted as allowed at once
        // (its slot reserved on the manual clock), not waited for.
        let router = limited_router(
            proxy, &policies, config, &limiter, endpoint, &decorate, false,
        )
        .map_err(|err: BuildError| format!("proxy: {err}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|err| format!("cannot start a runtime: {err}"))?;
        Ok(Self {
            router,
            runtime,
            sites: sites.into_inner().unwrap_or_else(PoisonError::into_inner),
            observed,
            unlimited: 0,
            refused: HashMap::new(),
            unroutable: 0,
        })
    }

    /// Sends `entry` through the proxy's routing and limits.
    fn replay(&mut self, entry: &Entry<'_>) {
        let Some(request) = request(entry) else {
            self.unroutable += 1;
            return;
        };
        self.observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .met = false;
        let answer = tower::ServiceExt::oneshot(self.router.clone(), request);
        let status = match self.runtime.block_on(answer) {
            Ok(response) => response.status(),
            Err(never) => match never {},
        };
        let met = self
            .observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .met;
        if status != StatusCode::OK && status != StatusCode::TOO_MANY_REQUESTS {
            *self.refused.entry(status.as_u16()).or_default() += 1;
        } else if !met {
            self.unlimited += 1;
        }
    }
}

/// The policy a limit of `proxy` applies, by name.
fn limit_policy(proxy: &ProxyConfig, site: LimitSite) -> String {
    let name = match site {
        LimitSite::Default => &proxy.default_policy,
        LimitSite::Route {
            index,
            shadow: true,
        } => &proxy.routes[index].shadow_policy,
        LimitSite::Route {
            index,
            shadow: false,
        } => &proxy.routes[index].policy,
    };
    name.clone().unwrap_or_default()
}

/// The request a log entry stands for, as the proxy would receive it from the logged
/// address; `None` for a line without a valid request line.
fn request(entry: &Entry<'_>) -> Option<Request<axum::body::Body>> {
    let method = Method::from_bytes(entry.method.as_bytes()).ok()?;
    let mut request = Request::builder()
        .method(method)
        .uri(entry.target)
        .body(axum::body::Body::empty())
        .ok()?;
    let headers = request.headers_mut();
    for (name, value) in entry.headers() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    // A logged address with a port (`[::1]:8080`, `10.0.0.1:443`) or without.
    let peer = entry
        .addr
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .or_else(|_| entry.addr.parse::<SocketAddr>());
    if let Ok(peer) = peer {
        request.extensions_mut().insert(PeerAddr(peer));
    }
    Some(request)
}

/// The check-API key of `entry` under `field`, if it has one.
pub(crate) fn key_of<'a>(entry: &Entry<'a>, field: &KeyField) -> Option<&'a str> {
    let key = match field {
        KeyField::RemoteAddr => entry.addr,
        KeyField::User => entry.user,
        KeyField::Header(name) => entry.header(name)?,
    };
    (!key.is_empty()).then_some(key)
}
