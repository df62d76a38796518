//! The `[proxy]` section: where the proxy listens, the upstream, keys and trusted proxies,
//! checked once (the routes are in `route.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderValue;
use http::uri::Authority;
use serde::Deserialize;
use tollgate::Policy;
use tollgate_tower::{ProxyHeader, TrustedProxies};
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::file::Checker;
use crate::config::route::{RouteConfig, RoutePattern, RouteSection};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxySection {
    pub(crate) listen: Spanned<String>,
    upstream: Spanned<String>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    default_policy: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    upstream_connect_timeout: Option<Spanned<String>>,
    upstream_timeout: Option<Spanned<String>>,
    upstream_idle_timeout: Option<Spanned<String>>,
    escaped_slashes: Option<Spanned<String>>,
    client_ip_header: Option<Spanned<String>>,
    #[serde(default)]
    routes: Vec<Spanned<RouteSection>>,
}

/// The `[proxy]` section: requests to `listen` are limited and forwarded to `upstream`.
///
/// ```
/// use tollgate_server::{Config, KeySpec};
///
/// let config = Config::parse(r#"
/// [policies.api]
/// limits = "100/minute"
///
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
/// trusted_proxies = ["10.0.0.0/8"]
/// default_policy = "api"
///
/// [[proxy.routes]]
/// path = "/health"
/// exempt = true
/// "#, "tollgate.toml")?;
/// let proxy = config.proxy.expect("a [proxy] section");
/// assert_eq!(proxy.listen.port(), 8081);
/// assert_eq!(proxy.upstream.to_string(), "http://127.0.0.1:3000");
/// assert!(proxy.trusted_proxies.contains("10.1.2.3".parse()?));
/// assert_eq!(proxy.default_policy.as_deref(), Some("api"));
/// assert_eq!(proxy.key, KeySpec::Ip); // unless `key` says otherwise
/// assert_eq!((proxy.routes.len(), proxy.patterns.len()), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// Where allowed requests go.
    pub upstream: UpstreamUri,
    /// Peers believed when they send the client's address, and the header they send it in
    /// (`client_ip_header`: `x-forwarded-for`, the default, `forwarded` or `x-real-ip`).
    ///
    /// ```
    /// use tollgate_server::Config;
    /// use tollgate_tower::ProxyHeader;
    ///
    /// let header = |text: &str| {
    ///     let text = format!("[proxy]\nlisten = \"127.0.0.1:8081\"\nupstream = \"http://127.0.0.1:3000\"\n{text}");
    ///     Config::parse(&text, "t.toml").map(|config| config.proxy.expect("[proxy]").trusted_proxies.header())
    /// };
    /// assert_eq!(header("")?, ProxyHeader::XForwardedFor);
    /// assert_eq!(header("client_ip_header = \"forwarded\"")?, ProxyHeader::Forwarded);
    /// assert_eq!(header("client_ip_header = \"X-Real-IP\"")?, ProxyHeader::XRealIp);
    /// assert_eq!(
    ///     header("client_ip_header = \"true-client-ip\"").unwrap_err().to_string(),
    ///     "t.toml:4: proxy.client_ip_header: unknown header \"true-client-ip\"; expected x-forwarded-for, forwarded or x-real-ip"
    /// );
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub trusted_proxies: TrustedProxies,
    /// The policy of routes without one of their own.
    pub default_policy: Option<String>,
    /// Who pays, for routes without a key of their own.
    pub key: KeySpec,
    /// The routes, in order.
    pub routes: Vec<RouteConfig>,
    /// The axum patterns the routes become, each with the routes that decide it.
    pub patterns: Vec<RoutePattern>,
    /// How long the upstream may take.
    pub upstream_timeouts: UpstreamTimeouts,
    /// What a path with an encoded slash or backslash meets.
    pub escaped_slashes: EscapedSlashes,
}

/// How long the proxy waits for its upstream (`[proxy]` `upstream_connect_timeout`,
/// `upstream_timeout`, `upstream_idle_timeout`). A connection not made, or a
/// response head not received, in time answers `504 Gateway Timeout`; a response body that
/// pauses longer than `idle` is cut, and the client sees its connection end.
///
/// ```
/// use std::time::Duration;
/// use tollgate_server::{Config, UpstreamTimeouts};
///
/// let config = Config::parse(r#"
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
/// upstream_timeout = "30s"
/// "#, "tollgate.toml")?;
/// let timeouts = config.proxy.expect("a [proxy] section").upstream_timeouts;
/// assert_eq!(timeouts.response, Duration::from_secs(30));
/// assert_eq!(timeouts.connect, UpstreamTimeouts::default().connect); // 5 s
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// Connecting to the upstream (`upstream_connect_timeout`, 5 s by default).
    pub connect: Duration,
    /// From forwarding a request, its body included, to the upstream's response head
    /// (`upstream_timeout`, 60 s by default).
    pub response: Duration,
    /// The longest pause in the upstream's response body (`upstream_idle_timeout`, 60 s by
    /// default).
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

/// What the proxy does with a path holding an encoded slash or backslash (`%2F`, `%5C`, in
/// either case) or a backslash (`[proxy] escaped_slashes`), as Envoy's
/// `path_with_escaped_slashes_action`. Routes match the path as the proxy reads it, but an
/// upstream that decodes `%2F` or takes `\` for `/` sees another path, so left alone
/// `/static/..%2flogin` would reach `/login` past its limit.
///
/// ```
/// use tollgate_server::{Config, EscapedSlashes};
///
/// let action = |text: &str| {
///     let text = format!("[proxy]\nlisten = \"127.0.0.1:8081\"\nupstream = \"http://127.0.0.1:3000\"\n{text}");
///     Config::parse(&text, "tollgate.toml").map(|config| config.proxy.expect("a [proxy] section").escaped_slashes)
/// };
/// assert_eq!(action("")?, EscapedSlashes::Reject); // the default
/// assert_eq!(action("escaped_slashes = \"decode\"")?, EscapedSlashes::Decode);
/// assert!(action("escaped_slashes = \"keep\"").is_err());
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// `reject`: answer `400` with `{"error": ...}`.
    #[default]
    Reject,
    /// `decode`: read each as `/` before routing, so that the path limited is the path the
    /// upstream receives (`/static/..%2flogin` meets `/login`'s limit and is forwarded as
    /// `/login`).
    Decode,
}

/// The upstream, checked: `http://HOST[:PORT][/PATH]`.
///
/// ```
/// use tollgate_server::Config;
///
/// let proxy_to = |upstream: &str| {
///     let text = format!("[proxy]\nlisten = \"127.0.0.1:8081\"\nupstream = \"{upstream}\"\n");
///     Config::parse(&text, "tollgate.toml").map(|config| config.proxy.expect("a [proxy] section").upstream)
/// };
/// let upstream = proxy_to("http://app.internal:3000/v2/")?;
/// assert_eq!(upstream.authority.as_str(), "app.internal:3000");
/// assert_eq!(upstream.base_path, "/v2");
/// assert_eq!(upstream.host, "app.internal:3000");
/// assert_eq!(upstream.to_string(), "http://app.internal:3000/v2");
/// assert!(proxy_to("https://app.internal").is_err()); // plain HTTP only
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UpstreamUri {
    /// `HOST[:PORT]`.
    pub authority: Authority,
    /// The path without its trailing slash (empty for the root), put before every forwarded
    /// path.
    pub base_path: String,
    /// The `Host` forwarded requests carry: the authority.
    pub host: HeaderValue,
}

impl std::fmt::Display for UpstreamUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.base_path)
    }
}

/// Who pays for a request: `ip`, `header:NAME`, or `header:NAME,ip` (the header, else the IP).
///
/// ```
/// use http::HeaderName;
/// use tollgate_server::{Config, KeySpec};
///
/// let key = |spec: &str| {
///     let text = format!("[proxy]\nlisten = \"127.0.0.1:8081\"\nupstream = \"http://127.0.0.1:3000\"\nkey = \"{spec}\"\n");
///     Config::parse(&text, "tollgate.toml").map(|config| config.proxy.expect("a [proxy] section").key)
/// };
/// assert_eq!(key("ip")?, KeySpec::Ip);
/// let api_key = HeaderName::from_static("x-api-key");
/// assert_eq!(key("header:X-Api-Key")?, KeySpec::Header { name: api_key.clone(), or_ip: false });
/// assert_eq!(key("header:x-api-key,ip")?, KeySpec::Header { name: api_key, or_ip: true });
/// assert!(key("cookie:session").unwrap_err().message().starts_with("invalid key \"cookie:session\""));
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
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

impl Checker<'_> {
    pub(crate) fn proxy(
        &self,
        proxy: &ProxySection,
        policies: &BTreeMap<String, Policy>,
    ) -> Result<ProxyConfig, ConfigError> {
        let listen = self.address(&proxy.listen, "proxy.listen")?;
        let upstream = self.upstream(&proxy.upstream)?;
        let nets = &proxy.trusted_proxies;
        let trusted_proxies =
            TrustedProxies::new(nets.iter().map(Spanned::get_ref)).map_err(|err| {
                let i = nets
                    .iter()
                    .position(|net| net.get_ref().trim() == err.input())
                    .unwrap_or(0);
                self.error(nets[i].span(), format!("proxy.trusted_proxies[{i}]"), err)
            })?;
        let trusted_proxies = match &proxy.client_ip_header {
            None => trusted_proxies,
            Some(name) => trusted_proxies.with_header(self.client_ip_header(name)?),
        };
        let default_policy = proxy
            .default_policy
            .as_ref()
            .map(|name| self.policy_name(name, "proxy.default_policy", policies))
            .transpose()?;
        let key = match &proxy.key {
            Some(key) => self.key(key, "proxy.key")?,
            None => KeySpec::Ip,
        };
        let (routes, patterns) = self.routes(&proxy.routes, policies)?;
        let defaults = UpstreamTimeouts::default();
        let upstream_timeouts = UpstreamTimeouts {
            connect: self
                .duration(
                    &proxy.upstream_connect_timeout,
                    "proxy.upstream_connect_timeout",
                )?
                .unwrap_or(defaults.connect),
            response: self
                .duration(&proxy.upstream_timeout, "proxy.upstream_timeout")?
                .unwrap_or(defaults.response),
            idle: self
                .duration(&proxy.upstream_idle_timeout, "proxy.upstream_idle_timeout")?
                .unwrap_or(defaults.idle),
        };
        let escaped_slashes = match &proxy.escaped_slashes {
            None => EscapedSlashes::default(),
            Some(action) => match action.get_ref().as_str() {
                "reject" => EscapedSlashes::Reject,
                "decode" => EscapedSlashes::Decode,
                other => {
                    return Err(self.error(
                        action.span(),
                        "proxy.escaped_slashes",
                        format!("unknown action {other:?}; expected reject or decode"),
                    ));
                }
            },
        };
        Ok(ProxyConfig {
            listen,
            upstream,
            trusted_proxies,
            default_policy,
            key,
            routes,
            patterns,
            upstream_timeouts,
            escaped_slashes,
        })
    }

    /// The header `client_ip_header` names.
    fn client_ip_header(&self, name: &Spanned<String>) -> Result<ProxyHeader, ConfigError> {
        match name.get_ref().trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ProxyHeader::XForwardedFor),
            "forwarded" => Ok(ProxyHeader::Forwarded),
            "x-real-ip" => Ok(ProxyHeader::XRealIp),
            _ => Err(self.error(
                name.span(),
                "proxy.client_ip_header",
                format!(
                    "unknown header {:?}; expected x-forwarded-for, forwarded or x-real-ip",
                    name.get_ref()
                ),
            )),
        }
    }

    /// `name`, if it names one of `policies`.
    pub(crate) fn policy_name(
        &self,
        name: &Spanned<String>,
        field: &str,
        policies: &BTreeMap<String, Policy>,
    ) -> Result<String, ConfigError> {
        if policies.contains_key(name.get_ref()) {
            return Ok(name.get_ref().clone());
        }
        let defined: Vec<&str> = policies.keys().map(String::as_str).collect();
        let defined = if defined.is_empty() {
            "none".to_owned()
        } else {
            defined.join(", ")
        };
        Err(self.error(
            name.span(),
            field,
            format!("unknown policy {:?}; defined: {defined}", name.get_ref()),
        ))
    }

    fn upstream(&self, upstream: &Spanned<String>) -> Result<UpstreamUri, ConfigError> {
        let invalid = || {
            self.error(
                upstream.span(),
                "proxy.upstream",
                format!(
                    "invalid upstream {:?}; expected http://HOST:PORT",
                    upstream.get_ref()
                ),
            )
        };
        let uri: http::Uri = upstream.get_ref().parse().map_err(|_| invalid())?;
        let authority = uri.authority().ok_or_else(invalid)?.clone();
        if uri.scheme_str() != Some("http") || authority.as_str().contains('@') {
            return Err(invalid());
        }
        if uri.query().is_some() {
            return Err(invalid());
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?;
        Ok(UpstreamUri {
            base_path: uri.path().trim_end_matches('/').to_owned(),
            authority,
            host,
        })
    }

    pub(crate) fn key(&self, key: &Spanned<String>, field: &str) -> Result<KeySpec, ConfigError> {
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
