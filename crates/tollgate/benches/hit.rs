//! Hit throughput: tollgate's keyed limiter against `governor`'s keyed limiter (dashmap
//! state store), side by side in one run, with 1 thousand, 1 million and 10 million distinct
//! keys accessed at random, for `IpAddr` keys and short string keys (`user:123456`).
//!
//! Every group holds one set of keys and one access sequence; each limiter in the group is
//! built, pre-filled with every key once (so the timed part is steady-state random access to
//! keys already tracked), checked to track exactly `count` keys, measured, checked again (no
//! key expired or was evicted while timing) and dropped before the next one is built.
//!
//! Quotas (the same for governor and tollgate):
//!
//! - `*/Nk`, `*/NM` groups: every timed hit is allowed and no key ever becomes fresh, so
//!   the sweeps never drop a key: the token bucket (and governor) is 1000/day with a burst of
//!   10 million (each hit moves the bucket 86.4 s into the future; the bucket is never full),
//!   the window strategies allow 10 million per day.
//! - `ip/1k-denied`: 1000/day, no burst, every key pre-filled with 1000 hits, so every timed
//!   hit is denied (the path a client hammering its limit takes).
//!
//! Keys are read from a pre-computed access sequence (random indices into the key set,
//! materialised in access order), so fetching the key is a sequential, prefetched read and
//! the time is the limiter's own: hashing, finding the state, applying the strategy.
//!
//! Benchmarks per group: `governor` (`check_key`, synchronous), `tollgate/token-bucket`,
//! `tollgate/fixed-window`, `tollgate/sliding-window-counter`, `tollgate/sliding-window` (the
//! log), all through the synchronous path, `PolicyHandle::hit_sync` (the handle prepared once
//! with `Limiter::policy`, the clock read per hit), and `tollgate/token-bucket/async-hit`:
//! the async `PolicyHandle::hit` through the same handle (the future polled once with a no-op
//! waker; the memory store's futures are ready at once), which is what an async caller pays.
//!
//! The `contention/*` groups (`contention/mod.rs`) run 2 threads at once on one limiter.
//!
//! Run with `cargo bench -p tollgate --bench hit`; criterion reports time per hit (one
//! iteration is one hit) and hits per second (`Throughput::Elements(1)`).

mod contention;
mod keys;

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use governor::{DefaultKeyedRateLimiter, Quota};
use keys::{Rng, ip_keys, string_keys};
use tollgate::{DEFAULT_MAX_KEYS, Key, Limiter, MemoryStore, Policy, Rate, Rates};

/// Length of the access sequence (at least the number of keys).
const SEQUENCE: usize = 1 << 22;
/// A burst no benchmark run exhausts.
const BIG_BURST: u32 = 10_000_000;
/// The policy name used for every tollgate limiter.
const POLICY: &str = "api";

/// The keys in a random access order, `max(SEQUENCE, count)` long.
fn access_sequence<K: Clone>(keys: &[K], rng: &mut Rng) -> Vec<K> {
    let len = SEQUENCE.max(keys.len());
    (0..len)
        .map(|_| keys[rng.below(keys.len())].clone())
        .collect()
}

/// `count` IPv4 keys and their access sequence (the same for every call with one count).
fn ip_keys_and_sequence(count: usize) -> (Vec<std::net::IpAddr>, Vec<std::net::IpAddr>) {
    let keys = ip_keys(count);
    let sequence = access_sequence(&keys, &mut Rng(0x0c0_47e4));
    (keys, sequence)
}

/// Polls a future that is ready at once (the memory store's are).
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory store's futures are always ready"),
    }
}

/// How a group's hits are set up.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Every timed hit allowed (big burst / big amounts).
    Allowed,
    /// Every timed hit denied (1000/day, each key pre-filled with 1000 hits).
    Denied,
}

impl Mode {
    /// Hits per key before timing.
    fn prefill_hits(self) -> u32 {
        match self {
            Mode::Allowed => 1,
            Mode::Denied => 1000,
        }
    }

    fn governor_quota(self) -> Quota {
        let day_per_1000 = Duration::from_millis(86_400);
        let quota = Quota::with_period(day_per_1000).expect("non-zero period");
        quota.allow_burst(match self {
            Mode::Allowed => NonZeroU32::new(BIG_BURST).expect("non-zero"),
            Mode::Denied => NonZeroU32::new(1000).expect("non-zero"),
        })
    }

    fn token_bucket(self) -> Policy {
        let policy =
            Policy::token_bucket(Rates::from(Rate::per_day(1000))).expect("a valid bucket");
        match self {
            Mode::Allowed => policy
                .with_burst(u64::from(BIG_BURST))
                .expect("a valid burst"),
            Mode::Denied => policy,
        }
    }

    fn window_rate(self) -> Rates {
        Rates::from(match self {
            Mode::Allowed => Rate::per_day(BIG_BURST),
            Mode::Denied => Rate::per_day(1000),
        })
    }
}

/// Benchmarks governor and the four tollgate strategies over `keys`.
fn compare<K>(
    c: &mut Criterion,
    filters: &Filters,
    name: &str,
    keys: &[K],
    mode: Mode,
    sequence: &[K],
) where
    K: Key + std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    let count = keys.len();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    if count >= 5_000_000 {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1500))
            .measurement_time(Duration::from_secs(4));
    } else {
        group
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    }

    if filters.bench(name, "governor") {
        bench_governor(&mut group, keys, mode, sequence);
    }
    let mut strategies = vec![
        ("tollgate/token-bucket", mode.token_bucket()),
        (
            "tollgate/fixed-window",
            Policy::fixed_window(mode.window_rate()),
        ),
        (
            "tollgate/sliding-window-counter",
            Policy::sliding_window_counter(mode.window_rate()),
        ),
    ];
    // A log counts at most MAX_LOG_AMOUNT per window: it has no allowed mode here (every hit
    // allowed needs the 10 million a day of the others).
    if let Ok(log) = Policy::sliding_window_log(mode.window_rate()) {
        strategies.push(("tollgate/sliding-window", log));
    }
    for (id, policy) in strategies {
        bench_tollgate(&mut group, filters, name, id, policy, keys, mode, sequence);
    }
    group.finish();
}

fn bench_governor<K>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    keys: &[K],
    mode: Mode,
    sequence: &[K],
) where
    K: std::hash::Hash + Eq + Clone,
{
    let started = Instant::now();
    let limiter: DefaultKeyedRateLimiter<K> = DefaultKeyedRateLimiter::keyed(mode.governor_quota());
    for key in keys {
        for _ in 0..mode.prefill_hits() {
            assert!(limiter.check_key(key).is_ok(), "pre-fill hit denied");
        }
    }
    assert_eq!(limiter.len(), keys.len(), "governor tracks every key");
    eprintln!("  governor pre-filled in {:.1?}", started.elapsed());

    let mut i = 0;
    group.bench_function("governor", |b| {
        b.iter(|| {
            let allowed = limiter.check_key(next(sequence, &mut i)).is_ok();
            debug_assert_eq!(allowed, mode == Mode::Allowed);
            allowed
        })
    });
    assert_eq!(limiter.len(), keys.len(), "governor still tracks every key");
    let started = Instant::now();
    drop(black_box(limiter));
    eprintln!("  governor dropped in {:.1?}", started.elapsed());
}

/// The id of the extra token-bucket benchmark that calls the store directly.
const ASYNC_PATH: &str = "tollgate/token-bucket/async-hit";

/// Benchmarks `PolicyHandle::hit_sync` under `policy` as `id`; for the token bucket also
/// [`ASYNC_PATH`]: the async `PolicyHandle::hit` on the same table.
#[allow(clippy::too_many_arguments)]
fn bench_tollgate<K>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    filters: &Filters,
    name: &str,
    id: &str,
    policy: Policy,
    keys: &[K],
    mode: Mode,
    sequence: &[K],
) where
    K: Key,
{
    let async_path = (id == "tollgate/token-bucket").then_some(ASYNC_PATH);
    let run_sync = filters.bench(name, id);
    let run_async = async_path.is_some_and(|path| filters.bench(name, path));
    if !run_sync && !run_async {
        return;
    }
    let started = Instant::now();
    let store = MemoryStore::with_max_keys(DEFAULT_MAX_KEYS.max(2 * keys.len()));
    let limiter = Limiter::new(store.clone()).policy(POLICY, policy.clone());
    for key in keys {
        for _ in 0..mode.prefill_hits() {
            let decision = now(limiter.hit(key)).expect("cost 1 fits");
            assert!(decision.allowed(), "pre-fill hit denied");
        }
    }
    let stats = store.stats();
    assert_eq!(stats.keys, keys.len(), "{id} tracks every key: {stats:?}");
    eprintln!("  {id} pre-filled in {:.1?}", started.elapsed());

    let mut i = 0;
    if run_sync {
        group.bench_function(id, |b| {
            b.iter(|| {
                let decision = limiter
                    .hit_sync(next(sequence, &mut i), 1)
                    .expect("cost 1 fits");
                debug_assert_eq!(decision.allowed(), mode == Mode::Allowed);
                decision
            })
        });
    }
    if let Some(path) = async_path.filter(|_| run_async) {
        group.bench_function(path, |b| {
            b.iter(|| {
                let key = next(sequence, &mut i);
                let decision = now(limiter.hit(key)).expect("cost 1 fits");
                debug_assert_eq!(decision.allowed(), mode == Mode::Allowed);
                decision
            })
        });
    }
    let stats = store.stats();
    assert_eq!(
        (stats.keys, stats.expired, stats.evicted),
        (keys.len(), 0, 0),
        "{id} kept every key while timing: {stats:?}"
    );
    let started = Instant::now();
    drop(black_box(limiter));
    drop(store);
    eprintln!("  {id} dropped in {:.1?}", started.elapsed());
}

/// The key at `*i` in the access sequence, moving `*i` on (and round to the start).
fn next<'a, K>(sequence: &'a [K], i: &mut usize) -> &'a K {
    let key = &sequence[*i];
    *i += 1;
    if *i == sequence.len() {
        *i = 0;
    }
    key
}

fn label(count: usize) -> String {
    match count {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The benchmark names given on the command line (criterion's filter), so that the keys and
/// pre-filled limiters of benchmarks that will not run are not built at all (building the
/// 10-million-key groups takes tens of seconds). A filter selects the benchmarks whose id
/// (`ip/1M/governor`) contains it.
struct Filters(Vec<String>);

impl Filters {
    fn from_args() -> Self {
        /// Criterion options followed by a value.
        const WITH_VALUE: &[&str] = &[
            "--warm-up-time",
            "--measurement-time",
            "--sample-size",
            "--profile-time",
            "--save-baseline",
            "--baseline",
            "--baseline-lenient",
            "--load-baseline",
            "--color",
            "--output-format",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--plotting-backend",
            "--format",
            "--logfile",
            "--skip",
        ];
        let mut filters = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if WITH_VALUE.contains(&arg.as_str()) {
                args.next();
            } else if !arg.starts_with('-') {
                filters.push(arg);
            }
        }
        Self(filters)
    }

    /// Whether any benchmark of the group may run.
    fn group(&self, group: &str) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|f| group.contains(f.as_str()) || f.starts_with(&format!("{group}/")))
    }

    /// Whether the benchmark `group/function` runs.
    fn bench(&self, group: &str, function: &str) -> bool {
        let id = format!("{group}/{function}");
        self.0.is_empty() || self.0.iter().any(|f| id.contains(f.as_str()))
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut rng = Rng(0x7011_6a7e);
    let filters = Filters::from_args();
    for count in [1_000, 1_000_000, 10_000_000] {
        let name = format!("ip/{}", label(count));
        let denied = (count == 1_000).then_some("ip/1k-denied");
        if filters.group(&name) || denied.is_some_and(|d| filters.group(d)) {
            let keys = ip_keys(count);
            let sequence = access_sequence(&keys, &mut rng);
            if filters.group(&name) {
                compare(&mut c, &filters, &name, &keys, Mode::Allowed, &sequence);
            }
            if let Some(denied) = denied.filter(|d| filters.group(d)) {
                compare(&mut c, &filters, denied, &keys, Mode::Denied, &sequence);
            }
        }
        let name = format!("string/{}", label(count));
        if filters.group(&name) {
            let keys = string_keys(count, &mut rng);
            let sequence = access_sequence(&keys, &mut rng);
            compare(&mut c, &filters, &name, &keys, Mode::Allowed, &sequence);
        }
    }
    contention::bench(&mut c, &filters);
    c.final_summary();
}
