//! Contention: 2 threads hitting one limiter at once, governor against tollgate, total
//! throughput (criterion's time per hit is the wall time of both threads' hits together,
//! divided by all of them).
//!
//! - `contention/hot-key`: both threads hit one IPv4 key. Quotas no run exhausts: a million
//!   a second with a burst of `u32::MAX` (governor's largest) for the token bucket and
//!   governor, a trillion a day for the fixed window.
//! - `contention/1M-spread`: both threads hit 1 million IPv4 keys at random (the `ip/1M`
//!   keys and quotas), each thread from its own place in the access sequence.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use governor::{DefaultKeyedRateLimiter, Quota};
use tollgate::{Limiter, MemoryStore, Policy, Rate, Rates};

use super::{Filters, Mode, POLICY, ip_keys_and_sequence};

/// Threads hitting at once.
const THREADS: usize = 2;

/// Runs `hit` for `iters` hits in all, split over [`THREADS`] threads that start together
/// (each from its own offset in `sequence`); the time from the first start to the last end.
fn timed<K: Sync>(iters: u64, sequence: &[K], hit: impl Fn(&K) -> bool + Sync) -> Duration {
    let per_thread = iters.div_ceil(THREADS as u64);
    let barrier = Barrier::new(THREADS);
    let spans: Vec<(Instant, Instant)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, hit) = (&barrier, &hit);
                scope.spawn(move || {
                    let mut i = t * sequence.len() / THREADS;
                    let mut allowed = 0u64;
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..per_thread {
                        allowed += u64::from(hit(&sequence[i]));
                        i += 1;
                        if i == sequence.len() {
                            i = 0;
                        }
                    }
                    let end = Instant::now();
                    assert_eq!(allowed, per_thread, "every contended hit is allowed");
                    (start, end)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a bench thread panicked"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("threads ran");
    let last = spans.iter().map(|s| s.1).max().expect("threads ran");
    last - first
}

/// The limiters of one contention group: governor's quota and tollgate's policies.
struct Quotas {
    governor: Quota,
    tollgate: Vec<(&'static str, Policy)>,
}

impl Quotas {
    /// No run exhausts these on one key.
    fn hot() -> Self {
        let per_second = NonZeroU32::new(1_000_000).expect("non-zero");
        let bucket = Policy::token_bucket(Rates::from(Rate::per_second(1_000_000)))
            .and_then(|policy| policy.with_burst(u64::from(u32::MAX)))
            .expect("a valid bucket");
        let window = Rate::new(1_000_000_000_000, Duration::from_secs(86_400)).expect("a rate");
        Self {
            governor: Quota::per_second(per_second).allow_burst(NonZeroU32::MAX),
            tollgate: vec![
                ("tollgate/token-bucket", bucket),
                (
                    "tollgate/fixed-window",
                    Policy::fixed_window(Rates::from(window)),
                ),
            ],
        }
    }

    /// The `ip/1M` group's quotas.
    fn spread() -> Self {
        Self {
            governor: Mode::Allowed.governor_quota(),
            tollgate: vec![
                ("tollgate/token-bucket", Mode::Allowed.token_bucket()),
                (
                    "tollgate/fixed-window",
                    Policy::fixed_window(Mode::Allowed.window_rate()),
                ),
            ],
        }
    }
}

fn bench_group(
    group: &mut BenchmarkGroup<'_, WallTime>,
    filters: &Filters,
    name: &str,
    quotas: Quotas,
    keys: &[IpAddr],
    sequence: &[IpAddr],
) {
    if filters.bench(name, "governor") {
        let limiter: DefaultKeyedRateLimiter<IpAddr> =
            DefaultKeyedRateLimiter::keyed(quotas.governor);
        for key in keys {
            assert!(limiter.check_key(key).is_ok(), "pre-fill hit denied");
        }
        group.bench_function("governor", |b| {
            b.iter_custom(|iters| timed(iters, sequence, |key| limiter.check_key(key).is_ok()))
        });
        assert_eq!(limiter.len(), keys.len(), "governor still tracks every key");
    }
    for (id, policy) in quotas.tollgate {
        if !filters.bench(name, id) {
            continue;
        }
        let store = MemoryStore::with_max_keys(2 * keys.len().max(1 << 20));
        let limiter = Limiter::new(store.clone()).policy(POLICY, policy);
        for key in keys {
            assert!(limiter.hit_sync(key, 1).expect("cost 1 fits").allowed());
        }
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                timed(iters, sequence, |key| {
                    limiter.hit_sync(key, 1).expect("cost 1 fits").allowed()
                })
            })
        });
        // The hot key's bucket refills within a microsecond when no thread hits it, so a
        // sweep may drop it (as fresh) and the next hit start it again: only evictions
        // would mean the store lost a state that mattered.
        let stats = store.stats();
        assert_eq!(
            (stats.keys, stats.evicted),
            (keys.len(), 0),
            "{id} kept every key while timing: {stats:?}"
        );
    }
}

/// The contention groups that `filters` select.
pub(crate) fn bench(c: &mut Criterion, filters: &Filters) {
    for (name, quotas) in [
        ("contention/hot-key", Quotas::hot as fn() -> Quotas),
        ("contention/1M-spread", Quotas::spread),
    ] {
        if !filters.group(name) {
            continue;
        }
        let (keys, sequence) = if name == "contention/hot-key" {
            let key = ip_keys_and_sequence(1).0[0];
            (vec![key], vec![key; 1 << 16])
        } else {
            ip_keys_and_sequence(1_000_000)
        };
        let mut group = c.benchmark_group(name);
        group
            .throughput(Throughput::Elements(1))
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        bench_group(&mut group, filters, name, quotas(), &keys, &sequence);
        group.finish();
    }
}
