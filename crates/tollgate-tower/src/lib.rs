//! Declarative rate limits for axum and any Tower service: `"5/minute"` on a route, default
//! and application-wide limits, keys on the client IP (behind trusted proxies), a user or an
//! API key, and a proper `429 Too Many Requests` with `Retry-After`.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tollgate::Strategy;
//! use tollgate_tower::{HeaderStyle, HttpLimiter, Limit, key};
//!
//! let limiter = HttpLimiter::builder()
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
//! # Ok::<(), tollgate_tower::BuildError>(())
//! ```
//!
//! # Layout
//!
//! - `builder/`: the declarations: [`Builder`], [`Limit`], and their compilation into the
//!   limits requests are checked against ([`BuildError`] lists every mistake).
//! - `check/`: [`HttpLimiter`], the compiled limits, and the check each request goes through:
//!   one [`tollgate::Admission`] over the limits it meets, rendered as a response.
//! - [`key`]: key extractors (client IP, header, extension, constant, closures).
//! - `client_ip.rs`: [`TrustedProxies`], the client's address behind trusted proxies.
//! - `headers.rs`: [`HeaderStyle`]: `X-RateLimit-*`, `RateLimit-Policy` and `RateLimit`;
//!   [`HeaderPolicies`] and [`Described`]: which limits they list; [`LimitHeaders`]: one
//!   limit's fields, rendered in advance.
//! - `respond.rs`: the limiter's own answers: [`Breach`] (a denied request, for the
//!   on-breach hook and the rejection), the default 429, [`grpc_rejection`], [`json_error`]
//!   and [`store_unavailable`].
//! - `middleware/`: the Tower middleware, [`HttpLimitLayer`] and [`HttpLimitService`], and
//!   its response future in [`future`].
//!
//! Requests need the peer address in their extensions for per-IP limits: axum's
//! `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info`), a
//! [`PeerAddr`], or a `SocketAddr`. Without one, the client IP is unknown and such requests
//! share one count.

mod builder;
mod check;
mod client_ip;
mod headers;
pub mod key;
mod lease_sweep;
mod middleware;
mod respond;

pub use builder::{BuildError, Builder, DeclarationError, Limit};
pub use check::HttpLimiter;
pub use client_ip::{ClientIp, InvalidProxy, PeerAddr, ProxyHeader, TrustedProxies};
pub use headers::{Described, HeaderPolicies, HeaderStyle, LimitHeaders};
pub use lease_sweep::sweep_leases;
pub use middleware::future;
pub use middleware::{HttpLimitBody, HttpLimitLayer, HttpLimitService, SlotHeldBody};
pub use respond::{Breach, grpc_rejection, json_error, store_unavailable};
