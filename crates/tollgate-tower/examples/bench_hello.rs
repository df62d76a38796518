//! The hello-world server `bench/tower.sh` drives with `wrk`: axum's `GET /` answering
//! `Hello, World!`, with no rate limiter, with `tower_governor`, or with tollgate, each keyed
//! on the peer IP.
//!
//! ```sh
//! cargo run --release -p tollgate-tower --example bench_hello -- tollgate 127.0.0.1:3000
//! ```
//!
//! Modes:
//! - `none`: the bare router.
//! - `governor`: `tower_governor` 0.8 (`PeerIpKeyExtractor`), 10⁹ per second with a burst of
//!   10⁹, with its `x-ratelimit-limit`/`x-ratelimit-remaining` headers (`use_headers`).
//! - `tollgate`: a default limit of `1000000000/second`, token bucket, memory store, client-IP
//!   key, with the default `HeaderStyle::Ietf` headers (`RateLimit-Policy`, `RateLimit`).
//! - `tollgate-both`: the same with `HeaderStyle::Both` (the IETF fields and
//!   `X-RateLimit-Limit`/`-Remaining`/`-Reset`).
//! - `tollgate-noheaders`: the same with `HeaderStyle::None`.
//! - `tollgate-denied`, `governor-denied`: one request per day, so every request after the
//!   first is answered `429` (headers as in `tollgate`, `governor`).
//!
//! The runtime is tokio's multi-threaded one, with as many workers as the CPUs the process may
//! run on (one under `taskset -c 0`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Router, routing::get};
use tollgate::Strategy;
use tollgate_tower::{HeaderStyle, HttpLimiter, Limit};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

/// The modes this example serves, as the first argument names them.
const MODES: &[&str] = &[
    "none",
    "governor",
    "tollgate",
    "tollgate-both",
    "tollgate-noheaders",
    "tollgate-denied",
    "governor-denied",
];

/// `GET /` -> `Hello, World!`.
fn hello() -> Router {
    Router::new().route("/", get(|| async { "Hello, World!" }))
}

/// tollgate with one default limit, `rate` as a token bucket, and `headers`.
fn tollgate(rate: &str, headers: HeaderStyle) -> Router {
    let limiter = HttpLimiter::builder()
        .default_limit(Limit::new(rate).strategy(Strategy::TokenBucket))
        .headers(headers)
        .build()
        .expect("valid limits");
    hello().layer(limiter.layer())
}

/// `tower_governor` keyed on the peer IP: one unit every `period`, bursts of `burst`, with
/// its rate-limit headers.
fn governor(period: Duration, burst: u32) -> Router {
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst)
        .use_headers()
        .finish()
        .expect("a non-zero period and burst");
    hello().layer(GovernorLayer::new(config))
}

/// The app for `mode`, or `None` if there is no such mode.
fn app(mode: &str) -> Option<Router> {
    const DAY: Duration = Duration::from_secs(86_400);
    Some(match mode {
        "none" => hello(),
        "governor" => governor(Duration::from_nanos(1), 1_000_000_000),
        "governor-denied" => governor(DAY, 1),
        "tollgate" => tollgate("1000000/second", HeaderStyle::Ietf),
        "tollgate-both" => tollgate("1000000/second", HeaderStyle::Both),
        "tollgate-noheaders" => tollgate("1000000/second", HeaderStyle::None),
        "tollgate-denied" => tollgate("1/day", HeaderStyle::Ietf),
        _ => return None,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = || {
        format!(
            "usage: bench_hello MODE ADDR, MODE one of {}",
            MODES.join(", ")
        )
    };
    let (Some(mode), Some(addr)) = (args.next(), args.next()) else {
        return Err(usage().into());
    };
    let app = app(&mode).ok_or_else(|| format!("unknown mode {mode:?}; {}", usage()))?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    println!("{mode}: listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
