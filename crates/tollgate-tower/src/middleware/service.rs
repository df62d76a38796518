//! [`HttpLimitService`]: a service behind an [`HttpLimiter`]'s limits.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Either;
use tollgate::{MemoryStore, Store};
use tower_service::Service;

use crate::check::{HttpLimiter, Pending, RequestCheck, Rules};
use crate::middleware::future::ResponseFuture;
use crate::middleware::held_body::SlotHeldBody;
use crate::respond;

/// The body of an [`HttpLimitService`]'s responses: the inner service's (holding the
/// request's concurrency slots until it has been sent, see [`SlotHeldBody`]), or the
/// limiter's own (a 429, a 503).
///
/// ```
/// use http_body_util::Either;
/// use tower::{Layer, ServiceExt};
/// use tollgate_tower::{HttpLimitBody, HttpLimiter};
///
/// # use std::convert::Infallible;
/// # let hello = || tower::service_fn(|_: http::Request<()>| async {
/// #     Ok::<_, Infallible>(http::Response::new("hello"))
/// # });
/// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
/// let limiter = HttpLimiter::builder().default_limit("1/minute").build()?;
/// let service = limiter.layer().layer(hello());
/// let send = |request| futures_executor::block_on(service.clone().oneshot(request)).unwrap();
/// let allowed: http::Response<HttpLimitBody<&str>> = send(get("/"));
/// assert!(matches!(allowed.body(), Either::Left(body) if *body.get_ref() == "hello")); // the inner service's body
/// let denied = send(get("/"));
/// assert!(matches!(denied.body(), Either::Right(_))); // the limiter's 429
/// # Ok::<(), tollgate_tower::BuildError>(())
/// ```
pub type HttpLimitBody<B> = Either<SlotHeldBody<B>, Body>;

/// A service behind an [`HttpLimiter`]'s limits; made by [`crate::HttpLimitLayer`].
///
/// It is always as ready as the service it wraps: a denied request is answered from `call`,
/// never by making callers wait in `poll_ready`.
///
/// ```
/// use std::convert::Infallible;
/// use tower::{Layer, ServiceExt, service_fn};
/// use tollgate_tower::{HttpLimiter, PeerAddr};
///
/// # tokio_test();
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn tokio_test() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = HttpLimiter::builder().default_limit("1/minute").build()?;
/// let hello = service_fn(|_: http::Request<()>| async {
///     Ok::<_, Infallible>(http::Response::new(String::from("hello")))
/// });
/// let service = limiter.layer().layer(hello);
/// let request = || {
///     let mut request = http::Request::new(());
///     request.extensions_mut().insert(PeerAddr("192.0.2.1:4000".parse().unwrap()));
///     request
/// };
/// assert_eq!(service.clone().oneshot(request()).await?.status(), 200);
/// assert_eq!(service.clone().oneshot(request()).await?.status(), 429);
/// # Ok(())
/// # }
/// ```
pub struct HttpLimitService<S: Store = MemoryStore, Inner = ()> {
    limiter: HttpLimiter<S>,
    inner: Inner,
}

impl<S: Store, Inner> HttpLimitService<S, Inner> {
    /// `inner` behind `limiter`'s limits: what [`crate::HttpLimitLayer`] wraps a service in.
    ///
    /// ```
    /// use tower::ServiceExt;
    /// use tollgate_tower::{HttpLimitService, HttpLimiter};
    ///
    /// # use std::convert::Infallible;
    /// # let hello = || tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, Infallible>(http::Response::new("hello"))
    /// # });
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().default_limit("1/minute").build()?;
    /// let service = HttpLimitService::new(limiter, hello());
    /// let status = |request| futures_executor::block_on(service.clone().oneshot(request)).unwrap().status();
    /// assert_eq!(status(get("/")), 200);
    /// assert_eq!(status(get("/")), 429);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn new(limiter: HttpLimiter<S>, inner: Inner) -> Self {
        Self { limiter, inner }
    }

    /// The wrapped service.
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
    /// // Called directly, the inner service meets no limit.
    /// let inner = service.inner().clone();
    /// assert_eq!(futures_executor::block_on(inner.oneshot(get("/"))).unwrap().status(), 200);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl<S: Store, Inner: Clone> Clone for HttpLimitService<S, Inner> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S: Store, Inner: fmt::Debug> fmt::Debug for HttpLimitService<S, Inner> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLimitService")
            .field("limiter", &self.limiter)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Inner, ReqBody, ResBody> Service<Request<ReqBody>> for HttpLimitService<S, Inner>
where
    S: Store,
    Inner: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    Inner::Future: Send,
    Inner::Error: Send,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<HttpLimitBody<ResBody>>;
    type Error = Inner::Error;
    type Future = ResponseFuture<Inner::Future, S, ResBody, Inner::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone takes the place of the service that was polled ready, which serves this
        // request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rules = Arc::clone(self.limiter.rules());
        if rules.answers_immediately() {
            // The memory store: check in place, and allocate nothing for waiting.
            let (mut parts, body) = request.into_parts();
            return match rules.check(&mut parts).now_or_never() {
                Some(RequestCheck::Exempt) => {
                    ResponseFuture::inner(inner.call(Request::from_parts(parts, body)), None)
                }
                Some(RequestCheck::Rejected(response)) => ResponseFuture::answered(response),
                Some(RequestCheck::Admitted(pending)) if pending.waits() => {
                    let request = Request::from_parts(parts, body);
                    ResponseFuture::boxed(Box::pin(serve_admitted(rules, inner, request, pending)))
                }
                Some(RequestCheck::Admitted(pending)) => ResponseFuture::inner(
                    inner.call(Request::from_parts(parts, body)),
                    Some((rules, pending)),
                ),
                None => {
                    tracing::error!("a store that answers at once kept a check waiting");
                    ResponseFuture::answered(respond::store_unavailable())
                }
            };
        }
        ResponseFuture::boxed(Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match rules.check(&mut parts).await {
                RequestCheck::Exempt => {
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(response.map(|body| Either::Left(SlotHeldBody::new(body, None))))
                }
                RequestCheck::Rejected(response) => Ok(response.map(Either::Right)),
                RequestCheck::Admitted(pending) => {
                    let request = Request::from_parts(parts, body);
                    serve_admitted(rules, inner, request, pending).await
                }
            }
        }))
    }
}

/// Serves an admitted request: waits for its reserved slot if it has one (holding its place
/// in the waiting room meanwhile), calls `inner`, and settles the admission with the
/// response. Dropped while it waits, it gives up its place, not its reservation.
async fn serve_admitted<S, Inner, ReqBody, ResBody>(
    rules: Arc<Rules<S>>,
    mut inner: Inner,
    request: Request<ReqBody>,
    mut pending: Pending<S>,
) -> Result<Response<HttpLimitBody<ResBody>>, Inner::Error>
where
    S: Store,
    Inner: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    if let Some((delay, place)) = pending.take_wait() {
        tokio::time::sleep(delay).await;
        drop(place);
    }
    match inner.call(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            let slots = pending.take_slots();
            rules.settle(pending, Some(&mut parts)).await;
            let body = SlotHeldBody::new(body, slots);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(err) => {
            rules.settle(pending, None).await;
            Err(err)
        }
    }
}
