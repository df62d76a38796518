//! [`Limit::charge_after`]: a cost known only once the response is ready.

use crate::builder::limit::Limit;

impl Limit {
    /// Charges each request what `cost(response)` says, once the response head is ready: for
    /// a cost known only then (the tokens an LLM's answer took, from a header the upstream
    /// sets). A request is let through if its key has any allowance left (a charge of one
    /// unit, or of [`Limit::cost`] when set, is made up front, so parallel requests see each
    /// other); when the response head is ready the charge becomes `cost(response)`: the
    /// difference is given back, or charged whatever the room left. A key charged beyond
    /// its limit is in debt: its next requests are denied until the debt is repaid by the
    /// window or the refill (see [`tollgate::strategy::overdraw`] for each strategy; a key
    /// owes at most one limit's worth, the rest is forgiven).
    ///
    /// If the service fails (no response), the charge made up front stands; an up-front
    /// cost of 0 from [`Limit::cost`] leaves the request unlimited by this limit, its late
    /// cost included. With
    /// [`Limit::deduct_when`] too, a response that does not count is given back whole. The
    /// rate-limit headers of the response describe the key as it was admitted, before the
    /// response's cost.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// // Each answer says how many tokens it took.
    /// let tokens = |response: &http::response::Parts| {
    ///     response.headers.get("x-tokens").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1)
    /// };
    /// let limiter = HttpLimiter::builder()
    ///     .route("/complete", Limit::new("1000/minute").charge_after(tokens))
    ///     .build()?;
    /// let model = service_fn(|request: http::Request<u64>| async move {
    ///     let response = http::Response::builder().header("x-tokens", *request.body()).body(());
    ///     Ok::<_, Infallible>(response.expect("valid"))
    /// });
    /// let service = limiter.layer().layer(model);
    /// let complete = |tokens| {
    ///     let request = http::Request::post("/complete").body(tokens).unwrap();
    ///     futures_executor::block_on(service.clone().oneshot(request)).unwrap().status()
    /// };
    /// assert_eq!(complete(900), 200); // admitted with 1000 left, then charged 900
    /// assert_eq!(complete(1300), 200); // admitted with 100 left: now in debt, a limit's worth at most
    /// assert_eq!(complete(1), 429); // in debt until the next minutes repay it
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn charge_after<F>(mut self, cost: F) -> Self
    where
        F: Fn(&http::response::Parts) -> u64 + Send + Sync + 'static,
    {
        self.charge_after = Some(std::sync::Arc::new(cost));
        self
    }
}
