//! The baselines `bench/server.sh` measures `tollgate serve` against: servers that do what
//! tollgate's listeners do on the wire, minus the rate limiting.
//!
//! ```sh
//! cargo run --release -p tollgate-server --example bench_baseline -- check 127.0.0.1:0
//! cargo run --release -p tollgate-server --example bench_baseline -- proxy 127.0.0.1:0 127.0.0.1:9000
//! ```
//!
//! Modes:
//! - `check`: axum's `POST /v1/check`, parsing the body into the same serde struct as
//!   tollgate's check API (`{"policy": "...", "key": "...", "cost": 1}`, the same optional
//!   fields, unknown fields refused) and answering `200` with a JSON body of the same shape
//!   (`{"allowed":true,"limit":...,"remaining":...,"reset_after_ms":...,"retry_after_ms":null}`)
//!   without counting anything. A body that does not parse gets a `400`, as in tollgate.
//! - `upstream`: axum's `GET /` answering `Hello, World!`: the upstream of the proxy
//!   measurement, called directly and through `tollgate serve`'s `[proxy]`.
//! - `proxy UPSTREAM`: a plain reverse proxy in front of `UPSTREAM` (`HOST:PORT`): every
//!   request forwarded as it came (its URI made absolute) over hyper-util's pooled HTTP/1.1
//!   client, the client `tollgate serve`'s `[proxy]` uses, and the answer streamed back; a
//!   `502` if the upstream cannot be reached. No limiting and no header rewriting: what any
//!   proxy costs, apart from what tollgate's adds.
//! - `grpc-ok`: Envoy's rate limit service (`envoy.service.ratelimit.v3.RateLimitService`
//!   over tonic) answering every `ShouldRateLimit` `OK`, with one `OK` status per descriptor
//!   carrying a limit, the remaining count and a reset time, as tollgate's answers do.
//!
//! The bound address is printed on standard output (`check: listening on
//! http://127.0.0.1:PORT`), so port 0 works. The runtime is tokio's multi-threaded one, with
//! as many workers as the CPUs the process may run on (one under `taskset -c 0`), as in
//! `tollgate serve`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit, rate_limit::Unit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

/// The modes this example serves, as the first argument names them.
const MODES: &[&str] = &["check", "upstream", "proxy", "grpc-ok"];

/// The limit every answer reports (nothing is counted against it).
const LIMIT: u64 = 1_000_000;

/// The body of a check, field for field the struct tollgate's check API parses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed, as tollgate parses them, but not all read
struct CheckRequest {
    policy: Option<String>,
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

/// The answer to a check, in the shape of tollgate's.
#[derive(Debug, Serialize)]
struct CheckResponse {
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_after_ms: u64,
    retry_after_ms: Option<u64>,
}

/// `POST /v1/check`: parse, answer allowed.
async fn check(body: Bytes) -> Response {
    let request: CheckRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            let body = serde_json::json!({ "error": format!("invalid request body: {err}") });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    axum::Json(CheckResponse {
        allowed: true,
        limit: LIMIT,
        remaining: LIMIT.saturating_sub(request.cost),
        reset_after_ms: 1,
        retry_after_ms: None,
    })
    .into_response()
}

/// The plain proxy's state: the pooled client and the upstream's `HOST:PORT`.
#[derive(Debug, Clone)]
struct Upstream {
    client: Client<HttpConnector, Body>,
    authority: String,
}

/// Any request: forwarded to the upstream as it came, the answer streamed back.
async fn forward(State(upstream): State<Upstream>, mut request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let uri = match Uri::builder()
        .scheme("http")
        .authority(upstream.authority.as_str())
        .path_and_query(path)
        .build()
    {
        Ok(uri) => uri,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    *request.uri_mut() = uri;
    match upstream.client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            format!("upstream unreachable: {err}"),
        )
            .into_response(),
    }
}

/// Envoy's rate limit service answering `OK` to everything.
#[derive(Debug)]
struct AlwaysOk;

#[tonic::async_trait]
impl RateLimitService for AlwaysOk {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let request = request.into_inner();
        if request.domain.is_empty() || request.descriptors.is_empty() {
            return Err(tonic::Status::invalid_argument(
                "a domain and at least one descriptor are required",
            ));
        }
        let statuses = request
            .descriptors
            .iter()
            .map(|_| DescriptorStatus {
                code: Code::Ok.into(),
                current_limit: Some(RateLimit {
                    name: String::new(),
                    requests_per_unit: u32::try_from(LIMIT).unwrap_or(u32::MAX),
                    unit: Unit::Second.into(),
                }),
                limit_remaining: u32::try_from(LIMIT - 1).unwrap_or(u32::MAX),
                duration_until_reset: Some(ProtoDuration {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .collect();
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: Code::Ok.into(),
            statuses,
            ..Default::default()
        }))
    }
}

/// The HTTP app for `mode` (with the upstream `HOST:PORT` for `proxy`), or `None` if it is
/// not an HTTP mode.
fn http_app(mode: &str, upstream: Option<String>) -> Result<Option<Router>, String> {
    Ok(match mode {
        "check" => Some(Router::new().route("/v1/check", post(check))),
        "upstream" => Some(Router::new().route("/", get(|| async { "Hello, World!" }))),
        "proxy" => {
            let authority = upstream.ok_or("proxy needs the upstream: proxy ADDR HOST:PORT")?;
            let client = Client::builder(TokioExecutor::new()).build_http();
            Some(
                Router::new()
                    .fallback(forward)
                    .with_state(Upstream { client, authority }),
            )
        }
        _ => None,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = || {
        format!(
            "usage: bench_baseline MODE ADDR [UPSTREAM], MODE one of {} (UPSTREAM, HOST:PORT, for proxy)",
            MODES.join(", ")
        )
    };
    let (Some(mode), Some(addr)) = (args.next(), args.next()) else {
        return Err(usage().into());
    };
    if !MODES.contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}; {}", usage()).into());
    }
    let app = http_app(&mode, args.next())?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    println!("{mode}: listening on http://{}", listener.local_addr()?);
    match app {
        Some(app) => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await?;
        }
        None => {
            tonic::transport::Server::builder()
                .add_service(RateLimitServiceServer::new(AlwaysOk))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await?;
        }
    }
    Ok(())
}
