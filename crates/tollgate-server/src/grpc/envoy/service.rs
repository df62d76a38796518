//! [`EnvoyService`]: `envoy.service.ratelimit.v3.RateLimitService` over policy handles: one
//! [`Admission`] per request, one status per descriptor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tollgate::{
    Admission, Charge, ChargeResult, Decision, Key, Limiter, Policy, PolicyHandle, Rate, Store,
};
use tonic::{Request, Response, Status};

use crate::grpc::envoy::matched::{DescriptorKey, Matched, apply_replaces, hit_key};
use crate::grpc::envoy::status::{DescriptorVerdict, descriptor_status, no_limit, over_limit};
use crate::grpc::envoy::tree::EnvoyConfig;
use crate::grpc::envoy::unit::Unit;

/// The scope under which the limiter keeps the policies that requests supply (a
/// descriptor's `limit`), followed by `:{domain}`.
const OVERRIDE_SCOPE: &str = "envoy-override";

/// A function told, for every descriptor a request matched to a rate limit, the policy's name,
/// the descriptor's key (its entries, `key=value` joined by `/`; written only if read) and the
/// [`DescriptorVerdict`]; see [`EnvoyService::with_observer`].
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tollgate::Key;
/// use tollgate_server::{DescriptorVerdict, Observer};
///
/// let seen: Arc<Mutex<Vec<String>>> = Arc::default();
/// let log = Arc::clone(&seen);
/// let observer: Observer = Arc::new(move |policy: &str, key: &dyn Key, verdict: DescriptorVerdict| {
///     let key = String::from_utf8_lossy(&key.key_bytes()).into_owned();
///     log.lock().expect("not poisoned").push(format!("{policy} {key} {verdict}"));
/// });
/// observer("envoy:edge:user", &"user=alice", DescriptorVerdict::OverLimit);
/// assert_eq!(*seen.lock().expect("not poisoned"), ["envoy:edge:user user=alice over_limit"]);
/// ```
pub type Observer = Arc<dyn Fn(&str, &dyn Key, DescriptorVerdict) + Send + Sync>;

/// Envoy's rate limit service (`envoy.service.ratelimit.v3.RateLimitService`): one policy
/// handle per rate limit of an [`EnvoyConfig`], over a [`Limiter`].
///
/// Serve it with tonic through [`EnvoyService::into_service`], or call
/// [`EnvoyService::check`] directly.
///
/// ```
/// use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{rate_limit_descriptor::Entry, RateLimitDescriptor};
/// use envoy_types::pb::envoy::service::ratelimit::v3::{rate_limit_response::Code, RateLimitRequest};
/// use tollgate::{Limiter, ManualClock, MemoryStore};
/// use tollgate_server::{EnvoyConfig, EnvoyService};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config = EnvoyConfig::from_yaml(
///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n",
///     "ratelimit.yaml",
/// )?;
/// let limiter = Limiter::new(MemoryStore::new()).with_clock(ManualClock::new());
/// let service = EnvoyService::new(&limiter, &config);
/// let request = RateLimitRequest {
///     domain: "edge".into(),
///     descriptors: vec![RateLimitDescriptor {
///         entries: vec![Entry { key: "user".into(), value: "alice".into() }],
///         ..Default::default()
///     }],
///     hits_addend: 0, // unset: 1
/// };
/// let first = service.check(&request).await?;
/// assert_eq!(first.overall_code, Code::Ok as i32);
/// assert_eq!(first.statuses[0].limit_remaining, 0);
/// let second = service.check(&request).await?;
/// assert_eq!(second.overall_code, Code::OverLimit as i32);
/// assert_eq!(second.statuses[0].duration_until_reset.map(|d| d.seconds), Some(60));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # The protocol
///
#[doc = include_str!("protocol.md")]
pub struct EnvoyService<S: Store> {
    limiter: Limiter<S>,
    config: EnvoyConfig,
    /// The handle of each rate limit of the configuration, by index; `None` for unlimited
    /// ones.
    handles: Vec<Option<PolicyHandle<S>>>,
    observer: Option<Observer>,
}

impl<S: Store> fmt::Debug for EnvoyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvoyService")
            .field("config", &self.config)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store> EnvoyService<S> {
    /// A service answering from `config`, with one policy per rate limit prepared over
    /// `limiter` (named as [`EnvoyConfig::policies`] lists them, so a reload that keeps a
    /// rate limit keeps its counts).
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore};
    /// use tollgate_server::{EnvoyConfig, EnvoyService};
    ///
    /// let config = EnvoyConfig::from_yaml("domain: edge\n", "ratelimit.yaml")?;
    /// let service = EnvoyService::new(&Limiter::new(MemoryStore::new()), &config);
    /// assert_eq!(service.config().domains().collect::<Vec<_>>(), ["edge"]);
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn new(limiter: &Limiter<S>, config: &EnvoyConfig) -> Self {
        let handles = config
            .limits()
            .iter()
            .map(|limit| {
                limit
                    .policy()
                    .map(|policy| limiter.policy(limit.policy_name(), policy.clone()))
            })
            .collect();
        Self {
            limiter: limiter.clone(),
            config: config.clone(),
            handles,
            observer: None,
        }
    }

    /// Calls `observer` with the policy name, the key and the [`DescriptorVerdict`] of every
    /// descriptor that a request matched to a rate limit, once the answer is decided (a
    /// request that fails with a status calls nothing): for counting hits by policy and
    /// outcome. Policy names are those of [`EnvoyConfig::policies`]; request-supplied limits
    /// are named `envoy-override:{domain}|{policy}`. It runs on the request's task: keep it
    /// quick.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{rate_limit_descriptor::Entry, RateLimitDescriptor};
    /// use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
    /// use tollgate::{Limiter, MemoryStore};
    /// use tollgate_server::{DescriptorVerdict, EnvoyConfig, EnvoyService};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let config = EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 1 }\n",
    ///     "ratelimit.yaml",
    /// )?;
    /// let seen: Arc<Mutex<Vec<(String, DescriptorVerdict)>>> = Arc::default();
    /// let log = Arc::clone(&seen);
    /// let service = EnvoyService::new(&Limiter::new(MemoryStore::new()), &config).with_observer(Arc::new(
    ///     move |policy: &str, _key: &dyn tollgate::Key, verdict| log.lock().expect("not poisoned").push((policy.to_owned(), verdict)),
    /// ));
    /// let descriptor = RateLimitDescriptor {
    ///     entries: vec![Entry { key: "user".into(), value: "alice".into() }],
    ///     ..Default::default()
    /// };
    /// let request = RateLimitRequest { domain: "edge".into(), descriptors: vec![descriptor], hits_addend: 0 };
    /// service.check(&request).await?;
    /// service.check(&request).await?;
    /// assert_eq!(
    ///     *seen.lock().expect("not poisoned"),
    ///     [
    ///         ("envoy:edge:user".to_owned(), DescriptorVerdict::Allowed),
    ///         ("envoy:edge:user".to_owned(), DescriptorVerdict::OverLimit),
    ///     ]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The configuration.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore};
    /// use tollgate_server::{EnvoyConfig, EnvoyService};
    ///
    /// let config = EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 100 }\n",
    ///     "ratelimit.yaml",
    /// )?;
    /// let service = EnvoyService::new(&Limiter::new(MemoryStore::new()), &config);
    /// assert_eq!(service.config().file(), "ratelimit.yaml");
    /// assert_eq!(service.config().limits()[0].policy_name(), "envoy:edge:user");
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub fn config(&self) -> &EnvoyConfig {
        &self.config
    }

    /// The tonic service to add to a `tonic::transport::Server`.
    ///
    /// ```no_run
    /// use tollgate::{Limiter, MemoryStore};
    /// use tollgate_server::{EnvoyConfig, EnvoyService};
    ///
    /// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = EnvoyConfig::load("ratelimit.yaml")?;
    /// let service = EnvoyService::new(&Limiter::new(MemoryStore::new()), &config);
    /// tonic::transport::Server::builder()
    ///     .add_service(service.into_service())
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
    /// use tollgate::{Limiter, MemoryStore};
    /// use tollgate_server::{EnvoyConfig, EnvoyService};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let config = EnvoyConfig::from_yaml(
    ///     "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 10 }\n",
    ///     "ratelimit.yaml",
    /// )?;
    /// let service = EnvoyService::new(&Limiter::new(MemoryStore::new()), &config);
    /// let user = |hits: Option<u64>| RateLimitDescriptor {
    ///     entries: vec![Entry { key: "user".into(), value: "alice".into() }],
    ///     hits_addend: hits.map(|value| UInt64Value { value }),
    ///     ..Default::default()
    /// };
    /// // The request's hits_addend (4) applies to descriptors without their own.
    /// let request = RateLimitRequest { domain: "edge".into(), descriptors: vec![user(None)], hits_addend: 4 };
    /// assert_eq!(service.check(&request).await?.statuses[0].limit_remaining, 6);
    /// // A descriptor's hits_addend of 0 only checks.
    /// let request = RateLimitRequest { domain: "edge".into(), descriptors: vec![user(Some(0))], hits_addend: 0 };
    /// let response = service.check(&request).await?;
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

        // Refunds (`is_negative_hits`) first, in order: they never refuse, and the charges
        // after them see the room they made. Then every other descriptor with a limit is one
        // charge of the admission; each may be given back if the answer cannot be completed.
        let mut admission = Admission::new().decide_every_charge();
        let mut plans = Vec::with_capacity(matched.len());
        for (descriptor, matched) in request.descriptors.iter().zip(&matched) {
            let cost = descriptor
                .hits_addend
                .as_ref()
                .map_or(default_cost, |addend| addend.value);
            let plan = match matched.handle() {
                _ if matched.is_unlimited() => Plan::Unlimited,
                None => Plan::NoLimit,
                Some(handle) if descriptor.is_negative_hits => {
                    let key = hit_key(descriptor);
                    let refund = cost.min(handle.max_cost());
                    handle.refund(&*key, refund).await.map_err(status)?;
                    Plan::Refunded(handle.peek(&*key).await.map_err(status)?)
                }
                Some(handle) => {
                    let charge = Charge::new(handle.clone(), &*hit_key(descriptor), cost);
                    admission.push(if matched.shadow_mode() {
                        charge.shadow().settle_after()
                    } else {
                        charge.settle_after()
                    });
                    Plan::Charged {
                        index: admission.charges().len() - 1,
                        handle,
                    }
                }
            };
            plans.push(plan);
        }
        let verdict = admission.decide().await;
        if let Some(err) = verdict.give_back_error() {
            tracing::warn!(error = %err, "could not give back the units of a refused envoy rate limit request");
        }
        if let Some(err) = verdict.results().iter().find_map(|result| match result {
            ChargeResult::Failed(err) => Some(err),
            _ => None,
        }) {
            return Err(unavailable(err));
        }
        let over = !verdict.is_admitted();
        let answered = answers(&plans, &matched, &request.descriptors, verdict.results()).await;
        let (statuses, verdicts) = match answered {
            Ok(answered) => answered,
            Err(err) => {
                // The request gets no answer: what it was charged is given back.
                if let Err(err) = verdict.into_settlement().settle(|_| false).await {
                    tracing::warn!(error = %err, "could not give back the units of an unanswered envoy rate limit request");
                }
                return Err(err);
            }
        };
        if let Some(observer) = &self.observer {
            for (policy, descriptor, verdict) in &verdicts {
                observer(policy, &DescriptorKey::new(descriptor), *verdict);
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
    ) -> Result<Matched<'a, S>, Status> {
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
            let handle = self
                .limiter
                .inline(&format!("{OVERRIDE_SCOPE}:{domain}"), &policy);
            return Ok(Matched::Supplied {
                handle,
                unit,
                requests_per_unit: supplied.requests_per_unit,
            });
        }
        let entries = descriptor
            .entries
            .iter()
            .map(|entry| (entry.key.as_str(), entry.value.as_str()));
        Ok(match self.config.find(domain, entries) {
            Some(index) => Matched::Configured {
                limit: &self.config.limits()[index],
                handle: self.handles[index].as_ref(),
            },
            None => Matched::None,
        })
    }
}

#[tonic::async_trait]
impl<S: Store> RateLimitService for EnvoyService<S> {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.check(request.get_ref()).await.map(Response::new)
    }
}

/// What a descriptor comes to, before its status is written.
enum Plan<'m, S: Store> {
    /// No limit applies.
    NoLimit,
    /// `unlimited: true`.
    Unlimited,
    /// `is_negative_hits`: given back already; the state after.
    Refunded(Decision),
    /// The admission's charge at `index`, on `handle`.
    Charged {
        index: usize,
        handle: &'m PolicyHandle<S>,
    },
}

/// The status of each descriptor of a decided request, and what observers are told (each
/// policy's name, the descriptor and its verdict).
type Answered<'m, 'd> = (
    Vec<DescriptorStatus>,
    Vec<(&'m str, &'d RateLimitDescriptor, DescriptorVerdict)>,
);

/// The status of each descriptor of a decided request, and what observers are told, from the
/// plan of each and the admission's `results`: a cost that can never fit is reported with
/// the state as it is (a peek).
async fn answers<'m, 'd, S: Store>(
    plans: &[Plan<'_, S>],
    matched: &'m [Matched<'_, S>],
    descriptors: &'d [RateLimitDescriptor],
    results: &[ChargeResult],
) -> Result<Answered<'m, 'd>, Status> {
    let mut statuses = Vec::with_capacity(plans.len());
    let mut verdicts = Vec::new();
    for ((plan, matched), descriptor) in plans.iter().zip(matched).zip(descriptors) {
        let (decision, verdict) = match plan {
            Plan::NoLimit => {
                statuses.push(no_limit(false));
                continue;
            }
            Plan::Unlimited => {
                verdicts.push((
                    matched.policy_name(),
                    descriptor,
                    DescriptorVerdict::Unlimited,
                ));
                statuses.push(no_limit(true));
                continue;
            }
            Plan::Refunded(decision) => (*decision, DescriptorVerdict::Refunded),
            Plan::Charged { index, handle } => {
                let shadow = matched.shadow_mode();
                match &results[*index] {
                    ChargeResult::Allowed(decision) => (*decision, DescriptorVerdict::Allowed),
                    ChargeResult::Denied(decision) | ChargeResult::ShadowDenied(decision) => {
                        (*decision, over_limit(shadow))
                    }
                    // Can never fit: over the limit, charging nothing.
                    _ => {
                        let decision = handle.peek(&*hit_key(descriptor)).await.map_err(status)?;
                        (decision, over_limit(shadow))
                    }
                }
            }
        };
        verdicts.push((matched.policy_name(), descriptor, verdict));
        statuses.push(descriptor_status(matched, &decision, verdict));
    }
    Ok((statuses, verdicts))
}

/// The gRPC status of a failed refund or peek: `UNAVAILABLE` for a store that failed.
fn status(err: tollgate::Error) -> Status {
    match err {
        tollgate::Error::Store(err) => unavailable(&err),
        err => Status::internal(format!("rate limit: {err}")),
    }
}

/// `UNAVAILABLE`, for a store that failed: Envoy's `failure_mode_deny` decides.
fn unavailable(err: &tollgate::StoreError) -> Status {
    tracing::warn!(error = %err, "envoy rate limit: store failed");
    Status::unavailable(format!("rate limit store failed: {err}"))
}
