//! Slow and idle clients are closed by the server, and cannot starve the others: header,
//! body and keep-alive timeouts, and a cap on connections.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{Tollgate, request, write_config};

fn serve(max_connections: u32) -> Tollgate {
    let path = write_config(
        "tollgate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\n\
             keepalive_timeout = \"1s\"\nmax_connections = {max_connections}\n"
        ),
    );
    Tollgate::serve(&["--config", path.to_str().expect("utf-8 path")], &[])
}

/// Reads until the server closes the socket (or errors); how long that took, and what came.
fn until_closed(mut stream: TcpStream) -> (Duration, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&got).into_owned(),
    )
}

fn connect(addr: SocketAddr, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(sent).expect("write");
    stream
}

#[test]
fn headers_that_never_finish_are_closed() {
    let tollgate = serve(100);
    let stream = connect(tollgate.api(), b"POST /v1/check HTTP/1.1\r\nHost: x\r\n");
    let (took, _) = until_closed(stream);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let tollgate = serve(100);
    let stream = connect(tollgate.api(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (took, answer) = until_closed(stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[test]
fn a_body_that_never_finishes_is_a_408_and_the_connection_closes() {
    let tollgate = serve(100);
    let stream = connect(
        tollgate.api(),
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"key\": \"a",
    );
    let (took, answer) = until_closed(stream);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("body_timeout")),
        "{body}"
    );
}

#[test]
fn a_keep_alive_connection_may_idle_past_the_header_timeout_up_to_the_keepalive_timeout() {
    let path = write_config(
        "tollgate.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"1s\"\nkeepalive_timeout = \"4s\"\n",
    );
    let tollgate = Tollgate::serve(&["--config", path.to_str().expect("utf-8 path")], &[]);
    let mut stream = connect(tollgate.api(), b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut first = [0; 12];
    stream.read_exact(&mut first).expect("a first answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    // Idle for longer than header_timeout: the connection is kept, as keepalive_timeout says.
    std::thread::sleep(Duration::from_secs(2));
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("a second request on the same connection");
    let (_, rest) = until_closed(stream);
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
}

/// An upstream that runs `answer` on each connection, in a thread of its own.
fn upstream(answer: fn(TcpStream)) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    addr
}

/// `tollgate serve` with `server` (lines of its `[server]` section) and a proxy in front of
/// `upstream`.
fn serve_proxy(server: &str, upstream: SocketAddr) -> Tollgate {
    let path = write_config(
        "tollgate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\n\
             [proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://{upstream}\"\n"
        ),
    );
    Tollgate::serve(
        &["--config", path.to_str().expect("utf-8 path")],
        &["proxy"],
    )
}

/// An upstream that reads one request and answers it after 2.5 s, then closes.
fn slow_upstream() -> SocketAddr {
    upstream(|mut stream| {
        let mut head = Vec::new();
        let mut byte = [0; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        std::thread::sleep(Duration::from_millis(2500));
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nslow!");
    })
}

#[test]
fn a_proxied_request_outlasting_the_keepalive_timeout_gets_its_answer() {
    let tollgate = serve_proxy(
        "header_timeout = \"1s\"\nkeepalive_timeout = \"1s\"",
        slow_upstream(),
    );
    let reply = request(tollgate.addr("proxy"), "GET", "/slow", &[], "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "slow!");
}

#[test]
fn a_client_is_served_once_idlers_filling_the_cap_time_out() {
    let tollgate = serve(2);
    let idlers: Vec<TcpStream> = (0..2)
        .map(|_| connect(tollgate.api(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let reply = request(tollgate.api(), "GET", "/healthz", &[], "");
    assert_eq!(reply.status, 200);
    // It waited for the idlers to be closed, at most their header timeout and a little more.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(idlers);
}

#[test]
fn a_proxied_body_that_never_finishes_is_a_408_too() {
    let tollgate = serve_proxy("body_timeout = \"1s\"", slow_upstream());
    let stream = connect(
        tollgate.addr("proxy"),
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf",
    );
    let (took, answer) = until_closed(stream);
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}

/// How much [`big_upstream`] answers.
const BIG: usize = 64 * 1024 * 1024;

/// An upstream that answers every request with [`BIG`] bytes.
fn big_upstream() -> SocketAddr {
    upstream(|mut stream| {
        let mut head = [0; 1024];
        let _ = stream.read(&mut head);
        let _ = stream
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").as_bytes());
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < BIG
            && stream
                .write_all(&chunk[..chunk.len().min(BIG - sent)])
                .is_ok()
        {
            sent += chunk.len().min(BIG - sent);
        }
    })
}

#[test]
fn a_client_that_stops_reading_its_answer_is_closed_after_the_body_timeout() {
    let tollgate = serve_proxy("body_timeout = \"1s\"", big_upstream());
    let stream = connect(
        tollgate.addr("proxy"),
        b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    // Read nothing for a while: the server's writes stall once the socket buffers are full.
    std::thread::sleep(Duration::from_secs(4));
    let mut stream = stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut received = 0;
    let mut buf = vec![0; 1024 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received > 0, "the answer began");
    assert!(received < BIG, "the whole answer came: {received} bytes");
}

// ---- the Envoy rate limit service (gRPC) --------------------------------------------------

/// `tollgate serve` with the Envoy service, the timeouts at one second and `max_connections`.
fn serve_grpc(max_connections: u32) -> (Tollgate, SocketAddr) {
    let path = write_config(
        "tollgate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n\
             header_timeout = \"1s\"\nbody_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\n\
             max_connections = {max_connections}\n\n[envoy]\nconfig = \"ratelimit.yaml\"\n"
        ),
    );
    std::fs::write(
        path.with_file_name("ratelimit.yaml"),
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: 100 }\n",
    )
    .expect("write the descriptors");
    let tollgate = Tollgate::serve(
        &["--config", path.to_str().expect("utf-8 path")],
        &["Envoy rate limit service"],
    );
    let addr = tollgate.addr("Envoy rate limit service");
    (tollgate, addr)
}

/// One `ShouldRateLimit` call over a new connection; its overall code.
async fn should_rate_limit(addr: SocketAddr) -> i32 {
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
    use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;

    let call = async {
        let mut client = RateLimitServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let request = RateLimitRequest {
            domain: "edge".to_owned(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "user".to_owned(),
                    value: "alice".to_owned(),
                }],
                ..Default::default()
            }],
            hits_addend: 0,
        };
        let response = client.should_rate_limit(request).await.expect("an answer");
        response.into_inner().overall_code
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("an answer within 10 s")
}

#[test]
fn grpc_connections_that_never_send_a_call_are_closed_after_the_header_timeout() {
    let (_tollgate, addr) = serve_grpc(100);
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    let handshake = [PREFACE, EMPTY_SETTINGS].concat();
    for (what, sent) in [
        ("nothing", &b""[..]),
        ("half a preface", &PREFACE[..10]),
        ("a preface and settings", &handshake[..]),
    ] {
        let (took, _) = until_closed(connect(addr, sent));
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_served_beside_idlers_and_wait_while_idlers_fill_the_cap() {
    let (_tollgate, addr) = serve_grpc(3);
    let idlers: Vec<TcpStream> = (0..2).map(|_| connect(addr, b"")).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(should_rate_limit(addr).await, 1, "OK");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "a free place serves at once, not after {:?}",
        started.elapsed()
    );
    drop(idlers);

    let (_tollgate, addr) = serve_grpc(2);
    let idlers: Vec<TcpStream> = (0..2).map(|_| connect(addr, b"")).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(should_rate_limit(addr).await, 1, "OK");
    // It waited for the idlers to be closed: their header timeout, and a little more.
    assert!(
        started.elapsed() >= Duration::from_millis(500)
            && started.elapsed() < Duration::from_secs(5),
        "served after {:?}",
        started.elapsed()
    );
    drop(idlers);
}

/// An HTTP/2 connection to `addr`, and the task that runs it (done when the server closes it).
async fn h2_connect<B>(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<()>,
)
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an HTTP/2 handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, connection)
}

fn should_rate_limit_call<B>(addr: SocketAddr, body: B) -> http::Request<B> {
    http::Request::post(format!(
        "http://{addr}/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(body)
    .expect("a request")
}

#[tokio::test]
async fn a_grpc_call_whose_message_never_arrives_ends_at_the_body_timeout() {
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    let (_tollgate, addr) = serve_grpc(100);
    let (mut sender, _connection) = h2_connect(addr).await;
    // The message is announced by the call and never sent.
    let (_keep_open, chunks) =
        tokio::sync::mpsc::channel::<Result<Frame<bytes::Bytes>, std::convert::Infallible>>(1);
    let body = StreamBody::new(Box::pin(futures_util::stream::unfold(
        chunks,
        |mut chunks| async move { chunks.recv().await.map(|chunk| (chunk, chunks)) },
    )));
    let started = Instant::now();
    let call = sender.send_request(should_rate_limit_call(addr, body));
    let response = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("an answer within 10 s")
        .expect("a response");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    // A trailers-only answer: CANCELLED (tonic's code for a call past the server's timeout).
    assert_eq!(
        response
            .headers()
            .get("grpc-status")
            .map(|status| status.as_bytes()),
        Some(&b"1"[..]),
        "{response:?}"
    );
}

#[tokio::test]
async fn a_grpc_connection_is_closed_after_the_keepalive_timeout_without_a_call() {
    use http_body_util::{BodyExt, Full};

    let (_tollgate, addr) = serve_grpc(100);
    let (mut sender, connection) = h2_connect(addr).await;
    // Past most of the header timeout, one call: the connection is kept for it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    // An empty message: all fields at their defaults.
    let empty_message = Full::new(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]));
    let response = sender
        .send_request(should_rate_limit_call(addr, empty_message))
        .await
        .expect("a response");
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .expect("the whole answer");
    let answered = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("closed within 10 s")
        .expect("the connection task");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(700) && idle < Duration::from_secs(5),
        "closed {idle:?} after the answer"
    );
}

/// A client that leaves its HTTP/2 flow-control window shut takes nothing of its answer, yet
/// nothing waits to be written: the connection was held forever, whatever the timeouts.
/// Raw frames, as such a client sends them: a window of 0, one call, then nothing.
#[test]
fn a_grpc_client_that_never_opens_its_window_is_closed_after_the_body_timeout() {
    let (_tollgate, addr) = serve_grpc(100);
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let len = u32::try_from(payload.len())
            .expect("a short frame")
            .to_be_bytes();
        [&len[1..], &[kind, flags], &stream.to_be_bytes(), payload].concat()
    };
    // HPACK without Huffman: `:method: POST` and `:scheme: http` from the static table,
    // `:path` and `:authority` by their static names, then two literal fields.
    let literal = |name: &[u8], value: &[u8]| {
        [
            &[0, name.len() as u8][..],
            name,
            &[value.len() as u8],
            value,
        ]
        .concat()
    };
    let path: &[u8] = b"/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";
    let head = [
        &[0x83, 0x86, 0x04, path.len() as u8][..],
        path,
        &[0x01, 1, b'x'],
        &literal(b"content-type", b"application/grpc"),
        &literal(b"te", b"trailers"),
    ]
    .concat();
    // RateLimitRequest { domain: "edge", descriptors: [{ entries: [{ "user", "a" }] }] },
    // answered with a message (an empty request is refused by its head alone).
    let entry: &[u8] = b"\x0a\x04user\x12\x01a";
    let descriptor = [&[0x0a, entry.len() as u8][..], entry].concat();
    let request = [
        &b"\x0a\x04edge\x12"[..],
        &[descriptor.len() as u8],
        &descriptor,
    ]
    .concat();
    let message = [&[0, 0, 0, 0, request.len() as u8][..], &request].concat();
    const END_HEADERS: u8 = 4;
    const END_STREAM: u8 = 1;
    let sent = [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        // SETTINGS_INITIAL_WINDOW_SIZE (4) = 0
        &frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]),
        &frame(1, END_HEADERS, 1, &head),
        &frame(0, END_STREAM, 1, &message),
    ]
    .concat();
    let (took, _) = until_closed(connect(addr, &sent));
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}

/// Each connection takes a file descriptor. With `max_connections` above what the process
/// may open (10,000 by default, against a common limit of 1,024), a flood of idle sockets on
/// one listener used up every descriptor: no listener could accept anyone (nor the proxy
/// reach its upstream) until the idlers timed out. The caps are now fitted to the limit, so
/// a flood on the proxy leaves the check API its own connections.
#[test]
fn a_flood_on_one_listener_leaves_the_others_their_descriptors() {
    let path = write_config(
        "tollgate.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"20s\"\n\n\
         [proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:9\"\n",
    );
    let tollgate = Tollgate::serve_with_open_files(
        &["--config", path.to_str().expect("utf-8 path")],
        &["proxy"],
        400,
    );
    // 500 idlers, more than the process may open. Those past the proxy's cap and its accept
    // queue wait in `connect` (the kernel drops their SYNs): from threads of their own, left
    // to end with the server.
    let proxy = tollgate.addr("proxy");
    for _ in 0..8 {
        std::thread::spawn(move || {
            let idlers: Vec<TcpStream> = (0..63)
                .filter_map(|_| TcpStream::connect(proxy).ok())
                .collect();
            std::thread::sleep(Duration::from_secs(30));
            drop(idlers);
        });
    }
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let stream = connect(
        tollgate.api(),
        b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (_, answer) = until_closed(stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served after {:?}",
        started.elapsed()
    );
}
