//! Where a builder's counts will live: a store and a clock of its own, or a [`Limiter`]
//! shared with other front ends.

use std::sync::Arc;

use tollgate::{Clock, Limiter, Store};

use crate::builder::{Builder, DeclarationError};

/// Where the counts will live.
pub(super) enum Engine<S: Store> {
    /// A limiter made by [`Builder::build`], over this store and clock.
    New {
        store: S,
        clock: Option<Arc<dyn Clock>>,
    },
    /// A limiter shared with other users.
    Shared(Limiter<S>),
}

impl<S: Store> Engine<S> {
    /// The limiter the compiled limits count through.
    pub(super) fn into_limiter(self) -> Limiter<S> {
        match self {
            Engine::New { store, clock } => {
                let limiter = Limiter::new(store);
                match clock {
                    Some(clock) => limiter.with_clock(clock),
                    None => limiter,
                }
            }
            Engine::Shared(limiter) => limiter,
        }
    }
}

impl<S: Store> Builder<S> {
    /// Keeps the counts in `store` instead of memory: a Redis store shares them between
    /// processes. Wrap it in [`tollgate::Failover`] to choose what happens when it fails;
    /// otherwise a store error answers `503 Service Unavailable`.
    ///
    /// ```
    /// use tollgate::{Failover, FailureMode, MemoryStore};
    /// use tollgate_tower::HttpLimiter;
    ///
    /// let limiter = HttpLimiter::builder()
    ///     .store(Failover::new(MemoryStore::new(), FailureMode::Allow))
    ///     .default_limit("10/second")
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn store<T: Store>(self, store: T) -> Builder<T> {
        let clock = match self.engine {
            Engine::New { clock, .. } => clock,
            Engine::Shared(_) => None,
        };
        Builder {
            engine: Engine::New { store, clock },
            declared: self.declared,
        }
    }

    /// Counts in `limiter`'s store, reads its clock and keeps the policies of dynamic limits
    /// among its inline policies: for several front ends sharing one limiter (a server's
    /// check API and its proxy). A clock set on this builder, before or after, is a mistake:
    /// the limiter has its own.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore};
    /// use tollgate_tower::HttpLimiter;
    ///
    /// let shared = Limiter::new(MemoryStore::new());
    /// let limiter = HttpLimiter::builder()
    ///     .limiter(shared.clone())
    ///     .default_limit("10/second")
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn limiter<T: Store>(mut self, limiter: Limiter<T>) -> Builder<T> {
        if matches!(self.engine, Engine::New { clock: Some(_), .. }) {
            self.declared
                .errors
                .push(DeclarationError::ClockOfSharedLimiter);
        }
        Builder {
            engine: Engine::Shared(limiter),
            declared: self.declared,
        }
    }

    /// Reads time from `clock` (a [`tollgate::ManualClock`] in tests).
    ///
    /// A builder given a [`Builder::limiter`] reads that limiter's clock: set it there.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::ManualClock;
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let clock = ManualClock::new();
    /// let limiter = HttpLimiter::builder().clock(clock.clone()).default_limit("1/minute").build()?;
    /// assert_eq!(send(&limiter, get("/")).status(), 200);
    /// assert_eq!(send(&limiter, get("/")).status(), 429);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(send(&limiter, get("/")).status(), 200);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        match &mut self.engine {
            Engine::New { clock: slot, .. } => *slot = Some(Arc::new(clock)),
            Engine::Shared(_) => self
                .declared
                .errors
                .push(DeclarationError::ClockOfSharedLimiter),
        }
        self
    }
}
