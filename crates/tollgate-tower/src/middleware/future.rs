//! [`ResponseFuture`]: the response future of an [`HttpLimitService`].
//!
//! [`HttpLimitService`]: crate::HttpLimitService

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::FutureExt;
use http::Response;
use http_body_util::Either;
use pin_project_lite::pin_project;
use tollgate::Store;

use crate::check::{Pending, Rules};
use crate::middleware::held_body::SlotHeldBody;
use crate::middleware::service::HttpLimitBody;

/// A boxed future: the path for stores that wait (Redis).
type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<HttpLimitBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of an [`HttpLimitService`](crate::HttpLimitService).
    ///
    /// Over a store that answers at once (the memory store), the check has already run when
    /// this future is made: it is the inner service's future plus what to do with its
    /// response, with no allocation. Over a store that waits, it is boxed.
    ///
    /// ```
    /// use tollgate::MemoryStore;
    /// use tower::{Layer, Service, ServiceExt};
    /// use tollgate_tower::{HttpLimiter, future::ResponseFuture};
    ///
    /// # use std::convert::Infallible;
    /// # let hello = || tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, Infallible>(http::Response::new("hello"))
    /// # });
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().default_limit("1/minute").build()?;
    /// let mut service = limiter.layer().layer(hello());
    /// futures_executor::block_on(service.ready()).unwrap();
    /// let first: ResponseFuture<_, MemoryStore, _, _> = service.call(get("/"));
    /// futures_executor::block_on(service.ready()).unwrap();
    /// let second = service.call(get("/")); // the check has already run
    /// assert_eq!(futures_executor::block_on(second).unwrap().status(), 429);
    /// assert_eq!(futures_executor::block_on(first).unwrap().status(), 200);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub struct ResponseFuture<F, S: Store, B, E> {
        #[pin]
        state: State<F, S, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S: Store, B, E> {
        /// The limiter's own answer (a 429, a 503).
        Answered { response: Option<Response<Body>> },
        /// The inner service's response, then the admission's settlement.
        Inner {
            #[pin]
            future: F,
            settle: Option<(Arc<Rules<S>>, Pending<S>)>,
        },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, S: Store, B, E> ResponseFuture<F, S, B, E> {
    pub(crate) fn answered(response: Response<Body>) -> Self {
        Self {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    pub(crate) fn inner(future: F, settle: Option<(Arc<Rules<S>>, Pending<S>)>) -> Self {
        Self {
            state: State::Inner { future, settle },
        }
    }

    pub(crate) fn boxed(future: Boxed<B, E>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }
}

impl<F, S: Store, B, E> fmt::Debug for ResponseFuture<F, S, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, S, B, E> Future for ResponseFuture<F, S, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    S: Store,
{
    type Output = Result<Response<HttpLimitBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response.map(Either::Right))),
                None => Poll::Pending,
            },
            StateProj::Inner { future, settle } => {
                let result = std::task::ready!(future.poll(cx));
                Poll::Ready(match result {
                    Ok(response) => {
                        let (mut parts, body) = response.into_parts();
                        let mut slots = None;
                        if let Some((rules, mut pending)) = settle.take() {
                            slots = pending.take_slots();
                            settle_now(&rules, pending, Some(&mut parts));
                        }
                        let body = SlotHeldBody::new(body, slots);
                        Ok(Response::from_parts(parts, Either::Left(body)))
                    }
                    Err(err) => {
                        if let Some((rules, pending)) = settle.take() {
                            settle_now(&rules, pending, None);
                        }
                        Err(err)
                    }
                })
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

/// Settles `pending` in place: its store answers at once.
fn settle_now<S: Store>(
    rules: &Rules<S>,
    pending: Pending<S>,
    response: Option<&mut http::response::Parts>,
) {
    if rules.settle(pending, response).now_or_never().is_none() {
        tracing::error!("a store that answers at once kept a settlement waiting; it was dropped");
    }
}
