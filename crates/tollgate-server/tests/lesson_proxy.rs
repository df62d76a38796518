//! The lesson's scenarios through `tollgate serve`'s reverse proxy, in front of a small
//! upstream; and a graceful shutdown that lets a request in flight finish.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing;
use support::{Reply, Tollgate, request, write_config};

/// An upstream answering `pong` on every path (`/slow` after half a second), on its own
/// runtime in a thread.
fn upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let app = Router::new()
                .route(
                    "/slow",
                    routing::get(|| async {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        "slow pong"
                    }),
                )
                .fallback(|| async { "pong" });
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            axum::serve(listener, app).await.expect("upstream serves");
        });
    });
    addr
}

fn proxy(upstream: SocketAddr) -> Tollgate {
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
headers = "both"

[policies.ping]
limits = "3/minute"

[policies.bucket]
limits = "1/second"
strategy = "token-bucket"
burst = 2

[policies.search]
limits = "2/minute"

[policies.report]
limits = "1/minute"

[policies.everything]
limits = "100/minute"

[proxy]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
trusted_proxies = ["127.0.0.1/32"]
default_policy = "everything"

[[proxy.routes]]
path = "/ping"
policy = "ping"

[[proxy.routes]]
path = "/bucket"
policy = "bucket"

[[proxy.routes]]
path = "/user"
policy = "ping"
key = "header:X-User-Id,ip"

[[proxy.routes]]
path = "/search"
methods = ["GET"]
policy = "search"

[[proxy.routes]]
path = "/report"
policy = "report"

[[proxy.routes]]
path = "/health"
exempt = true
"#
    );
    let path = write_config("tollgate.toml", &config);
    Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"])
}

/// `GET path` through the proxy from a client the proxy trusts to name `client`.
fn get(server: &Tollgate, path: &str, client: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("X-Forwarded-For", client)];
    all.extend_from_slice(headers);
    request(server.addr("proxy"), "GET", path, &all, "")
}

fn statuses(server: &Tollgate, path: &str, client: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| get(server, path, client, &[]).status)
        .collect()
}

#[test]
fn fixed_window_three_per_minute() {
    let server = proxy(upstream());
    for _ in 0..3 {
        let reply = get(&server, "/ping", "203.0.113.1", &[]);
        assert_eq!((reply.status, reply.body.as_str()), (200, "pong"));
        assert!(reply.header("ratelimit").is_some());
    }
    for _ in 0..2 {
        let reply = get(&server, "/ping", "203.0.113.1", &[]);
        assert_eq!(reply.status, 429);
        let wait: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=60).contains(&wait));
    }
    // The proxy's decisions are counted under the policy that made them.
    let metrics = request(server.api(), "GET", "/metrics", &[], "").body;
    for expected in [
        r#"tollgate_hits_total{policy="ping",outcome="allowed"} 3"#,
        r#"tollgate_hits_total{policy="ping",outcome="denied"} 2"#,
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
}

#[test]
fn token_bucket_of_two_refilled_each_second() {
    let server = proxy(upstream());
    assert_eq!(
        statuses(&server, "/bucket", "203.0.113.2", 4),
        [200, 200, 429, 429]
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(statuses(&server, "/bucket", "203.0.113.2", 1), [200]);
}

#[test]
fn per_user_with_ip_fallback() {
    let server = proxy(upstream());
    let alice = [("X-User-Id", "alice")];
    let codes: Vec<u16> = (0..4)
        .map(|_| get(&server, "/user", "203.0.113.3", &alice).status)
        .collect();
    assert_eq!(codes, [200, 200, 200, 429]);
    assert_eq!(
        get(&server, "/user", "203.0.113.3", &[("X-User-Id", "bob")]).status,
        200
    );
}

#[test]
fn two_routes_and_an_exempt_health_check() {
    let server = proxy(upstream());
    assert_eq!(
        statuses(&server, "/search", "203.0.113.4", 3),
        [200, 200, 429]
    );
    assert_eq!(statuses(&server, "/report", "203.0.113.4", 2), [200, 429]);
    assert!(
        statuses(&server, "/health", "203.0.113.4", 20)
            .iter()
            .all(|&s| s == 200)
    );
    // POST /search is outside the route's methods: it meets the default policy.
    let post = request(
        server.addr("proxy"),
        "POST",
        "/search",
        &[("X-Forwarded-For", "203.0.113.4")],
        "",
    );
    assert_eq!(post.status, 200);
}

#[test]
fn clients_behind_the_trusted_proxy_are_limited_apart() {
    let server = proxy(upstream());
    assert_eq!(
        statuses(&server, "/ping", "198.51.100.1", 4),
        [200, 200, 200, 429]
    );
    assert_eq!(statuses(&server, "/ping", "198.51.100.2", 1), [200]);
}

#[test]
fn unreachable_upstream_is_a_502() {
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = nothing.local_addr().expect("address");
    drop(nothing);
    let server = proxy(addr);
    let reply = get(&server, "/ping", "203.0.113.9", &[]);
    assert_eq!(reply.status, 502);
    assert!(
        reply.body.contains("upstream unreachable"),
        "{}",
        reply.body
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let server = proxy(upstream());
    let addr = server.addr("proxy");
    let in_flight = std::thread::spawn(move || request(addr, "GET", "/slow", &[], ""));
    std::thread::sleep(Duration::from_millis(150));
    let status = server.stop();
    let reply = in_flight.join().expect("request thread");
    assert_eq!((reply.status, reply.body.as_str()), (200, "slow pong"));
    assert!(status.success());
}

#[test]
fn encoded_or_dotted_paths_meet_the_route_they_name() {
    let server = proxy(upstream());
    let client = "203.0.113.10";
    for path in ["/ping", "/p%69ng", "/x/../ping"] {
        assert_eq!(get(&server, path, client, &[]).status, 200, "{path}");
    }
    assert_eq!(get(&server, "//ping", client, &[]).status, 429);
}
