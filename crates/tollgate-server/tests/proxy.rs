//! The reverse proxy over real sockets: an upstream that echoes what it received, the proxy
//! in front of it, and a client (from 127.0.0.1, a trusted proxy where configured, or from
//! 127.0.0.2, never trusted).

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

// ---- the lesson through the proxy ---------------------------------------------------------

#[tokio::test]
async fn ping_allows_three_a_minute_then_429_with_retry_after() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    for remaining in ["2", "1", "0"] {
        let answer = get_from(&client, proxy, "/ping?n=1", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["uri"], "/ping?n=1");
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(answer.header("x-ratelimit-remaining"), Some(remaining));
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some(r#""/ping";q=3;w=60"#)
        );
        assert!(answer.header("ratelimit").is_some());
    }
    for _ in 0..2 {
        let answer = get_from(&client, proxy, "/ping?n=1", &[]).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = answer
            .header("retry-after")
            .expect("Retry-After on a 429")
            .parse()
            .expect("whole seconds");
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        assert_eq!(answer.json()["error"], "rate limit exceeded");
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some(r#""/ping";q=3;w=60"#)
        );
    }
    assert_eq!(
        upstream.state.hits.load(Ordering::SeqCst),
        3,
        "denied requests never reach the upstream"
    );
}

#[tokio::test]
async fn methods_outside_a_route_filter_meet_the_default_policy_and_are_forwarded() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    for _ in 0..4 {
        let answer = send(
            &client,
            Method::POST,
            format!("http://{proxy}/ping"),
            &[],
            Body::from("hello"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["method"], "POST");
        assert_eq!(answer.json()["body_len"], 5);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("100"));
    }
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/ping", &[], 4).await,
        [200, 200, 200, 429],
        "POSTs did not use up the GET limit"
    );
    let answer = send(
        &client,
        Method::DELETE,
        format!("http://{proxy}/ping"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["method"], "DELETE");
}

#[tokio::test]
async fn a_route_keyed_on_a_user_header_falls_back_to_the_ip() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();
    let alice = [("x-user-id", "alice")];
    let bob = [("x-user-id", "bob")];

    assert_eq!(
        statuses(&client, proxy, Method::GET, "/me", &alice, 3).await,
        [200, 200, 429]
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/me", &bob, 3).await,
        [200, 200, 429]
    );
    // Without the header, the client IP pays.
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/me", &[], 3).await,
        [200, 200, 429]
    );
    let answer = get_from(&client, proxy, "/me", &alice).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.header("ratelimit-policy"), Some(r#""/me";q=2;w=60"#));
}

#[tokio::test]
async fn an_exempt_route_is_never_limited_and_carries_no_rate_limit_headers() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    for _ in 0..12 {
        let answer = get_from(&client, proxy, "/health", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["uri"], "/health");
        assert_eq!(answer.header("x-ratelimit-limit"), None);
        assert_eq!(answer.header("ratelimit-policy"), None);
    }
    assert_eq!(upstream.state.hits.load(Ordering::SeqCst), 12);
}

#[tokio::test]
async fn a_prefix_route_is_one_count_for_everything_below_it() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    let answer = get_from(&client, proxy, "/api", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("ratelimit-policy"),
        Some(r#""/api/*";q=3;w=60"#)
    );
    assert_eq!(
        get_from(&client, proxy, "/api/", &[]).await.status,
        StatusCode::OK
    );
    let answer = get_from(&client, proxy, "/api/items/7?sort=desc&x=%20y", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["uri"], "/api/items/7?sort=desc&x=%20y");
    assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
    let answer = get_from(&client, proxy, "/api/other", &[]).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);

    // Not below /api/: the default policy.
    let answer = get_from(&client, proxy, "/apix", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-ratelimit-limit"), Some("100"));
}

#[tokio::test]
async fn an_exact_route_inside_an_exempt_prefix_is_limited() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    assert_eq!(
        statuses(&client, proxy, Method::GET, "/public/admin", &[], 2).await,
        [200, 429]
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/public/page", &[], 5).await,
        [200; 5]
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/public", &[], 5).await,
        [200; 5]
    );
}

#[tokio::test]
async fn unmatched_paths_share_one_default_count_and_are_free_without_a_default() {
    let upstream = upstream().await;
    let config = r#"
        [policies.tight]
        limits = "2/minute"

        [proxy]
        listen = "127.0.0.1:0"
        upstream = "UPSTREAM"
        default_policy = "tight"
    "#;
    let proxy = proxy(config, &upstream).await;
    let client = client();
    assert_eq!(
        get_from(&client, proxy, "/a", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_from(&client, proxy, "/b/c", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_from(&client, proxy, "/d", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let free = r#"
        [proxy]
        listen = "127.0.0.1:0"
        upstream = "UPSTREAM"
    "#;
    let proxy = self::proxy(free, &upstream).await;
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/anything", &[], 5).await,
        [200; 5]
    );
}

#[tokio::test]
async fn a_root_prefix_covers_every_path() {
    let upstream = upstream().await;
    let config = r#"
        [policies.all]
        limits = "3/minute"

        [proxy]
        listen = "127.0.0.1:0"
        upstream = "UPSTREAM"

        [[proxy.routes]]
        path = "/*"
        policy = "all"

        [[proxy.routes]]
        path = "/health"
        exempt = true
    "#;
    let proxy = proxy(config, &upstream).await;
    let client = client();
    let mut seen = Vec::new();
    for path in ["/", "/a", "/b/c?d=e", "/health", "/f"] {
        let answer = get_from(&client, proxy, path, &[]).await;
        seen.push(answer.status.as_u16());
    }
    assert_eq!(seen, [200, 200, 200, 200, 429]);
}

// ---- forwarding ---------------------------------------------------------------------------

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

#[tokio::test]
async fn x_forwarded_for_is_extended_with_the_peer() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let trusted = client();
    let untrusted = untrusted_client();

    let answer = get_from(&untrusted, proxy, "/echo", &[]).await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("127.0.0.2")
    );

    let answer = get_from(
        &untrusted,
        proxy,
        "/echo",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.2")
    );

    let answer = get_from(
        &trusted,
        proxy,
        "/echo",
        &[("x-forwarded-for", "198.51.100.7, 10.0.0.1")],
    )
    .await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("198.51.100.7, 10.0.0.1, 127.0.0.1")
    );

    // Several fields are one list, in order.
    let answer = get_from(
        &trusted,
        proxy,
        "/echo",
        &[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
        ],
    )
    .await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("192.0.2.1, 192.0.2.2, 127.0.0.1")
    );
}

#[tokio::test]
async fn only_a_trusted_peer_chooses_the_client_ip_that_pays() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let trusted = client();
    let untrusted = untrusted_client();

    // Untrusted: the header changes nothing, the peer pays.
    let first = get_from(
        &untrusted,
        proxy,
        "/once",
        &[("x-forwarded-for", "203.0.113.1")],
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = get_from(
        &untrusted,
        proxy,
        "/once",
        &[("x-forwarded-for", "203.0.113.2")],
    )
    .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);

    // Trusted: each forwarded client pays for itself.
    for (client_ip, status) in [
        ("198.51.100.1", StatusCode::OK),
        ("198.51.100.2", StatusCode::OK),
        ("198.51.100.1", StatusCode::TOO_MANY_REQUESTS),
    ] {
        let answer = get_from(&trusted, proxy, "/once", &[("x-forwarded-for", client_ip)]).await;
        assert_eq!(answer.status, status, "client {client_ip}");
    }
}

#[tokio::test]
async fn host_is_the_upstreams_and_forwarded_proto_and_host_are_believed_from_trusted_peers() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let claims = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
    ];

    let answer = get_from(&untrusted_client(), proxy, "/echo", &claims).await;
    let upstream_host = upstream.addr.to_string();
    assert_eq!(answer.received("host"), Some(upstream_host.clone()));
    assert_eq!(
        answer.received("x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(answer.received("x-forwarded-host"), Some(proxy.to_string()));

    let answer = get_from(&client(), proxy, "/echo", &claims).await;
    assert_eq!(answer.received("host"), Some(upstream_host));
    assert_eq!(
        answer.received("x-forwarded-proto").as_deref(),
        Some("https")
    );
    assert_eq!(
        answer.received("x-forwarded-host").as_deref(),
        Some("shop.example")
    );

    let answer = get_from(&client(), proxy, "/echo", &[]).await;
    assert_eq!(
        answer.received("x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(answer.received("x-forwarded-host"), Some(proxy.to_string()));
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;

    // Raw, so that the client sends exactly these fields.
    let mut stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let request = "POST /echo?q=1 HTTP/1.1\r\n\
        Host: proxy.example\r\n\
        Connection: close, X-Drop-Me\r\n\
        X-Drop-Me: 1\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: trailers\r\n\
        Trailer: X-Checksum\r\n\
        Upgrade: h2c\r\n\
        X-Keep-Me: yes\r\n\
        Transfer-Encoding: chunked\r\n\
        \r\n\
        5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read the answer");
    let raw = String::from_utf8(raw).expect("a text answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let echoed: Value = serde_json::from_str(body).expect("the upstream's JSON");
    assert_eq!(echoed["uri"], "/echo?q=1");
    assert_eq!(echoed["body_len"], 11);
    let received = echoed["headers"].as_object().expect("headers");
    for dropped in [
        "connection",
        "x-drop-me",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !received.contains_key(dropped),
            "{dropped} reached the upstream: {received:?}"
        );
    }
    assert_eq!(received["x-keep-me"], json!(["yes"]));
    assert_eq!(received["host"], json!([upstream.addr.to_string()]));
    assert_eq!(received["x-forwarded-host"], json!(["proxy.example"]));

    let head = head.to_ascii_lowercase();
    for dropped in [
        "x-resp-drop",
        "keep-alive",
        "proxy-authenticate",
        "connection: x-resp-drop",
    ] {
        assert!(
            !head.contains(dropped),
            "{dropped} reached the client: {head}"
        );
    }
    assert!(head.contains("x-resp-keep: yes"), "{head}");
}

// ---- streaming ----------------------------------------------------------------------------

#[tokio::test]
async fn multi_megabyte_bodies_stream_both_ways() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let client = client();

    // 8 MiB up, made chunk by chunk, without a length.
    let chunks = (0..128).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'u'; 64 * 1024])));
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let answer = send(
        &client,
        Method::PUT,
        format!("http://{proxy}/upload"),
        &[],
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["body_len"], 8 * MIB);

    // 16 MiB down, counted as it streams.
    let request = http::Request::get(format!("http://{proxy}/big?bytes={}", 16 * MIB))
        .body(Body::empty())
        .expect("a valid request");
    let response = client.request(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut len = 0;
    while let Some(frame) = tokio::time::timeout(TIMEOUT, body.frame())
        .await
        .expect("in time")
    {
        if let Ok(data) = frame.expect("a frame").into_data() {
            len += data.len();
        }
    }
    assert_eq!(len, 16 * MIB);
}

#[tokio::test]
async fn response_bodies_are_not_buffered() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;

    let request = http::Request::get(format!("http://{proxy}/gated"))
        .body(Body::empty())
        .expect("a valid request");
    let response = tokio::time::timeout(TIMEOUT, client().request(request))
        .await
        .expect("headers before the body has ended")
        .expect("a response");
    let mut body = response.into_body();
    let first = tokio::time::timeout(TIMEOUT, body.frame())
        .await
        .expect("the first chunk before the body has ended")
        .expect("a frame")
        .expect("a good frame")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"first");
    upstream.state.open_gate.notify_one();
    let rest = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .expect("the rest in time")
        .expect("the rest")
        .to_bytes();
    assert_eq!(&rest[..], b"rest");
}

#[tokio::test]
async fn request_bodies_are_not_buffered() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;

    let (tx, rx) = mpsc::channel(1);
    let request = http::Request::post(format!("http://{proxy}/upload-gated"))
        .body(channel_body(rx))
        .expect("a valid request");
    let client = client();
    let response = tokio::spawn(async move { client.request(request).await });
    tx.send(Bytes::from(vec![b'a'; 1000]))
        .await
        .expect("send the first chunk");
    tokio::time::timeout(TIMEOUT, upstream.state.first_chunk.notified())
        .await
        .expect("the upstream got the first chunk while the body goes on");
    tx.send(Bytes::from(vec![b'b'; 24]))
        .await
        .expect("send the rest");
    drop(tx);
    let response = tokio::time::timeout(TIMEOUT, response)
        .await
        .expect("an answer in time")
        .expect("the request task")
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert_eq!(&body[..], b"1024");
}

// ---- headers and failures -----------------------------------------------------------------

#[tokio::test]
async fn header_style_none_leaves_only_retry_after() {
    let upstream = upstream().await;
    let proxy = proxy_with(
        TRUSTING,
        &format!("http://{}", upstream.addr),
        HeaderStyle::None,
    )
    .await;
    let client = client();
    let allowed = get_from(&client, proxy, "/once", &[]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let denied = get_from(&client, proxy, "/once", &[]).await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
    for answer in [&allowed, &denied] {
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "ratelimit",
            "ratelimit-policy",
        ] {
            assert_eq!(answer.header(name), None, "{name}");
        }
    }
    assert!(denied.header("retry-after").is_some());
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_and_limits_still_hold() {
    // A port nothing listens on.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let free = listener.local_addr().expect("address");
    drop(listener);
    let proxy = proxy_with(TRUSTING, &format!("http://{free}"), HeaderStyle::Both).await;
    let client = client();

    let answer = get_from(&client, proxy, "/anything", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let error = answer.json()["error"]
        .as_str()
        .expect("an error")
        .to_owned();
    assert!(error.starts_with("upstream unreachable: "), "{error}");
    assert!(error.to_ascii_lowercase().contains("refused"), "{error}");

    assert_eq!(
        get_from(&client, proxy, "/once", &[]).await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        get_from(&client, proxy, "/once", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
