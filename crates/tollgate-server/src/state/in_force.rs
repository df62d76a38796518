//! [`InForce`]: the configuration in force, each policy prepared with its fields and
//! counters, swapped whole by a reload.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate::{ConcurrencyHandle, Key, Limiter, PolicyHandle, Verdict};
use tollgate_tower::{BuildError, Described, HeaderPolicies, HeaderStyle, LimitHeaders};

use crate::config::{Config, INLINE_POLICY};
use crate::grpc::envoy::EnvoyService;
use crate::http::proxy;
use crate::metrics::{Metrics, PolicyCounters};
use crate::state::ServerStore;

/// The configuration in force: each named policy with its handle, rate-limit fields and
/// counters together, the inline policies' fields and counters, the Envoy service and the
/// proxy's router.
///
/// A reload swaps it whole: what a request took from [`ServerState::in_force`] stays as it
/// was while the request runs.
///
/// ```
/// use tollgate_server::{Config, ServerState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse("[policies.api]\nlimits = \"10/second\"\n", "tollgate.toml")?;
/// let state = ServerState::new(&config, config.storage.open().await?)?;
/// let before = state.in_force();
/// state.reload(&Config::parse(r#"
/// [policies.api]
/// limits = "10/second"
///
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
/// default_policy = "api"
/// "#, "tollgate.toml")?)?;
/// assert!(before.proxy().is_none()); // unchanged
/// assert!(state.in_force().proxy().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct InForce {
    policies: HashMap<String, ConfiguredPolicy>,
    inline: PolicyFront,
    headers: HeaderStyle,
    header_policies: HeaderPolicies,
    headers_include_shadow: bool,
    admin_token: Option<String>,
    dashboard: bool,
    envoy: Option<EnvoyService<ServerStore>>,
    proxy: Option<axum::Router>,
}

/// A configured policy as the check API serves it.
#[derive(Debug)]
pub(crate) struct ConfiguredPolicy {
    pub(crate) handle: PolicyHandle<ServerStore>,
    pub(crate) front: PolicyFront,
    /// Marked `shadow = true`: counted and reported, never denying.
    pub(crate) shadow: bool,
    /// Its `max_in_flight`, if set.
    pub(crate) in_flight: Option<InFlightPolicy>,
}

/// A policy's concurrency limit: its slots (for the check API; the proxy prepares its own,
/// apart) and the counters of its acquires, `{policy}:in-flight` in the metrics.
#[derive(Debug)]
pub(crate) struct InFlightPolicy {
    pub(crate) handle: ConcurrencyHandle<ServerStore>,
    pub(crate) counters: PolicyCounters,
}

/// What a policy's answers carry: its rate-limit fields and its counters.
#[derive(Debug)]
pub(crate) struct PolicyFront {
    pub(crate) headers: LimitHeaders,
    pub(crate) counters: PolicyCounters,
}

impl PolicyFront {
    /// The fields and counters of the policy configured as `name`.
    fn new(name: &str, metrics: &Metrics) -> Self {
        Self {
            headers: LimitHeaders::new(name),
            counters: metrics.counters(name),
        }
    }

    /// The fields and counters of inline policies: counted under `inline`, and called in
    /// the headers by their rate, as the client gave no name.
    fn inline(metrics: &Metrics) -> Self {
        Self {
            headers: LimitHeaders::unnamed(),
            counters: metrics.counters(INLINE_POLICY),
        }
    }
}

/// Each policy of `config` prepared over `limiter`, with its fields and counters.
pub(crate) fn configured_policies(
    limiter: &Limiter<ServerStore>,
    metrics: &Metrics,
    config: &Config,
) -> HashMap<String, ConfiguredPolicy> {
    config
        .policies
        .iter()
        .map(|(name, policy)| {
            let named = ConfiguredPolicy {
                handle: limiter.policy(name, policy.clone()),
                front: PolicyFront::new(name, metrics),
                shadow: config.shadow_policies.contains(name),
                in_flight: config.in_flight.get(name).map(|limit| InFlightPolicy {
                    handle: limiter.concurrency(name, *limit),
                    counters: metrics.counters(&format!("{name}:in-flight")),
                }),
            };
            (name.clone(), named)
        })
        .collect()
}

impl InForce {
    /// What `config` puts in force over `limiter`: the same validation for `serve` and
    /// `check-config` (the latter over a memory store).
    pub(crate) fn new(
        limiter: &Limiter<ServerStore>,
        metrics: &Metrics,
        config: &Config,
    ) -> Result<Self, BuildError> {
        let policies = configured_policies(limiter, metrics, config);
        let envoy = config.envoy.as_ref().map(|envoy| {
            let counters: HashMap<String, PolicyCounters> = envoy
                .policies()
                .map(|(name, _)| (name.to_owned(), metrics.counters(name)))
                .collect();
            let overrides = metrics.counters("envoy-override");
            EnvoyService::new(limiter, envoy).with_observer(Arc::new(
                move |policy: &str, key: &dyn Key, verdict| {
                    counters
                        .get(policy)
                        .unwrap_or(&overrides)
                        .record_descriptor(key, verdict);
                },
            ))
        });
        let proxy = config
            .proxy
            .as_ref()
            .map(|proxy| proxy::proxy_router(proxy, &policies, config, limiter))
            .transpose()?;
        Ok(Self {
            policies,
            inline: PolicyFront::inline(metrics),
            headers: config.headers,
            header_policies: config.header_policies,
            headers_include_shadow: config.headers_include_shadow,
            admin_token: config.admin_token.clone(),
            dashboard: config.dashboard,
            envoy,
            proxy,
        })
    }

    /// The configured policy called `name`.
    pub(crate) fn policy(&self, name: &str) -> Option<&ConfiguredPolicy> {
        self.policies.get(name)
    }

    /// The names of the configured policies, sorted.
    pub(crate) fn policy_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.policies.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The fields and counters of inline policies.
    pub(crate) fn inline(&self) -> &PolicyFront {
        &self.inline
    }

    /// Which rate-limit headers responses carry.
    pub(crate) fn headers(&self) -> HeaderStyle {
        self.headers
    }

    /// The decisions of `verdict` the rate-limit headers describe, as configured.
    pub(crate) fn described(&self, verdict: &Verdict<ServerStore>) -> Described {
        Described::of(verdict, self.header_policies, self.headers_include_shadow)
    }

    /// The token `POST /v1/reset` requires.
    pub(crate) fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Whether the dashboard is served (`[server] dashboard`).
    pub(crate) fn dashboard(&self) -> bool {
        self.dashboard
    }

    /// The configured policies, sorted by name.
    pub(crate) fn policies(&self) -> Vec<(&str, &ConfiguredPolicy)> {
        let mut policies: Vec<(&str, &ConfiguredPolicy)> = self
            .policies
            .iter()
            .map(|(name, policy)| (name.as_str(), policy))
            .collect();
        policies.sort_unstable_by_key(|(name, _)| *name);
        policies
    }

    /// Envoy's rate limit service, when `[envoy] config` is set.
    pub(crate) fn envoy(&self) -> Option<&EnvoyService<ServerStore>> {
        self.envoy.as_ref()
    }

    /// The proxy's router, when `[proxy]` is set.
    ///
    /// ```
    /// use tower::ServiceExt;
    /// use tollgate_server::{Config, ServerState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::parse(r#"
    /// [policies.api]
    /// limits = "1/minute"
    ///
    /// [proxy]
    /// listen = "127.0.0.1:8081"
    /// upstream = "http://127.0.0.1:1"
    /// default_policy = "api"
    /// "#, "tollgate.toml")?;
    /// let state = ServerState::new(&config, config.storage.open().await?)?;
    /// let router = state.in_force().proxy().cloned().expect("a [proxy] section");
    /// let get = || http::Request::get("/items").body(axum::body::Body::empty()).unwrap();
    /// // Allowed, and forwarded to an upstream that is not there.
    /// assert_eq!(router.clone().oneshot(get()).await?.status(), 502);
    /// assert_eq!(router.oneshot(get()).await?.status(), 429);
    /// # Ok(())
    /// # }
    /// ```
    pub fn proxy(&self) -> Option<&axum::Router> {
        self.proxy.as_ref()
    }
}
