//! [`sweep_leases`]: the task that gives unspent quota leases back for a Tower layer counting
//! in a [`tollgate::Leasing`] store.

use std::time::Duration;

use tollgate::{Clock, Leasing, Store};

/// Spawns (on the current Tokio runtime) a task that ends expired quota leases of `store`
/// and gives their unspent units back every `every` (half the lease lifetime is a good
/// choice), reading `clock` (the limiter's, so that leases and sweeps agree on the time).
/// The task runs until it is aborted, or dropped with its runtime.
///
/// Leasing for a Tower layer is a store choice: build it over
/// `Leasing::new(shared_store).with_lease(..)`, and a limit may turn its own leases off
/// with [`tollgate::Policy::with_quota_lease`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Leasing, MemoryStore, MonotonicClock, QuotaLease};
/// use tollgate_tower::{HttpLimiter, sweep_leases};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lease = QuotaLease::lasting(Duration::from_millis(250))?;
/// let store = Leasing::new(MemoryStore::new()).with_lease(lease); // a RedisStore in a fleet
/// let clock = MonotonicClock::new();
/// let limiter = HttpLimiter::builder()
///     .store(store.clone())
///     .clock(clock.clone())
///     .default_limit("1000/second")
///     .build()?;
/// let sweeper = sweep_leases(store, clock, Duration::from_millis(125));
/// # drop(limiter);
/// sweeper.abort();
/// # Ok(())
/// # }
/// ```
pub fn sweep_leases<S: Store>(
    store: Leasing<S>,
    clock: impl Clock,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let every = every.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            store.sweep(clock.now()).await;
        }
    })
}
