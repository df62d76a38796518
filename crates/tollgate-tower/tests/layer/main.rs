//! Every feature of the layer, through `oneshot` on an axum router or a plain Tower service,
//! with a manual clock.
//!
//! - `limits.rs`: route, default, application, shared, per-method and dynamic limits; costs;
//!   deduct-when.
//! - `responses.rs`: the on-breach hook, rejections, rate-limit headers.
//! - `header_lists.rs`: every limit in the IETF fields, named as declared, valid lists.
//! - `shadow.rs`: shadow limits: never denying, counted, reported.
//! - `keys.rs`: key extractors and the client IP behind trusted proxies.
//! - `declarations.rs`: what the builder accepts and compiles, and every mistake listed.
//! - `service.rs`: any Tower service, store failures, route and handler layers.
//! - `concurrency.rs`: concurrency limits, slots held until the body is sent or dropped.
//! - `bans_and_late_charges.rs`: bans after repeated breaches, costs charged after the
//!   response.
//! - `delay.rs`: requests waiting for their reserved slot instead of a 429, the cap on
//!   waiting requests, clients that go away while they wait.
//! - `leasing.rs`: limits over a store that leases quota (`tollgate::Leasing`).

mod bans_and_late_charges;
mod concurrency;
mod declarations;
mod delay;
mod header_lists;
mod keys;
mod leasing;
mod limits;
mod responses;
mod service;
mod shadow;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use tollgate::testing::FlakyStore;
use tollgate::{Failover, FailureMode, ManualClock, MemoryStore, Store, Strategy};
use tollgate_tower::key::{self, KeyExtractor, RequestKey};
use tollgate_tower::{
    Breach, Builder, ClientIp, DeclarationError, HeaderPolicies, HeaderStyle, HttpLimiter, Limit,
    PeerAddr, ProxyHeader,
};
use tower::{Layer, Service, ServiceExt, service_fn};

const ALICE: &str = "203.0.113.7";
const BOB: &str = "198.51.100.9";

/// A builder with a manual clock, IETF and legacy headers.
fn builder(clock: &ManualClock) -> Builder<MemoryStore> {
    HttpLimiter::builder()
        .clock(clock.clone())
        .headers(HeaderStyle::Both)
}

/// `/a`, `/b` and `/health` answering 200 (or `/login` answering 401 unless `?ok`).
fn routes(limiter: &HttpLimiter<impl Store>) -> Router {
    Router::new()
        .route("/a", get(|| async { "a" }).post(|| async { "posted" }))
        .route("/b", get(|| async { "b" }))
        .route("/items/{id}", get(|| async { "item" }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/login",
            post(|request: Request| async move {
                match request.uri().query() {
                    Some("ok") => StatusCode::OK,
                    _ => StatusCode::UNAUTHORIZED,
                }
            }),
        )
        .layer(limiter.layer())
}

/// A request from `ip` (port 40000), as axum's `ConnectInfo` gives it.
fn request(method: Method, path: &str, ip: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::empty()).expect("valid request");
    let peer = SocketAddr::new(ip.parse().expect("test address"), 40000);
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn send(app: &Router, req: Request) -> Response {
    app.clone().oneshot(req).await.expect("infallible")
}

async fn status(
    app: &Router,
    method: Method,
    path: &str,
    ip: &str,
    headers: &[(&str, &str)],
) -> u16 {
    send(app, request(method, path, ip, headers))
        .await
        .status()
        .as_u16()
}

async fn statuses(app: &Router, path: &str, ip: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status(app, Method::GET, path, ip, &[]).await);
    }
    out
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn body(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

/// The members of `field`, a structured-field list (RFC 9651) of strings with integer
/// parameters, as (string, [(key, value)]); fails the test if it is anything else.
fn sf_list(field: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let list: sfv::List = sfv::Parser::new(field)
        .parse()
        .unwrap_or_else(|err| panic!("{field:?} is not a structured-field list: {err}"));
    list.into_iter()
        .map(|member| {
            let sfv::ListEntry::Item(item) = member else {
                panic!("{field:?} has an inner list");
            };
            let name = item
                .bare_item
                .as_string()
                .unwrap_or_else(|| panic!("{field:?}: a member is not a string"))
                .as_str()
                .to_owned();
            let params = item
                .params
                .iter()
                .map(|(key, value)| {
                    let value = value
                        .as_integer()
                        .unwrap_or_else(|| panic!("{field:?}: {key:?} is not an integer"));
                    (key.as_str().to_owned(), i64::from(value))
                })
                .collect();
            (name, params)
        })
        .collect()
}
