//! The one path of a charge through a [`Failover`]: a hit or a late charge goes to the store
//! unless its failure domain counts in memory, and a store error is answered by the
//! [`FailureMode`].

use std::future::Future;
use std::sync::atomic::Ordering;

use super::domains::Route;
use super::{Failover, FailureMode, KeyCopy, PreparedFailover};
use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::store::{Store, StoreError};

/// What is charged: they differ in the store operation and in what a timed-out one means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailoverCharge {
    /// A hit ([`Store::hit`]): a timed-out one is counted, and its late charge is given back
    /// when the answer given in its place refused it.
    Hit,
    /// A late charge ([`Store::overdraw`]): owed whatever the answer, so a timed-out one is
    /// left to the store.
    Overdraw,
}

impl<S: Store> Failover<S> {
    /// Where `kind` of `cost` for `key` goes now, started in the store if it goes there (so
    /// the future borrows no key).
    pub(super) fn charge<'a>(
        &'a self,
        kind: FailoverCharge,
        policy: &'a PreparedFailover<S::Prepared>,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a, S> {
        let route = self.route(policy, key, now);
        let to_store = !matches!(route, Route::Fallback(_));
        let hit = (to_store && kind == FailoverCharge::Hit)
            .then(|| self.store.hit(&policy.prepared, key, now, cost));
        let overdraw = (to_store && kind == FailoverCharge::Overdraw)
            .then(|| self.store.overdraw(&policy.prepared, key, now, cost));
        // The fallback, and the domain of a failure, may need the key after the store failed.
        let key = policy
            .local
            .as_ref()
            .map(|local| (local, KeyCopy::from_slice(key)));
        async move {
            let attempt = match (hit, overdraw) {
                (Some(hit), _) => Some(hit.await),
                (None, Some(overdraw)) => Some(overdraw.await),
                (None, None) => None,
            };
            let mut pending = None;
            match attempt {
                Some(Ok(decision)) => {
                    if let Route::Probe(domain) = route {
                        self.domains.recovered(domain, now, Self::PROBE_INTERVAL);
                    }
                    return Ok(decision);
                }
                Some(Err(mut err)) => {
                    if kind == FailoverCharge::Hit {
                        if err.is_timeout() {
                            self.timed_out_hits.fetch_add(1, Ordering::Relaxed);
                        }
                        pending = err.take_pending();
                    }
                    let key = key.as_ref().map_or(&[][..], |(_, key)| key);
                    self.failed(&err, route, policy, key, now);
                    if self.mode == FailureMode::Deny {
                        if let Some(pending) = pending {
                            pending.give_back(); // refused: a late charge is undone
                        }
                        return Err(err);
                    }
                }
                None => {}
            }
            let decision = match (&key, kind) {
                (Some((local, key)), FailoverCharge::Hit) => {
                    self.fallback.hit_in_place(local, key, now, cost)
                }
                (Some((local, key)), FailoverCharge::Overdraw) => {
                    self.fallback.overdraw_in_place(local, key, now, cost)
                }
                (None, _) => policy.uncounted,
            };
            if let Some(pending) = pending.filter(|_| !decision.allowed()) {
                pending.give_back(); // refused: a late charge is undone
            }
            Ok(decision)
        }
    }
}
