//! [`ServerState`]: what every listener shares (the limiter, the metrics) and the
//! configuration in force ([`InForce`]), swapped whole by one reload.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tollgate::{
    Clock, ConcurrencyHandle, Failover, FailoverSwitch, Key, Leasing, Limiter, MemoryStats,
    MemoryStore, Policy, PolicyHandle, PreparedLeasing, QuotaLease, Rate, Store, Verdict,
};
use tollgate_redis::{AnyStore, PreparedAny};
use tollgate_tower::{BuildError, Described, HeaderPolicies, HeaderStyle, LimitHeaders};

use crate::config::{Config, INLINE_POLICY};
use crate::grpc::envoy::EnvoyService;
use crate::http::proxy;
use crate::metrics::{Metrics, PolicyCounters, Totals};

/// The store every front end counts in: the configured storage, leased from when `[server]
/// lease` (or a policy's `lease`) says so, behind its failure mode.
///
/// ```
/// use tollgate::{Failover, FailureMode, Leasing, Limiter, MemoryStore, Policy, Store};
/// use tollgate_redis::AnyStore;
/// use tollgate_server::ServerStore;
///
/// let memory = Leasing::new(AnyStore::Memory(MemoryStore::new()));
/// let store: ServerStore = Failover::new(memory, FailureMode::Allow);
/// assert!(store.answers_immediately()); // in memory
/// let login = Limiter::new(store).policy("login", Policy::fixed_window("1/minute".parse()?));
/// # futures_executor::block_on(async {
/// assert!(login.hit("alice").await?.allowed());
/// assert!(!login.hit("alice").await?.allowed());
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ServerStore = Failover<Leasing<AnyStore>>;

/// The running server's shared state.
///
/// ```
/// use std::sync::Arc;
/// use tollgate_server::{Config, ServerState, Totals};
///
/// # async fn check(state: &std::sync::Arc<tollgate_server::ServerState>, body: &str) -> http::StatusCode {
/// #     use tower::ServiceExt;
/// #     let request = http::Request::post("/v1/check").body(axum::body::Body::from(body.to_owned())).unwrap();
/// #     let router = tollgate_server::check_api_router(std::sync::Arc::clone(state));
/// #     router.oneshot(request).await.unwrap().status()
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse("[policies.login]\nlimits = \"1/minute\"\n", "tollgate.toml")?;
/// let state = Arc::new(ServerState::new(&config, config.storage.open().await?)?);
/// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 200);
/// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 429);
/// assert_eq!(state.storage(), "memory://");
/// assert!(state.probe().await.is_ok());
/// let text = state.metrics().render(&Totals::default());
/// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="denied"} 1"#));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ServerState {
    /// The store and the clock; the inline policies live here, so they outlive reloads.
    limiter: Limiter<ServerStore>,
    /// The storage URI, for messages (credentials redacted).
    storage: String,
    /// A policy prepared on the storage itself (not the failover, never leased), to probe it.
    probe: PreparedLeasing<PreparedAny>,
    metrics: Arc<Metrics>,
    in_force: RwLock<Arc<InForce>>,
}

/// The configuration in force: each named policy with its handle, rate-limit fields and
/// counters together, the inline policies' fields and counters, the Envoy service and the
/// proxy's router.
///
/// A reload swaps it whole: what a request took from [`ServerState::in_force`] stays as it
/// was while the request runs.
///
/// ```
/// use tollgate_server::{Config, ServerState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse("[policies.api]\nlimits = \"10/second\"\n", "tollgate.toml")?;
/// let state = ServerState::new(&config, config.storage.open().await?)?;
/// let before = state.in_force();
/// state.reload(&Config::parse(r#"
/// [policies.api]
/// limits = "10/second"
///
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
/// default_policy = "api"
/// "#, "tollgate.toml")?)?;
/// assert!(before.proxy().is_none()); // unchanged
/// assert!(state.in_force().proxy().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct InForce {
    policies: HashMap<String, ConfiguredPolicy>,
    inline: PolicyFront,
    headers: HeaderStyle,
    header_policies: HeaderPolicies,
    headers_include_shadow: bool,
    admin_token: Option<String>,
    dashboard: bool,
    envoy: Option<EnvoyService<ServerStore>>,
    proxy: Option<axum::Router>,
}

/// A configured policy as the check API serves it.
#[derive(Debug)]
pub(crate) struct ConfiguredPolicy {
    pub(crate) handle: PolicyHandle<ServerStore>,
    pub(crate) front: PolicyFront,
    /// Marked `shadow = true`: counted and reported, never denying.
    pub(crate) shadow: bool,
    /// Its `max_in_flight`, if set.
    pub(crate) in_flight: Option<InFlightPolicy>,
}

/// A policy's concurrency limit: its slots (for the check API; the proxy prepares its own,
/// apart) and the counters of its acquires, `{policy}:in-flight` in the metrics.
#[derive(Debug)]
pub(crate) struct InFlightPolicy {
    pub(crate) handle: ConcurrencyHandle<ServerStore>,
    pub(crate) counters: PolicyCounters,
}

/// What a policy's answers carry: its rate-limit fields and its counters.
#[derive(Debug)]
pub(crate) struct PolicyFront {
    pub(crate) headers: LimitHeaders,
    pub(crate) counters: PolicyCounters,
}

impl PolicyFront {
    /// The fields and counters of the policy configured as `name`.
    fn new(name: &str, metrics: &Metrics) -> Self {
        Self {
            headers: LimitHeaders::new(name),
            counters: metrics.counters(name),
        }
    }

    /// The fields and counters of inline policies: counted under `inline`, and called in
    /// the headers by their rate, as the client gave no name.
    fn inline(metrics: &Metrics) -> Self {
        Self {
            headers: LimitHeaders::unnamed(),
            counters: metrics.counters(INLINE_POLICY),
        }
    }
}

impl ServerState {
    /// The state for `config` over `store` (opened from `config.storage`), reading the
    /// monotonic clock.
    ///
    /// ```
    /// use tollgate_redis::AnyStore;
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse("[policies.login]\nlimits = \"5/minute\"\n", "tollgate.toml")?;
    /// let state = ServerState::new(&config, config.storage.open().await?)?;
    /// assert!(state.in_force().proxy().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: &Config, store: AnyStore) -> Result<Self, BuildError> {
        Self::on(config, Limiter::new(failover(config, store)))
    }

    /// The state for `config` with the clock `clock` (a [`tollgate::ManualClock`] in tests).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tollgate::ManualClock;
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # async fn check(state: &std::sync::Arc<tollgate_server::ServerState>, body: &str) -> http::StatusCode {
    /// #     use tower::ServiceExt;
    /// #     let request = http::Request::post("/v1/check").body(axum::body::Body::from(body.to_owned())).unwrap();
    /// #     let router = tollgate_server::check_api_router(std::sync::Arc::clone(state));
    /// #     router.oneshot(request).await.unwrap().status()
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse("[policies.login]\nlimits = \"1/minute\"\n", "tollgate.toml")?;
    /// let clock = ManualClock::new();
    /// let state = Arc::new(ServerState::with_clock(&config, config.storage.open().await?, clock.clone())?);
    /// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 200);
    /// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 429);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 200);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_clock(
        config: &Config,
        store: AnyStore,
        clock: impl Clock,
    ) -> Result<Self, BuildError> {
        let limiter = Limiter::new(failover(config, store)).with_clock(clock);
        Self::on(config, limiter)
    }

    fn on(config: &Config, limiter: Limiter<ServerStore>) -> Result<Self, BuildError> {
        let probe = limiter.store().store().prepare(
            "tollgate:probe",
            // Never denied, so every probe writes (a denial in Redis writes nothing).
            &Policy::fixed_window(Rate::per_second(1 << 30).into())
                .with_quota_lease(QuotaLease::Off),
        );
        let metrics = Arc::new(Metrics::new());
        let in_force = InForce::new(&limiter, &metrics, config)?;
        Ok(Self {
            storage: config.storage.to_string(),
            limiter,
            probe,
            metrics,
            in_force: RwLock::new(Arc::new(in_force)),
        })
    }

    /// The configuration in force.
    ///
    /// ```
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse("[policies.login]\nlimits = \"5/minute\"\n", "tollgate.toml")?;
    /// let state = ServerState::new(&config, config.storage.open().await?)?;
    /// let in_force = state.in_force();
    /// assert!(in_force.proxy().is_none()); // no [proxy] section
    /// state.reload(&config)?;
    /// assert!(!std::sync::Arc::ptr_eq(&in_force, &state.in_force())); // swapped whole
    /// # Ok(())
    /// # }
    /// ```
    pub fn in_force(&self) -> Arc<InForce> {
        Arc::clone(&self.in_force.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `config` in force. Policies that did not change keep their counts (inline ones
    /// too); a configuration the proxy's limits refuse leaves the old one in force.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # async fn check(state: &std::sync::Arc<tollgate_server::ServerState>, body: &str) -> http::StatusCode {
    /// #     use tower::ServiceExt;
    /// #     let request = http::Request::post("/v1/check").body(axum::body::Body::from(body.to_owned())).unwrap();
    /// #     let router = tollgate_server::check_api_router(std::sync::Arc::clone(state));
    /// #     router.oneshot(request).await.unwrap().status()
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let one = Config::parse("[policies.login]\nlimits = \"1/minute\"\n", "tollgate.toml")?;
    /// let state = Arc::new(ServerState::new(&one, one.storage.open().await?)?);
    /// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 200);
    /// state.reload(&one)?;
    /// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 429); // unchanged: the count survives
    /// let two = Config::parse("[policies.login]\nlimits = \"2/minute\"\n", "tollgate.toml")?;
    /// state.reload(&two)?;
    /// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 200); // changed: it starts afresh
    /// # Ok(())
    /// # }
    /// ```
    pub fn reload(&self, config: &Config) -> Result<(), BuildError> {
        let in_force = Arc::new(InForce::new(&self.limiter, &self.metrics, config)?);
        *self
            .in_force
            .write()
            .unwrap_or_else(PoisonError::into_inner) = in_force;
        Ok(())
    }

    /// The limiter every front end counts through.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # async fn check(state: &std::sync::Arc<tollgate_server::ServerState>, body: &str) -> http::StatusCode {
    /// #     use tower::ServiceExt;
    /// #     let request = http::Request::post("/v1/check").body(axum::body::Body::from(body.to_owned())).unwrap();
    /// #     let router = tollgate_server::check_api_router(std::sync::Arc::clone(state));
    /// #     router.oneshot(request).await.unwrap().status()
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse("[policies.login]\nlimits = \"1/minute\"\n", "tollgate.toml")?;
    /// let state = Arc::new(ServerState::new(&config, config.storage.open().await?)?);
    /// // The configured policy, prepared again under its name: the check API's counts.
    /// let login = state.limiter().policy("login", config.policies["login"].clone());
    /// assert!(login.hit("alice").await?.allowed());
    /// assert_eq!(check(&state, r#"{"policy": "login", "key": "alice"}"#).await, 429);
    /// assert_eq!(state.limiter().store().errors(), 0); // the failure mode's count
    /// # Ok(())
    /// # }
    /// ```
    pub fn limiter(&self) -> &Limiter<ServerStore> {
        &self.limiter
    }

    /// The metrics.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate_server::{Config, ServerState, Totals};
    ///
    /// # async fn check(state: &std::sync::Arc<tollgate_server::ServerState>, body: &str) -> http::StatusCode {
    /// #     use tower::ServiceExt;
    /// #     let request = http::Request::post("/v1/check").body(axum::body::Body::from(body.to_owned())).unwrap();
    /// #     let router = tollgate_server::check_api_router(std::sync::Arc::clone(state));
    /// #     router.oneshot(request).await.unwrap().status()
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse("[policies.login]\nlimits = \"5/minute\"\n", "tollgate.toml")?;
    /// let state = Arc::new(ServerState::new(&config, config.storage.open().await?)?);
    /// check(&state, r#"{"policy": "login", "key": "alice"}"#).await;
    /// let text = state.metrics().render(&Totals::default());
    /// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="allowed"} 1"#));
    /// assert!(text.contains("tollgate_check_duration_seconds_count 1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The storage URI, credentials redacted.
    ///
    /// ```
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse("[server]\nstorage = \"memory://\"\n", "tollgate.toml")?;
    /// let state = ServerState::new(&config, config.storage.open().await?)?;
    /// assert_eq!(state.storage(), "memory://");
    /// // A Redis URI would read `redis://***@host:6379` here: see `tollgate_redis::redacted`.
    /// # Ok(())
    /// # }
    /// ```
    pub fn storage(&self) -> &str {
        &self.storage
    }

    /// Whether the storage accepts a write now (asked directly, not through the failure
    /// mode): a hit on a probe key that expires within a second. `Err` says why not (a
    /// Redis that refuses writes under `maxmemory` fails it, where a read would pass).
    ///
    /// ```
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::empty(); // in memory, which always answers
    /// let state = ServerState::new(&config, config.storage.open().await?)?;
    /// assert!(state.probe().await.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn probe(&self) -> Result<(), tollgate::StoreError> {
        self.limiter
            .store()
            .store()
            .hit(&self.probe, b"probe", self.limiter.clock().now(), 1)
            .await
            .map(drop)
    }
}

impl ServerState {
    /// Ends expired quota leases and gives their unspent units back to the storage (see
    /// [`Leasing::sweep`]); the server runs it every half lease lifetime.
    pub async fn sweep_leases(&self) {
        let leasing = self.limiter.store().store();
        leasing.sweep(self.limiter.clock().now()).await;
    }

    /// What the limiter and its storage have counted so far, for [`Metrics::render`].
    ///
    /// ```
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse("[policies.login]\nlimits = \"5/minute\"\n", "tollgate.toml")?;
    /// let state = ServerState::new(&config, config.storage.open().await?)?;
    /// state.limiter().policy("login", config.policies["login"].clone()).hit("alice").await?;
    /// let totals = state.totals();
    /// assert_eq!((totals.memory_keys, totals.storage_errors), (1, 0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn totals(&self) -> Totals {
        let failover = self.limiter.store();
        let storage = failover.store().inner();
        let memory = match storage {
            AnyStore::Memory(store) => store.stats(),
            AnyStore::Redis(_) => MemoryStats::default(),
        };
        let fallback = failover.fallback().stats();
        let late = storage.late_hits();
        let now = self.limiter.clock().now();
        let banned_in_storage = match storage {
            AnyStore::Memory(store) => store.banned_keys(now),
            AnyStore::Redis(_) => 0,
        };
        Totals {
            storage_errors: failover.errors(),
            falling_back: failover.is_falling_back(),
            inline_evicted: self.limiter.evicted_inline_policies(),
            timed_out_hits: failover.timed_out_hits(),
            late_charges: late.charged_late,
            late_charges_given_back: late.given_back,
            fallback_switches: failover.switches(),
            memory_keys: memory.keys + fallback.keys,
            memory_evicted: memory.evicted + fallback.evicted,
            banned_keys: banned_in_storage + failover.fallback().banned_keys(now),
            lease: failover.store().stats(),
        }
    }
}

/// The configured storage behind the failure mode: a fallback in memory with the configured
/// budget of keys, and each switch to it and back logged (a warning with the cause, then an
/// info line).
fn failover(config: &Config, store: AnyStore) -> ServerStore {
    let fallback = MemoryStore::with_max_keys(config.storage.max_keys());
    let store = Leasing::new(store).with_lease(config.lease);
    Failover::new(store, config.on_storage_error)
        .with_fallback(fallback)
        .on_switch(|switch: &FailoverSwitch| match switch {
            FailoverSwitch::ToFallback { .. } => tracing::warn!(storage = "fallback", "{switch}"),
            _ => tracing::info!(storage = "primary", "{switch}"),
        })
}

/// Each policy of `config` prepared over `limiter`, with its fields and counters.
pub(crate) fn configured_policies(
    limiter: &Limiter<ServerStore>,
    metrics: &Metrics,
    config: &Config,
) -> HashMap<String, ConfiguredPolicy> {
    config
        .policies
        .iter()
        .map(|(name, policy)| {
            let named = ConfiguredPolicy {
                handle: limiter.policy(name, policy.clone()),
                front: PolicyFront::new(name, metrics),
                shadow: config.shadow_policies.contains(name),
                in_flight: config.in_flight.get(name).map(|limit| InFlightPolicy {
                    handle: limiter.concurrency(name, *limit),
                    counters: metrics.counters(&format!("{name}:in-flight")),
                }),
            };
            (name.clone(), named)
        })
        .collect()
}

impl InForce {
    /// What `config` puts in force over `limiter`: the same validation for `serve` and
    /// `check-config` (the latter over a memory store).
    pub(crate) fn new(
        limiter: &Limiter<ServerStore>,
        metrics: &Metrics,
        config: &Config,
    ) -> Result<Self, BuildError> {
        let policies = configured_policies(limiter, metrics, config);
        let envoy = config.envoy.as_ref().map(|envoy| {
            let counters: HashMap<String, PolicyCounters> = envoy
                .policies()
                .map(|(name, _)| (name.to_owned(), metrics.counters(name)))
                .collect();
            let overrides = metrics.counters("envoy-override");
            EnvoyService::new(limiter, envoy).with_observer(Arc::new(
                move |policy: &str, key: &dyn Key, verdict| {
                    counters
                        .get(policy)
                        .unwrap_or(&overrides)
                        .record_descriptor(key, verdict);
                },
            ))
        });
        let proxy = config
            .proxy
            .as_ref()
            .map(|proxy| proxy::proxy_router(proxy, &policies, config, limiter))
            .transpose()?;
        Ok(Self {
            policies,
            inline: PolicyFront::inline(metrics),
            headers: config.headers,
            header_policies: config.header_policies,
            headers_include_shadow: config.headers_include_shadow,
            admin_token: config.admin_token.clone(),
            dashboard: config.dashboard,
            envoy,
            proxy,
        })
    }

    /// The configured policy called `name`.
    pub(crate) fn policy(&self, name: &str) -> Option<&ConfiguredPolicy> {
        self.policies.get(name)
    }

    /// The names of the configured policies, sorted.
    pub(crate) fn policy_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.policies.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The fields and counters of inline policies.
    pub(crate) fn inline(&self) -> &PolicyFront {
        &self.inline
    }

    /// Which rate-limit headers responses carry.
    pub(crate) fn headers(&self) -> HeaderStyle {
        self.headers
    }

    /// The decisions of `verdict` the rate-limit headers describe, as configured.
    pub(crate) fn described(&self, verdict: &Verdict<ServerStore>) -> Described {
        Described::of(verdict, self.header_policies, self.headers_include_shadow)
    }

    /// The token `POST /v1/reset` requires.
    pub(crate) fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Whether the dashboard is served (`[server] dashboard`).
    pub(crate) fn dashboard(&self) -> bool {
        self.dashboard
    }

    /// The configured policies, sorted by name.
    pub(crate) fn policies(&self) -> Vec<(&str, &ConfiguredPolicy)> {
        let mut policies: Vec<(&str, &ConfiguredPolicy)> = self
            .policies
            .iter()
            .map(|(name, policy)| (name.as_str(), policy))
            .collect();
        policies.sort_unstable_by_key(|(name, _)| *name);
        policies
    }

    /// Envoy's rate limit service, when `[envoy] config` is set.
    pub(crate) fn envoy(&self) -> Option<&EnvoyService<ServerStore>> {
        self.envoy.as_ref()
    }

    /// The proxy's router, when `[proxy]` is set.
    ///
    /// ```
    /// use tower::ServiceExt;
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse(r#"
    /// [policies.api]
    /// limits = "1/minute"
    ///
    /// [proxy]
    /// listen = "127.0.0.1:8081"
    /// upstream = "http://127.0.0.1:1"
    /// default_policy = "api"
    /// "#, "tollgate.toml")?;
    /// let state = ServerState::new(&config, config.storage.open().await?)?;
    /// let router = state.in_force().proxy().cloned().expect("a [proxy] section");
    /// let get = || http::Request::get("/items").body(axum::body::Body::empty()).unwrap();
    /// // Allowed, and forwarded to an upstream that is not there.
    /// assert_eq!(router.clone().oneshot(get()).await?.status(), 502);
    /// assert_eq!(router.oneshot(get()).await?.status(), 429);
    /// # Ok(())
    /// # }
    /// ```
    pub fn proxy(&self) -> Option<&axum::Router> {
        self.proxy.as_ref()
    }
}
