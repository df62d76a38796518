//! The Tower middleware: [`RateLimitLayer`] and the [`RateLimitService`] it wraps services in.

mod layer;
mod service;

pub use layer::RateLimitLayer;
pub use service::{RateLimitBody, RateLimitService};
