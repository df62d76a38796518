//! Quota leases under the layer: a limit over a `Leasing` store admits exactly as without
//! leases for one instance, most requests spend leased units without a store call, a limit
//! may turn its leases off, and the sweep gives unspent units back.

use tollgate::{Clock, Leasing, Policy, QuotaLease};

use super::*;

#[tokio::test]
async fn requests_spend_leased_units_and_the_sweep_gives_back_the_rest() {
    let clock = ManualClock::new();
    let lease = QuotaLease::lasting(Duration::from_millis(100)).expect("in range");
    let store = Leasing::new(MemoryStore::new()).with_lease(lease);
    let off =
        Policy::fixed_window("5/minute".parse().expect("rates")).with_quota_lease(QuotaLease::Off);
    let limiter = HttpLimiter::builder()
        .store(store.clone())
        .clock(clock.clone())
        .route("/a", Limit::new("800/second").name("api"))
        .route("/b", Limit::policy(off).name("off"))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let mut allowed = 0;
    for _ in 0..1_000 {
        clock.advance(Duration::from_micros(500));
        if status(&app, Method::GET, "/a", "10.0.0.1", &[]).await == 200 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 800, "exactly the limit in the window");
    let stats = store.stats();
    assert_eq!(stats.hits, 1_000);
    assert!(stats.store_calls * 10 < stats.hits, "{stats:?}");
    assert!(stats.local_denials > 0, "{stats:?}");
    // Not leased: every request asks the store.
    assert_eq!(
        statuses(&app, "/b", "10.0.0.1", 6).await,
        [200, 200, 200, 200, 200, 429]
    );
    assert_eq!(store.stats().hits, 1_000);
    // A new window, a lease, then the sweep gives its unspent units back.
    clock.advance(Duration::from_secs(1));
    assert_eq!(status(&app, Method::GET, "/a", "10.0.0.2", &[]).await, 200);
    clock.advance(Duration::from_millis(1));
    assert_eq!(status(&app, Method::GET, "/a", "10.0.0.2", &[]).await, 200);
    clock.advance(Duration::from_millis(200));
    assert!(store.sweep(clock.now()).await > 0, "{:?}", store.stats());
}
