//! `GET /dashboard` (the page) and `GET /dashboard/data` (the JSON it polls every two
//! seconds), on the check API's listener.
//!
//! Served unless `[server] dashboard = false` (then both are 404). When `[server]
//! admin_token` is set, both require it, compared as `/v1/reset` compares it: in
//! `Authorization: Bearer <token>`, or from a browser by opening `/dashboard?token=<token>`
//! once, which answers with a cookie (`HttpOnly`, `SameSite=Strict`, for `/dashboard` only)
//! and a redirect to `/dashboard`, so that the token leaves the address bar.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_tower::json_error;

use super::ring::SECONDS;
use super::top_keys::MINUTES;
use crate::http::check_api::{bearer_token, constant_time_eq};
use crate::http::health::StorageHealth;
use crate::state::{InForce, ServerState};

/// The page: markup, style and script in one file, built into the binary.
const PAGE: &str = include_str!("page.html");

/// The cookie a browser keeps the admin token in (hex-encoded).
const COOKIE: &str = "tollgate_dashboard";

/// How many of the keys denied most the data lists.
const TOP_SHOWN: usize = 20;

/// The dashboard's routes, merged into the check API's router.
pub(crate) fn dashboard_routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/data", get(data))
}

/// Whether a request is let in, and how.
enum Access {
    /// No token needed, or one in a header or the cookie.
    Plainly,
    /// With the token in the query (`?token=`): the page then sets the cookie.
    ByQuery(String),
    /// Not: the answer (404 when the dashboard is disabled, 401 without the admin token).
    Refused(Response),
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Whether the dashboard is served and the request may see it.
fn admit(in_force: &InForce, headers: &HeaderMap, uri: &Uri) -> Access {
    if !in_force.dashboard() {
        return Access::Refused(json_error(
            StatusCode::NOT_FOUND,
            "the dashboard is disabled ([server] dashboard = false)",
        ));
    }
    let Some(token) = in_force.admin_token() else {
        return Access::Plainly;
    };
    let matches = |presented: &[u8]| constant_time_eq(presented, token.as_bytes());
    let by_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .is_some_and(|presented| matches(presented.as_bytes()));
    let by_cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE)
            .filter_map(|(_, value)| from_hex(value))
            .any(|presented| matches(&presented))
    };
    if by_header || by_cookie() {
        return Access::Plainly;
    }
    let by_query = Query::<TokenQuery>::try_from_uri(uri)
        .ok()
        .and_then(|query| query.0.token)
        .filter(|presented| matches(presented.as_bytes()));
    if let Some(presented) = by_query {
        return Access::ByQuery(presented);
    }
    let mut response = json_error(
        StatusCode::UNAUTHORIZED,
        "the dashboard needs the admin token: Authorization: Bearer <admin_token>, or open \
         /dashboard?token=<admin_token> in a browser",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Access::Refused(response)
}

/// Lowercase hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The bytes of hex `text`, if it is hex.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// A value no one can guess, for the page's `Content-Security-Policy` nonce.
fn nonce() -> String {
    let random = std::collections::hash_map::RandomState::new();
    format!("{:016x}", random.hash_one(std::time::Instant::now()))
}

/// Headers every dashboard answer carries: never cached, nor sniffed, nor framed.
fn guard(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `GET /dashboard`: the page, with a strict content security policy (its script and style
/// run by nonce; nothing else loads but its own data).
async fn page(State(state): State<Arc<ServerState>>, headers: HeaderMap, uri: Uri) -> Response {
    let in_force = state.in_force();
    let mut response = match admit(&in_force, &headers, &uri) {
        Access::Refused(refused) => refused,
        Access::ByQuery(token) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SEE_OTHER;
            let cookie = format!(
                "{COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Strict",
                to_hex(token.as_bytes())
            );
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, HeaderValue::from_static("/dashboard"));
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                headers.insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Access::Plainly => {
            let nonce = nonce();
            let mut response = Response::new(Body::from(PAGE.replace("{{NONCE}}", &nonce)));
            let policy = format!(
                "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
                 connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'"
            );
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            if let Ok(policy) = HeaderValue::from_str(&policy) {
                headers.insert(header::CONTENT_SECURITY_POLICY, policy);
            }
            response
        }
    };
    guard(&mut response);
    response
}

/// `GET /dashboard/data`: hits per second of each policy over the last five minutes (of the
/// policies in force, and of any other with hits in that window), the keys denied most, the
/// storage's state and the configuration in force (never the admin token).
async fn data(State(state): State<Arc<ServerState>>, headers: HeaderMap, uri: Uri) -> Response {
    let in_force = state.in_force();
    if let Access::Refused(mut refused) = admit(&in_force, &headers, &uri) {
        guard(&mut refused);
        return refused;
    }
    let configured = in_force.policies();
    let names: HashSet<&str> = configured.iter().map(|(name, _)| *name).collect();
    let recorder = state.metrics().dashboard();
    let activity: Vec<Value> = recorder
        .activity()
        .into_iter()
        .filter_map(|policy| {
            let series = &policy.series;
            let totals = [&series.allowed, &series.denied, &series.shadow_denied]
                .map(|counts| counts.iter().sum::<u64>());
            let shown = names.contains(policy.name.as_str()) || totals.iter().any(|&n| n > 0);
            shown.then(|| {
                json!({
                    "name": policy.name,
                    "allowed": series.allowed,
                    "denied": series.denied,
                    "shadow_denied": series.shadow_denied,
                    "totals": {"allowed": totals[0], "denied": totals[1], "shadow_denied": totals[2]},
                })
            })
        })
        .collect();
    let top_keys: Vec<Value> = recorder
        .top_keys(TOP_SHOWN)
        .into_iter()
        .map(|top| {
            json!({"policy": &*top.policy, "key": &*top.key, "count": top.count, "error": top.error})
        })
        .collect();
    let mut storage = StorageHealth::of(&state).await.to_json(state.storage());
    let totals = state.totals();
    storage["memory_keys"] = json!(totals.memory_keys);
    storage["banned_keys"] = json!(totals.banned_keys);
    storage["errors"] = json!(totals.storage_errors);
    storage["fallback_switches"] = json!(totals.fallback_switches);
    let policies: Vec<Value> = configured
        .iter()
        .map(|(name, policy)| {
            json!({"name": name, "policy": policy.handle.policy().to_string(), "shadow": policy.shadow})
        })
        .collect();
    let body = json!({
        "window_seconds": SECONDS,
        "top_keys_minutes": MINUTES,
        "activity": activity,
        "top_keys": top_keys,
        "storage": storage,
        "config": {
            "policies": policies,
            "proxy": in_force.proxy().is_some(),
            "envoy": in_force.envoy().is_some(),
            "admin_token": in_force.admin_token().is_some(),
        },
    });
    let mut response = axum::Json(body).into_response();
    guard(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(
            from_hex(&to_hex(b"s3cret; =\xff")),
            Some(b"s3cret; =\xff".to_vec())
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é1"), None);
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
    }
}
