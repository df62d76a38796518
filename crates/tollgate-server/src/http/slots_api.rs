//! The check API's concurrency slots: `POST /v1/acquire` and `POST /v1/release`, for a
//! configured policy with `max_in_flight`.
//!
//! ```text
//! POST /v1/acquire  {"policy": "export", "key": "user:42"}      ("cost" as for /v1/check)
//! 200 {"allowed": true, "lease": "<32 hex digits>", "expires_ms": 60000, "limit": 5, "remaining": 4}
//! 429 {"allowed": false, "limit": 5, "remaining": 0, "retry_after_ms": 41250, ...} + Retry-After
//!
//! POST /v1/release  {"policy": "export", "key": "user:42", "lease": "<the lease>"}
//! 200 {"released": true}    (false: the lease was unknown, already released or expired)
//! ```
//!
//! An acquire takes a slot of the key and charges the policy's rates, all or none (one
//! admission): a key with every slot taken is refused without a charge, and a request the
//! rates deny gives its slot back. Its 429 describes what refused it: the slots (the
//! `limit` is `max_in_flight`, `retry_after_ms` the time until the key's earliest lease
//! expires) or the rates (as `/v1/check` answers). A lease never released expires after the
//! policy's `lease_ttl` (`expires_ms`), so a client that crashes holding one frees it in
//! time. A release of a lease that is not live (unknown, released already, expired) changes
//! nothing and answers `{"released": false}`: releases may be retried, and a guessed lease
//! (128 random bits) frees nobody's slot. The rates an acquire charged stay charged.
//!
//! Acquires are counted in `/metrics` under `{policy}:in-flight` (allowed or denied), their
//! rate charges under the policy.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tollgate::{Admission, Charge, ChargeResult, Decision, InFlight, LeaseId, SlotResult};
use tollgate_tower::{json_error, store_unavailable};

use crate::state::{ConfiguredPolicy, InFlightPolicy, InForce, ServerState};

/// The body of `POST /v1/acquire`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcquireRequest {
    policy: String,
    key: String,
    /// What the rates are charged; 1 unless given.
    cost: Option<u64>,
}

/// The body of `POST /v1/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    policy: String,
    key: String,
    lease: String,
}

#[derive(Serialize)]
struct Acquired {
    allowed: bool,
    lease: String,
    expires_ms: u64,
    limit: u64,
    remaining: u64,
}

#[derive(Serialize)]
struct Refused {
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_after_ms: u64,
    retry_after_ms: Option<u64>,
}

#[derive(Serialize)]
struct Released {
    released: bool,
}

/// A request refused: its status and what is wrong (rendered `{"error": ...}`).
struct SlotsRefusal(StatusCode, String);

impl IntoResponse for SlotsRefusal {
    fn into_response(self) -> Response {
        json_error(self.0, &self.1)
    }
}

/// A JSON object of type `T`, or the 4xx saying what is wrong.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, SlotsRefusal> {
    let body = body.map_err(|rejection| {
        SlotsRefusal(
            rejection.status(),
            format!("request body: {}", rejection.body_text()),
        )
    })?;
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(SlotsRefusal(
            StatusCode::BAD_REQUEST,
            "invalid request body: expected a JSON object, such as {\"policy\": \"export\", \"key\": \"user:42\"}".to_owned(),
        ));
    }
    serde_json::from_slice(&body).map_err(|err| {
        SlotsRefusal(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {err}"),
        )
    })
}

/// The configured policy `name` and its concurrency limit, or the 4xx saying why not.
fn slots_of<'a>(
    in_force: &'a InForce,
    name: &str,
) -> Result<(&'a ConfiguredPolicy, &'a InFlightPolicy), SlotsRefusal> {
    let Some(named) = in_force.policy(name) else {
        let names = in_force.policy_names();
        let configured = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        return Err(SlotsRefusal(
            StatusCode::NOT_FOUND,
            format!("unknown policy {name:?}; configured: {configured}"),
        ));
    };
    match &named.in_flight {
        Some(in_flight) => Ok((named, in_flight)),
        None => Err(SlotsRefusal(
            StatusCode::BAD_REQUEST,
            format!(
                "policy {name:?} has no max_in_flight: slots are acquired from a policy that \
                 configures one"
            ),
        )),
    }
}

/// `POST /v1/acquire`.
pub(crate) async fn acquire(
    State(state): State<Arc<ServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: AcquireRequest = match parse(body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let in_force = state.in_force();
    let (named, in_flight) = match slots_of(&in_force, &request.policy) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let key = request.key.as_str();
    let mut verdict = Admission::new()
        .slot(InFlight::new(in_flight.handle.clone(), key))
        .charge(Charge::new(
            named.handle.clone(),
            key,
            request.cost.unwrap_or(1),
        ))
        .decide()
        .await;
    match &verdict.slot_results()[0] {
        SlotResult::Acquired(decision) => in_flight
            .counters
            .record(key, &ChargeResult::Allowed(*decision)),
        SlotResult::Full(decision) => in_flight
            .counters
            .record(key, &ChargeResult::Denied(*decision)),
        _ => {}
    }
    let charged = &verdict.results()[0];
    if !matches!(charged, ChargeResult::Skipped) {
        named.front.counters.record(key, charged);
    }
    let refusing = match (verdict.refused_by_slot(), verdict.refused_by()) {
        (Some((_, SlotResult::Full(decision))), _)
        | (_, Some((_, ChargeResult::Denied(decision)))) => Some(*decision),
        (Some((_, SlotResult::Failed(err))), _) | (_, Some((_, ChargeResult::Failed(err)))) => {
            tracing::warn!(policy = request.policy, "storage failed: {err}");
            return store_unavailable();
        }
        (_, Some((_, &ChargeResult::CostExceedsLimit { cost, max_cost }))) => {
            let error = tollgate::Error::CostExceedsLimit {
                policy: request.policy,
                cost,
                max_cost,
            };
            return json_error(StatusCode::BAD_REQUEST, &error.to_string());
        }
        (None, None) => None,
        other => {
            tracing::error!(policy = request.policy, "an acquire came to {other:?}");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the acquire was not decided",
            );
        }
    };
    if let Some(decision) = refusing {
        return refused(&decision);
    }
    let held = verdict.take_leases();
    let (Some((_, lease)), Some(slot)) =
        (held.leases().next(), verdict.slot_results()[0].decision())
    else {
        tracing::error!(
            policy = request.policy,
            "an admitted acquire holds no lease"
        );
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the acquire was not decided",
        );
    };
    let ttl = in_flight.handle.limit().lease_ttl();
    axum::Json(Acquired {
        allowed: true,
        lease: lease.to_string(),
        expires_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        limit: slot.limit(),
        remaining: slot.remaining(),
    })
    .into_response()
}

/// The 429 of an acquire refused by `decision`.
fn refused(decision: &Decision) -> Response {
    let ms = |duration: std::time::Duration| {
        u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
    };
    let mut response = axum::Json(Refused {
        allowed: false,
        limit: decision.limit(),
        remaining: decision.remaining(),
        reset_after_ms: ms(decision.reset_after()),
        retry_after_ms: decision.retry_after().map(ms),
    })
    .into_response();
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let retry_after = decision.retry_after_secs().unwrap_or(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// `POST /v1/release`.
pub(crate) async fn release(
    State(state): State<Arc<ServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: ReleaseRequest = match parse(body) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let lease: LeaseId = match request.lease.parse() {
        Ok(lease) => lease,
        Err(err) => return json_error(StatusCode::BAD_REQUEST, &format!("lease: {err}")),
    };
    let in_force = state.in_force();
    let (_, in_flight) = match slots_of(&in_force, &request.policy) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    match in_flight.handle.release(request.key.as_str(), lease).await {
        Ok(released) => axum::Json(Released { released }).into_response(),
        Err(err) => {
            tracing::warn!(policy = request.policy, "storage failed: {err}");
            store_unavailable()
        }
    }
}
