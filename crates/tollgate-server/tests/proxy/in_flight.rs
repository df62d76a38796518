//! `max_in_flight` through the proxy: 50 parallel slow requests of one key against an
//! upstream that records how many it holds at once never put more than 5 there; slots free
//! when responses finish and when clients disconnect mid-response.

use super::*;

/// An upstream whose `/slow` holds each request 200 ms, recording how many it holds at once,
/// and whose `/hold` sends its headers and a first chunk, then never finishes.
#[derive(Default)]
struct Holding {
    now: AtomicUsize,
    most: AtomicUsize,
    served: AtomicUsize,
}

async fn holding_upstream() -> (SocketAddr, Arc<Holding>) {
    let state = Arc::new(Holding::default());
    let app = Router::new()
        .route(
            "/slow",
            get(|State(state): State<Arc<Holding>>| async move {
                let now = state.now.fetch_add(1, Ordering::SeqCst) + 1;
                state.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                state.now.fetch_sub(1, Ordering::SeqCst);
                state.served.fetch_add(1, Ordering::SeqCst);
                "done"
            }),
        )
        .route(
            "/hold",
            get(|| async {
                let (tx, rx) = mpsc::channel(1);
                tx.send(Bytes::from_static(b"first")).await.expect("room");
                // The sender lives in the body's task forever: the body never ends.
                tokio::spawn(async move {
                    std::future::pending::<()>().await;
                    drop(tx);
                });
                channel_body(rx)
            }),
        )
        .with_state(Arc::clone(&state));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
    (addr, state)
}

const IN_FLIGHT: &str = r#"
[policies.slow]
limits = "10000/minute"
max_in_flight = 5

[proxy]
listen = "127.0.0.1:0"
upstream = "UPSTREAM"

[[proxy.routes]]
path = "/slow"
policy = "slow"
key = "header:X-User"

[[proxy.routes]]
path = "/hold"
policy = "slow"
key = "header:X-User"
"#;

async fn in_flight_proxy() -> (SocketAddr, Arc<Holding>) {
    let (upstream, holding) = holding_upstream().await;
    let proxy = proxy_with(IN_FLIGHT, &format!("http://{upstream}"), HeaderStyle::Ietf).await;
    (proxy, holding)
}

/// 50 requests of `user` to `/slow` at once: their statuses.
async fn fifty_at_once(proxy: SocketAddr, user: &'static str) -> Vec<u16> {
    let client = client();
    let requests = (0..50).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let answer = get_from(&client, proxy, "/slow", &[("x-user", user)]).await;
            if answer.status == StatusCode::TOO_MANY_REQUESTS {
                assert!(
                    answer.header("retry-after").is_some(),
                    "a 429 says when to retry"
                );
            }
            answer.status.as_u16()
        })
    });
    let mut statuses = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        statuses.push(request.await.expect("the request task"));
    }
    statuses
}

#[tokio::test]
async fn fifty_parallel_requests_never_put_more_than_five_of_one_key_upstream() {
    let (proxy, holding) = in_flight_proxy().await;
    let statuses = fifty_at_once(proxy, "alice").await;
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
    assert!(
        admitted >= 5,
        "at least the first five get in: {statuses:?}"
    );
    assert!(admitted < 50, "the rest are refused: {statuses:?}");
    assert!(
        holding.most.load(Ordering::SeqCst) <= 5,
        "never more than 5 at once upstream"
    );
    assert_eq!(holding.served.load(Ordering::SeqCst), admitted);
    // Every response finished: all five slots are free again, at once.
    let client = client();
    let again = (0..5).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            get_from(&client, proxy, "/slow", &[("x-user", "alice")])
                .await
                .status
        })
    });
    for request in again.collect::<Vec<_>>() {
        assert_eq!(request.await.expect("task"), StatusCode::OK);
    }
}

#[tokio::test]
async fn each_key_has_its_own_slots() {
    let (proxy, holding) = in_flight_proxy().await;
    let (alice, bob) = tokio::join!(fifty_at_once(proxy, "alice"), fifty_at_once(proxy, "bob"));
    for statuses in [&alice, &bob] {
        assert!(
            statuses.iter().filter(|&&s| s == 200).count() >= 5,
            "{statuses:?}"
        );
    }
    assert!(
        holding.most.load(Ordering::SeqCst) <= 10,
        "five of each key at most"
    );
}

/// Sends `GET /hold` as `user` over a raw connection and reads until the first chunk of the
/// body (or the end of a refusal): the connection, and the status.
async fn hold(proxy: SocketAddr, user: &str) -> (TcpStream, u16) {
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    let request = format!("GET /hold HTTP/1.1\r\nhost: x\r\nx-user: {user}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let status = loop {
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            n > 0,
            "the proxy closed: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if text.starts_with("HTTP/1.1 429") {
            break 429;
        }
        if text.starts_with("HTTP/1.1 200") && text.contains("first") {
            break 200;
        }
    };
    (stream, status)
}

#[tokio::test]
async fn clients_that_disconnect_mid_response_free_their_slots() {
    let (proxy, _) = in_flight_proxy().await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let (stream, status) = hold(proxy, "carol").await;
        assert_eq!(status, 200);
        held.push(stream);
    }
    let (_, status) = hold(proxy, "carol").await;
    assert_eq!(status, 429, "five responses in flight hold the five slots");
    // The five clients go away mid-response.
    drop(held);
    let mut freed = false;
    for _ in 0..100 {
        let (stream, status) = hold(proxy, "carol").await;
        drop(stream);
        if status == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "a new request got in after the disconnects");
    // All five are free, not just one (each probe above released its slot as it left).
    let mut again = Vec::new();
    for _ in 0..5 {
        let (stream, status) = hold(proxy, "carol").await;
        assert_eq!(status, 200);
        again.push(stream);
    }
}
