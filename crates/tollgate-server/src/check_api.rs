//! The HTTP check API: `POST /v1/check`, `/v1/peek`, `/v1/reset`, `GET /healthz` and
//! `GET /metrics`.
//!
//! A check names a configured policy, or carries one inline:
//!
//! ```text
//! POST /v1/check  {"policy": "login", "key": "user:42", "cost": 1}
//! POST /v1/check  {"limits": "5/minute", "strategy": "fixed-window", "key": "user:42"}
//!
//! 200 (allowed) or 429 (denied), with the configured rate-limit headers:
//! {"allowed": true, "limit": 5, "remaining": 4, "reset_after_ms": 60000, "retry_after_ms": null}
//! ```
//!
//! Every mistake is a 4xx with `{"error": "..."}` saying what is wrong; a storage failure is
//! a 503 (under `on_storage_error = "deny"`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tollgate::{Decision, Error, Policy, Rates, Strategy};

use crate::app::{App, INLINE, Live};
use crate::metrics::Outcome;

/// The check API's router over `app`.
///
/// ```
/// use std::sync::Arc;
/// use tollgate_server::{app::App, check_api, config::Config};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse("[policies.login]\nlimits = \"5/minute\"\n", "tollgate.toml")?;
/// let store = tollgate_redis::AnyStore::open(&config.storage).await?;
/// let router: axum::Router = check_api::router(Arc::new(App::new(&config, store)));
/// # Ok(())
/// # }
/// ```
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/check", post(check))
        .route("/v1/peek", post(peek))
        .route("/v1/reset", post(reset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// The body of a check, a peek or a reset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    /// A configured policy, by name...
    policy: Option<String>,
    /// ... or an inline one.
    limits: Option<String>,
    strategy: Option<String>,
    burst: Option<u64>,
    key: String,
    #[serde(default = "one")]
    cost: u64,
}

fn one() -> u64 {
    1
}

/// What a check is about: a named or an inline policy, and the key.
enum Target<'a> {
    Named(&'a str),
    Inline(Policy),
}

/// A request the API refuses, with its status.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    (status, axum::Json(body)).into_response()
}

impl CheckRequest {
    fn parse(body: &[u8]) -> Result<Self, Refusal> {
        serde_json::from_slice(body).map_err(|err| {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {err}"),
            )
        })
    }

    fn target(&self, live: &Live) -> Result<Target<'_>, Refusal> {
        let bad = |message: String| Refusal(StatusCode::BAD_REQUEST, message);
        match (&self.policy, &self.limits) {
            (Some(name), None) => {
                if self.strategy.is_some() || self.burst.is_some() {
                    return Err(bad(
                        "strategy and burst go with inline limits, not a named policy".to_owned(),
                    ));
                }
                if live.limiter.policy(name).is_none() {
                    let mut names: Vec<&str> = live.limiter.policy_names().collect();
                    names.sort_unstable();
                    return Err(Refusal(
                        StatusCode::NOT_FOUND,
                        format!(
                            "unknown policy {name:?}; configured: {}",
                            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                        ),
                    ));
                }
                Ok(Target::Named(name))
            }
            (None, Some(limits)) => {
                let rates: Rates = limits.parse().map_err(|err| bad(format!("limits: {err}")))?;
                let strategy: Strategy = match &self.strategy {
                    Some(name) => name.parse().map_err(|err| bad(format!("strategy: {err}")))?,
                    None => Strategy::FixedWindow,
                };
                let policy = Policy::new(strategy, rates);
                let policy = match self.burst {
                    Some(burst) => policy
                        .with_burst(burst)
                        .map_err(|err| bad(format!("burst: {err}")))?,
                    None => policy,
                };
                Ok(Target::Inline(policy))
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

async fn check(State(app): State<Arc<App>>, body: Bytes) -> Response {
    decide(&app, &body, None).await
}

async fn peek(State(app): State<Arc<App>>, body: Bytes) -> Response {
    decide(&app, &body, Some(0)).await
}

/// Applies the hit a request body asks for (`cost` overrides its cost: 0 for a peek).
async fn decide(app: &App, body: &[u8], cost: Option<u64>) -> Response {
    let started = Instant::now();
    let request = match CheckRequest::parse(body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let live = app.live();
    let target = match request.target(&live) {
        Ok(target) => target,
        Err(refusal) => return refusal.into_response(),
    };
    let cost = cost.unwrap_or(request.cost);
    let (label, hit) = match &target {
        Target::Named(name) => (
            *name,
            live.limiter
                .hit_cost(name, request.key.as_str(), cost)
                .await,
        ),
        Target::Inline(policy) => (
            INLINE,
            live.limiter
                .hit_with(INLINE, policy, request.key.as_str(), cost)
                .await,
        ),
    };
    let decision = match hit {
        Ok(decision) => decision,
        Err(err) => {
            live.counters.count(label, Outcome::Error);
            app.metrics().took(started.elapsed());
            return match err {
                Error::Store(err) => {
                    tracing::warn!(policy = label, "storage failed: {err}");
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("storage unavailable: {err}"),
                    )
                }
                err => error(StatusCode::BAD_REQUEST, &err.to_string()),
            };
        }
    };
    let outcome = if decision.allowed() {
        Outcome::Allowed
    } else {
        Outcome::Denied
    };
    live.counters.count(label, outcome);
    app.metrics().took(started.elapsed());
    let mut response = axum::Json(Answer::of(&decision)).into_response();
    if !decision.allowed() {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(tollgate_tower::retry_after_secs(&decision)),
        );
    }
    match live.fields.get(label) {
        Some(fields) => fields.render(live.headers, &decision, response.headers_mut()),
        None => live
            .headers
            .render(label, &decision, response.headers_mut()),
    }
    response
}

/// The body of a check's answer.
#[derive(Serialize)]
struct Answer {
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_after_ms: u64,
    retry_after_ms: Option<u64>,
}

impl Answer {
    fn of(decision: &Decision) -> Self {
        Self {
            allowed: decision.allowed(),
            limit: decision.limit(),
            remaining: decision.remaining(),
            reset_after_ms: ceil_ms(decision.reset_after()),
            retry_after_ms: decision.retry_after().map(ceil_ms),
        }
    }
}

/// Whole milliseconds, rounded up.
fn ceil_ms(duration: Duration) -> u64 {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

async fn reset(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let live = app.live();
    let Some(token) = &live.admin_token else {
        return error(
            StatusCode::FORBIDDEN,
            "reset is disabled: set [server] admin_token to enable it",
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented.is_none_or(|presented| !constant_time_eq(presented.as_bytes(), token.as_bytes())) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "reset needs Authorization: Bearer <admin_token>",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let request = match CheckRequest::parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let reset = match request.target(&live) {
        Ok(Target::Named(name)) => live.limiter.reset(name, request.key.as_str()).await,
        Ok(Target::Inline(policy)) => {
            live.limiter
                .reset_with(INLINE, &policy, request.key.as_str())
                .await
        }
        Err(refusal) => return refusal.into_response(),
    };
    match reset {
        Ok(()) => axum::Json(serde_json::json!({ "reset": true })).into_response(),
        Err(Error::Store(err)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("storage unavailable: {err}"),
        ),
        Err(err) => error(StatusCode::BAD_REQUEST, &err.to_string()),
    }
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let falling_back = app.store().is_falling_back();
    match app.probe().await {
        Ok(()) => axum::Json(serde_json::json!({
            "status": "ok",
            "storage": app.storage(),
            "falling_back": falling_back,
        }))
        .into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "storage unreachable",
                "storage": app.storage(),
                "error": err.to_string(),
                "falling_back": falling_back,
            })),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app
        .metrics()
        .render(app.store().errors(), app.store().is_falling_back());
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
