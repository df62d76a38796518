//! The lesson's examples, run as processes and driven over real sockets.

mod support;

use std::time::Duration;

use support::{get, start_example};

fn statuses(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> Vec<u16> {
    (0..n).map(|_| get(addr, path, headers).status).collect()
}

fn retry_after(reply: &support::Reply) -> u64 {
    reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {reply:?}"))
}

#[test]
fn lesson_fixed_window_allows_three_per_minute() {
    let server = start_example("lesson_fixed_window");
    for _ in 0..3 {
        let reply = get(server.addr, "/ping", &[]);
        assert_eq!((reply.status, reply.body.as_str()), (200, "pong"));
    }
    for _ in 0..2 {
        let reply = get(server.addr, "/ping", &[]);
        assert_eq!(reply.status, 429);
        assert!((1..=60).contains(&retry_after(&reply)), "{reply:?}");
        assert!(
            reply.body.contains(r#""error":"rate limit exceeded""#),
            "{reply:?}"
        );
    }
}

#[test]
fn lesson_token_bucket_refills_one_per_second() {
    let server = start_example("lesson_token_bucket");
    assert_eq!(statuses(server.addr, "/ping", &[], 4), [200, 200, 429, 429]);
    let denied = get(server.addr, "/ping", &[]);
    assert_eq!((denied.status, retry_after(&denied)), (429, 1));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(server.addr, "/ping", &[]).status, 200);
}

#[test]
fn lesson_per_user_counts_users_apart() {
    let server = start_example("lesson_per_user");
    let alice = [("X-User-Id", "alice")];
    assert_eq!(statuses(server.addr, "/ping", &alice, 3), [200, 200, 200]);
    let denied = get(server.addr, "/ping", &alice);
    assert_eq!(denied.status, 429);
    assert!(retry_after(&denied) >= 1);
    assert_eq!(
        get(server.addr, "/ping", &[("X-User-Id", "bob")]).status,
        200
    );
    // Without the header, the client IP is the key: its own count.
    assert_eq!(statuses(server.addr, "/ping", &[], 3), [200, 200, 200]);
    assert_eq!(get(server.addr, "/ping", &[]).status, 429);
}

#[test]
fn lesson_two_routes_limits_each_route_and_exempts_health() {
    let server = start_example("lesson_two_routes");
    assert_eq!(statuses(server.addr, "/search", &[], 3), [200, 200, 429]);
    assert_eq!(statuses(server.addr, "/report", &[], 2), [200, 429]);
    assert!(
        statuses(server.addr, "/health", &[], 20)
            .iter()
            .all(|&s| s == 200)
    );
}

#[test]
fn behind_proxy_limits_the_forwarded_client() {
    // The test connects from 127.0.0.1, the trusted proxy.
    let server = start_example("behind_proxy");
    let client = [("X-Forwarded-For", "203.0.113.7")];
    let first = get(server.addr, "/ping", &client);
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "pong from 203.0.113.7")
    );
    assert_eq!(statuses(server.addr, "/ping", &client, 2), [200, 429]);
    // Another client behind the same proxy has its own count.
    let other = [("X-Forwarded-For", "198.51.100.9")];
    assert_eq!(statuses(server.addr, "/ping", &other, 3), [200, 200, 429]);
    // A client spoofing a hop before the proxy's is still the address the proxy saw.
    let spoofed = [("X-Forwarded-For", "1.1.1.1, 203.0.113.7")];
    assert_eq!(get(server.addr, "/ping", &spoofed).status, 429);
}
