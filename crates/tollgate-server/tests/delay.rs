//! Delay instead of reject, end to end with real clocks (and generous bounds): a burst
//! through `tollgate serve`'s proxy is released to the upstream at the rate, the waiting
//! room's cap turns a flood away, the check API answers `delay_ms` without waiting, and three
//! processes over one Redis release requests at the rate together, not three times it.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use redis_support::RedisServer;
use support::{Reply, Tollgate, check_config, post, request, write_config};

/// An upstream answering `pong`, recording when each request arrived.
fn upstream() -> (SocketAddr, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&arrivals);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let app = Router::new().fallback(move || {
                seen.lock().expect("lock").push(Instant::now());
                async { "pong" }
            });
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            axum::serve(listener, app).await.expect("upstream serves");
        });
    });
    (addr, arrivals)
}

/// A proxy in front of `upstream` whose `/paced` route lets 10 requests a second through,
/// one at a time, each waiting up to a second for its turn; `server` adds to `[server]`.
fn config(upstream: SocketAddr, server: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{server}

[policies.paced]
limits = "10/second"
strategy = "token-bucket"
burst = 1
max_delay = "1s"

[proxy]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"

[[proxy.routes]]
path = "/paced"
policy = "paced"
"#
    )
}

/// `n` requests to `/paced` sent at once, spread over `proxies`.
fn burst(proxies: &[SocketAddr], n: usize) -> Vec<Reply> {
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (proxy, start) = (proxies[i % proxies.len()], Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                request(proxy, "GET", "/paced", &[], "")
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|thread| thread.join().expect("no client panicked"))
        .collect()
}

/// Checks that `arrivals` came one at a time at 10 a second: consecutive ones at least
/// 80 ms apart (100 ms at the rate, less the jitter of real clocks), and `n` of them over
/// (n − 1) × 100 ms, give or take.
fn released_at_the_rate(arrivals: &[Instant]) {
    let mut arrivals = arrivals.to_vec();
    arrivals.sort_unstable();
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|gap| *gap >= Duration::from_millis(80)),
        "released faster than the rate: {gaps:?}"
    );
    let span = *arrivals.last().expect("some") - arrivals[0];
    let expected = Duration::from_millis(100) * u32::try_from(arrivals.len() - 1).expect("few");
    assert!(
        span >= expected.saturating_sub(Duration::from_millis(150))
            && span <= expected + Duration::from_millis(400),
        "{} released over {span:?}",
        arrivals.len()
    );
}

/// Issue 13 through the proxy: a burst of 20 at 10 a second with waits of up to a second:
/// about 11 let through (the first at once, then one each 100 ms), the rest 429.
#[test]
fn a_burst_through_the_proxy_is_released_at_the_rate() {
    let (upstream, arrivals) = upstream();
    let path = write_config("tollgate.toml", &config(upstream, ""));
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let replies = burst(&[server.addr("proxy")], 20);
    let ok = replies.iter().filter(|reply| reply.status == 200).count();
    // 11 when the 20 arrive within 100 ms; one more for each 100 ms they take to arrive.
    assert!((11..=13).contains(&ok), "{ok} let through");
    for reply in replies.iter().filter(|reply| reply.status != 200) {
        assert_eq!(reply.status, 429, "{reply:?}");
        assert!(reply.header("retry-after").is_some(), "{reply:?}");
    }
    let arrivals = arrivals.lock().expect("lock").clone();
    assert_eq!(arrivals.len(), ok);
    released_at_the_rate(&arrivals);
}

/// `[server] max_waiting`: a flood gets as many waiting as allowed; the rest are 429 at once
/// (and their reservations given back, so the next waits behind the waiting ones only).
#[test]
fn the_waiting_cap_turns_a_flood_away() {
    let (upstream, arrivals) = upstream();
    let path = write_config("tollgate.toml", &config(upstream, "max_waiting = 2"));
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let started = Instant::now();
    let replies = burst(&[server.addr("proxy")], 30);
    let ok = replies.iter().filter(|reply| reply.status == 200).count();
    // One at once and two waiting; a few more if the flood took long enough to arrive that
    // some of the waiting were done.
    assert!((3..=5).contains(&ok), "{ok} let through");
    assert_eq!(replies.iter().filter(|r| r.status == 429).count(), 30 - ok);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the flood waited"
    );
    released_at_the_rate(&arrivals.lock().expect("lock"));
}

/// The check API answers at once: allowed, with the delay the caller is to wait.
#[test]
fn the_check_api_answers_with_the_delay() {
    let (upstream, _) = upstream();
    let path = write_config("tollgate.toml", &config(upstream, ""));
    let server = Tollgate::serve(&["--config", path.to_str().expect("utf-8")], &["proxy"]);
    let check = |body: &str| post(server.api(), "/v1/check", body);
    let first = check(r#"{"policy": "paced", "key": "k"}"#);
    assert_eq!(first.status, 200);
    assert!(!first.body.contains("delay_ms"), "{}", first.body);
    let started = Instant::now();
    let second = check(r#"{"policy": "paced", "key": "k"}"#);
    assert!(
        started.elapsed() < Duration::from_millis(80),
        "the API waited"
    );
    let json: serde_json::Value = serde_json::from_str(&second.body).expect("json");
    assert_eq!(
        (second.status, &json["allowed"]),
        (200, &serde_json::json!(true))
    );
    let delay = json["delay_ms"].as_u64().expect("a delay");
    assert!((50..=100).contains(&delay), "{delay}");
    // An inline policy may carry its own delay; a sliding window may not.
    let inline =
        r#"{"limits": "1/second", "strategy": "token-bucket", "max_delay_ms": 1500, "key": "i"}"#;
    assert_eq!(check(inline).status, 200);
    let waits = check(inline);
    assert_eq!(waits.status, 200);
    assert!(waits.body.contains(r#""delay_ms":"#), "{}", waits.body);
    let log = check(
        r#"{"limits": "1/second", "strategy": "sliding-window", "max_delay_ms": 10, "key": "i"}"#,
    );
    assert_eq!(log.status, 400);
    assert!(
        log.body
            .contains("max_delay_ms: max_delay applies to token-bucket and fixed-window only"),
        "{}",
        log.body
    );
    let named = check(r#"{"policy": "paced", "max_delay_ms": 10, "key": "k"}"#);
    assert_eq!(named.status, 400);
}

/// A delay that cannot be is a configuration error, with its place in the file.
#[test]
fn a_delay_no_strategy_can_reserve_is_refused() {
    let path = write_config(
        "tollgate.toml",
        "[policies.log]\nlimits = \"10/second\"\nstrategy = \"sliding-window\"\nmax_delay = \"500ms\"\n",
    );
    let (ok, _, stderr) = check_config(&path);
    assert!(!ok);
    assert!(
        stderr.contains(
            ":4: policies.log.max_delay: max_delay applies to token-bucket and fixed-window only"
        ),
        "{stderr}"
    );
    let path = write_config(
        "tollgate.toml",
        "[policies.window]\nlimits = \"10/second\"\nmax_delay = \"2s\"\n",
    );
    let (ok, _, stderr) = check_config(&path);
    assert!(!ok);
    assert!(
        stderr.contains(
            "policies.window.max_delay: max_delay 2s is not shorter than the fixed window"
        ),
        "{stderr}"
    );
}

/// Three processes over one Redis: the reservation is made in the hit's script, so together
/// they release requests at the rate, not three times it.
#[test]
fn three_servers_over_redis_release_at_the_rate_together() {
    let redis = RedisServer::start();
    let (upstream, arrivals) = upstream();
    let path = write_config("tollgate.toml", &config(upstream, ""));
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let servers: Vec<Tollgate> = (0..3).map(|_| Tollgate::serve(&args, &["proxy"])).collect();
    let proxies: Vec<SocketAddr> = servers.iter().map(|s| s.addr("proxy")).collect();
    let replies = burst(&proxies, 30);
    let ok = replies.iter().filter(|reply| reply.status == 200).count();
    assert!((11..=13).contains(&ok), "{ok} let through by three servers");
    assert!(replies.iter().all(|r| [200, 429].contains(&r.status)));
    released_at_the_rate(&arrivals.lock().expect("lock"));
}

/// The README's example of a delay is a configuration `check-config` accepts as written.
#[test]
fn the_readme_delay_example_is_valid() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme
        .find("## Delay instead of reject")
        .expect("the section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("its end")];
    let (ok, stdout, stderr) = check_config(&write_config("tollgate.toml", block));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("policy paced: 10/second (token-bucket, burst 1, max delay 500ms)"),
        "{stdout}"
    );
}
