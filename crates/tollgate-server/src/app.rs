//! [`App`]: what the running server shares between its listeners: the storage, the metrics,
//! and the configuration in force, swapped whole on reload.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use tollgate::{Failover, Limiter, Policy, Rate, Store, Timestamp};
use tollgate_redis::AnyStore;
use tollgate_tower::{HeaderStyle, LimitHeaders};

use crate::config::Config;
use crate::envoy::{EnvoyRateLimiter, Verdict};
use crate::metrics::{Counters, Metrics, Outcome};

/// The scope inline policies of the check API are counted under, apart from the named ones.
pub const INLINE: &str = "inline";

/// The storage every listener counts in, behind the configured failure policy.
pub type SharedStore = Arc<Failover<AnyStore>>;

/// The running server's shared state.
#[derive(Debug)]
pub struct App {
    store: SharedStore,
    /// The storage URI, for messages (credentials redacted).
    storage: String,
    /// A policy prepared on the storage itself (not the failover), to probe it.
    probe: <AnyStore as Store>::Prepared,
    metrics: Arc<Metrics>,
    live: RwLock<Arc<Live>>,
}

/// The part of the configuration requests read, replaced on reload.
#[derive(Debug)]
pub struct Live {
    /// The named policies over the shared store.
    pub limiter: Limiter<SharedStore>,
    /// Which rate-limit headers responses carry.
    pub headers: HeaderStyle,
    /// The token `POST /v1/reset` requires.
    pub admin_token: Option<String>,
    /// Envoy's rate limit service, when `[envoy] config` is set.
    pub envoy: Option<EnvoyRateLimiter<SharedStore>>,
    /// The rate-limit fields of each named policy and of `inline`, partly rendered.
    pub fields: HashMap<String, LimitHeaders>,
    /// The hit counters of each named policy and of `inline`.
    pub counters: Counters,
}

impl App {
    /// The shared state for `config` over `store` (opened from `config.storage`).
    pub fn new(config: &Config, store: AnyStore) -> Self {
        let probe = store.prepare(
            "tollgate:probe",
            &Policy::fixed_window(Rate::per_second(1).into()),
        );
        let store = Arc::new(Failover::new(store, config.on_storage_error));
        let metrics = Arc::new(Metrics::new());
        let live = Live::new(&store, &metrics, config);
        Self {
            store,
            storage: tollgate_redis::redacted(&config.storage),
            probe,
            metrics,
            live: RwLock::new(Arc::new(live)),
        }
    }

    /// The configuration in force.
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `config` in force. Named policies that did not change keep their counts.
    pub fn reload(&self, config: &Config) {
        let live = Arc::new(Live::new(&self.store, &self.metrics, config));
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = live;
    }

    /// The shared store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The storage URI, credentials redacted.
    pub fn storage(&self) -> &str {
        &self.storage
    }

    /// Whether the storage answers now (asked directly, not through the failure policy):
    /// `Err` says why not.
    pub async fn probe(&self) -> Result<(), tollgate::StoreError> {
        self.store
            .store()
            .hit(&self.probe, b"probe", Timestamp::from_nanos(0), 0)
            .await
            .map(drop)
    }
}

impl Live {
    fn new(store: &SharedStore, metrics: &Arc<Metrics>, config: &Config) -> Self {
        let envoy = config.envoy.as_ref().map(|envoy| {
            let counters = Counters::new(metrics, envoy.policies().map(|(name, _)| name));
            EnvoyRateLimiter::new(Arc::clone(store), envoy).with_observer(Arc::new(
                move |policy: &str, verdict: Verdict| {
                    let outcome = match verdict {
                        Verdict::Allowed | Verdict::Unlimited => Outcome::Allowed,
                        Verdict::OverLimit => Outcome::Denied,
                        Verdict::ShadowOverLimit => Outcome::ShadowDenied,
                        _ => return,
                    };
                    counters.count(policy, outcome);
                },
            ))
        });
        let names = || config.policies.keys().map(String::as_str).chain([INLINE]);
        let fields = names()
            .map(|name| (name.to_owned(), LimitHeaders::new(name)))
            .collect();
        Self {
            limiter: policies(store, &config.policies),
            headers: config.headers,
            admin_token: config.admin_token.clone(),
            envoy,
            fields,
            counters: Counters::new(metrics, names()),
        }
    }
}

fn policies(store: &SharedStore, policies: &BTreeMap<String, Policy>) -> Limiter<SharedStore> {
    policies.iter().fold(
        Limiter::new(Arc::clone(store)),
        |limiter, (name, policy)| limiter.with_policy(name.as_str(), policy.clone()),
    )
}
