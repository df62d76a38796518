//! What keeps a slow client from holding an HTTP request: a body with a deadline, and the
//! `408` that answers a request whose body missed it. (The connection's own timers and the
//! cap on connections are in `server/connection.rs`.)

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// A request body that must arrive whole within a time from its first read; past it, it
/// fails, and [`Expired::answer`] turns the handler's answer into a `408`.
pub(crate) struct Deadline {
    inner: hyper::body::Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Expired,
}

/// Whether a request's [`Deadline`] has passed.
#[derive(Clone, Default)]
pub(crate) struct Expired(Arc<AtomicBool>);

impl Deadline {
    /// `inner` with `timeout`, and the flag that says whether it passed.
    pub(crate) fn new(inner: hyper::body::Incoming, timeout: Duration) -> (Self, Expired) {
        let expired = Expired::default();
        let body = Self {
            inner,
            timeout,
            sleep: None,
            expired: expired.clone(),
        };
        (body, expired)
    }
}

impl Expired {
    /// `response`, unless the body's deadline passed: then `408` with
    /// `{"error": "..."}`, and the connection closes after it (the body is left unread).
    pub(crate) fn answer(&self, response: Response) -> Response {
        if !self.0.load(Ordering::Acquire) {
            return response;
        }
        let mut timed_out = tollgate_tower::json_error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive within body_timeout",
        );
        timed_out
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        timed_out
    }
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(io::Error::other)));
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.0.store(true, Ordering::Release);
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body did not arrive within body_timeout",
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
