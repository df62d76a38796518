//! Envoy's rate limit service (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`)
//! over gRPC, configured with envoyproxy/ratelimit's YAML descriptor format; how requests are
//! answered is in `protocol.md`, the docs of [`EnvoyService`].
//!
//! - `unit.rs`: [`Unit`], a rate limit's unit.
//! - `yaml.rs`: reading the YAML, each value checked where it is written.
//! - `tree.rs`: [`EnvoyConfig`], the descriptors of each domain as a tree, their rate limits
//!   ([`EnvoyLimit`]), and how a descriptor finds its limit.
//! - `matched.rs`: the limit a request's descriptor is held to, after `replaces`.
//! - `status.rs`: a descriptor's status in the answer; [`DescriptorVerdict`].
//! - `service.rs`: [`EnvoyService`], one admission per request.

mod matched;
mod service;
mod status;
mod tree;
mod unit;
mod yaml;

pub use service::{EnvoyService, Observer};
pub use status::DescriptorVerdict;
pub use tree::{EnvoyConfig, EnvoyLimit};
pub use unit::Unit;
