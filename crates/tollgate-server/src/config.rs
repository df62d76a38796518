//! The TOML configuration: read, checked, and turned into the values the server runs on.
//!
//! Every mistake names the file, the line and the field:
//! `tollgate.toml:12: policies.login.limits: invalid rate "5/minit" at byte 2: ...`. Unknown
//! fields are errors, so a typo never silently disables a limit.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tollgate::{FailurePolicy, Policy, Rates, Strategy};
use tollgate_tower::HeaderStyle;

use crate::envoy::EnvoyConfig;
use toml::Spanned;

/// The address the check API listens on when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A checked configuration.
///
/// ```
/// use tollgate_server::config::Config;
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
/// # Ok::<(), tollgate_server::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the check API, `/metrics` and `/healthz` listen.
    pub listen: SocketAddr,
    /// Where Envoy's rate limit service listens, if anywhere.
    pub grpc_listen: Option<SocketAddr>,
    /// The storage URI (`memory://`, `redis://...`, `redis+cluster://...`).
    pub storage: String,
    /// What a storage error means for a hit.
    pub on_storage_error: FailurePolicy,
    /// Which rate-limit headers responses carry (`ietf` unless set, as in the Tower layer).
    pub headers: HeaderStyle,
    /// The bearer token `POST /v1/reset` requires; reset is disabled without one.
    pub admin_token: Option<String>,
    /// The named policies.
    pub policies: BTreeMap<String, Policy>,
    /// The reverse proxy, if configured.
    pub proxy: Option<ProxyConfig>,
    /// The Envoy descriptor configuration file, if configured (relative to the config file).
    pub envoy_config: Option<PathBuf>,
    /// The Envoy descriptor configuration, read by [`Config::load`] from `envoy_config`.
    pub envoy: Option<EnvoyConfig>,
}

/// The `[proxy]` section: requests to `listen` are limited and forwarded to `upstream`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// The upstream base URI (`http://127.0.0.1:9000`).
    pub upstream: http::Uri,
    /// Peers believed when they send `X-Forwarded-For`.
    pub trusted_proxies: Vec<String>,
    /// The policy of routes without one of their own.
    pub default_policy: Option<String>,
    /// Who pays, for routes without a key of their own.
    pub key: KeySpec,
    /// The routes, in order.
    pub routes: Vec<RouteConfig>,
}

/// One `[[proxy.routes]]` entry.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `/ping` (exact) or `/api/*` (a prefix).
    pub path: String,
    /// The methods this route's policy applies to; all when empty.
    pub methods: Vec<http::Method>,
    /// The policy, by name.
    pub policy: Option<String>,
    /// Who pays, if not the proxy's key.
    pub key: Option<KeySpec>,
    /// No limit at all.
    pub exempt: bool,
}

/// Who pays for a request: `ip`, `header:NAME`, or `header:NAME,ip` (the header, else the IP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// The client IP.
    Ip,
    /// A header's value, with the client IP as fallback if `or_ip`; requests without the
    /// header and no fallback share one count.
    Header {
        /// The header name, lowercase.
        name: http::HeaderName,
        /// Whether the client IP keys requests without the header.
        or_ip: bool,
    },
}

/// A configuration mistake, with where it is: `file:line: field: message`.
///
/// ```
/// use tollgate_server::config::Config;
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    policies: BTreeMap<String, Spanned<PolicySection>>,
    proxy: Option<ProxySection>,
    envoy: Option<EnvoySection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<Spanned<String>>,
    grpc_listen: Option<Spanned<String>>,
    storage: Option<Spanned<String>>,
    on_storage_error: Option<Spanned<String>>,
    headers: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    limits: Spanned<String>,
    strategy: Option<Spanned<String>>,
    burst: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxySection {
    listen: Spanned<String>,
    upstream: Spanned<String>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    default_policy: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    routes: Vec<Spanned<RouteSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    path: Spanned<String>,
    #[serde(default)]
    methods: Vec<Spanned<String>>,
    policy: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    exempt: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvoySection {
    config: Spanned<String>,
}

impl Config {
    /// The configuration with no file: the check API on [`DEFAULT_LISTEN`], in memory.
    pub fn empty() -> Self {
        Self::parse("", "(defaults)").expect("the empty configuration is valid")
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: file.clone(),
            line: None,
            field: None,
            message: format!("cannot read: {err}"),
        })?;
        let mut config = Self::parse(&text, &file)?;
        if let Some(envoy) = &mut config.envoy_config {
            if let Some(dir) = path.parent() {
                *envoy = dir.join(&*envoy);
            }
            config.envoy = Some(EnvoyConfig::load(&*envoy)?);
        }
        Ok(config)
    }

    /// Checks the configuration `text`, read from `file` (named in errors).
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let checker = Checker { text, file };
        let raw: FileConfig = toml::from_str(text).map_err(|err| checker.toml_error(&err))?;
        checker.check(raw)
    }
}

/// Turns the raw sections into a [`Config`], naming where each mistake is.
struct Checker<'a> {
    text: &'a str,
    file: &'a str,
}

impl Checker<'_> {
    fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(self.line(span.start)),
            field: Some(field.into()),
            message: message.to_string(),
        }
    }

    fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: err.span().map(|span| self.line(span.start)),
            field: None,
            message: err.message().trim().to_owned(),
        }
    }

    fn check(&self, raw: FileConfig) -> Result<Config, ConfigError> {
        let server = raw.server;
        let listen = match &server.listen {
            Some(listen) => self.address(listen, "server.listen")?,
            None => DEFAULT_LISTEN.parse().expect("a valid default address"),
        };
        let grpc_listen = server
            .grpc_listen
            .as_ref()
            .map(|addr| self.address(addr, "server.grpc_listen"))
            .transpose()?;
        let storage = server
            .storage
            .as_ref()
            .map_or_else(|| "memory://".to_owned(), |s| s.get_ref().clone());
        let on_storage_error = match &server.on_storage_error {
            Some(policy) => policy
                .get_ref()
                .parse()
                .map_err(|err| self.error(policy.span(), "server.on_storage_error", err))?,
            None => FailurePolicy::Allow,
        };
        let headers = match &server.headers {
            Some(style) => header_style(style.get_ref()).ok_or_else(|| {
                self.error(
                    style.span(),
                    "server.headers",
                    format!(
                        "unknown header style {:?}; expected ietf, legacy, both or none",
                        style.get_ref()
                    ),
                )
            })?,
            None => HeaderStyle::default(),
        };
        let admin_token = match server.admin_token {
            Some(token) if token.get_ref().is_empty() => {
                return Err(self.error(
                    token.span(),
                    "server.admin_token",
                    "is empty; remove it to disable reset",
                ));
            }
            token => token.map(Spanned::into_inner),
        };
        let mut policies = BTreeMap::new();
        for (name, section) in raw.policies {
            let field = format!("policies.{name}");
            if name == crate::app::INLINE {
                return Err(self.error(
                    section.span(),
                    field,
                    "the name \"inline\" is kept for inline policies of the check API; choose another",
                ));
            }
            let policy = self.policy(section.get_ref(), &field)?;
            policies.insert(name, policy);
        }
        match (&grpc_listen, &raw.envoy, &server.grpc_listen) {
            (Some(_), None, Some(addr)) => {
                return Err(self.error(
                    addr.span(),
                    "server.grpc_listen",
                    "the Envoy rate limit service needs [envoy] config = \"FILE\"",
                ));
            }
            (None, Some(envoy), _) => {
                return Err(self.error(
                    envoy.config.span(),
                    "envoy.config",
                    "the Envoy rate limit service needs [server] grpc_listen = \"IP:PORT\"",
                ));
            }
            _ => {}
        }
        let proxy = raw
            .proxy
            .map(|proxy| self.proxy(proxy, &policies))
            .transpose()?;
        Ok(Config {
            listen,
            grpc_listen,
            storage,
            on_storage_error,
            headers,
            admin_token,
            policies,
            proxy,
            envoy_config: raw
                .envoy
                .map(|envoy| PathBuf::from(envoy.config.into_inner())),
            envoy: None,
        })
    }

    fn address(&self, addr: &Spanned<String>, field: &str) -> Result<SocketAddr, ConfigError> {
        addr.get_ref().parse().map_err(|_| {
            self.error(
                addr.span(),
                field,
                format!(
                    "invalid address {:?}; expected IP:PORT such as 127.0.0.1:8080",
                    addr.get_ref()
                ),
            )
        })
    }

    fn policy(&self, section: &PolicySection, field: &str) -> Result<Policy, ConfigError> {
        let rates: Rates = section
            .limits
            .get_ref()
            .parse()
            .map_err(|err| self.error(section.limits.span(), format!("{field}.limits"), err))?;
        let strategy = match &section.strategy {
            Some(strategy) => strategy
                .get_ref()
                .parse::<Strategy>()
                .map_err(|err| self.error(strategy.span(), format!("{field}.strategy"), err))?,
            None => Strategy::FixedWindow,
        };
        let policy = Policy::new(strategy, rates);
        match &section.burst {
            Some(burst) => policy
                .with_burst(*burst.get_ref())
                .map_err(|err| self.error(burst.span(), format!("{field}.burst"), err)),
            None => Ok(policy),
        }
    }

    fn proxy(
        &self,
        proxy: ProxySection,
        policies: &BTreeMap<String, Policy>,
    ) -> Result<ProxyConfig, ConfigError> {
        let listen = self.address(&proxy.listen, "proxy.listen")?;
        let upstream: http::Uri = proxy
            .upstream
            .get_ref()
            .parse()
            .ok()
            .filter(|uri: &http::Uri| uri.scheme_str() == Some("http") && uri.authority().is_some())
            .ok_or_else(|| {
                self.error(
                    proxy.upstream.span(),
                    "proxy.upstream",
                    format!(
                        "invalid upstream {:?}; expected http://HOST:PORT",
                        proxy.upstream.get_ref()
                    ),
                )
            })?;
        for (i, net) in proxy.trusted_proxies.iter().enumerate() {
            tollgate_tower::TrustedProxies::new([net.get_ref()]).map_err(|err| {
                self.error(net.span(), format!("proxy.trusted_proxies[{i}]"), err)
            })?;
        }
        let known = |name: &Spanned<String>, field: &str| {
            if policies.contains_key(name.get_ref()) {
                Ok(name.get_ref().clone())
            } else {
                let defined: Vec<&str> = policies.keys().map(String::as_str).collect();
                Err(self.error(
                    name.span(),
                    field,
                    format!(
                        "unknown policy {:?}; defined: {}",
                        name.get_ref(),
                        list(&defined)
                    ),
                ))
            }
        };
        let default_policy = proxy
            .default_policy
            .as_ref()
            .map(|name| known(name, "proxy.default_policy"))
            .transpose()?;
        let key = match &proxy.key {
            Some(key) => self.key(key, "proxy.key")?,
            None => KeySpec::Ip,
        };
        let mut routes = Vec::new();
        for (i, route) in proxy.routes.iter().enumerate() {
            let field = format!("proxy.routes[{i}]");
            let route = route.get_ref();
            let path = route.path.get_ref();
            let valid_path = path.starts_with('/')
                && !path.contains(['{', '}'])
                && path
                    .find('*')
                    .is_none_or(|star| star == path.len() - 1 && path.ends_with("/*"));
            if !valid_path {
                return Err(self.error(
                    route.path.span(),
                    format!("{field}.path"),
                    format!("invalid path {path:?}; expected an exact path such as /ping or a prefix such as /api/*"),
                ));
            }
            let methods = route
                .methods
                .iter()
                .map(|method| {
                    method
                        .get_ref()
                        .to_ascii_uppercase()
                        .parse::<http::Method>()
                        .map_err(|_| {
                            self.error(
                                method.span(),
                                format!("{field}.methods"),
                                format!("invalid method {:?}", method.get_ref()),
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
            let policy = route
                .policy
                .as_ref()
                .map(|name| known(name, &format!("{field}.policy")))
                .transpose()?;
            if route.exempt == policy.is_some() {
                return Err(self.error(
                    route.path.span(),
                    field,
                    "a route needs either a policy or exempt = true",
                ));
            }
            let key = route
                .key
                .as_ref()
                .map(|key| self.key(key, &format!("{field}.key")))
                .transpose()?;
            routes.push(RouteConfig {
                path: path.clone(),
                methods,
                policy,
                key,
                exempt: route.exempt,
            });
        }
        Ok(ProxyConfig {
            listen,
            upstream,
            trusted_proxies: proxy
                .trusted_proxies
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            default_policy,
            key,
            routes,
        })
    }

    fn key(&self, key: &Spanned<String>, field: &str) -> Result<KeySpec, ConfigError> {
        let text = key.get_ref().trim();
        let invalid = || {
            self.error(
                key.span(),
                field,
                format!("invalid key {text:?}; expected ip, header:NAME or header:NAME,ip"),
            )
        };
        if text == "ip" {
            return Ok(KeySpec::Ip);
        }
        let header = text.strip_prefix("header:").ok_or_else(invalid)?;
        let (name, or_ip) = match header.split_once(',') {
            Some((name, "ip")) => (name, true),
            Some(_) => return Err(invalid()),
            None => (header, false),
        };
        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid())?;
        Ok(KeySpec::Header { name, or_ip })
    }
}

fn header_style(name: &str) -> Option<HeaderStyle> {
    Some(match name {
        "ietf" => HeaderStyle::Ietf,
        "legacy" => HeaderStyle::Legacy,
        "both" => HeaderStyle::Both,
        "none" => HeaderStyle::None,
        _ => return None,
    })
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
