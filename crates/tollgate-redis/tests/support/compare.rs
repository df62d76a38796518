//! What the tests comparing the Redis store with the engine share (`alike.rs`,
//! `differential.rs`): a store in client-time mode, and policies at the bounds under every
//! strategy.

use std::time::Duration;

use tollgate::{Policy, Rates, Strategy};
use tollgate_redis::RedisStore;

use super::RedisServer;

/// A store in client-time mode on `server` (patient: 5 s), and a runtime to drive it.
pub fn client_time_store(server: &RedisServer) -> (RedisStore, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(RedisStore::connect(&server.uri()))
        .expect("connect")
        .with_client_time()
        .with_timeout(Duration::from_secs(5));
    (store, rt)
}

/// Each of `bounds` (rates, and a burst for the token bucket) under every strategy, with
/// its index in `bounds`. Only a token bucket (one above 10^6 a second) or a sliding window
/// log (one above `MAX_LOG_AMOUNT`) may be refused: it is left out.
pub fn under_every_strategy(bounds: &[(&str, Option<u64>)]) -> Vec<(usize, Policy)> {
    let mut policies = Vec::new();
    for (i, &(rates, burst)) in bounds.iter().enumerate() {
        let rates: Rates = rates.parse().expect("in bounds");
        for strategy in Strategy::ALL {
            let burst = burst.filter(|_| strategy == Strategy::TokenBucket);
            match Policy::from_parts(strategy, rates.clone(), burst) {
                Ok(policy) => policies.push((i, policy)),
                Err(err) => assert!(
                    matches!(strategy, Strategy::TokenBucket | Strategy::SlidingWindowLog),
                    "{rates}: {err}"
                ),
            }
        }
    }
    policies
}
