//! Drives load through a RedisStore: many tasks hitting one key or random keys, then prints
//! one line of JSON with what was allowed, the rate and latency percentiles.
//!
//! ```text
//! cargo run --release -p tollgate-redis --example load -- \
//!     URI STRATEGY LIMITS KEYS TASKS HITS_PER_TASK
//! cargo run --release -p tollgate-redis --example load -- \
//!     redis://127.0.0.1:6379 fixed-window "500/hour" 1 32 100
//! ```
//!
//! `KEYS` is how many distinct keys the hits pick from at random (1: everyone hits one key).
//! The exactness tests run it as four processes against one Redis.

use std::error::Error;
use std::time::{Duration, Instant};

use tollgate::{Limiter, Policy, Strategy};
use tollgate_redis::AnyStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uri, strategy, limits, keys, tasks, hits] = &args[..] else {
        return Err("usage: load URI STRATEGY LIMITS KEYS TASKS HITS_PER_TASK".into());
    };
    let strategy: Strategy = strategy.parse()?;
    let keys: u64 = keys.parse()?;
    let (tasks, hits): (usize, usize) = (tasks.parse()?, hits.parse()?);
    let store = match AnyStore::open(uri).await? {
        AnyStore::Redis(store) => AnyStore::Redis(store.with_timeout(Duration::from_secs(2))),
        memory => memory,
    };
    let load = Limiter::new(store).policy("load", Policy::new(strategy, limits.parse()?)?);

    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let load = load.clone();
            tokio::spawn(async move {
                let mut seed = (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut allowed = 0u64;
                let mut latencies = Vec::with_capacity(hits);
                for _ in 0..hits {
                    // xorshift: a cheap random key per hit
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let key = seed % keys;
                    let t = Instant::now();
                    let decision = load.hit(&key).await?;
                    latencies.push(t.elapsed());
                    allowed += u64::from(decision.allowed());
                }
                Ok::<_, tollgate::Error>((allowed, latencies))
            })
        })
        .collect();
    let mut allowed = 0;
    let mut latencies = Vec::with_capacity(tasks * hits);
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
    println!(
        "{{\"allowed\": {allowed}, \"hits\": {}, \"seconds\": {:.3}, \"hits_per_second\": {:.0}, \"p50_us\": {:.0}, \"p99_us\": {:.0}}}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
    );
    Ok(())
}
