//! The `tollgate` binary's parts: rate limiting as a service for any language, over the
//! engine, the Redis store and the Tower layer.
//!
//! # Layout
//!
//! - `config.rs`: the TOML configuration, checked with file and line in every error.
//! - `app.rs`: what the listeners share: storage, metrics, the configuration in force.
//! - `check_api.rs`: `POST /v1/check`, `/v1/peek`, `/v1/reset`, `/healthz`, `/metrics`.
//! - `metrics.rs`: the Prometheus counters.
//! - `proxy.rs`: the reverse proxy: `[proxy]` routes limited, allowed ones streamed upstream.
//! - `server.rs`: `tollgate serve`: listeners, reload, graceful shutdown.
//! - `envoy/`: Envoy's rate limit service (`envoy.service.ratelimit.v3`) over gRPC, with the
//!   descriptor configuration of envoyproxy/ratelimit.

pub mod app;
pub mod check_api;
pub mod config;
pub mod envoy;
pub mod metrics;
pub mod proxy;
pub mod server;

/// The workspace README's examples, compiled and run as doctests (here, where every crate is
/// at hand).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
