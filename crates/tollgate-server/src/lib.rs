//! The `tollgate` binary's parts: rate limiting as a service for any language, over the
//! engine, the Redis store and the Tower layer.
//!
//! # Layout
//!
//! - `config/`: the TOML configuration, read and checked once into typed values, with file
//!   and line in every error.
//! - `state/`: what the listeners share (the limiter, the metrics) and the configuration
//!   in force, swapped whole by a reload.
//! - `http/`: the check API (`check_api.rs`: `/v1/check`, `/v1/peek`, `/v1/reset`,
//!   `/healthz`, `/metrics`), its OpenAPI document (`openapi.rs`) and the reverse proxy (`proxy/`).
//! - `grpc/envoy/`: Envoy's rate limit service (`envoy.service.ratelimit.v3`) with the
//!   descriptor configuration of envoyproxy/ratelimit.
//! - `logging.rs`: the log subscriber (`--log-format text|json`, `RUST_LOG`) and what is
//!   logged.
//! - `metrics.rs`: the Prometheus counters every front end records its decisions in.
//! - `admin_cli.rs`: `tollgate peek` and `tollgate reset`, on a running server or directly in
//!   the storage.
//! - `dashboard/`: the live dashboard (`GET /dashboard`), fed by those same counters.
//! - `server.rs`: `tollgate serve` (listeners, reload, graceful shutdown) and
//!   `tollgate check-config`; `server/`: what a connection may cost on every listener
//!   (`connection.rs`), the HTTP/1.1 listeners and the gRPC listener, and the watch on the
//!   configuration's files that reloads it when they change (`config_watch.rs`).
//! - `simulate/`: `tollgate simulate`: access logs replayed through configurations, in
//!   virtual time, with a report of what would be denied.
//!
//! Every front end turns its request into one [`tollgate::Admission`] over the policy handles
//! in force and renders the verdict.

mod admin_cli;
mod config;
mod dashboard;
mod grpc;
mod http;
mod lease_metrics;
mod logging;
mod metrics;
mod server;
mod simulate;
mod state;

pub use admin_cli::{AdminAction, AdminArgs, admin};
pub use config::{
    Config, ConfigError, Connections, DEFAULT_LISTEN, EscapedSlashes, KeySpec, Overrides,
    ProxyConfig, RouteConfig, RoutePattern, UpstreamTimeouts, UpstreamUri,
};
pub use grpc::envoy::{DescriptorVerdict, EnvoyConfig, EnvoyLimit, EnvoyService, Observer, Unit};
pub use http::check_api::check_api_router;
pub use http::openapi::OPENAPI_JSON;
pub use logging::{LogFormat, init_logging};
pub use metrics::{Metrics, PolicyCounters, Totals};
pub use server::{SHUTDOWN_GRACE, ServeError, Settings, check, serve};
pub use simulate::{SimulateArgs, simulate};
pub use state::{InForce, ServerState, ServerStore};

/// The workspace README's examples, compiled and run as doctests (here, where every crate is
/// at hand).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
