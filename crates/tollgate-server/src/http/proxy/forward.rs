//! [`Upstream`]: forwarding an allowed request to the upstream and streaming its answer back,
//! with the hop-by-hop fields dropped both ways and `X-Forwarded-*` set, within the upstream
//! timeouts: `504` when the connection or the response head is late, the body cut when it
//! pauses too long.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::{Instant, Sleep};
use tollgate_tower::{PeerAddr, TrustedProxies, json_error};

use crate::config::{ProxyConfig, UpstreamTimeouts};

/// How long an idle pooled connection to the upstream is kept.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Where allowed requests go, and how.
pub(crate) struct Upstream {
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
    timeouts: UpstreamTimeouts,
}

impl Upstream {
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.upstream_timeouts.connect));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        let upstream = &config.upstream;
        Self {
            client,
            scheme: Scheme::HTTP,
            authority: upstream.authority.clone(),
            base_path: upstream.base_path.clone(),
            host: upstream.host.clone(),
            proxies: config.trusted_proxies.clone(),
            timeouts: config.upstream_timeouts,
        }
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
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot forward request target {}: {err}", parts.uri),
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

        let answer = self.client.request(upstream_request);
        let (status, message) = match tokio::time::timeout(self.timeouts.response, answer).await {
            Ok(Ok(response)) => {
                let (parts, body) = response.into_parts();
                let body = UpstreamBody::new(body, self.timeouts.idle);
                let mut response = Response::new(Body::new(body));
                *response.status_mut() = parts.status;
                *response.headers_mut() = parts.headers;
                remove_hop_by_hop(response.headers_mut());
                return response;
            }
            Ok(Err(err)) if err.is_connect() && timed_out(&err) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "upstream not connected within upstream_connect_timeout ({:?})",
                    self.timeouts.connect
                ),
            ),
            Ok(Err(err)) if err.is_connect() => (
                StatusCode::BAD_GATEWAY,
                format!("upstream unreachable: {}", causes(&err)),
            ),
            Ok(Err(err)) if client_body_failed(&err) => {
                // The client's fault (a body past body_timeout, which the listener answers
                // 408, or a client gone): not worth a warning per request.
                let message = format!("the request body failed: {}", causes(&err));
                tracing::debug!(upstream = %self.authority, "{message}");
                return json_error(StatusCode::BAD_GATEWAY, &message);
            }
            Ok(Err(err)) => (
                StatusCode::BAD_GATEWAY,
                format!("upstream failed: {}", causes(&err)),
            ),
            Err(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "upstream sent no response within upstream_timeout ({:?})",
                    self.timeouts.response
                ),
            ),
        };
        tracing::warn!(upstream = %self.authority, "{message}");
        json_error(status, &message)
    }
}

/// The handler of every route and the fallback.
pub(crate) async fn forward(State(upstream): State<Arc<Upstream>>, request: Request) -> Response {
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

/// Whether `err` comes of the request body that was being sent (hyper's "user" errors).
fn client_body_failed(err: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Whether `err` comes of an I/O timeout (the connector's connect timeout).
fn timed_out(err: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|err| err.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// The upstream's response body, failed (and the client's connection cut) when it pauses
/// longer than `idle` between two frames, or before the first.
struct UpstreamBody {
    inner: Incoming,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl UpstreamBody {
    fn new(inner: Incoming, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            let deadline = Instant::now() + this.idle;
            this.sleep.as_mut().reset(deadline);
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::warn!(
                    "upstream body paused longer than upstream_idle_timeout ({:?}); cut",
                    this.idle
                );
                Poll::Ready(Some(Err(
                    "the upstream body paused longer than upstream_idle_timeout".into(),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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
