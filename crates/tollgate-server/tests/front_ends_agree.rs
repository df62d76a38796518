//! The Tower layer and the check API give the same decisions for the same limits and keys:
//! one table of cases, each run through both, step by step, with manual clocks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use serde_json::Value;
use tollgate::{ManualClock, MemoryStore, Policy};
use tollgate_redis::AnyStore;
use tollgate_server::{Config, ServerState, check_api_router};
use tollgate_tower::{HeaderStyle, HttpLimiter, Limit, key};
use tower::ServiceExt;

/// One step: after `advance_ms`, a hit of `cost` by `key` (at least 1: the layer lets a cost
/// of 0 through uncounted, where the check API answers it as a peek).
type Step = (u64, &'static str, u64);

/// A policy (as the TOML and an inline check body write it) and the steps run against it.
struct Case {
    limits: &'static str,
    strategy: &'static str,
    burst: Option<u64>,
    steps: &'static [Step],
}

const CASES: &[Case] = &[
    Case {
        limits: "3/minute",
        strategy: "fixed-window",
        burst: None,
        steps: &[
            (0, "a", 1),
            (0, "a", 2),
            (1_000, "a", 1),
            (0, "b", 3),
            (59_000, "a", 1),
            (1, "a", 1),
        ],
    },
    Case {
        limits: "2/second; 5/minute",
        strategy: "sliding-window",
        burst: None,
        steps: &[
            (0, "a", 2),
            (10, "a", 1),
            (1_000, "a", 2),
            (1_000, "a", 1),
            (5_000, "a", 1),
            (60_000, "a", 2),
        ],
    },
    Case {
        limits: "4/minute",
        strategy: "sliding-window-counter",
        burst: None,
        steps: &[
            (0, "a", 4),
            (75_000, "a", 2),
            (0, "a", 1),
            (15_000, "a", 1),
            (0, "b", 4),
        ],
    },
    Case {
        limits: "1/second",
        strategy: "token-bucket",
        burst: Some(3),
        steps: &[
            (0, "a", 3),
            (0, "a", 1),
            (500, "a", 1),
            (500, "a", 1),
            (2_250, "a", 2),
        ],
    },
    Case {
        limits: "0/hour",
        strategy: "fixed-window",
        burst: None,
        steps: &[(0, "a", 1), (0, "b", 1)],
    },
];

/// What a front end answered: the status, the units left and the whole seconds to wait.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    remaining: u64,
    retry_after: Option<u64>,
}

/// The Tower layer over `policy` on `/x`, keyed on `x-key`, costing `x-cost`.
fn layer(policy: &Policy, clock: &ManualClock) -> Router {
    let limit = Limit::policy(policy.clone())
        .key(key::header("x-key"))
        .cost(|parts| {
            parts
                .headers
                .get("x-cost")
                .and_then(|cost| cost.to_str().ok()?.parse().ok())
                .unwrap_or(1)
        });
    let limiter = HttpLimiter::builder()
        .clock(clock.clone())
        .headers(HeaderStyle::Ietf)
        .route("/x", limit)
        .build()
        .expect("valid");
    Router::new()
        .route("/x", get(|| async { "ok" }))
        .layer(limiter.layer())
}

async fn through_layer(app: &Router, key: &str, cost: u64) -> Answer {
    let mut request = Request::builder()
        .uri("/x")
        .header("x-key", key)
        .header("x-cost", cost.to_string())
        .body(Body::empty())
        .expect("valid request");
    let peer: SocketAddr = "192.0.2.1:4000".parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.expect("infallible");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    // `RateLimit: "name";r=N;t=T`
    let state = header("ratelimit").expect("a RateLimit field");
    let remaining = state
        .split(';')
        .find_map(|part| part.strip_prefix("r="))
        .and_then(|r| r.parse().ok())
        .expect("r=");
    Answer {
        status: response.status().as_u16(),
        remaining,
        retry_after: header("retry-after").and_then(|wait| wait.parse().ok()),
    }
}

async fn through_check_api(api: &Router, body: String) -> Answer {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/check")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("valid request");
    let response = api.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.parse().ok());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    let json: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
    Answer {
        status,
        remaining: json["remaining"].as_u64().expect("remaining"),
        retry_after,
    }
}

#[tokio::test]
async fn the_layer_and_the_check_api_decide_alike() {
    for case in CASES {
        let burst = case
            .burst
            .map_or(String::new(), |b| format!("burst = {b}\n"));
        let toml = format!(
            "[policies.p]\nlimits = \"{}\"\nstrategy = \"{}\"\n{burst}",
            case.limits, case.strategy
        );
        let config = Config::parse(&toml, "tollgate.toml").expect("valid");
        let policy = &config.policies["p"];
        let (layer_clock, api_clock) = (ManualClock::new(), ManualClock::new());
        let app = layer(policy, &layer_clock);
        let state = ServerState::with_clock(
            &config,
            AnyStore::Memory(MemoryStore::new()),
            api_clock.clone(),
        )
        .expect("valid");
        let api = check_api_router(Arc::new(state));
        // The same policy inline, counted apart from the named one.
        let inline_state = ServerState::with_clock(
            &Config::empty(),
            AnyStore::Memory(MemoryStore::new()),
            api_clock.clone(),
        )
        .expect("valid");
        let inline_api = check_api_router(Arc::new(inline_state));
        for (i, &(advance_ms, key, cost)) in case.steps.iter().enumerate() {
            for clock in [&layer_clock, &api_clock] {
                clock.advance(Duration::from_millis(advance_ms));
            }
            let what = format!("{} ({}), step {i}", case.limits, case.strategy);
            let by_layer = through_layer(&app, key, cost).await;
            let named = format!(r#"{{"policy": "p", "key": "{key}", "cost": {cost}}}"#);
            let by_name = through_check_api(&api, named).await;
            let burst = case
                .burst
                .map_or(String::new(), |b| format!(r#", "burst": {b}"#));
            let inline = format!(
                r#"{{"limits": "{}", "strategy": "{}"{burst}, "key": "{key}", "cost": {cost}}}"#,
                case.limits, case.strategy
            );
            let by_inline = through_check_api(&inline_api, inline).await;
            assert_eq!(by_layer, by_name, "{what}: layer and named check");
            assert_eq!(by_name, by_inline, "{what}: named and inline check");
        }
    }
}
