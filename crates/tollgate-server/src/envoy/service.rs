//! [`EnvoyRateLimiter`]: `envoy.service.ratelimit.v3.RateLimitService` over a tollgate
//! [`Limiter`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use tollgate::{Clock, Decision, Limiter, Policy, Rate, Store};
use tonic::{Request, Response, Status};

use super::config::{EnvoyConfig, EnvoyLimit, Unit, encode_into};

/// The scope under which [`Limiter::hit_with`] keeps the policies that requests supply
/// (a descriptor's `limit`), followed by `:{domain}`.
const OVERRIDE_SCOPE: &str = "envoy-override";

/// What a descriptor's rate limit decided, as reported to an observer (see
/// [`EnvoyRateLimiter::with_observer`]).
///
/// ```
/// use tollgate_server::envoy::Verdict;
///
/// assert_eq!(Verdict::ShadowOverLimit.name(), "shadow_over_limit");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Within the limit (charged, unless it was a check of cost 0).
    Allowed,
    /// Over the limit: the descriptor's status is `OVER_LIMIT`.
    OverLimit,
    /// Over the limit in shadow mode: reported `OK`, but would have been refused.
    ShadowOverLimit,
    /// An `unlimited: true` descriptor: always `OK`, never counted.
    Unlimited,
    /// Units given back (a descriptor with `is_negative_hits`).
    Refunded,
}

impl Verdict {
    /// A short name for metrics labels: `allowed`, `over_limit`, `shadow_over_limit`,
    /// `unlimited` or `refunded`.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::OverLimit => "over_limit",
            Verdict::ShadowOverLimit => "shadow_over_limit",
            Verdict::Unlimited => "unlimited",
            Verdict::Refunded => "refunded",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A function told, for every descriptor a request matched to a rate limit, the policy's name
/// and the [`Verdict`]; see [`EnvoyRateLimiter::with_observer`].
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use tollgate_server::envoy::{Observer, Verdict};
///
/// let refused = Arc::new(AtomicU64::new(0));
/// let count = Arc::clone(&refused);
/// let observer: Observer = Arc::new(move |_policy: &str, verdict| {
///     if verdict == Verdict::OverLimit {
///         count.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// observer("envoy:edge:user", Verdict::OverLimit);
/// assert_eq!(refused.load(Ordering::Relaxed), 1);
/// ```
pub type Observer = Arc<dyn Fn(&str, Verdict) + Send + Sync>;

/// Envoy's rate limit service (`envoy.service.ratelimit.v3.RateLimitService`) over a
/// [`Limiter`] holding one policy per rate limit of an [`EnvoyConfig`].
///
/// Serve it with tonic through [`EnvoyRateLimiter::into_service`], or call
/// [`EnvoyRateLimiter::check`] directly. See the [module docs](crate::envoy) for how a
/// request is answered.
///
/// ```
/// use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{rate_limit_descriptor::Entry, RateLimitDescriptor};
/// use envoy_types::pb::envoy::service::ratelimit::v3::{rate_limit_response::Code, RateLimitRequest};
/// use tollgate::{ManualClock, MemoryStore};
/// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config = EnvoyConfig::from_yaml(
///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n",
///     "ratelimit.yaml",
/// )?;
/// let limiter = EnvoyRateLimiter::new(MemoryStore::new(), &config).with_clock(ManualClock::new());
/// let request = RateLimitRequest {
///     domain: "edge".into(),
///     descriptors: vec![RateLimitDescriptor {
///         entries: vec![Entry { key: "user".into(), value: "alice".into() }],
///         ..Default::default()
///     }],
///     hits_addend: 0, // unset: 1
/// };
/// let first = limiter.check(&request).await?;
/// assert_eq!(first.overall_code, Code::Ok as i32);
/// assert_eq!(first.statuses[0].limit_remaining, 0);
/// let second = limiter.check(&request).await?;
/// assert_eq!(second.overall_code, Code::OverLimit as i32);
/// assert_eq!(second.statuses[0].duration_until_reset.map(|d| d.seconds), Some(60));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct EnvoyRateLimiter<S: Store> {
    limiter: Limiter<S>,
    config: EnvoyConfig,
    observer: Option<Observer>,
}

impl<S: Store> fmt::Debug for EnvoyRateLimiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvoyRateLimiter")
            .field("config", &self.config)
            .field("clock", &self.limiter.clock())
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store> EnvoyRateLimiter<S> {
    /// A service answering from `config`, counting in `store`, with one policy per rate
    /// limit (named as [`EnvoyConfig::policies`] lists them) and a monotonic clock.
    ///
    /// Share a store between several front ends, or across configuration reloads, by passing
    /// an `Arc` of it: the same policy name finds the same counts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate::MemoryStore;
    /// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter};
    ///
    /// let config = EnvoyConfig::from_yaml("domain: edge\n", "ratelimit.yaml")?;
    /// let store = Arc::new(MemoryStore::new());
    /// let limiter = EnvoyRateLimiter::new(Arc::clone(&store), &config);
    /// assert_eq!(limiter.config().file(), "ratelimit.yaml");
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn new(store: S, config: &EnvoyConfig) -> Self {
        let limiter = config
            .policies()
            .fold(Limiter::new(store), |limiter, (name, policy)| {
                limiter.with_policy(name, policy.clone())
            });
        Self {
            limiter,
            config: config.clone(),
            observer: None,
        }
    }

    /// Replaces the clock (a [`tollgate::ManualClock`] in tests).
    ///
    /// ```
    /// use tollgate::{ManualClock, MemoryStore};
    /// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter};
    ///
    /// let config = EnvoyConfig::from_yaml("domain: edge\n", "ratelimit.yaml")?;
    /// let limiter = EnvoyRateLimiter::new(MemoryStore::new(), &config).with_clock(ManualClock::new());
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn with_clock(self, clock: impl Clock) -> Self {
        Self {
            limiter: self.limiter.with_clock(clock),
            ..self
        }
    }

    /// Calls `observer` with the policy name and the [`Verdict`] of every descriptor that a
    /// request matched to a rate limit, once the answer is decided (a request that fails
    /// with a status calls nothing): for counting hits by policy and outcome. Policy names
    /// are those of [`EnvoyConfig::policies`]; request-supplied limits are named
    /// `envoy-override:{domain}|{policy}`. It runs on the request's task: keep it quick.
    ///
    /// Taking an [`Observer`] (an `Arc`) lets one set of counters outlive a configuration
    /// reload.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{rate_limit_descriptor::Entry, RateLimitDescriptor};
    /// use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
    /// use tollgate::MemoryStore;
    /// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter, Verdict};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let config = EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 1 }\n",
    ///     "ratelimit.yaml",
    /// )?;
    /// let seen: Arc<Mutex<Vec<(String, Verdict)>>> = Arc::default();
    /// let log = Arc::clone(&seen);
    /// let limiter = EnvoyRateLimiter::new(MemoryStore::new(), &config).with_observer(Arc::new(
    ///     move |policy: &str, verdict| log.lock().expect("not poisoned").push((policy.to_owned(), verdict)),
    /// ));
    /// let request = RateLimitRequest {
    ///     domain: "edge".into(),
    ///     descriptors: vec![RateLimitDescriptor {
    ///         entries: vec![Entry { key: "user".into(), value: "alice".into() }],
    ///         ..Default::default()
    ///     }],
    ///     hits_addend: 1,
    /// };
    /// limiter.check(&request).await?;
    /// limiter.check(&request).await?;
    /// assert_eq!(
    ///     *seen.lock().expect("not poisoned"),
    ///     [("envoy:edge:user".to_owned(), Verdict::Allowed), ("envoy:edge:user".to_owned(), Verdict::OverLimit)]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn with_observer(self, observer: Observer) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }

    /// The configuration.
    ///
    /// ```
    /// use tollgate::MemoryStore;
    /// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter};
    ///
    /// let config = EnvoyConfig::from_yaml("domain: edge\n", "ratelimit.yaml")?;
    /// let limiter = EnvoyRateLimiter::new(MemoryStore::new(), &config);
    /// assert_eq!(limiter.config().domains().collect::<Vec<_>>(), ["edge"]);
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn config(&self) -> &EnvoyConfig {
        &self.config
    }

    /// The limiter, with a policy per rate limit that is not unlimited.
    ///
    /// ```
    /// use tollgate::MemoryStore;
    /// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter};
    ///
    /// let config = EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: second, requests_per_unit: 5 }\n",
    ///     "ratelimit.yaml",
    /// )?;
    /// let limiter = EnvoyRateLimiter::new(MemoryStore::new(), &config);
    /// let policy = limiter.limiter().policy("envoy:edge:user").expect("installed");
    /// assert_eq!(policy.to_string(), "5/second (fixed-window)");
    /// # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
    /// ```
    pub fn limiter(&self) -> &Limiter<S> {
        &self.limiter
    }

    /// The tonic service to add to a `tonic::transport::Server`.
    ///
    /// ```no_run
    /// use tollgate::MemoryStore;
    /// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter};
    ///
    /// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = EnvoyConfig::load("ratelimit.yaml")?;
    /// tonic::transport::Server::builder()
    ///     .add_service(EnvoyRateLimiter::new(MemoryStore::new(), &config).into_service())
    ///     .serve("127.0.0.1:8081".parse()?)
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_service(self) -> RateLimitServiceServer<Self> {
        RateLimitServiceServer::new(self)
    }

    /// Answers a `ShouldRateLimit` request: the body of the gRPC method.
    ///
    /// Fails with `INVALID_ARGUMENT` for an empty domain, no descriptors or a request-supplied
    /// limit with an unknown unit, and with `UNAVAILABLE` when the store fails (after giving
    /// back what the request had charged, if the store lets it), so that Envoy's
    /// `failure_mode_deny` decides.
    ///
    /// ```
    /// use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{rate_limit_descriptor::Entry, RateLimitDescriptor};
    /// use envoy_types::pb::envoy::service::ratelimit::v3::{rate_limit_response::Code, RateLimitRequest};
    /// use envoy_types::pb::google::protobuf::UInt64Value;
    /// use tollgate::MemoryStore;
    /// use tollgate_server::envoy::{EnvoyConfig, EnvoyRateLimiter};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let config = EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 10 }\n",
    ///     "ratelimit.yaml",
    /// )?;
    /// let limiter = EnvoyRateLimiter::new(MemoryStore::new(), &config);
    /// let user = |hits: Option<u64>| RateLimitDescriptor {
    ///     entries: vec![Entry { key: "user".into(), value: "alice".into() }],
    ///     hits_addend: hits.map(|value| UInt64Value { value }),
    ///     ..Default::default()
    /// };
    /// // The request's hits_addend (4) applies to descriptors without their own.
    /// let request = RateLimitRequest { domain: "edge".into(), descriptors: vec![user(None)], hits_addend: 4 };
    /// assert_eq!(limiter.check(&request).await?.statuses[0].limit_remaining, 6);
    /// // A descriptor's hits_addend of 0 only checks.
    /// let request = RateLimitRequest { domain: "edge".into(), descriptors: vec![user(Some(0))], hits_addend: 0 };
    /// let response = limiter.check(&request).await?;
    /// assert_eq!((response.overall_code, response.statuses[0].limit_remaining), (Code::Ok as i32, 6));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn check(&self, request: &RateLimitRequest) -> Result<RateLimitResponse, Status> {
        if request.domain.is_empty() {
            return Err(Status::invalid_argument(
                "rate limit domain must not be empty",
            ));
        }
        if request.descriptors.is_empty() {
            return Err(Status::invalid_argument(
                "a rate limit request needs at least one descriptor",
            ));
        }
        let default_cost = match request.hits_addend {
            0 => 1,
            n => u64::from(n),
        };
        let mut matched = request
            .descriptors
            .iter()
            .map(|descriptor| self.matched(&request.domain, descriptor))
            .collect::<Result<Vec<_>, _>>()?;
        apply_replaces(&mut matched);

        let mut statuses = Vec::with_capacity(matched.len());
        let mut verdicts = Vec::new();
        let mut charged = Vec::new();
        for (descriptor, matched) in request.descriptors.iter().zip(&matched) {
            let cost = descriptor
                .hits_addend
                .as_ref()
                .map_or(default_cost, |addend| addend.value);
            let outcome = match self.apply(matched, descriptor, cost, &mut charged).await {
                Ok(outcome) => outcome,
                Err(err) => {
                    self.give_back(&charged).await;
                    return Err(err);
                }
            };
            if let Some(verdict) = outcome.verdict {
                verdicts.push((matched.policy_name(), verdict));
            }
            statuses.push(outcome.status);
        }

        let over = statuses.iter().any(|s| s.code == Code::OverLimit as i32);
        if over {
            // The request is refused: like a policy with several rates, it charges all of
            // its limits or none.
            self.give_back(&charged).await;
        }
        if let Some(observer) = &self.observer {
            for (policy, verdict) in &verdicts {
                observer(policy, *verdict);
            }
        }
        tracing::debug!(
            domain = %request.domain,
            descriptors = request.descriptors.len(),
            over_limit = over,
            "envoy rate limit request"
        );
        Ok(RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            ..Default::default()
        })
    }

    /// The limit a descriptor is held to, before `replaces`.
    fn matched<'a>(
        &'a self,
        domain: &str,
        descriptor: &RateLimitDescriptor,
    ) -> Result<Matched<'a>, Status> {
        let entries = descriptor
            .entries
            .iter()
            .map(|entry| (entry.key.as_str(), entry.value.as_str()));
        if let Some(supplied) = &descriptor.limit {
            // A limit sent with the descriptor replaces the configuration's, for a
            // configured domain, as in envoyproxy/ratelimit.
            if !self.config.domains().any(|d| d == domain) {
                return Ok(Matched::None);
            }
            let unit = Unit::from_proto(supplied.unit).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "descriptor limit has unknown unit {}",
                    supplied.unit
                ))
            })?;
            let rate = Rate::new(
                u64::from(supplied.requests_per_unit),
                Duration::from_secs(unit.seconds()),
            )
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
            let policy = Policy::fixed_window(rate.into());
            let scope = format!("{OVERRIDE_SCOPE}:{domain}");
            return Ok(Matched::Supplied {
                name: format!("{scope}|{policy}"),
                scope,
                policy,
                unit,
                requests_per_unit: supplied.requests_per_unit,
            });
        }
        Ok(match self.config.find(domain, entries) {
            Some(limit) => Matched::Configured(limit),
            None => Matched::None,
        })
    }

    /// Applies one descriptor's hit (or check, or refund) of `cost` units, recording what it
    /// charged in `charged`.
    async fn apply<'m>(
        &self,
        matched: &'m Matched<'_>,
        descriptor: &RateLimitDescriptor,
        cost: u64,
        charged: &mut Vec<Charge<'m>>,
    ) -> Result<Outcome, Status> {
        let (limit, shadow) = match matched {
            Matched::None => return Ok(Outcome::unlimited(None)),
            Matched::Configured(limit) if limit.is_unlimited() => {
                return Ok(Outcome::unlimited(Some(Verdict::Unlimited)));
            }
            Matched::Configured(limit) => (
                RateLimit {
                    name: limit.name().unwrap_or_default().to_owned(),
                    requests_per_unit: limit.requests_per_unit().unwrap_or_default(),
                    unit: limit.unit().map_or(0, Unit::proto),
                },
                limit.shadow_mode(),
            ),
            Matched::Supplied {
                unit,
                requests_per_unit,
                ..
            } => (
                RateLimit {
                    name: String::new(),
                    requests_per_unit: *requests_per_unit,
                    unit: unit.proto(),
                },
                false,
            ),
        };
        let Some(target) = matched.target() else {
            return Ok(Outcome::unlimited(None));
        };
        let key = hit_key(descriptor);
        let max_cost = target.max_cost(&self.limiter);

        let (decision, verdict) = if descriptor.is_negative_hits {
            let refund = cost.min(max_cost);
            target.refund(&self.limiter, &key, refund).await?;
            (target.hit(&self.limiter, &key, 0).await?, Verdict::Refunded)
        } else if cost > max_cost {
            // Can never fit: over the limit, without charging anything.
            let decision = target.hit(&self.limiter, &key, 0).await?;
            (decision, over(shadow))
        } else {
            let decision = target.hit(&self.limiter, &key, cost).await?;
            if decision.allowed() {
                if cost > 0 {
                    charged.push(Charge {
                        target,
                        key: key.clone(),
                        cost,
                    });
                }
                (decision, Verdict::Allowed)
            } else {
                (decision, over(shadow))
            }
        };
        let until_reset = match decision.retry_after() {
            Some(retry_after) if verdict != Verdict::Allowed => retry_after,
            _ => decision.reset_after(),
        };
        Ok(Outcome {
            status: DescriptorStatus {
                code: if verdict == Verdict::OverLimit {
                    Code::OverLimit
                } else {
                    Code::Ok
                } as i32,
                current_limit: Some(limit),
                limit_remaining: u32::try_from(decision.remaining()).unwrap_or(u32::MAX),
                duration_until_reset: Some(whole_seconds(until_reset)),
                quota: None,
            },
            verdict: Some(verdict),
        })
    }

    /// Gives back what a refused (or failed) request charged; a store that fails now only
    /// costs the client those units, so it is logged, not reported.
    async fn give_back(&self, charged: &[Charge<'_>]) {
        for charge in charged {
            if let Err(err) = charge
                .target
                .refund(&self.limiter, &charge.key, charge.cost)
                .await
            {
                tracing::warn!(
                    policy = charge.target.name(),
                    error = %err,
                    "could not give back the units of a refused envoy rate limit request"
                );
            }
        }
    }
}

#[tonic::async_trait]
impl<S: Store> RateLimitService for EnvoyRateLimiter<S> {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.check(request.get_ref()).await.map(Response::new)
    }
}

/// The limit a descriptor is held to.
enum Matched<'a> {
    /// No limit: not configured, or replaced.
    None,
    /// A rate limit of the configuration.
    Configured(&'a EnvoyLimit),
    /// A limit sent with the descriptor, applied as an inline policy.
    Supplied {
        /// `{scope}|{policy}`, as the limiter names it.
        name: String,
        scope: String,
        policy: Policy,
        unit: Unit,
        requests_per_unit: u32,
    },
}

impl Matched<'_> {
    /// The policy name, for observers.
    fn policy_name(&self) -> &str {
        match self {
            Matched::None => "",
            Matched::Configured(limit) => limit.policy_name(),
            Matched::Supplied { name, .. } => name,
        }
    }

    /// Where hits go, unless there is no limit or it is unlimited.
    fn target(&self) -> Option<Target<'_>> {
        match self {
            Matched::None => None,
            Matched::Configured(limit) => {
                limit.policy()?;
                Some(Target::Named(limit.policy_name()))
            }
            Matched::Supplied {
                name,
                scope,
                policy,
                ..
            } => Some(Target::Inline {
                name,
                scope,
                policy,
            }),
        }
    }
}

/// Removes the limits that other matched limits replace (by `name`); a replaced limit's
/// descriptor is then reported as having no limit.
fn apply_replaces(matched: &mut [Matched<'_>]) {
    let replaced: HashSet<&str> = matched
        .iter()
        .filter_map(|m| match m {
            Matched::Configured(limit) => Some(limit.replaces()),
            _ => None,
        })
        .flatten()
        .map(String::as_str)
        .collect();
    if replaced.is_empty() {
        return;
    }
    let remove: Vec<bool> = matched
        .iter()
        .map(|m| match m {
            Matched::Configured(limit) => limit.name().is_some_and(|n| replaced.contains(n)),
            _ => false,
        })
        .collect();
    for (m, remove) in matched.iter_mut().zip(remove) {
        if remove {
            *m = Matched::None;
        }
    }
}

/// A policy of the limiter: named, or inline.
#[derive(Clone, Copy)]
enum Target<'a> {
    Named(&'a str),
    Inline {
        name: &'a str,
        scope: &'a str,
        policy: &'a Policy,
    },
}

impl<'a> Target<'a> {
    fn name(&self) -> &'a str {
        match self {
            Target::Named(name) | Target::Inline { name, .. } => name,
        }
    }

    /// The largest cost a hit may have (0 for a policy the limiter does not know, which
    /// cannot happen: every configured limit is installed).
    fn max_cost<S: Store>(&self, limiter: &Limiter<S>) -> u64 {
        match self {
            Target::Named(name) => limiter.policy(name).map_or(0, Policy::max_cost),
            Target::Inline { policy, .. } => policy.max_cost(),
        }
    }

    async fn hit<S: Store>(
        &self,
        limiter: &Limiter<S>,
        key: &str,
        cost: u64,
    ) -> Result<Decision, Status> {
        match self {
            Target::Named(name) => limiter.hit_cost(name, key, cost).await,
            Target::Inline { scope, policy, .. } => {
                limiter.hit_with(scope, policy, key, cost).await
            }
        }
        .map_err(|err| status(self.name(), err))
    }

    async fn refund<S: Store>(
        &self,
        limiter: &Limiter<S>,
        key: &str,
        cost: u64,
    ) -> Result<(), Status> {
        match self {
            Target::Named(name) => limiter.refund(name, key, cost).await,
            Target::Inline { scope, policy, .. } => {
                limiter.refund_with(scope, policy, key, cost).await
            }
        }
        .map_err(|err| status(self.name(), err))
    }
}

/// A hit that was charged: given back if the request is refused.
struct Charge<'a> {
    target: Target<'a>,
    key: String,
    cost: u64,
}

/// One descriptor's answer.
struct Outcome {
    status: DescriptorStatus,
    /// `None` when no limit applied.
    verdict: Option<Verdict>,
}

impl Outcome {
    /// `OK` without a limit: remaining `u32::MAX` for an unlimited descriptor (as
    /// envoyproxy/ratelimit answers), 0 when nothing matched.
    fn unlimited(verdict: Option<Verdict>) -> Self {
        Self {
            status: DescriptorStatus {
                code: Code::Ok as i32,
                limit_remaining: if verdict.is_some() { u32::MAX } else { 0 },
                ..Default::default()
            },
            verdict,
        }
    }
}

/// The verdict of a hit over the limit.
fn over(shadow: bool) -> Verdict {
    if shadow {
        Verdict::ShadowOverLimit
    } else {
        Verdict::OverLimit
    }
}

/// The key of a descriptor's hit: its entries, `key=value` joined by `/` (percent-encoded
/// as policy names are), so that every distinct value counts apart.
fn hit_key(descriptor: &RateLimitDescriptor) -> String {
    let mut key = String::new();
    for (i, entry) in descriptor.entries.iter().enumerate() {
        if i > 0 {
            key.push('/');
        }
        encode_into(&mut key, &entry.key);
        key.push('=');
        encode_into(&mut key, &entry.value);
    }
    key
}

/// `d` rounded up to whole seconds: Envoy renders `x-ratelimit-reset` from the seconds
/// alone, so a fraction must not read as 0.
fn whole_seconds(d: Duration) -> ProtoDuration {
    let seconds = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    ProtoDuration {
        seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

/// The gRPC status of a limiter error: `UNAVAILABLE` for a store that failed.
fn status(policy: &str, err: tollgate::Error) -> Status {
    match err {
        tollgate::Error::Store(err) => {
            tracing::warn!(policy, error = %err, "envoy rate limit: store failed");
            Status::unavailable(format!("rate limit store failed: {err}"))
        }
        tollgate::Error::TooManyInlinePolicies { .. } => {
            Status::resource_exhausted(format!("too many distinct request-supplied limits: {err}"))
        }
        err => Status::internal(format!("rate limit policy {policy:?}: {err}")),
    }
}
