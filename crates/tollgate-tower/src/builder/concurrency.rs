//! [`Limit::concurrency`]: how many requests of one key may be in flight at once.

use std::time::Duration;

use tollgate::ConcurrencyLimit;

use crate::builder::limit::{Limit, LimitRates};

impl Limit {
    /// At most `max` requests of one key in flight at once (keys as for any limit: the
    /// client IP unless [`Limit::key`] says otherwise). A request takes a slot before it
    /// reaches the service and holds it until its response body has been sent to the end,
    /// or dropped (a client that disconnects frees its slot); a request that finds every
    /// slot taken gets a 429 whose `Retry-After` is the time until the key's earliest lease
    /// expires (the latest a slot frees). Its slots and the rate limits the request meets are
    /// taken all or none: a request a rate limit denies gives its slot back, and one that
    /// finds the slots full charges no rate.
    ///
    /// A slot is a lease in the store that expires by itself after [`Limit::lease_ttl`]
    /// (default [`tollgate::DEFAULT_LEASE_TTL`], 60 s), so a slot leaked by a process that
    /// died (with a Redis store) frees in time; set it above the longest response. Rate
    /// options ([`Limit::strategy`], [`Limit::burst`], [`Limit::cost`],
    /// [`Limit::deduct_when`], [`Limit::charge_after`], [`Limit::ban`], [`Limit::shadow`])
    /// do not apply: [`crate::Builder::build`] refuses them. Rate-limit headers describe
    /// rate limits only.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = HttpLimiter::builder().route("/export", Limit::concurrency(1)).build()?;
    /// let export = service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, Infallible>(http::Response::new(String::from("rows")))
    /// });
    /// let service = limiter.layer().layer(export);
    /// let get = || http::Request::get("/export").body(()).expect("a request");
    /// let first = service.clone().oneshot(get()).await?;
    /// assert_eq!(first.status(), 200);
    /// // The first response's body has not been sent yet: its slot is held.
    /// assert_eq!(service.clone().oneshot(get()).await?.status(), 429);
    /// drop(first); // sent, or its client gone
    /// assert_eq!(service.clone().oneshot(get()).await?.status(), 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn concurrency(max: u32) -> Self {
        Self::with_rates(LimitRates::Concurrency(ConcurrencyLimit::new(max)))
    }

    /// How long a slot of a [`Limit::concurrency`] limit stays taken if its release never
    /// comes (1 ms to a day; default [`tollgate::DEFAULT_LEASE_TTL`]). Refused by
    /// [`crate::Builder::build`] on a rate limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// let uploads = Limit::concurrency(2).lease_ttl(Duration::from_secs(300));
    /// assert!(HttpLimiter::builder().route("/upload", uploads).build().is_ok());
    /// let wrong = Limit::new("5/minute").lease_ttl(Duration::from_secs(300));
    /// let err = HttpLimiter::builder().route("/upload", wrong).build().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"limit on route "/upload": lease_ttl applies to concurrency limits only"#
    /// );
    /// ```
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// The options set on this limit that a concurrency limit does not take.
    pub(crate) fn rate_options(&self) -> Option<&'static str> {
        [
            (self.strategy.is_some(), "strategy"),
            (self.burst.is_some(), "burst"),
            (self.cost.is_some(), "cost"),
            (self.deduct_when.is_some(), "deduct_when"),
            (self.charge_after.is_some(), "charge_after"),
            (self.ban.is_some(), "ban"),
            (self.max_delay.is_some(), "max_delay"),
            (self.shadow, "shadow"),
        ]
        .into_iter()
        .find_map(|(set, option)| set.then_some(option))
    }
}
