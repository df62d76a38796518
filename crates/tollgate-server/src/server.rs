//! `tollgate serve`: opens the storage, binds the listeners, serves until shut down, and
//! reloads the configuration when asked.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use std::time::Instant;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tollgate_redis::AnyStore;

use crate::app::App;
use crate::check_api;
use crate::config::{Config, ConfigError};
use crate::proxy::{ProxyError, proxy_app};

/// How long a shutdown waits for requests in flight (and idle keep-alive connections, such as
/// Envoy's) before closing what is left.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the configuration comes from, and the command-line flags that override it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The config file; none means the defaults.
    pub config: Option<PathBuf>,
    /// `--listen`: overrides `[server] listen`.
    pub listen: Option<SocketAddr>,
    /// `--storage`: overrides `[server] storage`.
    pub storage: Option<String>,
}

impl Settings {
    /// Reads the configuration and applies the flags.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::empty(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(storage) = &self.storage {
            config.storage.clone_from(storage);
        }
        Ok(config)
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServeError {
    /// The configuration is wrong.
    Config(ConfigError),
    /// The storage could not be opened.
    Storage(String),
    /// The proxy's routes do not fit together.
    Proxy(ProxyError),
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

/// Serves until `shutdown` completes, then lets in-flight requests finish. Each time
/// `reload` yields, the configuration is read again: a valid one is put in force (counts of
/// unchanged policies survive), an invalid one is logged and the old one stays.
///
/// The bound addresses are printed on standard output (`check API listening on
/// http://127.0.0.1:8080`), so that port 0 can be used.
pub async fn serve(
    settings: Settings,
    mut reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut config = settings.load().map_err(ServeError::Config)?;
    let store = AnyStore::open(&config.storage)
        .await
        .map_err(|err| ServeError::Storage(err.to_string()))?;
    let app = Arc::new(App::new(&config, store));
    let check_listener = bind("check API", config.listen).await?;
    announce("check API", &check_listener);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        // Either a stop, or the sender gone: both mean stop.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    let router = check_api::router(Arc::clone(&app));
    tasks.spawn(
        axum::serve(
            check_listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .into_future(),
    );
    let proxy = match &config.proxy {
        Some(proxy) => {
            let router = proxy_app(
                proxy,
                &config.policies,
                config.headers,
                Arc::clone(app.store()),
            )
            .map_err(ServeError::Proxy)?;
            let current = Arc::new(RwLock::new(router));
            let listener = bind("proxy", proxy.listen).await?;
            announce("proxy", &listener);
            let front = axum::Router::new().fallback_service(tower::service_fn({
                let current = Arc::clone(&current);
                move |request: axum::extract::Request| {
                    let router = current
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    tower::ServiceExt::oneshot(router, request)
                }
            }));
            tasks.spawn(
                axum::serve(
                    listener,
                    front.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future(),
            );
            Some(current)
        }
        None => None,
    };
    if let Some(addr) = config.grpc_listen {
        let listener = bind("Envoy rate limit service", addr).await?;
        announce("Envoy rate limit service", &listener);
        let service = RateLimitServiceServer::new(EnvoyFront(Arc::clone(&app)));
        tasks.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stopped(stop_rx),
                )
                .await
                .map_err(std::io::Error::other)
        });
    }
    tracing::info!(
        storage = app.storage(),
        policies = config.policies.len(),
        "tollgate serving"
    );

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            signal = reload.recv() => {
                if signal.is_none() {
                    // No more reloads can come; wait for the shutdown alone.
                    (&mut shutdown).await;
                    break;
                }
                match settings.load() {
                    Ok(new) => {
                        warn_about_restart_only_changes(&config, &new);
                        if let (Some(current), Some(routes)) = (&proxy, &new.proxy) {
                            match proxy_app(routes, &new.policies, new.headers, Arc::clone(app.store())) {
                                Ok(router) => {
                                    *current.write().unwrap_or_else(PoisonError::into_inner) = router;
                                }
                                Err(err) => {
                                    tracing::error!("configuration not reloaded, the old one stays: proxy: {err}");
                                    continue;
                                }
                            }
                        }
                        app.reload(&new);
                        tracing::info!(policies = new.policies.len(), "configuration reloaded");
                        config = new;
                    }
                    Err(err) => tracing::error!("configuration not reloaded, the old one stays: {err}"),
                }
            }
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

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Listen { what, addr, error })
}

fn announce(what: &str, listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        println!("{what} listening on http://{addr}");
    }
}

/// Envoy's rate limit service over the configuration in force.
struct EnvoyFront(Arc<App>);

#[tonic::async_trait]
impl RateLimitService for EnvoyFront {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let started = Instant::now();
        let live = self.0.live();
        let envoy = live.envoy.as_ref().ok_or_else(|| {
            tonic::Status::unavailable("no Envoy descriptor configuration is in force")
        })?;
        let answer = envoy.check(request.get_ref()).await;
        self.0.metrics().took(started.elapsed());
        answer.map(tonic::Response::new)
    }
}

/// Listeners and storage are set up once; a reload that changes them says so.
fn warn_about_restart_only_changes(old: &Config, new: &Config) {
    let proxy_listen = |config: &Config| config.proxy.as_ref().map(|proxy| proxy.listen);
    if old.listen != new.listen
        || old.storage != new.storage
        || old.grpc_listen != new.grpc_listen
        || proxy_listen(old) != proxy_listen(new)
    {
        tracing::warn!("listen addresses and storage change only on restart");
    }
}
