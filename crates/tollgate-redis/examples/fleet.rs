//! One instance of a fleet for `bench/fleet.sh`: tasks hitting hot keys of a fixed window
//! through a RedisStore for a while, per hit or through quota leases (`tollgate::Leasing`),
//! then one line of JSON: hits, allowed, the rate, latency percentiles, and the calls the
//! instance made to Redis.
//!
//! ```text
//! cargo run --release -p tollgate-redis --example fleet -- \
//!     URI LIMITS KEYS TASKS SECONDS LEASE_MS
//! cargo run --release -p tollgate-redis --example fleet -- \
//!     redis://127.0.0.1:6379 "1000000/minute" 100 32 5 250
//! ```
//!
//! `LEASE_MS` 0 is per hit (every hit one script run); otherwise leases last that long, and a
//! task sweeps them every half lifetime.

use std::error::Error;
use std::time::{Duration, Instant};

use tollgate::{Clock, Leasing, Limiter, MonotonicClock, Policy, QuotaLease};
use tollgate_redis::RedisStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uri, limits, keys, tasks, seconds, lease_ms] = &args[..] else {
        return Err("usage: fleet URI LIMITS KEYS TASKS SECONDS LEASE_MS".into());
    };
    let keys: u64 = keys.parse()?;
    let tasks: usize = tasks.parse()?;
    let run_for = Duration::from_secs(seconds.parse()?);
    let lease = match lease_ms.parse::<u64>()? {
        0 => QuotaLease::Off,
        ms => QuotaLease::lasting(Duration::from_millis(ms))?,
    };
    let redis = RedisStore::connect(uri)
        .await?
        .with_timeout(Duration::from_secs(2));
    let store = Leasing::new(redis).with_lease(lease);
    let clock = MonotonicClock::new();
    let limiter = Limiter::new(store.clone()).with_clock(clock.clone());
    let api = limiter.policy("fleet", Policy::fixed_window(limits.parse()?));
    if let Some(lifetime) = lease.lifetime() {
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(lifetime / 2);
            loop {
                ticks.tick().await;
                store.sweep(clock.now()).await;
            }
        });
    }

    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut seed = (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let (mut allowed, mut latencies) = (0u64, Vec::new());
                while started.elapsed() < run_for {
                    // xorshift: a cheap random hot key per hit
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let key = seed % keys;
                    let t = Instant::now();
                    let decision = api.hit(&key).await?;
                    latencies.push(t.elapsed());
                    allowed += u64::from(decision.allowed());
                    if latencies.len() % 64 == 0 {
                        tokio::task::yield_now().await; // local answers never yield
                    }
                }
                Ok::<_, tollgate::Error>((allowed, latencies))
            })
        })
        .collect();
    let (mut allowed, mut latencies) = (0, Vec::new());
    for worker in workers {
        let (a, l) = worker.await??;
        allowed += a;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e6
    };
    let stats = store.stats();
    // Per hit, every hit is one call; leased, the store counts its calls.
    let calls = if lease.lifetime().is_some() {
        stats.store_calls
    } else {
        latencies.len() as u64
    };
    println!(
        "{{\"allowed\": {allowed}, \"hits\": {}, \"seconds\": {:.3}, \"hits_per_second\": {:.0}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"redis_calls\": {calls}, \"local_denials\": {}}}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
        stats.local_denials,
    );
    Ok(())
}
