use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{Request, Response};
use http_body_util::Either;
use tollgate::{MemoryStore, Store};
use tower_service::Service;

use super::future::{ResponseFuture, now_or_never};
use crate::limiter::Verdict;
use crate::{RateLimiter, breach};

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
    type Future = ResponseFuture<Inner::Future, S, ResBody, Inner::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone takes the place of the service that was polled ready, which serves this
        // request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(self.limiter.shared());
        if shared.answers_immediately() {
            // The memory store: check in place, and allocate nothing for waiting.
            let (mut parts, body) = request.into_parts();
            return match now_or_never(shared.check(&mut parts)) {
                Some(Verdict::Exempt) => {
                    ResponseFuture::inner(inner.call(Request::from_parts(parts, body)), None)
                }
                Some(Verdict::Rejected(response)) => ResponseFuture::answered(response),
                Some(Verdict::Admitted(admission)) => ResponseFuture::inner(
                    inner.call(Request::from_parts(parts, body)),
                    Some((shared, admission)),
                ),
                None => {
                    tracing::error!("a store that answers at once kept a check waiting");
                    ResponseFuture::answered(breach::error(
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "rate limit store unavailable",
                    ))
                }
            };
        }
        ResponseFuture::boxed(Box::pin(async move {
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
        }))
    }
}
