//! Many OS threads hammer one key: exactly the limit gets through, for every strategy. A lost
//! update (two threads charging the same state without seeing each other) would let more
//! through.

use std::sync::Arc;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use futures_executor::block_on;
use tollgate::{Limiter, MemoryStore, Policy, Rate, Strategy};

const THREADS: u64 = 8;
const HITS_PER_THREAD: u64 = 2_000;
const LIMIT: u64 = 5_000;

#[test]
fn exactly_the_limit_gets_through_one_key() {
    for strategy in Strategy::ALL {
        // Per day, so the bucket refills by a negligible 0.06 units per second of test.
        let limiter = Arc::new(
            Limiter::new(MemoryStore::new())
                .with_policy("hot", Policy::new(strategy, Rate::per_day(LIMIT).into())),
        );
        let allowed = Arc::new(AtomicU64::new(0));
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (limiter, allowed, start) = (
                    Arc::clone(&limiter),
                    Arc::clone(&allowed),
                    Arc::clone(&start),
                );
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..HITS_PER_THREAD {
                        let d = block_on(limiter.hit("hot", "one-key")).expect("decision");
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
    let limiter = Arc::new(
        Limiter::new(MemoryStore::new())
            .with_policy("api", Policy::token_bucket(Rate::per_day(10).into())),
    );
    let allowed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (limiter, allowed) = (Arc::clone(&limiter), Arc::clone(&allowed));
            thread::spawn(move || {
                for _ in 0..20 {
                    for key in 0..500u32 {
                        let d = block_on(limiter.hit("api", &key)).expect("decision");
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
    assert_eq!(limiter.store().stats().keys, 500);
}
