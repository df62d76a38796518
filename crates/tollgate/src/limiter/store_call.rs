//! [`StoreCall`]: a handle's call to its store, as a future no larger than the store's own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::limiter::error::Error;
use crate::store::StoreError;

pin_project! {
    /// The future of [`crate::PolicyHandle::hit_cost`] and its kin: the store's future once the
    /// call reached the store, or the error that stopped it before (a cost the policy could
    /// never allow).
    ///
    /// It holds the store's future in place. An `async` block over the same steps holds it
    /// twice (once as what it captured, once as what it awaits), so a memory store's hit
    /// future, whose decision is made when it is created, would be copied twice its size in
    /// and out of every caller.
    #[project = StoreCallState]
    pub(super) enum StoreCall<F> {
        /// The store has the call.
        Started {
            #[pin]
            call: F,
        },
        /// Refused before the store was asked; `None` once the error was returned.
        Refused {
            error: Option<Error>,
        },
    }
}

impl<F> StoreCall<F> {
    /// The call `started` came to: the store's future, or the error that stopped it.
    #[inline(always)]
    pub(super) fn new(started: Result<F, Error>) -> Self {
        match started {
            Ok(call) => Self::Started { call },
            Err(error) => Self::Refused { error: Some(error) },
        }
    }
}

impl<F, T> Future for StoreCall<F>
where
    F: Future<Output = Result<T, StoreError>>,
{
    type Output = Result<T, Error>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StoreCallState::Started { call } => call.poll(cx).map_err(Error::Store),
            StoreCallState::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("a store call polled after it returned"))),
        }
    }
}
