//! [`WaitingRoom`]: the requests that wait for their reserved slot, counted and capped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

use crate::respond;

/// How many requests may wait at once unless [`crate::Builder::max_waiting`] says otherwise.
pub(crate) const DEFAULT_MAX_WAITING: usize = 1024;

/// The requests of one [`crate::HttpLimiter`] that wait for a reserved slot: at most `max`.
#[derive(Debug)]
pub(crate) struct WaitingRoom {
    /// Requests waiting now, at most `max`.
    waiting: AtomicUsize,
    max: usize,
}

/// A place in the [`WaitingRoom`], given up when dropped (the wait is over, or the request
/// was dropped while it waited).
#[derive(Debug)]
pub(crate) struct WaitingPermit(Arc<WaitingRoom>);

impl WaitingRoom {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            max,
        }
    }

    /// A place, unless `max` requests already wait.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<WaitingPermit> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.max).then_some(waiting + 1)
            })
            .ok()
            .map(|_| WaitingPermit(Arc::clone(self)))
    }

    /// Requests waiting now, and the most that may.
    pub(crate) fn occupancy(&self) -> (usize, usize) {
        (self.waiting.load(Ordering::Acquire), self.max)
    }
}

impl Drop for WaitingPermit {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The answer to a request that would have waited `delay` when the room was full: 429, with
/// a `Retry-After` of the delay in whole seconds (at least 1).
pub(crate) fn room_full(delay: Duration) -> Response<Body> {
    let mut response = respond::json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests are already waiting for their turn; retry later",
    );
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}
