use std::fmt;

use tollgate::{MemoryStore, Store};
use tower_layer::Layer;

use crate::{RateLimitService, RateLimiter};

/// Applies a [`RateLimiter`]'s limits to a service; made by [`RateLimiter::layer`].
///
/// With axum, add it with `Router::layer`: it then runs after routing, so it sees the matched
/// route. It works the same in front of any `tower::Service<http::Request<B>>`, where the
/// route is the request's path.
///
/// ```
/// use axum::{Router, routing::get};
/// use tollgate_tower::RateLimiter;
///
/// let limiter = RateLimiter::builder().default_limit("3/minute").build()?;
/// let app: Router = Router::new()
///     .route("/ping", get(|| async { "pong" }))
///     .layer(limiter.layer());
/// # Ok::<(), tollgate_tower::ConfigError>(())
/// ```
pub struct RateLimitLayer<S: Store = MemoryStore> {
    limiter: RateLimiter<S>,
}

impl<S: Store> RateLimitLayer<S> {
    /// A layer applying `limiter`'s limits.
    pub fn new(limiter: RateLimiter<S>) -> Self {
        Self { limiter }
    }
}

impl<S: Store> Clone for RateLimitLayer<S> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
        }
    }
}

impl<S: Store> fmt::Debug for RateLimitLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S: Store, Inner> Layer<Inner> for RateLimitLayer<S> {
    type Service = RateLimitService<S, Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        RateLimitService::new(self.limiter.clone(), inner)
    }
}
