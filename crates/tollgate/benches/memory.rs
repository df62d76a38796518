//! Bytes per tracked key, RSS-based: `governor`'s keyed limiter (dashmap state store) against
//! tollgate's memory store with each of its four strategies, for `IpAddr` keys and short
//! string keys (`user:123456`), at 1 million and 10 million keys.
//!
//! Every measurement runs in a fresh child process (this binary re-executed with
//! `--child LIMITER KEYS COUNT`), so one measurement's heap cannot pollute another's. The
//! child generates its keys first, builds the limiter, reads its resident set size, hits
//! every key once, reads it again and reports `(RSS after - RSS before) / keys`. It also
//! resets the peak RSS (`/proc/self/clear_refs`) before inserting and reports the peak, which
//! includes the old and the new table while a hash table grows. The child asserts that the
//! limiter tracks exactly `COUNT` keys.
//!
//! The quota is the same for everyone: 1000 per day (governor: one cell per 86.4 s, burst
//! 1000), so one hit keeps a key's state non-fresh for 86.4 s and tollgate's sweeps drop
//! nothing during the run.
//!
//! Run with `cargo bench -p tollgate --bench memory` (Linux only: it reads `/proc`).
//! Arguments that are not options filter the cases by id, e.g. `ip/10M` or `governor`.

mod keys;

use std::fmt::Write as _;
use std::fs;
use std::num::NonZeroU32;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};
use keys::{Rng, ip_keys, string_keys};
use tollgate::{DEFAULT_MAX_KEYS, Key, Limiter, MemoryStore, Policy, Rate, Rates};

const LIMITERS: [&str; 5] = [
    "governor",
    "tollgate/token-bucket",
    "tollgate/fixed-window",
    "tollgate/sliding-window-counter",
    "tollgate/sliding-window",
];
const KEY_TYPES: [&str; 2] = ["ip", "string"];
const COUNTS: [usize; 2] = [1_000_000, 10_000_000];

/// The policy name used for every tollgate limiter.
const POLICY: &str = "api";

/// A field of `/proc/self/status`, in bytes (the file gives kB).
fn status_bytes(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// What one child measured.
struct Measured {
    /// RSS growth while inserting.
    grew: u64,
    /// Peak RSS during insertion, above the RSS before it.
    peak: u64,
    /// Time to insert every key.
    insert: Duration,
}

/// Hits every key once with `hit` (which returns whether it was allowed), around RSS reads.
fn measure<K>(keys: &[K], mut hit: impl FnMut(&K) -> bool) -> Measured {
    let before = status_bytes("VmRSS");
    // Writing 5 resets the peak RSS (VmHWM) to the current RSS; if it fails (an old kernel),
    // the peak reported includes key generation.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    for key in keys {
        assert!(hit(key), "first hit of a key denied");
    }
    let insert = started.elapsed();
    let after = status_bytes("VmRSS");
    let peak = status_bytes("VmHWM");
    Measured {
        grew: after.saturating_sub(before),
        peak: peak.saturating_sub(before),
        insert,
    }
}

fn governor_quota() -> Quota {
    Quota::with_period(Duration::from_millis(86_400))
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(1000).expect("non-zero"))
}

fn tollgate_policy(limiter: &str) -> Policy {
    let rate = Rates::from(Rate::per_day(1000));
    match limiter {
        "tollgate/token-bucket" => Policy::token_bucket(rate).expect("a valid bucket"),
        "tollgate/fixed-window" => Policy::fixed_window(rate),
        "tollgate/sliding-window-counter" => Policy::sliding_window_counter(rate),
        "tollgate/sliding-window" => {
            Policy::sliding_window_log(rate).expect("1000 a day fits a log")
        }
        other => panic!("unknown limiter {other}"),
    }
}

/// Builds `limiter`, measures the insertion of `keys` and checks every key is tracked.
fn run<K>(limiter: &str, keys: &[K]) -> Measured
where
    K: Key + std::hash::Hash + Eq + Clone,
{
    if limiter == "governor" {
        let governor: DefaultKeyedRateLimiter<K> = DefaultKeyedRateLimiter::keyed(governor_quota());
        let measured = measure(keys, |key| governor.check_key(key).is_ok());
        assert_eq!(governor.len(), keys.len(), "governor tracks every key");
        measured
    } else {
        let store = MemoryStore::with_max_keys(DEFAULT_MAX_KEYS.max(2 * keys.len()));
        let tollgate = Limiter::new(store.clone()).policy(POLICY, tollgate_policy(limiter));
        let measured = measure(keys, |key| {
            tollgate.hit_sync(key, 1).expect("cost 1 fits").allowed()
        });
        let stats = store.stats();
        assert_eq!(
            (stats.keys, stats.expired, stats.evicted),
            (keys.len(), 0, 0),
            "{limiter} tracks every key: {stats:?}"
        );
        measured
    }
}

/// The child: one limiter, one key type, one count; prints `grew peak insert_ns`.
fn child(limiter: &str, key_type: &str, count: usize) {
    let measured = match key_type {
        "ip" => run(limiter, &ip_keys(count)),
        "string" => run(limiter, &string_keys(count, &mut Rng(0x7011_6a7e))),
        other => panic!("unknown key type {other}"),
    };
    println!(
        "{} {} {}",
        measured.grew,
        measured.peak,
        measured.insert.as_nanos()
    );
}

fn label(count: usize) -> String {
    if count >= 1_000_000 {
        format!("{}M", count / 1_000_000)
    } else {
        format!("{}k", count / 1_000)
    }
}

/// One line of the table.
struct Row {
    id: String,
    key_type: &'static str,
    count: usize,
    limiter: &'static str,
    bytes_per_key: f64,
    peak_per_key: f64,
    ns_per_insert: f64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        let [limiter, key_type, count] = &args[at + 1..at + 4] else {
            panic!("usage: --child LIMITER KEYS COUNT");
        };
        child(limiter, key_type, count.parse().expect("a count"));
        return ExitCode::SUCCESS;
    }
    // Criterion-style filters: arguments that are neither options nor option values.
    let filters: Vec<&String> = args
        .iter()
        .filter(|arg| !arg.starts_with('-') && arg.parse::<f64>().is_err())
        .collect();
    let exe = std::env::current_exe().expect("the path of this binary");

    let mut rows = Vec::new();
    let mut failed = false;
    for count in COUNTS {
        for key_type in KEY_TYPES {
            for limiter in LIMITERS {
                let id = format!("{key_type}/{}/{limiter}", label(count));
                if !filters.is_empty() && !filters.iter().any(|f| id.contains(f.as_str())) {
                    continue;
                }
                let output = Command::new(&exe)
                    .args(["--child", limiter, key_type, &count.to_string()])
                    .output()
                    .expect("re-run this binary");
                let stdout = String::from_utf8_lossy(&output.stdout);
                let numbers: Vec<f64> = stdout
                    .split_whitespace()
                    .filter_map(|word| word.parse().ok())
                    .collect();
                let [grew, peak, insert_ns] = numbers[..] else {
                    eprintln!(
                        "memory/{id}: child failed ({}):\n{}{}",
                        output.status,
                        stdout,
                        String::from_utf8_lossy(&output.stderr)
                    );
                    failed = true;
                    continue;
                };
                let row = Row {
                    id,
                    key_type,
                    count,
                    limiter,
                    bytes_per_key: grew / count as f64,
                    peak_per_key: peak / count as f64,
                    ns_per_insert: insert_ns / count as f64,
                };
                eprintln!(
                    "memory/{}: {:.1} bytes/key (peak {:.1}), {:.0} ns/insert",
                    row.id, row.bytes_per_key, row.peak_per_key, row.ns_per_insert
                );
                rows.push(row);
            }
        }
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "\n| keys | count | limiter | bytes/key (RSS) | vs governor | peak bytes/key | ns/insert |"
    );
    let _ = writeln!(table, "|---|---:|---|---:|---:|---:|---:|");
    for row in &rows {
        let governor = rows
            .iter()
            .find(|r| r.limiter == "governor" && r.key_type == row.key_type && r.count == row.count)
            .map(|r| r.bytes_per_key);
        let ratio = governor.map_or_else(
            || "-".to_owned(),
            |g| format!("{:.2}", row.bytes_per_key / g),
        );
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.1} | {} | {:.1} | {:.0} |",
            row.key_type,
            label(row.count),
            row.limiter,
            row.bytes_per_key,
            ratio,
            row.peak_per_key,
            row.ns_per_insert
        );
    }
    println!("{table}");
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
