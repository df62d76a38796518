//! Declarative rate limits for axum and any Tower service: `"5/minute"` on a route, default
//! and application-wide limits, keys on the client IP (behind trusted proxies), a user or an
//! API key, and a proper `429 Too Many Requests` with `Retry-After`.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tollgate::Strategy;
//! use tollgate_tower::{HeaderStyle, Limit, RateLimiter, key};
//!
//! let limiter = RateLimiter::builder()
//!     // Every route without limits of its own: 100 a minute per client IP, per route.
//!     .default_limit("100/minute")
//!     // Across all routes, per client IP.
//!     .application_limit("1000/hour")
//!     .route("/login", Limit::new("5/minute").deduct_when(|r| r.status == 401))
//!     .route("/export", Limit::new("10/minute").strategy(Strategy::TokenBucket).cost(|_| 5))
//!     .route("/search", Limit::new("30/minute").key(key::header("x-api-key").or(key::client_ip())))
//!     .exempt("/health")
//!     .trusted_proxies(["10.0.0.0/8"])
//!     .headers(HeaderStyle::Both)
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/login", get(|| async { "welcome" }))
//!     .route("/export", get(|| async { "data" }))
//!     .route("/search", get(|| async { "results" }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(limiter.layer());
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! # Ok::<(), tollgate_tower::ConfigError>(())
//! ```
//!
//! # Layout
//!
//! - [`RateLimiter`] and its [`Builder`] (`limiter.rs`): the declared limits, prepared over a
//!   [`tollgate::Store`], and the check every request goes through.
//! - [`Limit`] (`limit.rs`): one declared limit: rates, strategy, key, cost, deduct-when.
//! - [`key`]: key extractors (client IP, header, extension, constant, closures).
//! - [`TrustedProxies`] (`client_ip.rs`): the client's address behind trusted proxies.
//! - [`HeaderStyle`] (`headers.rs`): `Retry-After`, `X-RateLimit-*`, `RateLimit-Policy` and
//!   `RateLimit`.
//! - [`Breach`] (`breach.rs`): a denied request, for the on-breach hook and the rejection.
//! - [`RateLimitLayer`] and [`RateLimitService`] (`rate_limit/`): the Tower middleware.
//!
//! Requests need the peer address in their extensions for per-IP limits: axum's
//! `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info`), a
//! [`PeerAddr`], or a `SocketAddr`. Without one, the client IP is unknown and such requests
//! share one count.

mod breach;
mod client_ip;
mod headers;
pub mod key;
mod limit;
mod limiter;
mod rate_limit;

pub use breach::{Breach, grpc_rejection};
pub use client_ip::{ClientIp, InvalidProxy, PeerAddr, ProxyHeader, TrustedProxies};
pub use headers::{HeaderStyle, LimitHeaders, retry_after_secs};
pub use limit::Limit;
pub use limiter::{Builder, ConfigError, RateLimiter};
pub use rate_limit::{RateLimitBody, RateLimitLayer, RateLimitService, ResponseFuture};
