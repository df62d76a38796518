//! [`Metrics`]: what `GET /metrics` reports, in Prometheus's text format, and the
//! [`PolicyCounters`] every front end records its decisions in.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tollgate::{ChargeResult, Key};

use crate::dashboard::{Outcome, PolicyRecorder, Recorder};
use crate::grpc::envoy::DescriptorVerdict;
use crate::lease_metrics::LeaseMetrics;

/// How a hit ended, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum HitOutcome {
    /// Allowed.
    Allowed,
    /// Denied: over the limit.
    Denied,
    /// Over the limit in shadow mode: counted, reported allowed.
    ShadowDenied,
    /// No decision: the storage failed.
    Error,
    /// No decision: the client asked for what the policy can never allow (a cost above its
    /// limit), a mistake of the request and not of the storage.
    Invalid,
}

impl HitOutcome {
    /// Every outcome, in declaration order (their discriminants index this array).
    const ALL: [HitOutcome; 5] = [
        HitOutcome::Allowed,
        HitOutcome::Denied,
        HitOutcome::ShadowDenied,
        HitOutcome::Error,
        HitOutcome::Invalid,
    ];
}

impl HitOutcome {
    /// The outcome as the dashboard charts it, if it does.
    fn charted(self) -> Option<Outcome> {
        match self {
            HitOutcome::Allowed => Some(Outcome::Allowed),
            HitOutcome::Denied => Some(Outcome::Denied),
            HitOutcome::ShadowDenied => Some(Outcome::ShadowDenied),
            HitOutcome::Error | HitOutcome::Invalid => None,
        }
    }
}

impl EncodeLabelValue for HitOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            HitOutcome::Allowed => "allowed",
            HitOutcome::Denied => "denied",
            HitOutcome::ShadowDenied => "shadow_denied",
            HitOutcome::Error => "error",
            HitOutcome::Invalid => "invalid",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HitLabels {
    policy: String,
    outcome: HitOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyLabel {
    policy: String,
}

/// The hit counters of one policy (`tollgate_hits_total{policy, outcome}`, and the
/// dashboard's hits per second and keys denied most), made once so that recording a
/// decision takes no lock, no lookup and no allocation (a denial briefly locks the
/// dashboard's top keys). Clones count into the same counters.
///
/// ```
/// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
/// use tollgate_server::{Metrics, Totals};
///
/// # futures_executor::block_on(async {
/// let metrics = Metrics::new();
/// let counters = metrics.counters("login");
/// let login = Limiter::new(MemoryStore::new()).policy("login", Policy::fixed_window(Rate::per_hour(1).into()));
/// for _ in 0..2 {
///     let verdict = Admission::new().charge(Charge::new(login.clone(), "k", 1)).decide().await;
///     counters.record("k", &verdict.results()[0]);
/// }
/// let text = metrics.render(&Totals::default());
/// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="allowed"} 1"#));
/// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="denied"} 1"#));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct PolicyCounters {
    /// By [`HitOutcome`]: allowed, denied, shadow-denied, error, invalid.
    counters: Arc<[Counter; 5]>,
    /// Bans started (`tollgate_bans_total{policy}`).
    bans: Counter,
    /// Late charges (`tollgate_charges_total{policy}`).
    charges: Counter,
    /// The dashboard's view of the policy.
    dashboard: PolicyRecorder,
}

impl PolicyCounters {
    /// Counts what a charge of `key` came to (nothing for one that was never tried), and the
    /// ban it started, if it did; the dashboard lists the keys denied most.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Admission, Ban, Charge, Limiter, MemoryStore, Policy, Rate};
    /// use tollgate_server::{Metrics, Totals};
    ///
    /// # futures_executor::block_on(async {
    /// let metrics = Metrics::new();
    /// let counters = metrics.counters("login");
    /// let ban = Ban::new(Rate::per_hour(1), Duration::from_secs(60)).expect("a valid ban");
    /// let policy = Policy::fixed_window(Rate::per_hour(1).into()).with_ban(ban);
    /// let login = Limiter::new(MemoryStore::new()).policy("login", policy);
    /// for _ in 0..3 {
    ///     let verdict = Admission::new().charge(Charge::new(login.clone(), "k", 1)).decide().await;
    ///     counters.record("k", &verdict.results()[0]);
    /// }
    /// let text = metrics.render(&Totals::default());
    /// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="denied"} 2"#));
    /// assert!(text.contains(r#"tollgate_bans_total{policy="login"} 1"#)); // the second banned
    /// # });
    /// ```
    pub fn record<K: Key + ?Sized>(&self, key: &K, result: &ChargeResult) {
        if result
            .decision()
            .is_some_and(|decision| decision.ban_started())
        {
            self.bans.inc();
        }
        let outcome = match result {
            ChargeResult::Allowed(_) => HitOutcome::Allowed,
            ChargeResult::Denied(_) => HitOutcome::Denied,
            ChargeResult::ShadowDenied(_) => HitOutcome::ShadowDenied,
            ChargeResult::CostExceedsLimit { .. } => HitOutcome::Invalid,
            ChargeResult::Skipped => return,
            // A storage failure (and whatever a later engine adds).
            _ => HitOutcome::Error,
        };
        self.count(outcome);
        if let Some(charted) = outcome.charted() {
            self.dashboard.record(charted, key);
        }
    }

    /// Counts what an Envoy descriptor of `key` came to (an unlimited one is allowed; a refund
    /// is not a hit); the dashboard lists the keys over the limit most.
    ///
    /// ```
    /// use tollgate_server::{DescriptorVerdict, Metrics, Totals};
    ///
    /// let metrics = Metrics::new();
    /// let counters = metrics.counters("envoy:edge:user");
    /// counters.record_descriptor("user=alice", DescriptorVerdict::Allowed);
    /// counters.record_descriptor("user=alice", DescriptorVerdict::Unlimited);
    /// counters.record_descriptor("user=alice", DescriptorVerdict::Refunded);
    /// counters.record_descriptor("user=alice", DescriptorVerdict::ShadowOverLimit);
    /// let text = metrics.render(&Totals::default());
    /// assert!(text.contains(r#"tollgate_hits_total{policy="envoy:edge:user",outcome="allowed"} 2"#));
    /// assert!(text.contains(r#"tollgate_hits_total{policy="envoy:edge:user",outcome="shadow_denied"} 1"#));
    /// ```
    pub fn record_descriptor<K: Key + ?Sized>(&self, key: &K, verdict: DescriptorVerdict) {
        let outcome = match verdict {
            DescriptorVerdict::Allowed | DescriptorVerdict::Unlimited => HitOutcome::Allowed,
            DescriptorVerdict::OverLimit => HitOutcome::Denied,
            DescriptorVerdict::ShadowOverLimit => HitOutcome::ShadowDenied,
            _ => return,
        };
        self.count(outcome);
        if let Some(charted) = outcome.charted() {
            self.dashboard.record(charted, key);
        }
    }

    /// Counts a late charge (`POST /v1/charge`), whatever it came to.
    ///
    /// ```
    /// use tollgate_server::{Metrics, Totals};
    ///
    /// let metrics = Metrics::new();
    /// metrics.counters("tokens").record_charge();
    /// let text = metrics.render(&Totals::default());
    /// assert!(text.contains(r#"tollgate_charges_total{policy="tokens"} 1"#));
    /// ```
    pub fn record_charge(&self) {
        self.charges.inc();
    }

    fn count(&self, outcome: HitOutcome) {
        self.counters[outcome as usize].inc();
    }
}

/// What the limiter counts itself, read when metrics are rendered
/// ([`ServerState::totals`](crate::ServerState::totals)).
///
/// The counts are totals so far: each rendering adds what is new since the last.
///
/// ```
/// use tollgate_server::{Metrics, Totals};
///
/// let metrics = Metrics::new();
/// metrics.render(&Totals { storage_errors: 2, ..Totals::default() });
/// let text = metrics.render(&Totals { storage_errors: 5, falling_back: true, ..Totals::default() });
/// assert!(text.contains("tollgate_storage_errors_total 5")); // not 2 + 5
/// assert!(text.contains("tollgate_storage_fallback 1"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Storage errors seen by the failure mode (timeouts included).
    pub storage_errors: u64,
    /// Whether hits (of some keys at least) are counted in memory because the storage fails.
    pub falling_back: bool,
    /// Inline policies evicted so far.
    pub inline_evicted: u64,
    /// Hits that timed out (the storage may still have applied them).
    pub timed_out_hits: u64,
    /// Of those, hits the storage was seen to charge after the timeout.
    pub late_charges: u64,
    /// Of those, charges given back because the request was refused.
    pub late_charges_given_back: u64,
    /// Switches of hits to memory because the storage failed.
    pub fallback_switches: u64,
    /// Keys tracked in memory now: the `memory://` storage's and the fallback's.
    pub memory_keys: usize,
    /// Keys evicted from memory so far to keep within `[server] max_keys`.
    pub memory_evicted: u64,
    /// Keys banned now, in memory (the `memory://` storage's and the fallback's): Redis
    /// cannot tell without scanning every key.
    pub banned_keys: usize,
    /// What quota leases have done (`[server] lease`).
    pub lease: tollgate::LeaseStats,
}

/// The server's counters: hits by policy and outcome, bans started and late charges by
/// policy, the keys banned now (in memory), storage errors (timed-out hits apart,
/// and what became of them), whether and how often hits fell back to memory, the keys
/// tracked in memory and evicted from it, inline policies evicted, and the latency of checks.
///
/// ```
/// use std::time::Duration;
/// use tollgate_server::{Metrics, Totals};
///
/// let metrics = Metrics::new();
/// metrics.took(Duration::from_micros(40));
/// let text = metrics.render(&Totals {
///     storage_errors: 3,
///     timed_out_hits: 2,
///     late_charges: 1,
///     fallback_switches: 1,
///     inline_evicted: 2,
///     memory_keys: 42,
///     ..Totals::default()
/// });
/// assert!(text.contains("tollgate_storage_errors_total 3"));
/// assert!(text.contains("tollgate_storage_timed_out_hits_total 2"));
/// assert!(text.contains("tollgate_storage_late_charges_total 1"));
/// assert!(text.contains("tollgate_storage_late_charges_given_back_total 0"));
/// assert!(text.contains("tollgate_storage_fallback 0"));
/// assert!(text.contains("tollgate_storage_fallback_switches_total 1"));
/// assert!(text.contains("tollgate_inline_policies_evicted_total 2"));
/// assert!(text.contains("tollgate_memory_keys 42"));
/// assert!(text.contains("tollgate_memory_keys_evicted_total 0"));
/// ```
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    hits: Family<HitLabels, Counter>,
    bans: Family<PolicyLabel, Counter>,
    charges: Family<PolicyLabel, Counter>,
    banned_keys: Gauge,
    latency: Histogram,
    fallback: Gauge,
    memory_keys: Gauge,
    /// The counters of [`Totals`], each with the total already added to it.
    storage_errors: CaughtUp,
    timed_out_hits: CaughtUp,
    late_charges: CaughtUp,
    late_charges_given_back: CaughtUp,
    fallback_switches: CaughtUp,
    memory_evicted: CaughtUp,
    inline_evicted: CaughtUp,
    lease: LeaseMetrics,
    /// What the dashboard shows of the traffic.
    dashboard: Recorder,
}

/// A counter that follows a total kept elsewhere: each rendering adds what is new.
#[derive(Debug, Default)]
struct CaughtUp {
    counter: Counter,
    /// The total already added to `counter`.
    seen: AtomicU64,
}

impl CaughtUp {
    /// A counter registered as `name` with `help`.
    fn register(registry: &mut Registry, name: &str, help: &str) -> Self {
        let caught_up = Self::default();
        registry.register(name, help, caught_up.counter.clone());
        caught_up
    }

    fn catch_up(&self, total: u64) {
        let before = self.seen.swap(total, Ordering::Relaxed);
        self.counter.inc_by(total.saturating_sub(before));
    }
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
        let bans = Family::<PolicyLabel, Counter>::default();
        let charges = Family::<PolicyLabel, Counter>::default();
        let banned_keys = Gauge::default();
        // 25 us to about 0.8 s.
        let latency = Histogram::new(exponential_buckets(0.000_025, 2.0, 16));
        let fallback = Gauge::default();
        let memory_keys = Gauge::default();
        let mut registry = Registry::default();
        registry.register("tollgate_hits", "Hits by policy and outcome", hits.clone());
        registry.register(
            "tollgate_bans",
            "Bans started by policy, after repeated breaches",
            bans.clone(),
        );
        registry.register(
            "tollgate_banned_keys",
            "Keys banned now, where the storage can tell (memory and the fallback, not Redis)",
            banned_keys.clone(),
        );
        registry.register(
            "tollgate_charges",
            "Late charges (POST /v1/charge) by policy",
            charges.clone(),
        );
        registry.register(
            "tollgate_check_duration_seconds",
            "Time to decide a check, in seconds",
            latency.clone(),
        );
        let storage_errors = CaughtUp::register(
            &mut registry,
            "tollgate_storage_errors",
            "Storage errors seen by the failure mode, timeouts included",
        );
        let timed_out_hits = CaughtUp::register(
            &mut registry,
            "tollgate_storage_timed_out_hits",
            "Hits that timed out, which the storage may still have applied",
        );
        let late_charges = CaughtUp::register(
            &mut registry,
            "tollgate_storage_late_charges",
            "Timed-out hits the storage was seen to charge after the timeout",
        );
        let late_charges_given_back = CaughtUp::register(
            &mut registry,
            "tollgate_storage_late_charges_given_back",
            "Late charges given back because the failure mode refused the request",
        );
        registry.register(
            "tollgate_storage_fallback",
            "1 while hits (of some keys at least) are counted in memory because the storage fails",
            fallback.clone(),
        );
        let fallback_switches = CaughtUp::register(
            &mut registry,
            "tollgate_storage_fallback_switches",
            "Switches of hits to memory because the storage failed",
        );
        registry.register(
            "tollgate_memory_keys",
            "Keys tracked in memory (the memory storage and the fallback), within max_keys",
            memory_keys.clone(),
        );
        let memory_evicted = CaughtUp::register(
            &mut registry,
            "tollgate_memory_keys_evicted",
            "Keys evicted from memory to keep within max_keys (their counts restart)",
        );
        let inline_evicted = CaughtUp::register(
            &mut registry,
            "tollgate_inline_policies_evicted",
            "Inline policies evicted to keep the most the server keeps (their counts restart)",
        );
        let lease = LeaseMetrics::register(&mut registry);
        Self {
            registry,
            hits,
            bans,
            charges,
            banned_keys,
            latency,
            fallback,
            memory_keys,
            storage_errors,
            timed_out_hits,
            late_charges,
            late_charges_given_back,
            fallback_switches,
            memory_evicted,
            inline_evicted,
            lease,
            dashboard: Recorder::default(),
        }
    }

    /// What the dashboard shows of the traffic.
    pub(crate) fn dashboard(&self) -> &Recorder {
        &self.dashboard
    }

    /// The counters of `policy` (the same ones each time for the same name).
    ///
    /// ```
    /// use tollgate_server::{DescriptorVerdict, Metrics, Totals};
    ///
    /// let metrics = Metrics::new();
    /// metrics.counters("login").record_descriptor("user=mallory", DescriptorVerdict::OverLimit);
    /// metrics.counters("login").record_descriptor("user=mallory", DescriptorVerdict::OverLimit);
    /// let text = metrics.render(&Totals::default());
    /// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="denied"} 2"#));
    /// assert!(text.contains(r#"tollgate_hits_total{policy="login",outcome="allowed"} 0"#));
    /// ```
    pub fn counters(&self, policy: &str) -> PolicyCounters {
        let counter = |outcome| {
            self.hits
                .get_or_create(&HitLabels {
                    policy: policy.to_owned(),
                    outcome,
                })
                .clone()
        };
        let label = PolicyLabel {
            policy: policy.to_owned(),
        };
        PolicyCounters {
            counters: Arc::new(HitOutcome::ALL.map(counter)),
            bans: self.bans.get_or_create(&label).clone(),
            charges: self.charges.get_or_create(&label).clone(),
            dashboard: self.dashboard.policy(policy),
        }
    }

    /// Records that deciding a check (of one or several hits) took `took`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate_server::{Metrics, Totals};
    ///
    /// let metrics = Metrics::new();
    /// metrics.took(Duration::from_micros(40));
    /// metrics.took(Duration::from_millis(2));
    /// let text = metrics.render(&Totals::default());
    /// assert!(text.contains("tollgate_check_duration_seconds_count 2"));
    /// ```
    pub fn took(&self, took: Duration) {
        self.latency.observe(took.as_secs_f64());
    }

    /// The text format, with the limiter's state as it is now (see [`Totals`]).
    pub fn render(&self, now: &Totals) -> String {
        self.storage_errors.catch_up(now.storage_errors);
        self.timed_out_hits.catch_up(now.timed_out_hits);
        self.late_charges.catch_up(now.late_charges);
        self.late_charges_given_back
            .catch_up(now.late_charges_given_back);
        self.fallback_switches.catch_up(now.fallback_switches);
        self.memory_evicted.catch_up(now.memory_evicted);
        self.inline_evicted.catch_up(now.inline_evicted);
        self.lease.catch_up(&now.lease);
        self.fallback.set(i64::from(now.falling_back));
        self.memory_keys
            .set(i64::try_from(now.memory_keys).unwrap_or(i64::MAX));
        self.banned_keys
            .set(i64::try_from(now.banned_keys).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
