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

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tollgate::{Admission, Charge, ChargeResult, Decision};
use tollgate_tower::{json_error, store_unavailable};

use crate::http::check_request::{CheckRequest, read_body};
use crate::http::health::StorageHealth;
use crate::http::slots_api;

use crate::state::ServerState;

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
