//! Many OS threads hammer one key: exactly the limit gets through, for every strategy. A lost
//! update (two threads charging the same state without seeing each other) would let more
//! through. And admissions over two policies from many threads: never more than either limit,
//! and every charge of a refused request given back exactly. And a failover switching to
//! memory and back under hits from many threads reports each switch exactly once, in order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use futures_executor::block_on;
use tollgate::testing::FlakyStore;
use tollgate::{
    Admission, Charge, Failover, FailoverSwitch, FailureMode, Limiter, ManualClock, MemoryStore,
    Policy, Rate, Strategy,
};

const THREADS: u64 = 8;
const HITS_PER_THREAD: u64 = 2_000;
const LIMIT: u64 = 1_000;

#[test]
fn exactly_the_limit_gets_through_one_key() {
    for strategy in Strategy::ALL {
        // Per day, so the bucket refills by a negligible 0.06 units per second of test.
        let hot = Limiter::new(MemoryStore::new()).policy(
            "hot",
            Policy::new(strategy, Rate::per_day(LIMIT as u32).into()).expect("policy"),
        );
        let allowed = Arc::new(AtomicU64::new(0));
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (hot, allowed, start) = (hot.clone(), Arc::clone(&allowed), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..HITS_PER_THREAD {
                        let d = hot.hit_sync("one-key", 1).expect("decision");
                        if d.allowed() {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(allowed.load(Ordering::Relaxed), LIMIT, "{strategy}");
    }
}

#[test]
fn many_keys_from_many_threads_each_get_their_limit() {
    let store = MemoryStore::new();
    let api = Limiter::new(store.clone()).policy(
        "api",
        Policy::token_bucket(Rate::per_day(10).into()).expect("bucket"),
    );
    let allowed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (api, allowed) = (api.clone(), Arc::clone(&allowed));
            thread::spawn(move || {
                for _ in 0..20 {
                    for key in 0..500u32 {
                        let d = block_on(api.hit(&key)).expect("decision");
                        if d.allowed() {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 500 * 10);
    assert_eq!(store.stats().keys, 500);
}

#[test]
fn admissions_from_many_threads_never_exceed_a_limit_and_give_back_exactly() {
    const USERS: u64 = 4;
    const PER_USER: u64 = 300;
    const GLOBAL: u64 = 1_000;
    for strategy in Strategy::ALL {
        let limiter = Limiter::new(MemoryStore::new());
        let user = limiter.policy(
            "user",
            Policy::new(strategy, Rate::per_day(PER_USER as u32).into()).expect("policy"),
        );
        let global = limiter.policy(
            "global",
            Policy::new(strategy, Rate::per_day(GLOBAL as u32).into()).expect("policy"),
        );
        let admitted: Arc<Vec<AtomicU64>> =
            Arc::new((0..USERS).map(|_| AtomicU64::new(0)).collect());
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (user, global, admitted, start) = (
                    user.clone(),
                    global.clone(),
                    Arc::clone(&admitted),
                    Arc::clone(&start),
                );
                thread::spawn(move || {
                    let who = thread % USERS;
                    start.wait();
                    for _ in 0..HITS_PER_THREAD {
                        // Half the threads charge the user first, half the global limit first.
                        let (first, second) = if thread % 2 == 0 {
                            (
                                Charge::new(user.clone(), &who, 1),
                                Charge::new(global.clone(), "all", 1),
                            )
                        } else {
                            (
                                Charge::new(global.clone(), "all", 1),
                                Charge::new(user.clone(), &who, 1),
                            )
                        };
                        let verdict =
                            block_on(Admission::new().charge(first).charge(second).decide());
                        assert!(verdict.give_back_error().is_none());
                        if verdict.is_admitted() {
                            admitted[who as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let mut total = 0;
        for who in 0..USERS {
            let count = admitted[who as usize].load(Ordering::Relaxed);
            assert!(count <= PER_USER, "{strategy}: user {who} got {count}");
            // What the user's count holds is exactly what was admitted: every refused
            // request's charge came back.
            let left = user.hit_sync(&who, 0).expect("peek").remaining();
            assert_eq!(left, PER_USER - count, "{strategy}: user {who}");
            total += count;
        }
        assert!(total <= GLOBAL, "{strategy}: {total} admitted");
        let left = global.hit_sync("all", 0).expect("peek").remaining();
        assert_eq!(left, GLOBAL - total, "{strategy}");
    }
}

#[test]
fn each_switch_is_reported_once_under_hits_from_many_threads() {
    let flaky = FlakyStore::with_domains(4);
    let clock = ManualClock::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let failover = Failover::new(flaky.clone(), FailureMode::Fallback).on_switch({
        let heard = Arc::clone(&heard);
        move |switch: &FailoverSwitch| {
            let kind = matches!(switch, FailoverSwitch::ToFallback { .. });
            heard.lock().expect("lock").push(kind);
        }
    });
    let limiter = Limiter::new(failover).with_clock(clock.clone());
    let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(1 << 30).into()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (p, stop) = (p.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let mut key = thread;
                while !stop.load(Ordering::Relaxed) {
                    key = key.wrapping_mul(6364136223846793005).wrapping_add(1);
                    block_on(p.hit(&key.to_le_bytes()[..])).expect("an answer");
                }
            })
        })
        .collect();
    let pause = || thread::sleep(Duration::from_millis(30));
    // Every domain fails, one after the other, then all come back, one after the other.
    for domain in 0..4 {
        flaky.set_domain_down(domain, true);
        pause();
    }
    for domain in 0..4 {
        flaky.set_domain_down(domain, false);
        clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
        pause();
    }
    while limiter.store().is_falling_back() {
        clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
        pause();
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(
        *heard.lock().expect("lock"),
        [true, false],
        "to memory, then back"
    );
    assert_eq!(limiter.store().switches(), 1);
}

/// Many threads hitting keys of 200 failing domains at once, for several probe intervals:
/// no interval starts more probes than the cap (a race on the count would start more).
#[test]
fn probes_stay_within_their_cap_under_hits_from_many_threads() {
    let interval = Failover::<FlakyStore>::PROBE_INTERVAL;
    let cap = Failover::<FlakyStore>::MAX_PROBES_PER_INTERVAL;
    let flaky = FlakyStore::with_domains(200);
    let clock = ManualClock::new();
    let limiter =
        Limiter::new(Failover::new(flaky.clone(), FailureMode::Fallback)).with_clock(clock.clone());
    let p = limiter.policy("p", Policy::fixed_window(Rate::per_hour(1 << 30).into()));
    flaky.set_down(true);
    for domain in 0..200u8 {
        block_on(p.hit(&[domain][..])).expect("an answer");
    }
    assert_eq!(limiter.store().falling_back_domains(), 200);
    for _ in 0..5 {
        clock.advance(interval);
        let errors = limiter.store().errors();
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (p, start) = (p.clone(), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    for n in 0..400u64 {
                        let domain = ((n * 7 + thread * 29) % 200) as u8;
                        block_on(p.hit(&[domain][..])).expect("an answer");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert_eq!(limiter.store().errors() - errors, cap);
    }
}
