//! [`Limit::ban`]: banning a client that keeps hitting a limit after its 429s.

use std::time::Duration;

use crate::builder::limit::Limit;

impl Limit {
    /// Bans a key that keeps hitting this limit after its denials: after `after` breaches
    /// (denied requests, in the notation: `"3/10 minutes"`) within its window, every request
    /// of the key is denied for `duration`, with a `Retry-After` of the ban's remaining time
    /// and `"banned": true` in the default 429 body, without counting against the limit. A
    /// ban is kept in the store with the counts, so with Redis every process honours it; it
    /// ends by itself. See [`tollgate::Ban`] for what counts as a breach.
    ///
    /// A limit made from a [`tollgate::Policy`] takes the policy's ban
    /// ([`tollgate::Policy::with_ban`]) instead. Mistakes (a notation error, a ban after 0
    /// breaches, a duration that is not whole seconds from 1 s to 100 years) are reported by
    /// [`crate::Builder::build`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::ManualClock;
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let clock = ManualClock::new();
    /// let login = Limit::new("1/minute").ban("2/10 minutes", Duration::from_secs(3600));
    /// let limiter = HttpLimiter::builder().clock(clock.clone()).route("/login", login).build()?;
    /// assert_eq!(send(&limiter, get("/login")).status(), 200);
    /// assert_eq!(send(&limiter, get("/login")).headers()["retry-after"], "60"); // a breach
    /// assert_eq!(send(&limiter, get("/login")).headers()["retry-after"], "3600"); // banned
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(send(&limiter, get("/login")).status(), 429); // the minute is over, not the ban
    ///
    /// let wrong = Limit::new("1/minute").ban("0/minute", Duration::from_secs(60));
    /// let err = HttpLimiter::builder().default_limit(wrong).build().unwrap_err();
    /// assert_eq!(err.to_string(), "limit on default: a ban needs at least one breach per window, not 0");
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn ban(mut self, after: &str, duration: Duration) -> Self {
        self.ban = Some((after.parse(), duration));
        self
    }
}
