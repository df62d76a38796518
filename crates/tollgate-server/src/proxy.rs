//! The reverse proxy: requests to `[proxy] listen` are matched to the configured routes,
//! limited by the Tower layer, and forwarded to the upstream.
//!
//! [`proxy_app`] turns a [`ProxyConfig`] into an axum [`Router`]:
//!
//! - an exact route `/ping` is the axum route `/ping`; a prefix route `/api/*` is the routes
//!   `/api`, `/api/` and `/api/{*rest}`, which share one count. Everything else reaches a
//!   fallback that is forwarded too and meets `default_policy` (all unmatched paths share one
//!   count, so inventing paths earns nothing). Where an exact route and a prefix route name
//!   the same path, the exact one decides.
//! - a route's `methods` restrict its policy to those methods; requests with other methods
//!   meet `default_policy` (counted per route pattern) and are forwarded all the same.
//! - `exempt = true` routes meet no limit at all.
//! - keys are the route's `key` or the proxy's (`ip`, `header:NAME`, `header:NAME,ip`), the
//!   client IP being resolved behind `trusted_proxies`.
//!
//! Allowed requests go to the upstream over a pooled HTTP/1.1 client, bodies streamed both
//! ways, hop-by-hop headers (`Connection` and the fields it names, `Keep-Alive`, `Proxy-*`,
//! `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) dropped both ways, `Host` rewritten to the
//! upstream's, `X-Forwarded-For` extended with the peer, and `X-Forwarded-Proto` and
//! `X-Forwarded-Host` set (kept as sent when the peer is a trusted proxy). Denied requests get
//! the layer's `429` with `Retry-After` and the rate-limit headers. An upstream that cannot be
//! reached answers `502 Bad Gateway` with `{"error":"upstream unreachable: ..."}`.
//!
//! Paths are normalised before routing (escaped unreserved characters decoded, dot segments
//! resolved, repeated slashes merged), so `/log%69n` and `/x/../login` meet `/login`'s limit
//! and reach the upstream as `/login`.
//!
//! Upgrades (WebSocket) are not proxied: `Upgrade` is a hop-by-hop field.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tollgate::{Policy, Store};
use tollgate_tower::key::{self, KeyExtractor};
use tollgate_tower::{HeaderStyle, Limit, PeerAddr, RateLimiter, TrustedProxies};

use crate::config::{KeySpec, ProxyConfig, RouteConfig};

/// The prefix of the names the proxy's counts are stored under, apart from the check API's.
pub const NAMESPACE: &str = "proxy:";

/// How long connecting to the upstream may take before the request gets a `502`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle pooled connection to the upstream is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The axum app of the reverse proxy described by `config`: its routes limited with the
/// `policies` they name (counts kept in `store`, responses carrying `headers`), and every
/// request the limits allow forwarded to `config.upstream`.
///
/// Serve it with the peer address available, or per-IP limits and `X-Forwarded-For` cannot
/// know the client: `axum::serve(listener,
/// app.into_make_service_with_connect_info::<SocketAddr>())`. The store may be shared with
/// the rest of the server (`Store` is implemented for `Arc<S>`): the layer names the proxy's
/// counts `default` and `shared:PATH` (`shared:/api/*`), apart from policy names such as
/// `login`.
///
/// Fails when a route names a policy `policies` does not hold, a path is not `/exact` or
/// `/prefix/*`, a path is both exempt and limited, the upstream is not `http://HOST[:PORT]`,
/// or a trusted proxy is not a CIDR. [`crate::config::Config::parse`] checks all but the
/// exempt-and-limited conflict already.
///
/// ```
/// use std::net::SocketAddr;
/// use std::sync::Arc;
/// use tollgate::MemoryStore;
/// use tollgate_server::config::Config;
/// use tollgate_server::proxy::proxy_app;
///
/// let config = Config::parse(r#"
/// [policies.api]
/// limits = "100/minute"
///
/// [policies.login]
/// limits = "3/minute"
///
/// [proxy]
/// listen = "127.0.0.1:8000"
/// upstream = "http://127.0.0.1:9000"
/// default_policy = "api"
///
/// [[proxy.routes]]
/// path = "/login"
/// methods = ["POST"]
/// policy = "login"
///
/// [[proxy.routes]]
/// path = "/health"
/// exempt = true
/// "#, "tollgate.toml")?;
/// let proxy = config.proxy.as_ref().expect("a [proxy] section");
/// let app = proxy_app(proxy, &config.policies, config.headers, Arc::new(MemoryStore::new()))?;
/// // let listener = tokio::net::TcpListener::bind(proxy.listen).await?;
/// // axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn proxy_app<S: Store>(
    config: &ProxyConfig,
    policies: &BTreeMap<String, Policy>,
    headers: HeaderStyle,
    store: S,
) -> Result<Router, ProxyError> {
    let upstream = Upstream::new(config)?;
    let patterns = patterns(&config.routes)?;
    let limits = config
        .routes
        .iter()
        .enumerate()
        .map(|(index, route)| route_limit(config, policies, index, route))
        .collect::<Result<Vec<_>, _>>()?;

    let mut limiter = RateLimiter::builder()
        .store(store)
        // Apart from the check API's policies in the same store.
        .namespace(NAMESPACE)
        .key(extractor(&config.key))
        .trusted_proxies(&config.trusted_proxies)
        .headers(headers);
    if let Some(name) = &config.default_policy {
        let policy = policies
            .get(name)
            .ok_or_else(|| ProxyError::UnknownPolicy {
                field: "proxy.default_policy".to_owned(),
                name: name.clone(),
            })?;
        limiter = limiter.default_limit(limit(policy));
    }
    let mut router = Router::new().without_v07_checks();
    for (pattern, claim) in &patterns {
        let exempt = claim.routes.iter().any(|&i| config.routes[i].exempt);
        if exempt {
            limiter = limiter.exempt(pattern.as_str());
        } else {
            for &i in &claim.routes {
                if let Some(limit) = &limits[i] {
                    limiter = limiter.route(pattern.as_str(), limit.clone());
                }
            }
        }
        router = router.route(pattern, any(forward));
    }
    let limiter = limiter.build().map_err(ProxyError::Limiter)?;
    let routed = router
        .fallback(forward)
        .layer(limiter.layer())
        .with_state(Arc::new(upstream));
    // Normalised before routing, so that `/log%69n` or `/x/../login` meet `/login`'s limit
    // (and reach the upstream as `/login`).
    Ok(Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(normalize_path)
            .service(routed),
    ))
}

/// `request` with its path normalised: percent-encoded unreserved characters decoded
/// (`%69` is `i`), dot segments resolved (`/a/../b` is `/b`) and repeated slashes merged.
/// A path that cannot be normalised is left as it is.
fn normalize_path(mut request: Request) -> Request {
    let uri = request.uri();
    let Some(normalized) = normalized(uri.path()) else {
        return request;
    };
    let target = match uri.query() {
        Some(query) => format!("{normalized}?{query}"),
        None => normalized,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = PathAndQuery::try_from(target) {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The normal form of `path`, or `None` if it already is normal.
fn normalized(path: &str) -> Option<String> {
    let suspicious = path.contains('%') || path.contains("//") || path.contains("/.");
    if !suspicious {
        return None;
    }
    // Decode only unreserved characters: a decoded `/` or `%` would change the path's meaning.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = path
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b))
        {
            decoded.push(char::from(byte));
            i += 3;
            continue;
        }
        decoded.push(char::from(bytes[i]));
        i += 1;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." | "" => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (trailing && !out.ends_with('/')) {
        out.push('/');
    }
    (out != path).then_some(out)
}

/// A reason [`proxy_app`] cannot build the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// A route or the default names a policy that is not defined.
    UnknownPolicy {
        /// Where: `proxy.default_policy`, `proxy.routes[2].policy`.
        field: String,
        /// The name given.
        name: String,
    },
    /// A route has neither a policy nor `exempt = true`.
    NoPolicy {
        /// The route's path.
        path: String,
    },
    /// A route's path is neither an exact path (`/ping`) nor a prefix (`/api/*`).
    InvalidPath {
        /// The path given.
        path: String,
    },
    /// A path is exempt in one route and limited in another of the same kind (both exact or
    /// both prefixes); an exempt route is exempt for every method.
    ExemptAndLimited {
        /// The path given.
        path: String,
    },
    /// The upstream is not `http://HOST[:PORT][/PATH]`.
    InvalidUpstream {
        /// The upstream given.
        upstream: String,
    },
    /// The Tower layer refused the limits (a trusted proxy that is not a CIDR, say).
    Limiter(tollgate_tower::ConfigError),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::UnknownPolicy { field, name } => {
                write!(f, "{field}: unknown policy {name:?}")
            }
            ProxyError::NoPolicy { path } => write!(
                f,
                "proxy.routes: route {path:?} needs either a policy or exempt = true"
            ),
            ProxyError::InvalidPath { path } => write!(
                f,
                "proxy.routes: invalid path {path:?}; expected an exact path such as /ping or a \
                 prefix such as /api/*"
            ),
            ProxyError::ExemptAndLimited { path } => write!(
                f,
                "proxy.routes: {path:?} is both exempt and limited; an exempt route is exempt \
                 for every method, so remove one of them"
            ),
            ProxyError::InvalidUpstream { upstream } => write!(
                f,
                "proxy.upstream: invalid upstream {upstream:?}; expected http://HOST:PORT"
            ),
            ProxyError::Limiter(err) => write!(f, "proxy: {err}"),
        }
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ProxyError::Limiter(err) => Some(err),
            _ => None,
        }
    }
}

/// How specific a route's claim on an axum pattern is: an exact path beats a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Prefix,
    Exact,
}

/// The routes (by index in the config) that decide an axum pattern.
#[derive(Debug)]
struct Claim {
    specificity: Specificity,
    routes: Vec<usize>,
}

/// The axum patterns of `routes`, each with the routes deciding it.
fn patterns(routes: &[RouteConfig]) -> Result<BTreeMap<String, Claim>, ProxyError> {
    let mut claims: BTreeMap<String, Claim> = BTreeMap::new();
    for (index, route) in routes.iter().enumerate() {
        let (specificity, patterns) = route_patterns(&route.path)?;
        for pattern in patterns {
            match claims.entry(pattern) {
                Entry::Vacant(entry) => {
                    entry.insert(Claim {
                        specificity,
                        routes: vec![index],
                    });
                }
                Entry::Occupied(mut entry) => {
                    let claim = entry.get_mut();
                    if specificity > claim.specificity {
                        *claim = Claim {
                            specificity,
                            routes: vec![index],
                        };
                    } else if specificity == claim.specificity {
                        claim.routes.push(index);
                    }
                }
            }
        }
    }
    for claim in claims.values() {
        let exempt = claim.routes.iter().filter(|&&i| routes[i].exempt).count();
        if exempt > 0 && exempt < claim.routes.len() {
            return Err(ProxyError::ExemptAndLimited {
                path: routes[claim.routes[0]].path.clone(),
            });
        }
    }
    Ok(claims)
}

/// The axum patterns a configured path becomes: `/ping` itself, or for the prefix `/api/*`
/// the prefix without and with its slash and everything below it.
fn route_patterns(path: &str) -> Result<(Specificity, Vec<String>), ProxyError> {
    let invalid = || ProxyError::InvalidPath {
        path: path.to_owned(),
    };
    if !path.starts_with('/') || path.contains(['{', '}']) {
        return Err(invalid());
    }
    let Some(prefix) = path.strip_suffix("/*") else {
        if path.contains('*') {
            return Err(invalid());
        }
        return Ok((Specificity::Exact, vec![path.to_owned()]));
    };
    if prefix.contains('*') {
        return Err(invalid());
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
    Ok((Specificity::Prefix, patterns))
}

/// The limit of the `index`th route, `None` if it is exempt. It is one shared count for all
/// the route's patterns, named after its path (`/api/*`, or `/api/*#2` for the second route
/// with that path).
fn route_limit(
    config: &ProxyConfig,
    policies: &BTreeMap<String, Policy>,
    index: usize,
    route: &RouteConfig,
) -> Result<Option<Limit>, ProxyError> {
    if route.exempt {
        return Ok(None);
    }
    let name = route.policy.as_ref().ok_or_else(|| ProxyError::NoPolicy {
        path: route.path.clone(),
    })?;
    let policy = policies
        .get(name)
        .ok_or_else(|| ProxyError::UnknownPolicy {
            field: format!("proxy.routes[{index}].policy"),
            name: name.clone(),
        })?;
    let mut limit = limit(policy);
    if !route.methods.is_empty() {
        limit = limit.methods(route.methods.iter().cloned());
    }
    if let Some(key) = &route.key {
        limit = limit.key(extractor(key));
    }
    let same_path_before = config.routes[..index]
        .iter()
        .filter(|other| other.path == route.path)
        .count();
    let shared = match same_path_before {
        0 => route.path.clone(),
        n => format!("{}#{}", route.path, n + 1),
    };
    Ok(Some(limit.shared(shared)))
}

/// The Tower layer's limit applying `policy`.
fn limit(policy: &Policy) -> Limit {
    let limit = Limit::rates(policy.rates().clone()).strategy(policy.strategy());
    match policy.burst() {
        Some(burst) => limit.burst(burst),
        None => limit,
    }
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

/// Where allowed requests go, and how.
struct Upstream {
    client: Client<HttpConnector, Body>,
    scheme: Scheme,
    authority: Authority,
    /// The upstream URI's path without its trailing slash (empty for the root), put before
    /// every forwarded path.
    base_path: String,
    /// The `Host` forwarded requests carry: the upstream's authority.
    host: HeaderValue,
    /// Peers whose `X-Forwarded-Proto` and `X-Forwarded-Host` are kept.
    proxies: TrustedProxies,
}

impl Upstream {
    fn new(config: &ProxyConfig) -> Result<Self, ProxyError> {
        let uri = &config.upstream;
        let invalid = || ProxyError::InvalidUpstream {
            upstream: uri.to_string(),
        };
        let authority = uri.authority().ok_or_else(invalid)?.clone();
        if uri.scheme() != Some(&Scheme::HTTP) || authority.as_str().contains('@') {
            return Err(invalid());
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?;
        let proxies = TrustedProxies::new(&config.trusted_proxies)
            .map_err(|err| ProxyError::Limiter(tollgate_tower::ConfigError::Proxy(err)))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            client,
            scheme: Scheme::HTTP,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host,
            proxies,
        })
    }

    /// The upstream URI for a request to `uri`: its path and query below the base path.
    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let path_and_query = if self.base_path.is_empty() {
            PathAndQuery::try_from(path_and_query)?
        } else {
            PathAndQuery::try_from(format!("{}{path_and_query}", self.base_path))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// Sends `request` on and streams the answer back.
    async fn forward(&self, request: Request) -> Response {
        let peer = peer_ip(&request);
        let (parts, body) = request.into_parts();
        let target = match self.target(&parts.uri) {
            Ok(target) => target,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot forward request target {}: {err}", parts.uri),
                );
            }
        };
        let mut headers = parts.headers;
        let original_host = headers.get(header::HOST).cloned().or_else(|| {
            let authority = parts.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        });
        remove_hop_by_hop(&mut headers);
        headers.insert(header::HOST, self.host.clone());
        if let Some(peer) = peer {
            extend_forwarded_for(&mut headers, peer);
        }
        let trusted = peer.is_some_and(|peer| self.proxies.contains(peer));
        if !trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if !trusted || !headers.contains_key(&X_FORWARDED_HOST) {
            match original_host {
                Some(host) => headers.insert(&X_FORWARDED_HOST, host),
                None => headers.remove(&X_FORWARDED_HOST),
            };
        }

        let mut upstream_request = http::Request::new(body);
        *upstream_request.method_mut() = parts.method;
        *upstream_request.uri_mut() = target;
        *upstream_request.version_mut() = Version::HTTP_11;
        *upstream_request.headers_mut() = headers;

        match self.client.request(upstream_request).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let mut response = Response::new(Body::new(body));
                *response.status_mut() = parts.status;
                *response.headers_mut() = parts.headers;
                remove_hop_by_hop(response.headers_mut());
                response
            }
            Err(err) => {
                let message = if err.is_connect() {
                    format!("upstream unreachable: {}", causes(&err))
                } else {
                    format!("upstream failed: {}", causes(&err))
                };
                tracing::warn!(upstream = %self.authority, "{message}");
                error(StatusCode::BAD_GATEWAY, message)
            }
        }
    }
}

/// The handler of every route and the fallback.
async fn forward(State(upstream): State<Arc<Upstream>>, request: Request) -> Response {
    upstream.forward(request).await
}

/// The peer's address: axum's `ConnectInfo`, else a [`PeerAddr`], as the layer reads it.
fn peer_ip(request: &Request) -> Option<IpAddr> {
    let extensions = request.extensions();
    let addr = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
        .or_else(|| extensions.get::<PeerAddr>().map(|PeerAddr(addr)| *addr))?;
    Some(addr.ip().to_canonical())
}

/// Removes the fields that concern one connection only: those `Connection` names, then the
/// standard hop-by-hop ones and every `Proxy-*`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Appends `, peer` to the `X-Forwarded-For` received (all its fields, in order), or sets it
/// to `peer`.
fn extend_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let mut value = Vec::new();
    for received in headers.get_all(&X_FORWARDED_FOR) {
        let received = received.as_bytes().trim_ascii();
        if received.is_empty() {
            continue;
        }
        if !value.is_empty() {
            value.extend_from_slice(b", ");
        }
        value.extend_from_slice(received);
    }
    if !value.is_empty() {
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(peer.to_string().as_bytes());
    // Valid values joined by ", " and an address are a valid value.
    let value = HeaderValue::from_bytes(&value).expect("X-Forwarded-For stays a valid value");
    headers.insert(&X_FORWARDED_FOR, value);
}

/// The causes of `err`, from the first below it, joined by `: ` (hyper's own message says
/// only "client error (Connect)").
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut message = String::new();
    let mut cause = err.source();
    while let Some(err) = cause {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&err.to_string());
        cause = err.source();
    }
    if message.is_empty() {
        message = err.to_string();
    }
    message
}

/// A response with a JSON body `{"error": message}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn paths_are_normalised_before_routing() {
        assert_eq!(normalized("/login"), None);
        assert_eq!(normalized("/log%69n").as_deref(), Some("/login"));
        assert_eq!(normalized("/LOG%2dIN").as_deref(), Some("/LOG-IN"));
        assert_eq!(normalized("/x/../login").as_deref(), Some("/login"));
        assert_eq!(normalized("/./login").as_deref(), Some("/login"));
        assert_eq!(normalized("//login").as_deref(), Some("/login"));
        assert_eq!(normalized("/../../login").as_deref(), Some("/login"));
        assert_eq!(normalized("/api/").as_deref(), None);
        assert_eq!(normalized("/api/v1/.").as_deref(), Some("/api/v1/"));
        // Reserved characters stay encoded: %2F is not a path separator.
        assert_eq!(normalized("/a%2Fb"), None);
        assert_eq!(
            normalized("/a%2fb/%7euser").as_deref(),
            Some("/a%2fb/~user")
        );
        // Junk escapes are kept as they are.
        assert_eq!(normalized("/a%zz"), None);
        assert_eq!(normalized("/a%"), None);
    }
}
