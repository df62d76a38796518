//! [`HttpLimitLayer`], and [`HttpLimiter::layer`] that makes it.

use std::fmt;

use tollgate::{MemoryStore, Store};
use tower_layer::Layer;

use crate::check::HttpLimiter;
use crate::middleware::service::HttpLimitService;

impl<S: Store> HttpLimiter<S> {
    /// The Tower layer applying these limits.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # use std::convert::Infallible;
    /// # let hello = || tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, Infallible>(http::Response::new("hello"))
    /// # });
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().default_limit("1/minute").build()?;
    /// let service = limiter.layer().layer(hello());
    /// let status = |request| futures_executor::block_on(service.clone().oneshot(request)).unwrap().status();
    /// assert_eq!(status(get("/")), 200);
    /// assert_eq!(status(get("/")), 429);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn layer(&self) -> HttpLimitLayer<S> {
        HttpLimitLayer::new(self.clone())
    }
}

/// Applies an [`HttpLimiter`]'s limits to a service; made by [`HttpLimiter::layer`].
///
/// With axum, add it with `Router::layer`: it then runs after routing, so it sees the matched
/// route. It works the same in front of any `tower::Service<http::Request<B>>`, where the
/// route is the request's path.
///
/// ```
/// use axum::{Router, routing::get};
/// use tollgate_tower::HttpLimiter;
///
/// let limiter = HttpLimiter::builder().default_limit("3/minute").build()?;
/// let app: Router = Router::new()
///     .route("/ping", get(|| async { "pong" }))
///     .layer(limiter.layer());
/// # Ok::<(), tollgate_tower::BuildError>(())
/// ```
pub struct HttpLimitLayer<S: Store = MemoryStore> {
    limiter: HttpLimiter<S>,
}

impl<S: Store> HttpLimitLayer<S> {
    /// A layer applying `limiter`'s limits: what [`HttpLimiter::layer`] makes. Every service
    /// it wraps shares the limiter's counts.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tollgate_tower::{HttpLimitLayer, HttpLimiter};
    ///
    /// # use std::convert::Infallible;
    /// # let hello = || tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, Infallible>(http::Response::new("hello"))
    /// # });
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().application_limit("1/minute").build()?;
    /// let layer = HttpLimitLayer::new(limiter);
    /// let (first, second) = (layer.layer(hello()), layer.layer(hello()));
    /// assert_eq!(futures_executor::block_on(first.oneshot(get("/a"))).unwrap().status(), 200);
    /// assert_eq!(futures_executor::block_on(second.oneshot(get("/b"))).unwrap().status(), 429);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn new(limiter: HttpLimiter<S>) -> Self {
        Self { limiter }
    }
}

impl<S: Store> Clone for HttpLimitLayer<S> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
        }
    }
}

impl<S: Store> fmt::Debug for HttpLimitLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S: Store, Inner> Layer<Inner> for HttpLimitLayer<S> {
    type Service = HttpLimitService<S, Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        HttpLimitService::new(self.limiter.clone(), inner)
    }
}
