//! Envoy's rate limit service (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`)
//! over gRPC, configured with envoyproxy/ratelimit's YAML descriptor format; how requests are
//! answered is in `protocol.md`, the docs of [`EnvoyService`].
//!
//! - `unit.rs`: [`Unit`], a rate limit's unit.
//! - `yaml.rs`: reading the YAML, each value checked where it is written.
//! - `tree.rs`: [`EnvoyConfig`], the descriptors of each domain as a tree, their rate limits
//!   ([`EnvoyLimit`]), and how a descriptor finds its limit.
//! - `service.rs`: [`EnvoyService`], one admission per request.

mod service;
mod tree;
mod unit;
mod yaml;

pub use service::{DescriptorVerdict, EnvoyService, Observer};
pub use tree::{EnvoyConfig, EnvoyLimit};
pub use unit::Unit;
