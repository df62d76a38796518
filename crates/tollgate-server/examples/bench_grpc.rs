//! A load generator for Envoy's rate limit service (what `ghz` would do, for the one call
//! `bench/server.sh` needs): `CONCURRENCY` tasks calling `ShouldRateLimit` back to back for
//! `SECONDS`, over `CONNECTIONS` HTTP/2 connections, and one line with the rate and the
//! latency percentiles.
//!
//! ```sh
//! cargo run --release -p tollgate-server --example bench_grpc -- 127.0.0.1:8081 64 10
//! # requests=512345 seconds=10.00 rps=51234.5 ok=512345 over_limit=0 errors=0 p50_us=1180 p99_us=2210 max_us=9870
//! ```
//!
//! Arguments: `ADDR CONCURRENCY SECONDS [KEYS] [CONNECTIONS] [DOMAIN]` (defaults: 10000 keys,
//! 1 connection, domain `bench`). Every request is domain `DOMAIN` with one descriptor,
//! `[("user", "user:N")]`, `N` spread over `0..KEYS` (each task walks the keys from its own
//! starting point), `hits_addend` unset. The latency of a call is measured from just before
//! it is sent to its answer, client-side queueing included, as `wrk` measures it. `ok` and
//! `over_limit` count answers by their `overall_code`; `errors` counts failed calls (the first
//! one is printed on standard error).
//!
//! The runtime is tokio's multi-threaded one, with as many workers as the CPUs the process may
//! run on (one under `taskset -c 1`).

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tonic::transport::{Channel, Endpoint};

/// What one task saw.
#[derive(Debug, Default)]
struct Tally {
    /// Latency of every answered call, in microseconds.
    latencies_us: Vec<u32>,
    ok: u64,
    over_limit: u64,
    errors: u64,
    first_error: Option<String>,
}

/// The request for user `n`.
fn request(domain: &str, n: u64) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_owned(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "user".to_owned(),
                value: format!("user:{n}"),
            }],
            ..Default::default()
        }],
        hits_addend: 0,
    }
}

/// Calls until `deadline`, walking the keys from `start`.
async fn run(
    mut client: RateLimitServiceClient<Channel>,
    domain: String,
    keys: u64,
    start: u64,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally {
        latencies_us: Vec::with_capacity(1 << 16),
        ..Tally::default()
    };
    let mut n = start;
    while Instant::now() < deadline {
        let request = request(&domain, n % keys);
        n = n.wrapping_add(1);
        let sent = Instant::now();
        match client.should_rate_limit(request).await {
            Ok(response) => {
                let micros = sent.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                if response.get_ref().overall_code == i32::from(Code::OverLimit) {
                    tally.over_limit += 1;
                } else {
                    tally.ok += 1;
                }
            }
            Err(status) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(status.to_string());
                }
            }
        }
    }
    tally
}

/// The `p`-th percentile (0 to 100) of sorted `values`.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The positional argument `index`, parsed, or `default` when absent.
fn arg<T: std::str::FromStr>(
    args: &[String],
    index: usize,
    name: &str,
    default: Option<T>,
) -> Result<T, String> {
    match args.get(index) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name}: cannot parse {text:?}")),
        None => default.ok_or_else(|| format!("{name} is required")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err(
            "usage: bench_grpc ADDR CONCURRENCY SECONDS [KEYS] [CONNECTIONS] [DOMAIN]".into(),
        );
    }
    let addr: String = arg(&args, 0, "ADDR", None)?;
    let concurrency: u64 = arg(&args, 1, "CONCURRENCY", None)?;
    let seconds: f64 = arg(&args, 2, "SECONDS", None)?;
    let keys: u64 = arg(&args, 3, "KEYS", Some(10_000))?;
    let connections: usize = arg(&args, 4, "CONNECTIONS", Some(1))?;
    let domain: String = arg(&args, 5, "DOMAIN", Some("bench".to_owned()))?;
    if concurrency == 0 || keys == 0 || connections == 0 || seconds <= 0.0 {
        return Err("CONCURRENCY, SECONDS, KEYS and CONNECTIONS must be positive".into());
    }

    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
        clients.push(RateLimitServiceClient::new(channel));
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let client = clients[usize::try_from(task)? % connections].clone();
        let start = task * keys / concurrency;
        tasks.spawn(run(client, domain.clone(), keys, start, deadline));
    }
    let mut total = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        let tally = tally?;
        total.latencies_us.extend(tally.latencies_us);
        total.ok += tally.ok;
        total.over_limit += tally.over_limit;
        total.errors += tally.errors;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(error) = &total.first_error {
        eprintln!("bench_grpc: first failed call: {error}");
    }
    total.latencies_us.sort_unstable();
    let answered = total.latencies_us.len();
    println!(
        "requests={answered} seconds={elapsed:.2} rps={:.1} ok={} over_limit={} errors={} p50_us={} p99_us={} max_us={}",
        answered as f64 / elapsed,
        total.ok,
        total.over_limit,
        total.errors,
        percentile(&total.latencies_us, 50.0),
        percentile(&total.latencies_us, 99.0),
        total.latencies_us.last().copied().unwrap_or(0),
    );
    Ok(())
}
