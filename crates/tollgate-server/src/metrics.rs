//! [`Metrics`]: what `GET /metrics` reports, in Prometheus's text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a hit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Allowed.
    Allowed,
    /// Denied: over the limit.
    Denied,
    /// Over the limit in shadow mode: counted, reported allowed.
    ShadowDenied,
    /// No decision: the storage failed, or the request was wrong.
    Error,
}

impl Outcome {
    /// Every outcome, in declaration order (their discriminants index this array).
    const ALL: [Outcome; 4] = [
        Outcome::Allowed,
        Outcome::Denied,
        Outcome::ShadowDenied,
        Outcome::Error,
    ];
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::ShadowDenied => "shadow_denied",
            Outcome::Error => "error",
        })
    }
}

/// The hit counters of the policies a configuration names, made once, so that counting a hit
/// takes no lock and no allocation; any other name is counted through [`Metrics::hit`].
///
/// ```
/// use std::sync::Arc;
/// use tollgate_server::metrics::{Counters, Metrics, Outcome};
///
/// let metrics = Arc::new(Metrics::new());
/// let counters = Counters::new(&metrics, ["login"]);
/// counters.count("login", Outcome::Allowed);
/// counters.count("other", Outcome::Denied);
/// let text = metrics.render(0, false);
/// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="allowed"} 1"#));
/// assert!(text.contains(r#"tollgate_hits_total{policy="other",outcome="denied"} 1"#));
/// ```
#[derive(Debug)]
pub struct Counters {
    /// By policy: allowed, denied, shadow-denied, error.
    known: HashMap<String, [Counter; 4]>,
    metrics: Arc<Metrics>,
}

impl Counters {
    /// Counters for `policies`, in `metrics`.
    pub fn new<'a>(metrics: &Arc<Metrics>, policies: impl IntoIterator<Item = &'a str>) -> Self {
        let known = policies
            .into_iter()
            .map(|policy| {
                let counter = |outcome| {
                    metrics
                        .hits
                        .get_or_create(&HitLabels {
                            policy: policy.to_owned(),
                            outcome,
                        })
                        .clone()
                };
                let counters = Outcome::ALL.map(counter);
                (policy.to_owned(), counters)
            })
            .collect();
        Self {
            known,
            metrics: Arc::clone(metrics),
        }
    }

    /// Counts a hit on `policy` that ended as `outcome`.
    pub fn count(&self, policy: &str, outcome: Outcome) {
        match self.known.get(policy) {
            Some(counters) => {
                counters[outcome as usize].inc();
            }
            None => self.metrics.hit(policy, outcome),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HitLabels {
    policy: String,
    outcome: Outcome,
}

/// The server's counters: hits by policy and outcome, storage errors, whether hits are
/// falling back to memory, and the latency of checks.
///
/// ```
/// use std::time::Duration;
/// use tollgate_server::metrics::{Metrics, Outcome};
///
/// let metrics = Metrics::new();
/// metrics.hit("login", Outcome::Denied);
/// metrics.took(Duration::from_micros(40));
/// let text = metrics.render(3, false);
/// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="denied"} 1"#));
/// assert!(text.contains("tollgate_storage_errors_total 3"));
/// assert!(text.contains("tollgate_storage_fallback 0"));
/// ```
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    hits: Family<HitLabels, Counter>,
    latency: Histogram,
    storage_errors: Counter,
    /// The storage error count already added to `storage_errors`.
    storage_errors_seen: AtomicU64,
    fallback: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        let hits = Family::<HitLabels, Counter>::default();
        // 25 us to about 0.8 s.
        let latency = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        let storage_errors = Counter::default();
        let fallback = Gauge::default();
        let mut registry = Registry::default();
        registry.register("tollgate_hits", "Hits by policy and outcome", hits.clone());
        registry.register(
            "tollgate_check_duration_seconds",
            "Time to decide a check, in seconds",
            latency.clone(),
        );
        registry.register(
            "tollgate_storage_errors",
            "Storage errors seen by the failure policy",
            storage_errors.clone(),
        );
        registry.register(
            "tollgate_storage_fallback",
            "1 while hits are counted in memory because the storage fails",
            fallback.clone(),
        );
        Self {
            registry,
            hits,
            latency,
            storage_errors,
            storage_errors_seen: AtomicU64::new(0),
            fallback,
        }
    }

    /// Counts a hit on `policy` that ended as `outcome`.
    pub fn hit(&self, policy: &str, outcome: Outcome) {
        self.hits
            .get_or_create(&HitLabels {
                policy: policy.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Records that deciding a check (of one or several hits) took `took`.
    pub fn took(&self, took: Duration) {
        self.latency.observe(took.as_secs_f64());
    }

    /// The text format, with the storage's error count and fallback state as they are now.
    pub fn render(&self, storage_errors: u64, falling_back: bool) -> String {
        let seen = self
            .storage_errors_seen
            .swap(storage_errors, Ordering::Relaxed);
        self.storage_errors
            .inc_by(storage_errors.saturating_sub(seen));
        self.fallback.set(i64::from(falling_back));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
