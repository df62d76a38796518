//! The lesson's own numbers, with a manual clock.

use std::time::Duration;

use futures_executor::block_on;
use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Rate};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn fixed_window_three_per_minute_denies_the_fourth_and_fifth() {
    let clock = ManualClock::new();
    let ping = Limiter::new(MemoryStore::new())
        .with_clock(clock.clone())
        .policy("ping", Policy::fixed_window(Rate::per_minute(3).into()));
    block_on(async {
        // Requests once a second from t = 1 s: the window starts at the first, t = 1 s.
        for n in 1..=3 {
            clock.advance(secs(1));
            let d = ping.hit("127.0.0.1").await.expect("hit");
            assert!(d.allowed(), "request {n}");
            assert_eq!(d.remaining(), 3 - n);
            assert_eq!(d.retry_after(), None);
        }
        for now in [4, 5] {
            clock.advance(secs(1));
            let d = ping.hit("127.0.0.1").await.expect("hit");
            assert!(!d.allowed(), "request at {now} s");
            // The time left in the window [1 s, 61 s).
            assert_eq!(d.retry_after(), Some(secs(61 - now)));
            assert_eq!(d.reset_after(), secs(61 - now));
        }
        clock.advance(secs(56)); // t = 61 s: a new window
        assert!(ping.hit("127.0.0.1").await.expect("hit").allowed());
    });
}

#[test]
fn token_bucket_capacity_two_refills_one_per_second() {
    let clock = ManualClock::new();
    let bucket = Policy::token_bucket(Rate::per_second(1).into())
        .and_then(|bucket| bucket.with_burst(2))
        .expect("valid burst");
    let ping = Limiter::new(MemoryStore::new())
        .with_clock(clock.clone())
        .policy("ping", bucket);
    block_on(async {
        let mut allowed = Vec::new();
        for _ in 0..4 {
            allowed.push(ping.hit("1.2.3.4").await.expect("hit").allowed());
        }
        assert_eq!(allowed, [true, true, false, false]);
        let denied = ping.hit("1.2.3.4").await.expect("hit");
        assert_eq!(denied.retry_after(), Some(secs(1)));
        clock.advance(Duration::from_millis(1050));
        let d = ping.hit("1.2.3.4").await.expect("hit");
        assert!(d.allowed());
        assert_eq!(d.remaining(), 0);
        assert!(!ping.hit("1.2.3.4").await.expect("hit").allowed());
    });
}

#[test]
fn keys_get_independent_allowances() {
    let ping = Limiter::new(MemoryStore::new())
        .with_clock(ManualClock::new())
        .policy("ping", Policy::fixed_window(Rate::per_minute(3).into()));
    block_on(async {
        for _ in 0..3 {
            assert!(ping.hit("alice").await.expect("hit").allowed());
        }
        let denied = ping.hit("alice").await.expect("hit");
        assert!(!denied.allowed());
        assert!(denied.retry_after().is_some());
        assert!(ping.hit("bob").await.expect("hit").allowed());
    });
}
