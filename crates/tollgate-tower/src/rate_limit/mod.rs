//! The Tower middleware: [`RateLimitLayer`] and the [`RateLimitService`] it wraps services in.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::RateLimitLayer;
pub use service::{RateLimitBody, RateLimitService};
