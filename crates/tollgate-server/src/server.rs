//! `tollgate serve` and `tollgate check-config`: the configuration read once, the storage
//! opened, the listeners bound; serving until shut down, and reloading when asked.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tollgate::{Failover, FailureMode, Leasing, Limiter, MemoryStore};
use tollgate_redis::{AnyStore, UriError};

use crate::config::{Config, ConfigError, Overrides};
use crate::http::check_api;
use crate::metrics::Metrics;
use crate::state::{InForce, ServerState};
use connection::{CappedListener, Protocol};

mod config_watch;
mod connection;
mod descriptors;
mod grpc_listener;
mod http_listener;

/// How long a shutdown waits for requests in flight (and idle keep-alive connections, such as
/// Envoy's) before closing what is left.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(tollgate_server::SHUTDOWN_GRACE, Duration::from_secs(5));
/// ```
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the configuration comes from, and the command-line flags that override it.
///
/// ```
/// use tollgate_server::{Overrides, Settings};
///
/// // `tollgate serve --listen 127.0.0.1:9000`, without a config file.
/// let settings = Settings {
///     config: None,
///     overrides: Overrides { listen: Some("127.0.0.1:9000".parse()?), storage: None },
/// };
/// let config = settings.load()?;
/// assert_eq!(config.listen.port(), 9000);
/// assert!(config.storage.is_memory() && config.policies.is_empty()); // the defaults
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The config file; none means the defaults.
    pub config: Option<PathBuf>,
    /// The flags that override the file.
    pub overrides: Overrides,
}

impl Settings {
    /// Reads and checks the configuration, with the flags applied.
    ///
    /// ```
    /// use tollgate_server::{Overrides, Settings};
    ///
    /// let path = std::env::temp_dir().join(format!("tollgate-settings-{}.toml", std::process::id()));
    /// std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:7000\"\n")?;
    /// let from_file = Settings { config: Some(path.clone()), overrides: Overrides::default() };
    /// assert_eq!(from_file.load()?.listen.port(), 7000);
    /// let flagged = Settings {
    ///     overrides: Overrides { listen: Some("127.0.0.1:7001".parse()?), storage: None },
    ///     ..from_file
    /// };
    /// assert_eq!(flagged.load()?.listen.port(), 7001); // the flag wins
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(&self) -> Result<Config, ConfigError> {
        match &self.config {
            Some(path) => Config::load(path, &self.overrides),
            None => Config::parse_with("", "(defaults)", &self.overrides),
        }
    }
}

/// Why the server could not start, or a configuration was not put in force.
///
/// ```
/// use std::path::PathBuf;
/// use tollgate_server::{Overrides, ServeError, Settings, check, serve};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let missing = Settings { config: Some(PathBuf::from("/nonexistent/tollgate.toml")), ..Settings::default() };
/// let err = check(&missing).unwrap_err();
/// assert!(matches!(err, ServeError::Config(_)));
/// assert!(err.to_string().starts_with("/nonexistent/tollgate.toml: cannot read: "));
///
/// // A port that is taken.
/// let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let listen = Some(taken.local_addr()?);
/// let settings = Settings { overrides: Overrides { listen, storage: None }, ..Settings::default() };
/// let (_reload, reload) = tokio::sync::mpsc::channel(1);
/// let err = serve(settings, reload, std::future::pending()).await.unwrap_err();
/// assert!(matches!(err, ServeError::Listen { what: "check API", .. }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub enum ServeError {
    /// The configuration is wrong.
    Config(ConfigError),
    /// The storage could not be opened.
    Storage(String),
    /// The proxy's limits do not compile.
    Proxy(tollgate_tower::BuildError),
    /// A listener could not be bound.
    Listen {
        /// What listens there.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why not.
        error: std::io::Error,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(err) => err.fmt(f),
            ServeError::Storage(err) => write!(f, "cannot open storage: {err}"),
            ServeError::Proxy(err) => write!(f, "proxy: {err}"),
            ServeError::Listen { what, addr, error } => {
                write!(f, "cannot listen on {addr} for the {what}: {error}")
            }
        }
    }
}

impl std::error::Error for ServeError {}

/// Everything `serve` checks before it opens the storage or binds a port, for `check-config`:
/// the configuration read as `serve` reads it, and put in force over a memory store.
///
/// ```
/// use tollgate_server::{Settings, check};
///
/// let path = std::env::temp_dir().join(format!("tollgate-check-{}.toml", std::process::id()));
/// std::fs::write(&path, "[policies.login]\nlimits = \"5/minute\"\n")?;
/// let config = check(&Settings { config: Some(path), ..Settings::default() })?;
/// assert!(config.policies.contains_key("login"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check(settings: &Settings) -> Result<Config, ServeError> {
    let config = settings.load().map_err(ServeError::Config)?;
    let limiter = Limiter::new(Failover::new(
        Leasing::new(AnyStore::Memory(MemoryStore::new())),
        config.on_storage_error,
    ));
    InForce::new(&limiter, &Metrics::new(), &config).map_err(ServeError::Proxy)?;
    Ok(config)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish. Each time
/// `reload` yields, the configuration is read again: a valid one is put in force (counts of
/// unchanged policies survive), an invalid one is logged and the old one stays. The same
/// happens when the configuration file, or a file it names, changes on disk (unless
/// `watch_config = false`; see `server/config_watch.rs`).
///
/// The bound addresses are printed on standard output (`check API listening on
/// http://127.0.0.1:8080`), so that port 0 can be used.
///
/// ```
/// use tollgate_server::{Overrides, Settings, serve};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let settings = Settings {
///     config: None,
///     overrides: Overrides { listen: Some("127.0.0.1:0".parse()?), storage: None },
/// };
/// let (reload_tx, reload) = tokio::sync::mpsc::channel(1);
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(serve(settings, reload, async {
///     let _ = stopped.await;
/// }));
/// reload_tx.send(()).await?; // as on SIGHUP: read the configuration again
/// stop.send(()).expect("the server is running");
/// assert!(server.await?.is_ok()); // shut down cleanly
/// # Ok(())
/// # }
/// ```
pub async fn serve(
    settings: Settings,
    mut reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut config = settings.load().map_err(ServeError::Config)?;
    // What the files held when read: a change from now on reloads.
    let watched = config_watch::watched_files(&settings, &config);
    let baseline = config_watch::Baseline::look(&watched);
    let store = open_storage(&config).await?;
    let state = Arc::new(ServerState::new(&config, store).map_err(ServeError::Proxy)?);
    let check_listener = bind("check API", config.listen).await?;
    announce("check API", &check_listener);

    let (stop_tx, stop_rx) = watch::channel(false);
    // A descriptor per connection on each listener, two on the proxy's (its upstream's).
    let per_connection =
        1 + 2 * u64::from(config.proxy.is_some()) + u64::from(config.grpc_listen.is_some());
    let limits = descriptors::fitted(config.connections, per_connection);
    let mut tasks = tokio::task::JoinSet::new();
    let router = check_api::check_api_router(Arc::clone(&state));
    tasks.spawn(http_listener::serve_http(
        CappedListener::new(check_listener, limits, Protocol::Http1),
        router,
        limits.body_timeout,
        stop_rx.clone(),
    ));
    if let Some(proxy) = &config.proxy {
        let listener = bind("proxy", proxy.listen).await?;
        announce("proxy", &listener);
        // The router in force at each request: a reload swaps it with the rest.
        let front = axum::Router::new().fallback_service(tower::service_fn({
            let state = Arc::clone(&state);
            move |request: axum::extract::Request| {
                let router = state.in_force().proxy().cloned().unwrap_or_default();
                tower::ServiceExt::oneshot(router, request)
            }
        }));
        tasks.spawn(http_listener::serve_http(
            CappedListener::new(listener, limits, Protocol::Http1),
            front,
            limits.body_timeout,
            stop_rx.clone(),
        ));
    }
    if let Some(addr) = config.grpc_listen {
        let listener = bind("Envoy rate limit service", addr).await?;
        announce("Envoy rate limit service", &listener);
        let mut stop = stop_rx.clone();
        tasks.spawn(grpc_listener::serve_grpc(
            CappedListener::new(listener, limits, Protocol::Http2),
            limits,
            Arc::clone(&state),
            async move { stopping(&mut stop).await },
        ));
    }
    if !config.storage.is_memory() {
        tasks.spawn(sweep_leases(
            Arc::clone(&state),
            config.lease,
            stop_rx.clone(),
        ));
    }
    // The files to watch (none with `watch_config = false`), updated by each reload.
    let (watched_tx, watched_rx) = watch::channel(watched);
    let (changed_tx, mut changed) = mpsc::channel(1);
    if settings.config.is_some() {
        tasks.spawn(async move {
            config_watch::watch_files(watched_rx, baseline, changed_tx, stop_rx).await;
            Ok(())
        });
    }
    tracing::info!(
        storage = state.storage(),
        policies = config.policies.len(),
        "tollgate serving"
    );

    tokio::pin!(shutdown);
    let mut signals_open = true;
    loop {
        let trigger = tokio::select! {
            () = &mut shutdown => break,
            signal = reload.recv(), if signals_open => match signal {
                Some(()) => "SIGHUP".to_owned(),
                // No more reloads can be asked for; changed files may still reload.
                None => {
                    signals_open = false;
                    continue;
                }
            },
            Some(file) = changed.recv() => {
                tracing::info!(file = %file.display(), "configuration file changed");
                format!("{} changed", file.display())
            }
        };
        let reloaded = settings
            .load()
            .map_err(|err| err.to_string())
            .and_then(|new| {
                restart_only_changes(&config, &new)?;
                state.reload(&new).map_err(|err| format!("proxy: {err}"))?;
                Ok(new)
            });
        match reloaded {
            Ok(new) => {
                tracing::info!(%trigger, policies = new.policies.len(), "configuration reloaded");
                watched_tx.send_if_modified(|watched| {
                    let now = config_watch::watched_files(&settings, &new);
                    let modified = *watched != now;
                    *watched = now;
                    modified
                });
                config = new;
            }
            Err(reason) => tracing::error!(
                %trigger,
                %reason,
                "configuration not reloaded, the old one stays"
            ),
        }
    }
    tracing::info!("shutting down: letting requests in flight finish");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(result) = tasks.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::error!("listener failed: {err}");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "connections still open {} s after shutdown began; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// Completes when `stop` says stop (or its sender is gone).
pub(crate) async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Listen { what, addr, error })
}

/// Says where `listener` listens: on standard output (for scripts and tests, as port 0 picks
/// a port) and in the log.
fn announce(what: &str, listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        println!("{what} listening on http://{addr}");
        tracing::info!(listener = what, %addr, "listening");
    }
}

/// What a reload cannot change: the listeners and the storage are set up once. `Err` says
/// what changed.
/// Ends expired quota leases and gives their unspent units back, every half lease lifetime
/// (of `[server] lease`; 100 ms when it is off, for policies that lease on their own), until
/// the server stops.
async fn sweep_leases(
    state: Arc<ServerState>,
    lease: tollgate::QuotaLease,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let every = lease
        .lifetime()
        .map_or(Duration::from_millis(100), |lifetime| lifetime / 2)
        .clamp(Duration::from_millis(5), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopping(&mut stop) => return Ok(()),
            _ = ticks.tick() => state.sweep_leases().await,
        }
    }
}

fn restart_only_changes(old: &Config, new: &Config) -> Result<(), String> {
    let proxy_listen = |config: &Config| config.proxy.as_ref().map(|proxy| proxy.listen);
    let changed = [
        ("server.listen", old.listen != new.listen),
        ("server.grpc_listen", old.grpc_listen != new.grpc_listen),
        (
            "the [proxy] section or proxy.listen",
            proxy_listen(old) != proxy_listen(new),
        ),
        // The storage URI carries the budget of keys in memory.
        (
            "server.storage or server.max_keys",
            old.storage != new.storage,
        ),
        (
            "server.header_timeout, body_timeout, keepalive_timeout or max_connections",
            old.connections != new.connections,
        ),
        (
            "server.on_storage_error",
            old.on_storage_error != new.on_storage_error,
        ),
        ("server.lease", old.lease != new.lease),
    ];
    let changed: Vec<&str> = changed
        .into_iter()
        .filter_map(|(what, changed)| changed.then_some(what))
        .collect();
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} changed; listeners and storage change only on restart",
            changed.join(", ")
        ))
    }
}

/// The configured storage. Under a failure mode that covers for a store that is down
/// (`allow`, `fallback`), a Redis server that cannot be reached yet does not stop the server:
/// it is connected to when it appears, and the failure mode answers until then.
async fn open_storage(config: &Config) -> Result<AnyStore, ServeError> {
    let failed = |err: UriError| ServeError::Storage(err.to_string());
    if config.on_storage_error == FailureMode::Deny {
        return config.storage.open().await.map_err(failed);
    }
    let (store, unreachable) = config
        .storage
        .open_or_connect_later()
        .await
        .map_err(failed)?;
    if let Some(err) = unreachable {
        tracing::warn!(
            on_storage_error = %config.on_storage_error,
            "{err}; serving by the failure mode and connecting when it appears"
        );
    }
    Ok(store)
}
