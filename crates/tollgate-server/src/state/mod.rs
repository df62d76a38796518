//! [`ServerState`]: what every listener shares (the limiter, the metrics) and the
//! configuration in force ([`InForce`]), swapped whole by one reload.

use std::sync::{Arc, PoisonError, RwLock};

use tollgate::{
    Clock, Failover, FailoverSwitch, Leasing, Limiter, MemoryStats, MemoryStore, Policy,
    PreparedLeasing, QuotaLease, Rate, Store,
};
use tollgate_redis::{AnyStore, PreparedAny};
use tollgate_tower::BuildError;

use crate::config::Config;
use crate::metrics::{Metrics, Totals};

mod in_force;

pub use in_force::InForce;
pub(crate) use in_force::{ConfiguredPolicy, InFlightPolicy, PolicyFront, configured_policies};

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
