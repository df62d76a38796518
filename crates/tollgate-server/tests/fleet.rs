//! Fleet mode (issue 14) over real processes: 4 `tollgate serve` over one Redis with
//! `[server] lease`, 100 hot keys of a fixed window of `LIMIT` a second, hit over the check
//! API faster than the limit for many windows. From the clients' own tallies: no key's window
//! ever admits more than `LIMIT`, and at steady state the windows admit at least 95% of it;
//! with one instance killed (`kill -9`) mid-run, still never more than `LIMIT`.
//!
//! A storage error is a denial here (`on_storage_error = "deny"`): failing open admits
//! without counting by design, whatever leases do. A window is told by when it ends (the
//! time a hit was sent plus its `reset_after_ms`).

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_support::RedisServer;
use serde_json::Value;
use support::{Tollgate, write_config};

/// Units per key per window.
const LIMIT: u64 = 10;
/// The window.
const WINDOW: Duration = Duration::from_secs(1);
const KEYS: usize = 100;
const INSTANCES: usize = 4;
/// Client threads per instance.
const CLIENTS: usize = 2;

/// One allowed hit: its key, and when its window ends, in ms since the run started (the
/// time it was sent plus the `reset_after_ms` it was answered with).
type Allowed = (usize, u64);

/// A keep-alive client of one instance's check API.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let writer = TcpStream::connect(addr).expect("connect");
        writer.set_nodelay(true).expect("nodelay");
        writer
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let reader = BufReader::new(writer.try_clone().expect("clone"));
        Self { reader, writer }
    }

    /// Checks `key`: the answer's JSON, or `None` once the instance is gone.
    fn check(&mut self, key: usize) -> Option<Value> {
        let body = format!(r#"{{"policy": "api", "key": "k{key}"}}"#);
        let request = format!(
            "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(request.as_bytes()).ok()?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }
}

/// What a run saw: allowed hits, and hits offered per key.
struct Run {
    allowed: Vec<Allowed>,
    offered: u64,
    took: Duration,
    /// From one instance's metrics: Redis calls per hit, and per key and second (window).
    calls_per_hit: f64,
    calls_per_key_window: f64,
    local_denials: f64,
}

/// One run at a time: the two tests would share the machine's cores, and offer less.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs 4 instances for `seconds`, killing one (`kill -9`) halfway when `kill` is set.
fn run(seconds: u64, kill: bool) -> Run {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let redis = RedisServer::start();
    let config = write_config(
        "tollgate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nlease = \"250ms\"\non_storage_error = \"deny\"\n\n\
             [policies.api]\nlimits = \"{LIMIT}/second\"\n"
        ),
    );
    let args = [
        "--config",
        config.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let mut servers: Vec<Option<Tollgate>> = (0..INSTANCES)
        .map(|_| Some(Tollgate::serve(&args, &[])))
        .collect();
    let apis: Vec<SocketAddr> = servers.iter().flatten().map(Tollgate::api).collect();
    let allowed = Arc::new(Mutex::new(Vec::new()));
    let offered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..INSTANCES * CLIENTS)
        .map(|t| {
            let (api, allowed, offered, stop) = (
                apis[t % INSTANCES],
                Arc::clone(&allowed),
                Arc::clone(&offered),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut client = Client::connect(api);
                let mut mine = Vec::new();
                let mut key = t * 13 % KEYS;
                while !stop.load(Ordering::Relaxed) {
                    let sent = started.elapsed();
                    let Some(answer) = client.check(key) else {
                        break; // killed
                    };
                    offered.fetch_add(1, Ordering::Relaxed);
                    if answer["allowed"] == true {
                        let reset = answer["reset_after_ms"].as_u64().expect("reset_after_ms");
                        mine.push((key, sent.as_millis() as u64 + reset));
                    }
                    key = (key + 1) % KEYS;
                }
                allowed.lock().expect("lock").extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds / 2));
    if kill {
        drop(servers[0].take()); // SIGKILL, holding whatever leases it held
    }
    std::thread::sleep(Duration::from_secs(seconds - seconds / 2));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("client thread");
    }
    let took = started.elapsed();
    // What the last instance says it cost Redis.
    let metrics = support::request(apis[INSTANCES - 1], "GET", "/metrics", &[], "").body;
    let count = |event: &str| -> f64 {
        let line = format!("tollgate_lease_total{{event=\"{event}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {event} in {metrics}"))
    };
    let calls_per_hit = count("storage_call") / count("hit");
    let calls_per_key_window = count("storage_call") / KEYS as f64 / took.as_secs_f64();
    let local_denials = count("local_denial");
    drop(servers);
    let allowed = std::mem::take(&mut *allowed.lock().expect("lock"));
    Run {
        allowed,
        offered: offered.load(Ordering::Relaxed),
        took,
        calls_per_hit,
        calls_per_key_window,
        local_denials,
    }
}

/// Each key's windows, by when they end (hits whose ends lie within half a window of the
/// first of a window are one window: consecutive windows end at least a window apart), with
/// the units each admitted.
fn windows(allowed: &[Allowed]) -> BTreeMap<usize, Vec<(u64, u64)>> {
    let mut by_key: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for &(key, end) in allowed {
        by_key.entry(key).or_default().push(end);
    }
    let half = WINDOW.as_millis() as u64 / 2;
    by_key
        .into_iter()
        .map(|(key, mut ends)| {
            ends.sort_unstable();
            let mut windows: Vec<(u64, u64)> = Vec::new();
            for end in ends {
                match windows.last_mut() {
                    Some((first, units)) if end <= *first + half => *units += 1,
                    _ => windows.push((end, 1)),
                }
            }
            (key, windows)
        })
        .collect()
}

/// No window of any key admitted more than the limit; returns the units admitted in the
/// windows wholly inside `[from, to)` ms, and how many such windows there were.
fn check_windows(run: &Run, from: u64, to: u64) -> (u64, u64) {
    let (mut units, mut count) = (0, 0);
    for (key, windows) in windows(&run.allowed) {
        for &(end, admitted) in &windows {
            assert!(
                admitted <= LIMIT,
                "key {key}: {admitted} in the window ending at {end} ms"
            );
            let start = end.saturating_sub(WINDOW.as_millis() as u64);
            if start >= from && end <= to {
                units += admitted;
                count += 1;
            }
        }
    }
    (units, count)
}

#[test]
fn a_fleet_over_one_redis_never_passes_the_limit_and_admits_nearly_all_of_it() {
    let run = run(12, false);
    let seconds = run.took.as_secs_f64();
    let offered_per_key_window = run.offered as f64 / seconds / KEYS as f64;
    assert!(
        offered_per_key_window > 1.2 * LIMIT as f64,
        "the machine offered only {offered_per_key_window:.1} hits per key per window"
    );
    // Steady state: from the third second to the last but one.
    let (units, windows) = check_windows(&run, 2_000, run.took.as_millis() as u64 - 1_000);
    assert!(windows >= KEYS as u64 * 6, "{windows} steady windows");
    let share = units as f64 / (windows * LIMIT) as f64;
    assert!(
        share >= 0.95,
        "{units} units in {windows} windows: {share:.3} of the limit"
    );
    // Small limits lease small: a limit of 10 takes about 9 leases a window over the fleet,
    // and each instance one denial; the denials after it are local, so an instance's calls
    // per key and window stay bounded whatever the load.
    assert!(run.local_denials > 0.0);
    assert!(
        run.calls_per_key_window < 8.0,
        "{:.1} Redis calls per key and window from one instance",
        run.calls_per_key_window
    );
    println!(
        "{} hits, {offered_per_key_window:.1} per key per window; steady state admitted {share:.3} \
         of the limit; {:.3} Redis calls per hit, {:.1} per key and window from one instance",
        run.offered, run.calls_per_hit, run.calls_per_key_window
    );
}

#[test]
fn a_fleet_that_loses_an_instance_never_passes_the_limit() {
    let run = run(10, true);
    let (units, windows) = check_windows(&run, 0, u64::MAX);
    assert!(windows >= KEYS as u64 * 5, "{windows} windows");
    assert!(units > 0);
}
