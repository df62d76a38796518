//! The reverse proxy over real sockets: an upstream that echoes what it received, the proxy
//! in front of it, and a client (from 127.0.0.1, a trusted proxy where configured, or from
//! 127.0.0.2, never trusted).
//!
//! - `routes.rs`: the lesson through the proxy: routes, methods, keys, exempt and prefix
//!   routes, the default policy.
//! - `forwarding.rs`: `X-Forwarded-*`, trusted peers, `Host`, hop-by-hop fields.
//! - `streaming.rs`: bodies streamed both ways, header styles, an unreachable upstream.
//! - `timeouts.rs`: upstreams that do not connect, answer or finish in time.
//! - `in_flight.rs`: `max_in_flight`: slots per key, freed when responses finish or
//!   clients disconnect.
//! - `escaped_slashes.rs`: `%2F`, `%5C` and `\` refused or decoded, before nginx.

mod escaped_slashes;
mod forwarding;
mod in_flight;
mod routes;
mod streaming;
mod timeouts;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tollgate::MemoryStore;
use tollgate_redis::AnyStore;
use tollgate_server::{Config, ServerState};
use tollgate_tower::HeaderStyle;

const TIMEOUT: Duration = Duration::from_secs(10);
const MIB: usize = 1024 * 1024;

// ---- the upstream -------------------------------------------------------------------------

/// The upstream server and what it has seen.
struct Upstream {
    addr: SocketAddr,
    state: Arc<UpstreamState>,
}

#[derive(Default)]
struct UpstreamState {
    /// Requests received.
    hits: AtomicUsize,
    /// Lets `/gated` send the rest of its body.
    open_gate: Notify,
    /// Told when `/upload-gated` has received the first chunk of its body.
    first_chunk: Notify,
}

async fn upstream() -> Upstream {
    let state = Arc::new(UpstreamState::default());
    let app = Router::new()
        .route("/big", get(big))
        .route("/gated", get(gated))
        .route("/upload-gated", post(upload_gated))
        .fallback(echo)
        .with_state(Arc::clone(&state));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("upstream serves") });
    Upstream { addr, state }
}

/// Answers with what it received: method, path and query, headers, body length. Its response
/// carries hop-by-hop headers the proxy must drop.
async fn echo(State(state): State<Arc<UpstreamState>>, request: Request) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body_len = count(body).await;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let echoed = json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body_len": body_len,
    });
    (
        [
            ("connection", "x-resp-drop"),
            ("x-resp-drop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic realm=\"upstream\""),
            ("x-resp-keep", "yes"),
        ],
        axum::Json(echoed),
    )
        .into_response()
}

/// Streams `?bytes=N` bytes in 64 KiB chunks.
async fn big(Query(query): Query<BTreeMap<String, usize>>) -> Body {
    let total = query.get("bytes").copied().unwrap_or(0);
    let chunk = 64 * 1024;
    let chunks = (0..total.div_ceil(chunk)).map(move |i| {
        let len = chunk.min(total - i * chunk);
        Ok::<_, Infallible>(Bytes::from(vec![b'x'; len]))
    });
    Body::from_stream(futures_util::stream::iter(chunks))
}

/// Sends `first`, waits until the test opens the gate, then sends `rest`.
async fn gated(State(state): State<Arc<UpstreamState>>) -> Body {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let _ = tx.send(Bytes::from_static(b"first")).await;
        state.open_gate.notified().await;
        let _ = tx.send(Bytes::from_static(b"rest")).await;
    });
    channel_body(rx)
}

/// Says when the first chunk of the body has arrived, then counts the whole body.
async fn upload_gated(State(state): State<Arc<UpstreamState>>, request: Request) -> String {
    let mut body = request.into_body();
    let mut len = 0;
    let mut told = false;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("request body frame").into_data() {
            len += data.len();
            if !told {
                told = true;
                state.first_chunk.notify_one();
            }
        }
    }
    len.to_string()
}

async fn count(body: Body) -> usize {
    let mut body = body;
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            len += data.len();
        }
    }
    len
}

fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    }))
}

// ---- the proxy ----------------------------------------------------------------------------

/// Serves the proxy of the configuration `text` (`UPSTREAM` replaced by `upstream`) with
/// `headers`, as the server puts it in force over a memory store.
async fn proxy_with(text: &str, upstream: &str, headers: HeaderStyle) -> SocketAddr {
    let text = text.replace("UPSTREAM", upstream);
    let mut config = Config::parse(&text, "test.toml").expect("a valid configuration");
    config.headers = headers;
    let state =
        ServerState::new(&config, AnyStore::Memory(MemoryStore::new())).expect("a valid proxy");
    let app = state
        .in_force()
        .proxy()
        .cloned()
        .expect("a [proxy] section");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("proxy serves")
    });
    addr
}

/// The proxy of `text` in front of `upstream`, with both header styles.
async fn proxy(text: &str, upstream: &Upstream) -> SocketAddr {
    proxy_with(
        text,
        &format!("http://{}", upstream.addr),
        HeaderStyle::Both,
    )
    .await
}

const LESSON: &str = r#"
[policies.api]
limits = "100/minute"

[policies.login]
limits = "3/minute"

[policies.user]
limits = "2/minute"

[policies.prefix]
limits = "3/minute"

[policies.admin]
limits = "1/minute"

[proxy]
listen = "127.0.0.1:0"
upstream = "UPSTREAM"
default_policy = "api"

[[proxy.routes]]
path = "/ping"
methods = ["GET"]
policy = "login"

[[proxy.routes]]
path = "/me"
policy = "user"
key = "header:X-User-Id,ip"

[[proxy.routes]]
path = "/api/*"
policy = "prefix"

[[proxy.routes]]
path = "/public/*"
exempt = true

[[proxy.routes]]
path = "/public/admin"
policy = "admin"

[[proxy.routes]]
path = "/health"
exempt = true
"#;

// ---- the client ---------------------------------------------------------------------------

/// A client connecting from `local` (127.0.0.1 when `None`).
fn client_from(local: Option<IpAddr>) -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(local);
    Client::builder(TokioExecutor::new()).build(connector)
}

fn client() -> Client<HttpConnector, Body> {
    client_from(None)
}

/// A client from 127.0.0.2, which no test trusts.
fn untrusted_client() -> Client<HttpConnector, Body> {
    client_from(Some("127.0.0.2".parse().expect("an address")))
}

/// A response, its body read.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("a text header"))
    }

    /// A header the upstream received, as it saw it (several fields joined by `|`).
    fn received(&self, name: &str) -> Option<String> {
        let values = self.json()["headers"][name].as_array()?.clone();
        let values: Vec<&str> = values
            .iter()
            .map(|value| value.as_str().expect("text"))
            .collect();
        Some(values.join("|"))
    }
}

async fn send(
    client: &Client<HttpConnector, Body>,
    method: Method,
    url: String,
    headers: &[(&str, &str)],
    body: Body,
) -> Answer {
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body).expect("a valid request");
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .expect("a body in time")
        .expect("a body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get_from(
    client: &Client<HttpConnector, Body>,
    proxy: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    send(
        client,
        Method::GET,
        format!("http://{proxy}{path}"),
        headers,
        Body::empty(),
    )
    .await
}

async fn statuses(
    client: &Client<HttpConnector, Body>,
    proxy: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let answer = send(
            client,
            method.clone(),
            format!("http://{proxy}{path}"),
            headers,
            Body::empty(),
        )
        .await;
        statuses.push(answer.status.as_u16());
    }
    statuses
}

/// A proxy trusting 127.0.0.1, with one route limited to one request a minute.
const TRUSTING: &str = r#"
[policies.once]
limits = "1/minute"

[proxy]
listen = "127.0.0.1:0"
upstream = "UPSTREAM"
trusted_proxies = ["127.0.0.1/32"]

[[proxy.routes]]
path = "/once"
policy = "once"
"#;
