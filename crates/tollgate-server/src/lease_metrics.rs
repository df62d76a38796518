//! [`LeaseMetrics`]: the `tollgate_lease_total{event}` counters, what quota leases
//! (`[server] lease`) have done: hits of leased policies, the storage calls they cost, leases
//! taken, units leased, given back and dropped, hits allowed and denied without a call.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tollgate::LeaseStats;

/// One counter's label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

/// The events, in the order of [`events`].
const EVENTS: [&str; 10] = [
    "hit",
    "storage_call",
    "lease_taken",
    "unit_leased",
    "local_allowed",
    "local_denial",
    "lease_expired",
    "lease_evicted",
    "unit_given_back",
    "unit_dropped",
];

/// `stats` in the order of [`EVENTS`].
fn events(stats: &LeaseStats) -> [u64; 10] {
    [
        stats.hits,
        stats.store_calls,
        stats.leases_taken,
        stats.units_leased,
        stats.local_allowed,
        stats.local_denials,
        stats.leases_expired,
        stats.leases_evicted,
        stats.units_given_back,
        stats.units_dropped,
    ]
}

/// The lease counters, each following a total of [`LeaseStats`].
#[derive(Debug)]
pub(crate) struct LeaseMetrics {
    family: Family<EventLabel, Counter>,
    seen: [AtomicU64; 10],
}

impl LeaseMetrics {
    /// The counters, registered in `registry` (every event present from the start, at 0).
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let family = Family::<EventLabel, Counter>::default();
        for event in EVENTS {
            drop(family.get_or_create(&EventLabel { event }));
        }
        registry.register(
            "tollgate_lease",
            "Quota leases by event: hits of leased policies, storage calls, leases taken, \
             units leased, hits allowed and denied without a call, leases expired and evicted \
             with units unspent, units given back and dropped",
            family.clone(),
        );
        Self {
            family,
            seen: Default::default(),
        }
    }

    /// Adds what is new in `stats`.
    pub(crate) fn catch_up(&self, stats: &LeaseStats) {
        for ((event, total), seen) in EVENTS.into_iter().zip(events(stats)).zip(&self.seen) {
            let before = seen.swap(total, Ordering::Relaxed);
            self.family
                .get_or_create(&EventLabel { event })
                .inc_by(total.saturating_sub(before));
        }
    }
}

#[cfg(test)]
mod tests {
    use tollgate::LeaseStats;

    use crate::metrics::{Metrics, Totals};

    #[test]
    fn every_event_is_rendered_and_follows_its_total() {
        let metrics = Metrics::new();
        let text = metrics.render(&Totals::default());
        assert!(
            text.contains(r#"tollgate_lease_total{event="unit_dropped"} 0"#),
            "{text}"
        );
        let lease = LeaseStats {
            hits: 1_000,
            store_calls: 4,
            local_denials: 7,
            ..LeaseStats::default()
        };
        metrics.render(&Totals {
            lease,
            ..Totals::default()
        });
        let text = metrics.render(&Totals {
            lease: LeaseStats {
                hits: 1_500,
                ..lease
            },
            ..Totals::default()
        });
        assert!(
            text.contains(r#"tollgate_lease_total{event="hit"} 1500"#),
            "{text}"
        );
        assert!(text.contains(r#"tollgate_lease_total{event="storage_call"} 4"#));
        assert!(text.contains(r#"tollgate_lease_total{event="local_denial"} 7"#));
    }
}
