//! The TOML configuration, read and checked once into typed values: what `serve` runs on and
//! what `check-config` prints.
//!
//! Every mistake names the file, the line and the field:
//! `tollgate.toml:12: policies.login.limits: invalid rate "5/minit" at byte 2: ...`. Unknown
//! fields are errors, so a typo never silently disables a limit. A configuration that
//! [`Config::load`] accepts is one the server serves: listen addresses are distinct, the
//! storage URI is one tollgate opens, every route names a defined policy and no path is both
//! exempt and limited.
//!
//! - `file.rs`: the raw sections and their checks, with the line of each value.
//! - `policy_section.rs`: `[policies.NAME]`: rates, strategy, burst, delay, ban, in-flight.
//! - `proxy.rs`: the `[proxy]` section: keys, the upstream and its timeouts, encoded slashes.
//! - `route.rs`: the `[[proxy.routes]]`: paths, methods, policies, their axum patterns.

mod file;
mod lease;
mod policy_section;
mod proxy;
mod route;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tollgate::{ConcurrencyLimit, FailureMode, Policy, QuotaLease};
use tollgate_redis::StorageUri;
use tollgate_tower::{HeaderPolicies, HeaderStyle};

use crate::grpc::envoy::EnvoyConfig;
pub use proxy::{EscapedSlashes, KeySpec, ProxyConfig, UpstreamTimeouts, UpstreamUri};
pub use route::{RouteConfig, RoutePattern};

/// The address the check API listens on when nothing says otherwise.
///
/// ```
/// use tollgate_server::{Config, DEFAULT_LISTEN};
///
/// assert_eq!(DEFAULT_LISTEN, "127.0.0.1:8080");
/// assert_eq!(Config::empty().listen.to_string(), DEFAULT_LISTEN);
/// ```
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The name inline policies of the check API are counted and labelled under; no configured
/// policy may take it.
pub(crate) const INLINE_POLICY: &str = "inline";

/// A checked configuration.
///
/// ```
/// use tollgate_server::Config;
///
/// let config = Config::parse(r#"
/// [server]
/// storage = "memory://"
///
/// [policies.login]
/// limits = "5/minute"
/// "#, "tollgate.toml")?;
/// assert_eq!(config.policies["login"].to_string(), "5/minute (fixed-window)");
/// assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the check API, `/metrics` and `/healthz` listen.
    pub listen: SocketAddr,
    /// Where Envoy's rate limit service listens, if anywhere (then `envoy_config` is set).
    pub grpc_listen: Option<SocketAddr>,
    /// The storage, with the budget of keys tracked in memory (`[server] max_keys`, over all
    /// policies: of `memory://`, and of the memory a `fallback` counts in;
    /// [`StorageUri::max_keys`]); restart-only.
    ///
    /// ```
    /// use tollgate_server::Config;
    ///
    /// let config = Config::parse("[server]\nmax_keys = 50000\n", "t.toml")?;
    /// assert_eq!(config.storage.max_keys(), 50_000);
    /// assert_eq!(Config::empty().storage.max_keys(), tollgate::DEFAULT_MAX_KEYS);
    /// let err = Config::parse("[server]\nmax_keys = 0\n", "t.toml").unwrap_err();
    /// assert_eq!(err.to_string(), "t.toml:2: server.max_keys: must be between 1 and 1073741824");
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub storage: StorageUri,
    /// What a storage error means for a hit.
    pub on_storage_error: FailureMode,
    /// Which rate-limit headers responses carry (`ietf` unless set, as in the Tower layer).
    pub headers: HeaderStyle,
    /// Which limits the IETF rate-limit fields list (`header_policies`: `all`, the default,
    /// or `closest`).
    ///
    /// ```
    /// use tollgate_server::Config;
    /// use tollgate_tower::HeaderPolicies;
    ///
    /// assert_eq!(Config::empty().header_policies, HeaderPolicies::All);
    /// let config = Config::parse("[server]\nheader_policies = \"closest\"\n", "t.toml")?;
    /// assert_eq!(config.header_policies, HeaderPolicies::Closest);
    /// let err = Config::parse("[server]\nheader_policies = \"first\"\n", "t.toml").unwrap_err();
    /// assert_eq!(err.to_string(), r#"t.toml:2: server.header_policies: unknown choice "first"; expected all or closest"#);
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub header_policies: HeaderPolicies,
    /// Whether the rate-limit fields list shadow policies too (`headers_include_shadow`;
    /// enforced ones only unless set).
    pub headers_include_shadow: bool,
    /// Whether the configuration is reloaded when its file, or a file it names (the Envoy
    /// descriptors), changes on disk (`watch_config`, on unless set to `false`), as on
    /// `SIGHUP`.
    ///
    /// ```
    /// use tollgate_server::Config;
    ///
    /// assert!(Config::empty().watch_config);
    /// assert!(!Config::parse("[server]\nwatch_config = false\n", "t.toml")?.watch_config);
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub watch_config: bool,
    /// Quota leases for every policy over the shared storage (`[server] lease`, such as
    /// `"250ms"`; off unless set), which a policy's own `lease` overrides (a duration, or
    /// `"off"`); refused over `memory://`. Restart-only (a policy's own `lease` reloads).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::QuotaLease;
    /// use tollgate_server::Config;
    ///
    /// assert_eq!(Config::empty().lease, QuotaLease::Off);
    /// let config = Config::parse(
    ///     "[server]\nstorage = \"redis://127.0.0.1:6379\"\nlease = \"250ms\"\n\n\
    ///      [policies.api]\nlimits = \"10/second\"\nlease = \"off\"\n",
    ///     "t.toml",
    /// )?;
    /// assert_eq!(config.lease.lifetime(), Some(Duration::from_millis(250)));
    /// assert_eq!(config.policies["api"].quota_lease(), Some(QuotaLease::Off));
    /// let err = Config::parse("[server]\nlease = \"250ms\"\n", "t.toml").unwrap_err();
    /// assert!(err.to_string().starts_with("t.toml:2: server.lease: quota leases need a shared storage"));
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub lease: QuotaLease,
    /// The bearer token `POST /v1/reset` requires; reset is disabled without one. The
    /// dashboard requires it too, when it is set.
    pub admin_token: Option<String>,
    /// Whether `GET /dashboard` (and its data) is served (`[server] dashboard`, true unless
    /// set false).
    ///
    /// ```
    /// use tollgate_server::Config;
    ///
    /// assert!(Config::empty().dashboard);
    /// assert!(!Config::parse("[server]\ndashboard = false\n", "t.toml")?.dashboard);
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub dashboard: bool,
    /// How long clients may take, and how many may be connected (`[server]` header_timeout,
    /// body_timeout, keepalive_timeout, max_connections); restart-only.
    pub connections: Connections,
    /// The named policies (`[policies.NAME]`: `limits`, `strategy`, `burst`; and a ban after
    /// repeated breaches, `ban_after` and `ban_for`, both or neither).
    ///
    /// ```
    /// use tollgate_server::Config;
    ///
    /// let login = "[policies.login]\nlimits = \"5/minute\"\nban_after = \"3/10 minutes\"\n";
    /// let config = Config::parse(&format!("{login}ban_for = \"1 hour\"\n"), "t.toml")?;
    /// assert_eq!(
    ///     config.policies["login"].to_string(),
    ///     "5/minute (fixed-window, ban after 3/10 minutes for 1 hour)"
    /// );
    /// let err = Config::parse(login, "t.toml").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "t.toml:3: policies.login.ban_after: needs ban_for, how long a ban lasts, such as \"1 hour\""
    /// );
    /// let err = Config::parse(&format!("{login}ban_for = \"1 fortnight\"\n"), "t.toml").unwrap_err();
    /// assert!(err.to_string().starts_with(
    ///     "t.toml:4: policies.login.ban_for: invalid duration \"1 fortnight\" at byte 2: unknown unit"
    /// ));
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub policies: BTreeMap<String, Policy>,
    /// The names of the policies marked `shadow = true`: counted and reported, never denying
    /// (in the check API, the proxy and the metrics alike).
    ///
    /// ```
    /// use tollgate_server::Config;
    ///
    /// let config = Config::parse(r#"
    /// [policies.login]
    /// limits = "10/minute"
    ///
    /// [policies.login-trial]
    /// limits = "3/minute"
    /// shadow = true
    /// "#, "tollgate.toml")?;
    /// assert!(config.shadow_policies.contains("login-trial"));
    /// assert!(!config.shadow_policies.contains("login"));
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub shadow_policies: BTreeSet<String>,
    /// The concurrency limits of the policies that set `max_in_flight` (how many requests of
    /// one key may be in flight at once), with their `lease_ttl` (how long a slot never
    /// released stays taken; 60 s unless set, at most an hour). The proxy applies them beside
    /// the policy's rates, all or none; the check API's `/v1/acquire` takes their slots. A
    /// policy with `max_in_flight` may not be a shadow one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate_server::Config;
    ///
    /// let export = "[policies.export]\nlimits = \"100/minute\"\nmax_in_flight = 5\n";
    /// let config = Config::parse(&format!("{export}lease_ttl = \"30s\"\n"), "t.toml")?;
    /// let limit = config.in_flight["export"];
    /// assert_eq!((limit.max(), limit.lease_ttl()), (5, Duration::from_secs(30)));
    /// let err = Config::parse("[policies.x]\nlimits = \"1/second\"\nlease_ttl = \"30s\"\n", "t.toml").unwrap_err();
    /// assert_eq!(err.to_string(), "t.toml:3: policies.x.lease_ttl: needs max_in_flight, the requests of one key in flight at once");
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub in_flight: BTreeMap<String, ConcurrencyLimit>,
    /// The reverse proxy, if configured.
    pub proxy: Option<ProxyConfig>,
    /// The Envoy descriptor configuration file, if configured (relative to the config file's
    /// directory once loaded).
    pub envoy_config: Option<PathBuf>,
    /// The Envoy descriptor configuration, read by [`Config::load`] from `envoy_config`.
    pub envoy: Option<EnvoyConfig>,
    /// The line of `[envoy] config`, to say where a file that cannot be read is named.
    pub(crate) envoy_config_line: Option<usize>,
}

/// What each listener (check API, proxy, Envoy service) allows a client, so that slow or
/// idle clients cannot hold sockets forever. While a request is in flight no connection timer
/// runs: a slow handler (a slow upstream behind the proxy) keeps its connection.
///
/// ```
/// use std::time::Duration;
/// use tollgate_server::Config;
///
/// let config = Config::parse("[server]\nheader_timeout = \"5s\"\nmax_connections = 10\n", "t.toml")?;
/// assert_eq!(config.connections.header_timeout, Duration::from_secs(5));
/// assert_eq!(config.connections.body_timeout, Duration::from_secs(60)); // the default
/// assert_eq!(config.connections.max_connections, 10);
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// How long a request's head may take to arrive (`header_timeout`, 60 s by default):
    /// from connecting until the first request is complete, and on HTTP/1.1 from the first
    /// byte of each following one. A gRPC connection must send its first call within it.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive (`body_timeout`, 60 s by default);
    /// past it the request is answered 408 and the connection closed. A gRPC call must be
    /// received and answered within it, else it ends `CANCELLED`. A client that takes
    /// nothing of its answer for as long is closed.
    pub body_timeout: Duration,
    /// How long a connection may stay idle, with no request in flight
    /// (`keepalive_timeout`, 75 s by default).
    pub keepalive_timeout: Duration,
    /// How many connections each listener holds at once (`max_connections`, 10000 by
    /// default); more wait to be accepted.
    pub max_connections: usize,
    /// How many proxied requests may wait at once for the slot a policy's `max_delay`
    /// reserved them (`max_waiting`, 1024 by default; 0 lets none wait); beyond it they are
    /// answered 429.
    pub max_waiting: usize,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            max_connections: 10_000,
            max_waiting: 1024,
        }
    }
}

/// What the command line says instead of the file (`tollgate serve --listen --storage`).
///
/// ```
/// use tollgate_server::{Config, Overrides};
///
/// let overrides = Overrides { listen: Some("127.0.0.1:9999".parse()?), storage: None };
/// let config = Config::parse_with("", "tollgate.toml", &overrides)?;
/// assert_eq!(config.listen.port(), 9999);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`: where the check API listens.
    pub listen: Option<SocketAddr>,
    /// `--storage`: the storage URI.
    pub storage: Option<String>,
}

impl Config {
    /// The configuration with no file: the check API on [`DEFAULT_LISTEN`], in memory.
    ///
    /// ```
    /// use tollgate::FailureMode;
    /// use tollgate_server::Config;
    ///
    /// let config = Config::empty();
    /// assert!(config.storage.is_memory());
    /// assert_eq!(config.on_storage_error, FailureMode::Allow);
    /// assert!(config.policies.is_empty() && config.proxy.is_none() && config.grpc_listen.is_none());
    /// ```
    pub fn empty() -> Self {
        Self::parse("", "(defaults)").expect("the empty configuration is valid")
    }

    /// Reads and checks the file at `path` (and the Envoy descriptor file it names), with
    /// `overrides` from the command line: exactly what `serve` and `check-config` run.
    ///
    /// ```
    /// use tollgate_server::{Config, Overrides};
    ///
    /// let dir = std::env::temp_dir().join(format!("tollgate-config-load-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// std::fs::write(dir.join("ratelimit.yaml"), "domain: edge\n")?;
    /// std::fs::write(
    ///     dir.join("tollgate.toml"),
    ///     "[server]\ngrpc_listen = \"127.0.0.1:8081\"\n\n[envoy]\nconfig = \"ratelimit.yaml\"\n",
    /// )?;
    /// let config = Config::load(&dir.join("tollgate.toml"), &Overrides::default())?;
    /// // The descriptor file is found next to the configuration, and read.
    /// assert_eq!(config.envoy_config, Some(dir.join("ratelimit.yaml")));
    /// assert_eq!(config.envoy.expect("read").domains().collect::<Vec<_>>(), ["edge"]);
    ///
    /// let err = Config::load(&dir.join("missing.toml"), &Overrides::default()).unwrap_err();
    /// assert!(err.message().starts_with("cannot read: "));
    ///
    /// // A descriptor file that is not there: where it is named, and the path it came to.
    /// std::fs::write(
    ///     dir.join("nope.toml"),
    ///     "[server]\ngrpc_listen = \"127.0.0.1:8081\"\n\n[envoy]\nconfig = \"nope.yaml\"\n",
    /// )?;
    /// let err = Config::load(&dir.join("nope.toml"), &Overrides::default()).unwrap_err();
    /// assert_eq!((err.line(), err.field()), (Some(5), Some("envoy.config")));
    /// assert!(err.to_string().starts_with(&format!(
    ///     "{}:5: envoy.config: cannot read {} (\"nope.yaml\", relative to this file's directory): ",
    ///     dir.join("nope.toml").display(),
    ///     dir.join("nope.yaml").display(),
    /// )));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: file.clone(),
            line: None,
            field: None,
            message: format!("cannot read: {err}"),
        })?;
        let mut config = Self::parse_with(&text, &file, overrides)?;
        let line = config.envoy_config_line;
        if let Some(envoy) = &mut config.envoy_config {
            let given = envoy.clone();
            if let Some(dir) = path.parent() {
                *envoy = dir.join(&*envoy);
            }
            // A file that cannot be read is this file's mistake: say where it is named, and
            // which file that name came to.
            let yaml = std::fs::read_to_string(&*envoy).map_err(|err| ConfigError {
                file: file.clone(),
                line,
                field: Some("envoy.config".to_owned()),
                message: format!(
                    "cannot read {} ({:?}, relative to this file's directory): {err}",
                    std::path::absolute(&*envoy)
                        .unwrap_or_else(|_| envoy.clone())
                        .display(),
                    given.display().to_string(),
                ),
            })?;
            config.envoy = Some(EnvoyConfig::from_yaml(&yaml, &envoy.display().to_string())?);
        }
        Ok(config)
    }

    /// Checks the configuration `text`, read from `file` (named in errors). The Envoy
    /// descriptor file is not read: see [`Config::load`].
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, file, &Overrides::default())
    }

    /// Checks the configuration `text` with `overrides` from the command line.
    ///
    /// ```
    /// use tollgate_server::{Config, Overrides};
    ///
    /// let text = "[server]\nstorage = \"redis://127.0.0.1:6379\"\n";
    /// let overrides = Overrides { storage: Some("memory://".to_owned()), ..Overrides::default() };
    /// assert!(Config::parse_with(text, "tollgate.toml", &overrides)?.storage.is_memory()); // the flag wins
    /// assert!(!Config::parse(text, "tollgate.toml")?.storage.is_memory());
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn parse_with(text: &str, file: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        file::Checker::new(text, file).check(overrides)
    }
}

/// A configuration mistake, with where it is: `file:line: field: message`.
///
/// ```
/// use tollgate_server::Config;
///
/// let err = Config::parse("[policies.login]\nlimits = \"5/minit\"\n", "tollgate.toml").unwrap_err();
/// assert_eq!((err.file(), err.line(), err.field()), ("tollgate.toml", Some(2), Some("policies.login.limits")));
/// assert!(err.message().starts_with("invalid rate \"5/minit\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(crate) file: String,
    /// 1-based.
    pub(crate) line: Option<usize>,
    /// Such as `policies.login.limits`.
    pub(crate) field: Option<String>,
    pub(crate) message: String,
}

impl ConfigError {
    /// The file, as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line (from 1), when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The field (`policies.login.limits`), when known.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
