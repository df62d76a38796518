//! The `[proxy]` section: where the proxy listens, the upstream, the routes and their axum
//! patterns, keys and trusted proxies, checked once.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;

use http::HeaderValue;
use http::uri::Authority;
use serde::Deserialize;
use tollgate::Policy;
use tollgate_tower::TrustedProxies;
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::file::Checker;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxySection {
    pub(crate) listen: Spanned<String>,
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
    exempt: Option<Spanned<bool>>,
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
    /// Peers believed when they send `X-Forwarded-For`.
    pub trusted_proxies: TrustedProxies,
    /// The policy of routes without one of their own.
    pub default_policy: Option<String>,
    /// Who pays, for routes without a key of their own.
    pub key: KeySpec,
    /// The routes, in order.
    pub routes: Vec<RouteConfig>,
    /// The axum patterns the routes become, each with the routes that decide it.
    pub patterns: Vec<RoutePattern>,
}

/// One `[[proxy.routes]]` entry.
///
/// ```
/// use tollgate_server::{Config, KeySpec};
///
/// let config = Config::parse(r#"
/// [policies.login]
/// limits = "5/minute"
///
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
///
/// [[proxy.routes]]
/// path = "/login"
/// methods = ["post"]
/// policy = "login"
/// key = "header:x-user-id"
///
/// [[proxy.routes]]
/// path = "/static/*"
/// exempt = true
/// "#, "tollgate.toml")?;
/// let routes = config.proxy.expect("a [proxy] section").routes;
/// assert_eq!((routes[0].path.as_str(), &routes[0].methods[..]), ("/login", &[http::Method::POST][..]));
/// assert_eq!(routes[0].policy.as_deref(), Some("login"));
/// assert!(matches!(&routes[0].key, Some(KeySpec::Header { or_ip: false, .. })));
/// assert_eq!((routes[1].path.as_str(), routes[1].policy.as_deref()), ("/static/*", None)); // exempt
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `/ping` (exact) or `/api/*` (a prefix).
    pub path: String,
    /// The methods this route's policy applies to; all when empty.
    pub methods: Vec<http::Method>,
    /// The policy, by name; `None` for an exempt route.
    pub policy: Option<String>,
    /// Who pays, if not the proxy's key.
    pub key: Option<KeySpec>,
}

/// An axum route pattern of the proxy (`/api/{*rest}`), with the routes that decide it (by
/// index): all exempt, or all limited.
///
/// ```
/// use tollgate_server::{Config, RoutePattern};
///
/// let config = Config::parse(r#"
/// [policies.api]
/// limits = "100/minute"
///
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
///
/// [[proxy.routes]]
/// path = "/api/*"
/// policy = "api"
/// "#, "tollgate.toml")?;
/// let patterns = config.proxy.expect("a [proxy] section").patterns;
/// let pattern = |text: &str| RoutePattern { pattern: text.to_owned(), routes: vec![0], exempt: false };
/// // A prefix covers itself, with and without its slash, and everything below it.
/// assert_eq!(patterns, [pattern("/api"), pattern("/api/"), pattern("/api/{*rest}")]);
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// The axum pattern.
    pub pattern: String,
    /// The deciding routes, by index in [`ProxyConfig::routes`].
    pub routes: Vec<usize>,
    /// Whether the deciding routes are exempt.
    pub exempt: bool,
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

/// How specific a route's claim on an axum pattern is: an exact path beats a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Prefix,
    Exact,
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
        let known = |name: &Spanned<String>, field: &str| {
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
        let mut routes = Vec::with_capacity(proxy.routes.len());
        let mut claims: BTreeMap<String, (Specificity, Vec<usize>)> = BTreeMap::new();
        for (index, section) in proxy.routes.iter().enumerate() {
            let field = format!("proxy.routes[{index}]");
            let route = section.get_ref();
            let path = route.path.get_ref();
            let (specificity, patterns) = route_patterns(path).ok_or_else(|| {
                self.error(
                    route.path.span(),
                    format!("{field}.path"),
                    format!(
                        "invalid path {path:?}; expected an exact path such as /ping or a \
                         prefix such as /api/*, without a query, fragment, spaces or \
                         dot segments (it could never match)"
                    ),
                )
            })?;
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
            let exempt = route
                .exempt
                .as_ref()
                .is_some_and(|exempt| *exempt.get_ref());
            let policy = match (&route.policy, exempt) {
                (Some(name), false) => Some(known(name, &format!("{field}.policy"))?),
                (None, true) => None,
                (Some(name), true) => {
                    return Err(self.error(
                        name.span(),
                        format!("{field}.policy"),
                        "a route is either exempt or limited by a policy, not both; remove \
                         exempt = true or the policy",
                    ));
                }
                (None, false) => {
                    return Err(self.error(
                        section.span(),
                        field,
                        "a route needs either a policy or exempt = true",
                    ));
                }
            };
            let key = route
                .key
                .as_ref()
                .map(|key| self.key(key, &format!("{field}.key")))
                .transpose()?;
            for pattern in patterns {
                match claims.entry(pattern) {
                    Entry::Vacant(entry) => {
                        entry.insert((specificity, vec![index]));
                    }
                    Entry::Occupied(mut entry) => {
                        let (claimed, deciding) = entry.get_mut();
                        if specificity > *claimed {
                            *entry.get_mut() = (specificity, vec![index]);
                        } else if specificity == *claimed {
                            deciding.push(index);
                        }
                    }
                }
            }
            routes.push(RouteConfig {
                path: path.clone(),
                methods,
                policy,
                key,
            });
        }
        let mut patterns = Vec::with_capacity(claims.len());
        for (pattern, (_, deciding)) in claims {
            let exempt = routes[deciding[0]].policy.is_none();
            if let Some(&other) = deciding
                .iter()
                .find(|&&i| routes[i].policy.is_none() != exempt)
            {
                return Err(self.error(
                    proxy.routes[other].span(),
                    format!("proxy.routes[{other}]"),
                    format!(
                        "{:?} is both exempt and limited (see proxy.routes[{}]); an exempt route \
                         is exempt for every method, so remove one of them",
                        routes[other].path, deciding[0]
                    ),
                ));
            }
            patterns.push(RoutePattern {
                pattern,
                routes: deciding,
                exempt,
            });
        }
        Ok(ProxyConfig {
            listen,
            upstream,
            trusted_proxies,
            default_policy,
            key,
            routes,
            patterns,
        })
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

/// The axum patterns a configured path becomes: `/ping` itself, or for the prefix `/api/*`
/// the prefix without and with its slash and everything below it; `None` for a path that is
/// neither.
fn route_patterns(path: &str) -> Option<(Specificity, Vec<String>)> {
    // A request's path is normalised before routing and never holds a query, a fragment,
    // spaces or dot segments, so a route path with any of them would never match.
    let unmatchable = path.contains(['{', '}', '?', '#'])
        || path.contains("//")
        || path.chars().any(|c| c.is_whitespace() || c.is_control())
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    if !path.starts_with('/') || unmatchable {
        return None;
    }
    let Some(prefix) = path.strip_suffix("/*") else {
        return (!path.contains('*')).then(|| (Specificity::Exact, vec![path.to_owned()]));
    };
    if prefix.contains('*') {
        return None;
    }
    let patterns = if prefix.is_empty() {
        vec!["/".to_owned(), "/{*rest}".to_owned()]
    } else {
        vec![
            prefix.to_owned(),
            format!("{prefix}/"),
            format!("{prefix}/{{*rest}}"),
        ]
    };
    Some((Specificity::Prefix, patterns))
}
