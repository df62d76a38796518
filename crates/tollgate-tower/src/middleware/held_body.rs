//! [`SlotHeldBody`]: a response body that holds the request's concurrency slots until it has
//! been sent to the end, or dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tollgate::{HeldLeases, Store};

/// The release of an admitted request's concurrency slots, made when dropped: in place when
/// the store answers at once (the memory store), else on the tokio runtime the response is
/// dropped in. Without a runtime the slots are left to expire after their lease time.
pub(crate) struct SlotRelease {
    release: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl SlotRelease {
    /// The release of `leases`, or `None` when none is held.
    pub(crate) fn of<S: Store>(leases: HeldLeases<S>) -> Option<Self> {
        if leases.is_empty() {
            return None;
        }
        Some(Self {
            release: Some(Box::pin(async move {
                if let Err(err) = leases.release().await {
                    tracing::warn!(
                        "concurrency slot not released (it expires after its lease time): {err}"
                    );
                }
            })),
        })
    }
}

impl Drop for SlotRelease {
    fn drop(&mut self) {
        let Some(mut release) = self.release.take() else {
            return;
        };
        if (&mut release).now_or_never().is_some() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(release)),
            Err(_) => tracing::warn!(
                "no tokio runtime to release a concurrency slot on; it expires after its lease time"
            ),
        }
    }
}

pin_project! {
    /// The inner service's response body, holding the request's concurrency slots (if any)
    /// until its last frame has been read or it is dropped: the slot of a request whose
    /// client disconnects mid-response frees when the server drops the body.
    ///
    /// ```
    /// use http_body_util::{BodyExt, Either};
    /// use tower::{Layer, ServiceExt};
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # use std::convert::Infallible;
    /// # let hello = || tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, Infallible>(http::Response::new(String::from("hello")))
    /// # });
    /// # let get = || http::Request::get("/").body(()).unwrap();
    /// # futures_executor::block_on(async {
    /// let limiter = HttpLimiter::builder().default_limit(Limit::concurrency(1)).build()?;
    /// let service = limiter.layer().layer(hello());
    /// let response = service.clone().oneshot(get()).await?;
    /// assert_eq!(service.clone().oneshot(get()).await?.status(), 429); // the slot is held
    /// let Either::Left(body) = response.into_body() else { panic!("the service's body") };
    /// assert_eq!(body.get_ref(), "hello");
    /// assert_eq!(body.collect().await?.to_bytes(), "hello"); // read to the end: released
    /// assert_eq!(service.clone().oneshot(get()).await?.status(), 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub struct SlotHeldBody<B> {
        #[pin]
        inner: B,
        slots: Option<SlotRelease>,
    }
}

impl<B> SlotHeldBody<B> {
    pub(crate) fn new(inner: B, slots: Option<SlotRelease>) -> Self {
        Self { inner, slots }
    }

    /// The inner service's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner service's body, releasing the slots it held.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for SlotHeldBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotHeldBody")
            .field("inner", &self.inner)
            .field("holds_slots", &self.slots.is_some())
            .finish()
    }
}

impl<B: Body> Body for SlotHeldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            // The end of the body: the response has been sent.
            this.slots.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
