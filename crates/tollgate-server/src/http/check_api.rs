//! The HTTP check API: `POST /v1/check`, `/v1/peek`, `/v1/charge`, `/v1/reset`,
//! `/v1/acquire`, `/v1/release`, `GET /livez`, `/readyz` (and `/healthz`, the same),
//! `GET /metrics` and `GET /openapi.json` (the OpenAPI document of all of them:
//! `openapi.rs`).
//!
//! A check names a configured policy, or carries one inline:
//!
//! ```text
//! POST /v1/check  {"policy": "login", "key": "user:42", "cost": 1}
//! POST /v1/check  {"limits": "5/minute", "strategy": "fixed-window", "key": "user:42"}
//! POST /v1/check  {"limits": "3/minute", "shadow": true, "key": "user:42"}
//!
//! 200 (allowed) or 429 (denied), with the configured rate-limit headers:
//! {"allowed": true, "limit": 5, "remaining": 4, "reset_after_ms": 60000, "retry_after_ms": null,
//!  "shadow_denied": false}
//! ```
//!
//! A shadow policy (`[policies.NAME] shadow = true`, or an inline one with `"shadow": true`,
//! counted apart from the same limits enforced) is counted and decided but never denies:
//! over its limit, the answer is 200 with `"allowed": true` and `"shadow_denied": true`,
//! `retry_after_ms` null and no `Retry-After`. `shadow_denied` is in every answer, false
//! unless a shadow policy would have denied. The rate-limit headers describe enforced
//! policies only, unless `[server] headers_include_shadow = true`.
//!
//! A policy with a `max_delay` (or an inline one with `"max_delay_ms"`) allows a request
//! that fits within it with a reserved slot: the answer is 200 with `"allowed": true` and
//! `"delay_ms": N`, and the caller waits N ms before it proceeds (the check API does not wait
//! itself; the slot is already taken, whether or not the caller uses it). `delay_ms` is only
//! in such answers. A request that would wait longer is denied as usual.
//!
//! A key banned after repeated breaches (a policy with `ban_after` and `ban_for`) is denied
//! with `"banned": true`. `POST /v1/charge` (the same body, `cost` required) charges a cost
//! learnt after the fact, whatever the room left, and answers 200 with the decision after
//! the charge: `"allowed"` says whether a hit of one unit would be allowed now.
//!
//! `POST /v1/acquire` and `/v1/release` take and give back concurrency slots of a policy
//! with `max_in_flight` (`slots_api.rs`).
//!
//! Every mistake is a 4xx with `{"error": "..."}` saying what is wrong; a storage failure is
//! a 503 (under `on_storage_error = "deny"`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tollgate::{
    Admission, Ban, Charge, ChargeResult, Decision, Policy, PolicyHandle, Rate, Rates, Strategy,
};
use tollgate_tower::{json_error, store_unavailable};

use crate::config::INLINE_POLICY;
use crate::http::health::StorageHealth;
use crate::http::slots_api;

/// The scope of the check API's shadow inline policies, whose counts are apart from the
/// same limits enforced.
const INLINE_SHADOW_SCOPE: &str = "inline-shadow";
use crate::state::{InForce, PolicyFront, ServerState, ServerStore};

/// The check API's router over `state`.
///
/// ```
/// use std::sync::Arc;
/// use tollgate_server::{Config, ServerState, check_api_router};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse("[policies.login]\nlimits = \"5/minute\"\n", "tollgate.toml")?;
/// let state = ServerState::new(&config, config.storage.open().await?)?;
/// let router: axum::Router = check_api_router(Arc::new(state));
/// let check = http::Request::post("/v1/check")
///     .body(axum::body::Body::from(r#"{"policy": "login", "key": "user:42"}"#))?;
/// let response = tower::ServiceExt::oneshot(router, check).await?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["ratelimit"], r#""login";r=4;t=60"#);
/// # Ok(())
/// # }
/// ```
pub fn check_api_router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/check", post(check))
        .route("/v1/peek", post(peek))
        .route("/v1/charge", post(charge))
        .route("/v1/reset", post(reset))
        .route("/v1/acquire", post(slots_api::acquire))
        .route("/v1/release", post(slots_api::release))
        .route("/healthz", get(readyz))
        .route("/readyz", get(readyz))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(super::openapi::openapi))
        .merge(crate::dashboard::routes::dashboard_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `{"error": ...}` for a path the API does not have.
async fn not_found(uri: axum::http::Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        &format!(
            "no such endpoint {:?}: the API has {}",
            uri.path(),
            super::openapi::operations()
        ),
    )
}

/// `{"error": ...}` for a method a path does not take.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{} does not take {method}", uri.path()),
    )
}

/// A request body, or the JSON error saying why it could not be read (too large: 413).
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|rejection| {
        Refusal(
            rejection.status(),
            format!("request body: {}", rejection.body_text()),
        )
    })
}

/// The body of a check, a peek or a reset. The policy's name and the key are borrowed from
/// the body unless they hold escapes: no allocation for them per check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest<'a> {
    /// A configured policy, by name...
    #[serde(borrow)]
    policy: Option<Cow<'a, str>>,
    /// ... or an inline one.
    limits: Option<String>,
    strategy: Option<String>,
    burst: Option<u64>,
    /// Makes an inline policy a shadow one.
    shadow: Option<bool>,
    /// An inline policy's ban: the breaches that ban (`"3/10 minutes"`) and for how long
    /// (`"1 hour"`), both or neither.
    ban_after: Option<String>,
    ban_for: Option<String>,
    /// Lets an inline policy's requests wait up to this many milliseconds for a reserved
    /// slot (see `tollgate::Policy::with_max_delay`).
    max_delay_ms: Option<u64>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    /// 1 unless given; `/v1/charge` requires it.
    cost: Option<u64>,
}

/// A request the API refuses: its status and what is wrong.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_error(self.0, &self.1)
    }
}

impl<'a> CheckRequest<'a> {
    /// The policy's name for messages: the configured one, or the notation of an inline one.
    fn policy_name(&self) -> &str {
        self.policy
            .as_deref()
            .or(self.limits.as_deref())
            .unwrap_or(INLINE_POLICY)
    }

    fn parse(body: &'a [u8]) -> Result<Self, Refusal> {
        // serde reads a struct from an array of its fields too; the API takes objects only.
        if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "invalid request body: expected a JSON object, such as {\"policy\": \"login\", \"key\": \"user:42\"}".to_owned(),
            ));
        }
        serde_json::from_slice(body).map_err(|err| {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {err}"),
            )
        })
    }

    /// The policy the request is about (borrowed from the configuration in force, or an
    /// inline one), with its fields and counters, and whether it is a shadow one.
    fn policy<'f>(
        &self,
        state: &ServerState,
        in_force: &'f InForce,
    ) -> Result<(Cow<'f, PolicyHandle<ServerStore>>, &'f PolicyFront, bool), Refusal> {
        let bad = |message: String| Refusal(StatusCode::BAD_REQUEST, message);
        match (&self.policy, &self.limits) {
            (Some(name), None) => {
                if self.strategy.is_some() || self.burst.is_some() {
                    return Err(bad(
                        "strategy and burst go with inline limits, not a named policy".to_owned(),
                    ));
                }
                if self.shadow.is_some() {
                    return Err(bad(
                        "shadow goes with inline limits; a named policy is a shadow one when \
                         configured with shadow = true"
                            .to_owned(),
                    ));
                }
                if self.ban_after.is_some() || self.ban_for.is_some() {
                    return Err(bad(
                        "ban_after and ban_for go with inline limits, not a named policy \
                         (configure its ban in [policies])"
                            .to_owned(),
                    ));
                }
                if self.max_delay_ms.is_some() {
                    return Err(bad(
                        "max_delay_ms goes with inline limits, not a named policy \
                         (configure its max_delay in [policies])"
                            .to_owned(),
                    ));
                }
                let Some(named) = in_force.policy(name) else {
                    let names = in_force.policy_names();
                    return Err(Refusal(
                        StatusCode::NOT_FOUND,
                        format!(
                            "unknown policy {name:?}; configured: {}",
                            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                        ),
                    ));
                };
                Ok((Cow::Borrowed(&named.handle), &named.front, named.shadow))
            }
            (None, Some(limits)) => {
                let rates: Rates = limits.parse().map_err(|err| bad(format!("limits: {err}")))?;
                let strategy: Strategy = match &self.strategy {
                    Some(name) => name.parse().map_err(|err| bad(format!("strategy: {err}")))?,
                    None => Strategy::FixedWindow,
                };
                let policy = Policy::from_parts(strategy, rates, self.burst).map_err(|err| {
                    let field = if err.is_about_rates() { "limits" } else { "burst" };
                    bad(format!("{field}: {err}"))
                })?;
                let policy = match self.inline_ban()? {
                    Some(ban) => policy.with_ban(ban),
                    None => policy,
                };
                let policy = match self.max_delay_ms {
                    Some(ms) => policy
                        .with_max_delay(Duration::from_millis(ms))
                        .map_err(|err| bad(format!("max_delay_ms: {err}")))?,
                    None => policy,
                };
                // A shadow inline policy counts apart from the same limits enforced.
                let shadow = self.shadow.unwrap_or(false);
                let scope = if shadow {
                    INLINE_SHADOW_SCOPE
                } else {
                    INLINE_POLICY
                };
                let handle = state.limiter().inline(scope, &policy);
                Ok((Cow::Owned(handle), in_force.inline(), shadow))
            }
            (Some(_), Some(_)) => Err(bad(
                "give either \"policy\" (a configured name) or \"limits\" (inline), not both"
                    .to_owned(),
            )),
            (None, None) => Err(bad(
                "missing \"policy\" (a configured name) or \"limits\" (inline, such as \"5/minute\")"
                    .to_owned(),
            )),
        }
    }
}

impl CheckRequest<'_> {
    /// The ban of an inline policy, from `ban_after` and `ban_for`.
    fn inline_ban(&self) -> Result<Option<Ban>, Refusal> {
        let bad = |message: String| Refusal(StatusCode::BAD_REQUEST, message);
        let (after, duration) = match (&self.ban_after, &self.ban_for) {
            (None, None) => return Ok(None),
            (Some(after), Some(duration)) => (after, duration),
            _ => {
                return Err(bad(
                    "give both \"ban_after\" (such as \"3/10 minutes\") and \"ban_for\" \
                     (such as \"1 hour\"), or neither"
                        .to_owned(),
                ));
            }
        };
        let after: Rate = after
            .parse()
            .map_err(|err| bad(format!("ban_after: {err}")))?;
        let duration =
            tollgate::parse_duration(duration).map_err(|err| bad(format!("ban_for: {err}")))?;
        Ban::new(after, duration)
            .map(Some)
            .map_err(|err| bad(format!("ban_after: {err}")))
    }
}

async fn check(
    State(state): State<Arc<ServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    decide(&state, body, Asked::Check).await
}

async fn peek(
    State(state): State<Arc<ServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    decide(&state, body, Asked::Peek).await
}

/// What a request to [`decide`] asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// A hit of the body's cost, counted in `/metrics`.
    Check,
    /// A look at the count without charging (cost 0), not counted as a hit.
    Peek,
}

/// Applies the hit a request body asks for, or peeks.
async fn decide(
    state: &ServerState,
    body: Result<Bytes, BytesRejection>,
    asked: Asked,
) -> Response {
    let started = Instant::now();
    let body = match read_body(body) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let request = match CheckRequest::parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let in_force = state.in_force();
    let (handle, front, shadow) = match request.policy(state, &in_force) {
        Ok(policy) => policy,
        Err(refusal) => return refusal.into_response(),
    };
    let cost = match asked {
        Asked::Check => request.cost.unwrap_or(1),
        Asked::Peek => 0,
    };
    let handle = handle.into_owned();
    let charge = Charge::new(handle.clone(), &*request.key, cost);
    let verdict = Admission::new()
        .charge(if shadow { charge.shadow() } else { charge })
        .decide()
        .await;
    let result = &verdict.results()[0];
    if asked == Asked::Check {
        front.counters.record(&*request.key, result);
        state.metrics().took(started.elapsed());
    }
    let peeked;
    let decision = match result {
        ChargeResult::Allowed(decision)
        | ChargeResult::Denied(decision)
        | ChargeResult::ShadowDenied(decision) => decision,
        // A shadow policy never refuses, even a cost it could never allow: the answer
        // describes the key's count as it is.
        ChargeResult::CostExceedsLimit { .. } if shadow => match handle.peek(&*request.key).await {
            Ok(decision) => {
                peeked = decision;
                &peeked
            }
            Err(err) => {
                tracing::warn!(policy = request.policy_name(), "storage failed: {err}");
                return store_unavailable();
            }
        },
        &ChargeResult::CostExceedsLimit { cost, max_cost } => {
            let error = tollgate::Error::CostExceedsLimit {
                policy: request.policy_name().to_owned(),
                cost,
                max_cost,
            };
            return json_error(StatusCode::BAD_REQUEST, &error.to_string());
        }
        ChargeResult::Failed(err) => {
            tracing::warn!(policy = request.policy_name(), "storage failed: {err}");
            return store_unavailable();
        }
        other => {
            tracing::error!(policy = request.policy_name(), "a check came to {other:?}");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the check was not decided",
            );
        }
    };
    let allowed = verdict.is_admitted();
    let answer = Answer::of(decision, allowed, verdict.shadow_denied());
    let mut response = axum::Json(answer).into_response();
    if !allowed {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let retry_after = decision.retry_after_secs().unwrap_or(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    in_force.described(&verdict).render(
        in_force.headers(),
        |_| &front.headers,
        response.headers_mut(),
    );
    response
}

/// `POST /v1/charge`: a late charge of the body's `cost` (required), whatever the room
/// left. Answers 200 with the decision after the charge (never 429: the charge itself is
/// never refused), with the rate-limit headers but no `Retry-After`.
async fn charge(
    State(state): State<Arc<ServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match read_body(body) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let request = match CheckRequest::parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(cost) = request.cost else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "missing \"cost\": a late charge says what the request cost, such as {\"policy\": \"tokens\", \"key\": \"user:42\", \"cost\": 1500}",
        );
    };
    let in_force = state.in_force();
    let (handle, front, shadow) = match request.policy(&state, &in_force) {
        Ok(policy) => policy,
        Err(refusal) => return refusal.into_response(),
    };
    match handle.overdraw(&*request.key, cost).await {
        Ok(decision) => {
            front.counters.record_charge();
            // A shadow policy never denies: its debt is reported as `shadow_denied`.
            let allowed = decision.allowed() || shadow;
            let shadow_denied = shadow && !decision.allowed();
            let answer = Answer::of(&decision, allowed, shadow_denied);
            let mut response = axum::Json(answer).into_response();
            front
                .headers
                .render(in_force.headers(), &decision, response.headers_mut());
            response
        }
        Err(tollgate::Error::Store(err)) => {
            tracing::warn!(policy = request.policy_name(), "storage failed: {err}");
            store_unavailable()
        }
        Err(err) => json_error(StatusCode::BAD_REQUEST, &err.to_string()),
    }
}

/// The body of a check's answer.
#[derive(Serialize)]
struct Answer {
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_after_ms: u64,
    /// `None` when allowed, a shadow denial included.
    retry_after_ms: Option<u64>,
    /// Whether a shadow policy would have denied the request, which was allowed.
    shadow_denied: bool,
    /// Present (and true) when the key is banned after repeated breaches.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    banned: bool,
    /// Present when the request was allowed with a reserved slot (a policy with
    /// `max_delay`): how long the caller waits before it proceeds, rounded up.
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
}

impl Answer {
    /// The answer describing `decision`, for a request `allowed` or not.
    fn of(decision: &Decision, allowed: bool, shadow_denied: bool) -> Self {
        Self {
            allowed,
            limit: decision.limit(),
            remaining: decision.remaining(),
            reset_after_ms: ceil_ms(decision.reset_after()),
            retry_after_ms: decision.retry_after().filter(|_| !allowed).map(ceil_ms),
            shadow_denied,
            banned: decision.banned(),
            delay_ms: Some(decision.delay())
                .filter(|delay| allowed && !delay.is_zero())
                .map(ceil_ms),
        }
    }
}

/// Whole milliseconds, rounded up.
fn ceil_ms(duration: Duration) -> u64 {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

async fn reset(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let in_force = state.in_force();
    let Some(token) = in_force.admin_token() else {
        return json_error(
            StatusCode::FORBIDDEN,
            "reset is disabled: set [server] admin_token to enable it",
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    if presented.is_none_or(|presented| !constant_time_eq(presented.as_bytes(), token.as_bytes())) {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "reset needs Authorization: Bearer <admin_token>",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let body = match read_body(body) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let request = match CheckRequest::parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let handle = match request.policy(&state, &in_force) {
        Ok((handle, _, _)) => handle,
        Err(refusal) => return refusal.into_response(),
    };
    match handle.reset(&*request.key).await {
        Ok(()) => axum::Json(serde_json::json!({ "reset": true })).into_response(),
        Err(tollgate::Error::Store(err)) => {
            tracing::warn!(policy = request.policy_name(), "storage failed: {err}");
            store_unavailable()
        }
        Err(err) => json_error(StatusCode::BAD_REQUEST, &err.to_string()),
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme's case does not matter
/// (RFC 9110 section 11.1), nor do the spaces around the token.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Liveness: the process serves requests. A Kubernetes `livenessProbe` restarts the pod only
/// when this fails, never because the storage is down.
async fn livez() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness (also `/healthz`): 200 `ok` when the storage accepts a write; 200 `degraded`
/// when it does not but the failure mode (`allow`, `fallback`) answers checks anyway; 503
/// when it does not and checks fail (`deny`).
async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    let health = StorageHealth::of(&state).await;
    let code = if health.is_unreachable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(health.to_json(state.storage()))).into_response()
}

/// The content type of what [`Metrics::render`](crate::Metrics::render) writes: OpenMetrics
/// text, which Prometheus scrapes (it ends in `# EOF` and names counters without `_total`).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let text = state.metrics().render(&state.totals());
    let mut response = Response::new(Body::from(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    response
}
