//! [`Limit::max_delay`] and [`Builder::max_waiting`]: delaying a request for its reserved
//! slot instead of rejecting it, and how many requests may wait at once.

use std::time::Duration;

use tollgate::Store;

use crate::builder::Builder;
use crate::builder::limit::Limit;

impl Limit {
    /// Lets a request that does not fit now wait up to `max_delay` for a slot instead of
    /// being answered 429 (nginx's `limit_req ... delay`, Traefik's `maxDelay`). Its slot is
    /// reserved when it arrives (see [`tollgate::Policy::with_max_delay`]), so parallel
    /// requests are released one after the other at the rate; the layer then waits (with
    /// Tokio's timer: the service must run on a Tokio runtime, as axum and hyper do) before
    /// calling the inner service. A request that would wait longer is answered 429 with the
    /// exact `Retry-After`, as without the option.
    ///
    /// Offered for the token bucket and for the fixed window (a delay shorter than its
    /// window); the sliding windows refuse it when the limiter is built. At most
    /// [`Builder::max_waiting`] requests wait at once. A request whose client goes away
    /// while it waits keeps its reservation: giving the slot back would let a client that
    /// cancels and retries move itself up the queue.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::Strategy;
    /// use tollgate_tower::{HttpLimiter, Limit};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// # let get = || http::Request::get("/").body(()).unwrap();
    /// // 10 a second, one at a time, waiting up to half a second for a turn.
    /// let paced = Limit::new("10/second").strategy(Strategy::TokenBucket).burst(1);
    /// let limiter = HttpLimiter::builder()
    ///     .default_limit(paced.max_delay(Duration::from_millis(500)))
    ///     .build()?;
    /// let service = limiter.layer().layer(ok);
    /// let started = tokio::time::Instant::now();
    /// assert_eq!(service.clone().oneshot(get()).await?.status(), 200);
    /// assert_eq!(service.clone().oneshot(get()).await?.status(), 200); // after ~100 ms
    /// assert!(started.elapsed() >= Duration::from_millis(90));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }
}

impl<S: Store> Builder<S> {
    /// At most `max_waiting` requests wait for a reserved slot at once (see
    /// [`Limit::max_delay`]), 1,024 unless set: each holds a connection and a task, so a
    /// flood must not hold more. A request admitted with a delay beyond that is answered
    /// 429, and the slots it reserved are given back.
    ///
    /// ```
    /// use tollgate_tower::HttpLimiter;
    ///
    /// let limiter = HttpLimiter::builder().max_waiting(64).default_limit("10/second").build()?;
    /// assert_eq!(limiter.waiting_requests(), (0, 64));
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn max_waiting(mut self, max_waiting: usize) -> Self {
        self.declared.max_waiting = max_waiting;
        self
    }

    /// Whether the layer waits for a request's reserved slot before calling the inner
    /// service (it does unless told otherwise). Told not to, it lets a request admitted with
    /// a delay through at once, its slot still reserved: for replaying traffic in virtual
    /// time (as `tollgate simulate` does, on a manual clock), where waiting on the timer
    /// would only slow the replay. A service that is not replaying should keep the waits,
    /// or requests reach it faster than the rate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{ManualClock, Strategy};
    /// use tollgate_tower::{HttpLimiter, Limit};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// # let get = || http::Request::get("/").body(()).unwrap();
    /// let paced = Limit::new("1/minute").strategy(Strategy::TokenBucket);
    /// let limiter = HttpLimiter::builder()
    ///     .clock(ManualClock::new())
    ///     .wait_for_delays(false)
    ///     .default_limit(paced.max_delay(Duration::from_secs(60)))
    ///     .build()?;
    /// let service = limiter.layer().layer(ok);
    /// let status = || futures_executor::block_on(service.clone().oneshot(get())).unwrap().status();
    /// assert_eq!(status(), 200);
    /// assert_eq!(status(), 200); // its slot is a minute away, but it is let through now
    /// assert_eq!(status(), 429); // two minutes away: longer than the delay allowed
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn wait_for_delays(mut self, wait: bool) -> Self {
        self.declared.wait_for_delays = wait;
        self
    }
}
