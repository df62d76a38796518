//! Delay instead of reject: requests wait for their reserved slot (Tokio's paused clock for
//! the waits, a manual clock for the limiter), the cap on waiting requests, and clients that
//! go away while they wait.

use std::pin::pin;
use std::task::{Context, Poll};

use tokio::time::Instant;

use super::*;

/// An app whose `/a` records, for each request it serves, when it was called (since
/// `start`): the times the layer released the requests.
fn paced_app(limiter: &HttpLimiter, start: Instant) -> (Router, Arc<Mutex<Vec<Duration>>>) {
    let released = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&released);
    let app = Router::new()
        .route(
            "/a",
            get(move || {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock().expect("lock").push(start.elapsed());
                    "a"
                }
            }),
        )
        .layer(limiter.layer());
    (app, released)
}

/// 10 a second, one at a time, with waits of up to `max_delay`.
fn paced(max_delay: Duration) -> Limit {
    Limit::new("10/second")
        .strategy(Strategy::TokenBucket)
        .burst(1)
        .max_delay(max_delay)
}

/// `n` requests to `/a` from Alice sent at once; their statuses and `Retry-After`s.
async fn burst(app: &Router, n: usize) -> Vec<(u16, Option<String>)> {
    let requests = (0..n).map(|_| async {
        let response = send(app, request(Method::GET, "/a", ALICE, &[])).await;
        let retry = header(&response, "retry-after").map(str::to_owned);
        (response.status().as_u16(), retry)
    });
    futures_util::future::join_all(requests).await
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Issue 13: a burst of 20 at 10 a second with waits of up to a second: the first runs at
/// once, the next ten 100 ms apart, the rest are 429 with the exact `Retry-After`.
#[tokio::test(start_paused = true)]
async fn a_burst_is_released_at_the_rate() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", paced(ms(1000)))
        .build()
        .expect("valid");
    let (app, released) = paced_app(&limiter, Instant::now());
    let answers = burst(&app, 20).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(ok, 11, "{answers:?}");
    for (status, retry) in answers.iter().filter(|(status, _)| *status != 200) {
        // The next slot is 1,100 ms away, 100 ms past the longest wait: one second, rounded up.
        assert_eq!((*status, retry.as_deref()), (429, Some("1")));
    }
    let released = released.lock().expect("lock").clone();
    let expected: Vec<Duration> = (0..=10).map(|i| ms(100 * i)).collect();
    assert_eq!(released, expected);
    assert_eq!(limiter.waiting_requests(), (0, 1024));
}

/// A flood beyond the cap: as many wait as the cap allows, the rest are turned away at once
/// and their reservations given back, so the next request waits behind the waiting ones only.
#[tokio::test(start_paused = true)]
async fn the_waiting_room_is_capped_and_turned_away_requests_reserve_nothing() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .max_waiting(3)
        .route("/a", paced(ms(1000)))
        .build()
        .expect("valid");
    let start = Instant::now();
    let (app, released) = paced_app(&limiter, start);
    // Each of the 50 would be admitted alone; let the room fill before they are answered.
    let answers = burst(&app, 50).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 46);
    let released = released.lock().expect("lock").clone();
    assert_eq!(released, [ms(0), ms(100), ms(200), ms(300)]);
    assert_eq!(limiter.waiting_requests(), (0, 3));
    // The turned-away requests gave their slots back: the next one (the limiter's clock has
    // not moved) waits 400 ms, behind the three that waited, not behind 46 more.
    let before = start.elapsed();
    assert_eq!(burst(&app, 1).await[0].0, 200);
    assert_eq!(start.elapsed() - before, ms(400));
}

/// A request dropped while it waits gives up its place in the waiting room at once, and
/// keeps its reservation: the next request waits behind it.
#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_keeps_its_reservation() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", paced(ms(1000)))
        .build()
        .expect("valid");
    let start = Instant::now();
    let (app, released) = paced_app(&limiter, start);
    assert_eq!(burst(&app, 1).await[0].0, 200);
    {
        let waiting = pin!(send(&app, request(Method::GET, "/a", ALICE, &[])));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(waiting.poll(&mut cx), Poll::Pending)); // reserved, waiting
        assert_eq!(limiter.waiting_requests().0, 1);
    } // the client goes away
    assert_eq!(limiter.waiting_requests().0, 0);
    assert_eq!(burst(&app, 1).await[0].0, 200);
    // Released at 200 ms: the slot at 100 ms stays the dropped request's.
    assert_eq!(released.lock().expect("lock").clone(), [ms(0), ms(200)]);
}

/// A fixed window reserves in its next window: the excess of a window runs when the next
/// one starts, and no more than the next window holds.
#[tokio::test(start_paused = true)]
async fn a_fixed_window_runs_its_excess_in_the_next_window() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", Limit::new("2/second").max_delay(ms(999)))
        .build()
        .expect("valid");
    let (app, released) = paced_app(&limiter, Instant::now());
    let statuses = |answers: Vec<(u16, Option<String>)>| -> Vec<u16> {
        answers.into_iter().map(|(status, _)| status).collect()
    };
    assert_eq!(statuses(burst(&app, 2).await), [200, 200]);
    clock.advance(ms(100)); // the window ends in 900 ms
    assert_eq!(statuses(burst(&app, 3).await), [200, 200, 429]);
    let released = released.lock().expect("lock").clone();
    assert_eq!(released, [ms(0), ms(0), ms(900), ms(900)]);
}

/// `max_delay` where no slot can be reserved is a mistake the builder reports.
#[test]
fn max_delay_on_a_sliding_window_is_refused() {
    let err = HttpLimiter::builder()
        .route(
            "/a",
            Limit::new("10/second")
                .strategy(Strategy::SlidingWindowCounter)
                .max_delay(ms(100)),
        )
        .build()
        .expect_err("a sliding window cannot reserve");
    assert!(
        err.to_string().contains(
            "limit on route \"/a\": max_delay applies to token-bucket and fixed-window only"
        ),
        "{err}"
    );
}
