use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{Request, Response};
use http_body_util::Either;
use tollgate::{MemoryStore, Store};
use tower_service::Service;

use crate::RateLimiter;
use crate::limiter::Verdict;

/// The body of a [`RateLimitService`]'s responses: the inner service's, or the rate
/// limiter's own (a 429, a 503).
pub type RateLimitBody<B> = Either<B, Body>;

/// A service behind a [`RateLimiter`]'s limits; made by [`crate::RateLimitLayer`].
///
/// It is always as ready as the service it wraps: a denied request is answered from `call`,
/// never by making callers wait in `poll_ready`.
///
/// ```
/// use std::convert::Infallible;
/// use tower::{Layer, ServiceExt, service_fn};
/// use tollgate_tower::{PeerAddr, RateLimiter};
///
/// # tokio_test();
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn tokio_test() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::builder().default_limit("1/minute").build()?;
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
pub struct RateLimitService<S: Store = MemoryStore, Inner = ()> {
    limiter: RateLimiter<S>,
    inner: Inner,
}

impl<S: Store, Inner> RateLimitService<S, Inner> {
    /// `inner` behind `limiter`'s limits.
    pub fn new(limiter: RateLimiter<S>, inner: Inner) -> Self {
        Self { limiter, inner }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl<S: Store, Inner: Clone> Clone for RateLimitService<S, Inner> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S: Store, Inner: fmt::Debug> fmt::Debug for RateLimitService<S, Inner> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("limiter", &self.limiter)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Inner, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, Inner>
where
    S: Store,
    Inner: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    Inner::Future: Send,
    Inner::Error: Send,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<RateLimitBody<ResBody>>;
    type Error = Inner::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone takes the place of the service that was polled ready, which serves this
        // request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            let shared = limiter.shared();
            let (mut parts, body) = request.into_parts();
            match shared.check(&mut parts).await {
                Verdict::Exempt => {
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(response.map(Either::Left))
                }
                Verdict::Rejected(response) => Ok(response.map(Either::Right)),
                Verdict::Admitted(admission) => {
                    match inner.call(Request::from_parts(parts, body)).await {
                        Ok(response) => {
                            let (mut parts, body) = response.into_parts();
                            shared.settle(admission, Some(&mut parts)).await;
                            Ok(Response::from_parts(parts, Either::Left(body)))
                        }
                        Err(err) => {
                            shared.settle(admission, None).await;
                            Err(err)
                        }
                    }
                }
            }
        })
    }
}
