//! What responses and hooks say of limits: [`Limit::name`] (the name in the headers and
//! breaches), [`Limit::shadow`] (limits that never deny, only report), and which limits the
//! headers list ([`Builder::header_policies`], [`Builder::headers_include_shadow`]).

use tollgate::Store;

use crate::builder::Builder;
use crate::builder::limit::Limit;
use crate::headers::HeaderPolicies;

impl Limit {
    /// Names this limit `name` in the rate-limit headers (`RateLimit-Policy: "login";q=5;w=60`)
    /// and in breaches ([`crate::Breach::limit_name`]). It does not change where the limit
    /// counts: renaming a limit keeps its counts.
    ///
    /// A limit without a name is called in the headers by its shared name
    /// ([`Limit::shared`]) if it has one, else by the rate each decision describes, in
    /// tollgate's notation (`"5/minute"`): never by the route it is on or its scope, which
    /// are the server's business (breaches still name those).
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder()
    ///     .application_limit("5000/hour")
    ///     .route("/login", Limit::new("5/minute").name("login"))
    ///     .build()?;
    /// let response = send(&limiter, get("/login"));
    /// // The application limit, unnamed, is called by its rate.
    /// assert_eq!(response.headers()["ratelimit-policy"], r#""5000/hour";q=5000;w=3600, "login";q=5;w=60"#);
    /// assert_eq!(response.headers()["ratelimit"], r#""5000/hour";r=4999;t=3600, "login";r=4;t=60"#);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes this a shadow limit (a dry run, as nginx's `limit_req_dry_run`): counted and
    /// decided like any other, but never denying. A request it would deny goes through; the
    /// on-breach hook sees the breach, marked [`crate::Breach::is_shadow`]; its
    /// [`Limit::on_decision`] sees [`tollgate::ChargeResult::ShadowDenied`]. The rate-limit headers
    /// leave it out unless [`crate::Builder::headers_include_shadow`] asks for it.
    ///
    /// A route whose only limits are shadow ones still meets the default limits: adding a
    /// shadow limit never changes what is enforced.
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let would_deny = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    /// let count = std::sync::Arc::clone(&would_deny);
    /// let limiter = HttpLimiter::builder()
    ///     .default_limit("100/minute")
    ///     .route("/search", Limit::new("1/minute").name("search-trial").shadow())
    ///     .on_breach(move |_, breach| {
    ///         assert!(breach.is_shadow());
    ///         count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ///     })
    ///     .build()?;
    /// for _ in 0..3 {
    ///     let response = send(&limiter, get("/search"));
    ///     assert_eq!(response.status(), 200); // never denied by the trial
    ///     assert_eq!(response.headers()["ratelimit-policy"], r#""100/minute";q=100;w=60"#);
    /// }
    /// assert_eq!(would_deny.load(std::sync::atomic::Ordering::Relaxed), 2);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }
}

impl<S: Store> Builder<S> {
    /// Which limits the IETF fields list: every limit the request met (the default), or only
    /// the closest to denying. The legacy `X-RateLimit-*` fields describe the closest either
    /// way.
    ///
    /// ```
    /// use tollgate_tower::{HeaderPolicies, HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let builder = || {
    ///     HttpLimiter::builder()
    ///         .application_limit(Limit::new("5000/hour").name("app"))
    ///         .route("/login", Limit::new("5/minute").name("login"))
    /// };
    /// let every = builder().build()?;
    /// let response = send(&every, get("/login"));
    /// assert_eq!(response.headers()["ratelimit-policy"], r#""app";q=5000;w=3600, "login";q=5;w=60"#);
    /// let closest = builder().header_policies(HeaderPolicies::Closest).build()?;
    /// let response = send(&closest, get("/login"));
    /// assert_eq!(response.headers()["ratelimit-policy"], r#""login";q=5;w=60"#);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn header_policies(mut self, policies: HeaderPolicies) -> Self {
        self.declared.header_policies = policies;
        self
    }

    /// Lists shadow limits ([`Limit::shadow`]) in the rate-limit headers too, as if they
    /// were enforced (the closest to denying may then be a shadow one); without it, headers
    /// describe enforced limits only.
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder()
    ///     .route("/login", Limit::new("5/minute").name("login"))
    ///     .route("/login", Limit::new("2/minute").name("login-trial").shadow())
    ///     .headers_include_shadow(true)
    ///     .build()?;
    /// let response = send(&limiter, get("/login"));
    /// assert_eq!(response.headers()["ratelimit"], r#""login";r=4;t=60, "login-trial";r=1;t=60"#);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn headers_include_shadow(mut self, include: bool) -> Self {
        self.declared.headers_include_shadow = include;
        self
    }
}
