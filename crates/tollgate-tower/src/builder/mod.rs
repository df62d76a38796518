//! [`Builder`]: declaring an [`HttpLimiter`]'s limits, keys, exemptions and answers.
//!
//! - `limit.rs`: [`Limit`], one declared limit; `ban.rs` and `late_charge.rs`, its bans
//!   after repeated breaches and its charges after the response.
//! - `report.rs`: what responses and hooks say of limits: their names, shadow limits, which
//!   limits the headers list.
//! - `engine.rs`: where the counts live: the store and clock, or a shared limiter.
//! - `compile.rs`: the declarations compiled into the limits requests are checked against,
//!   and [`BuildError`], which lists every mistake found.

mod ban;
pub(crate) mod compile;
mod concurrency;
mod delay;
mod engine;
mod late_charge;
pub(crate) mod limit;
mod report;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use foldhash::fast::RandomState;
use http::Response;
use http::request::Parts;
use tollgate::{MemoryStore, Store};

use crate::check::{BreachFn, HttpLimiter, PeerFn, Predicate, RejectionFn};
use crate::client_ip::{self, ProxyHeader, TrustedProxies};
use crate::headers::{HeaderPolicies, HeaderStyle};
use crate::key::{self, KeyExtractor};
use crate::respond::{self, Breach};
pub use compile::{BuildError, DeclarationError};
use engine::Engine;
pub use limit::Limit;

impl HttpLimiter<MemoryStore> {
    /// A builder over a fresh [`MemoryStore`], keyed on the client IP, trusting no proxy,
    /// with [`HeaderStyle::Ietf`] headers and no limits yet.
    ///
    /// ```
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let unlimited = HttpLimiter::builder().build()?;
    /// assert_eq!(send(&unlimited, get("/search")).status(), 200);
    ///
    /// let limiter = HttpLimiter::builder().default_limit("5/minute").build()?;
    /// let response = send(&limiter, get("/search"));
    /// assert_eq!(response.status(), 200);
    /// // An unnamed limit is called by its rate in the headers.
    /// assert_eq!(response.headers()["ratelimit-policy"], r#""5/minute";q=5;w=60"#);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn builder() -> Builder<MemoryStore> {
        Builder {
            engine: Engine::New {
                store: MemoryStore::new(),
                clock: None,
            },
            declared: Declared {
                key: Arc::new(key::client_ip()),
                proxies: TrustedProxies::none(),
                headers: HeaderStyle::default(),
                header_policies: HeaderPolicies::default(),
                headers_include_shadow: false,
                application: Vec::new(),
                defaults: Vec::new(),
                routes: Vec::new(),
                exempt: HashSet::default(),
                exempt_when: Vec::new(),
                on_breach: None,
                rejection: Arc::new(respond::too_many_requests),
                peer: Arc::new(client_ip::peer_addr),
                namespace: String::new(),
                max_waiting: crate::check::DEFAULT_MAX_WAITING,
                wait_for_delays: true,
                errors: Vec::new(),
            },
        }
    }
}

/// Declares an [`HttpLimiter`]; made by [`HttpLimiter::builder`].
///
/// Limits are given as [`Limit`]s, [`tollgate::Policy`]s or plain strings (`"5/minute"`).
/// Mistakes (a rate that does not parse, a burst on a fixed window, a bad proxy CIDR) are
/// collected and reported together by [`Builder::build`], each naming where it is.
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
///     .default_limit("100/minute")
///     .route("/login", Limit::new("1/minute"))
///     .exempt("/health")
///     .build()?;
/// assert_eq!(send(&limiter, get("/login")).status(), 200);
/// assert_eq!(send(&limiter, get("/login")).status(), 429);
/// assert_eq!(send(&limiter, get("/search")).status(), 200); // the default limit
/// assert_eq!(send(&limiter, get("/health")).status(), 200);
/// # Ok::<(), tollgate_tower::BuildError>(())
/// ```
pub struct Builder<S: Store> {
    engine: Engine<S>,
    declared: Declared,
}

/// Everything declared, whatever the store.
pub(crate) struct Declared {
    pub(crate) key: Arc<dyn KeyExtractor>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) headers: HeaderStyle,
    pub(crate) header_policies: HeaderPolicies,
    pub(crate) headers_include_shadow: bool,
    pub(crate) application: Vec<Limit>,
    pub(crate) defaults: Vec<Limit>,
    pub(crate) routes: Vec<(String, Limit)>,
    pub(crate) exempt: HashSet<Box<str>, RandomState>,
    pub(crate) exempt_when: Vec<Predicate>,
    pub(crate) on_breach: Option<BreachFn>,
    pub(crate) rejection: RejectionFn,
    pub(crate) peer: PeerFn,
    pub(crate) namespace: String,
    /// How many requests may wait for a reserved slot at once (see `builder/delay.rs`).
    pub(crate) max_waiting: usize,
    /// Whether requests wait for their reserved slot (see `builder/delay.rs`).
    pub(crate) wait_for_delays: bool,
    /// Mistakes found while declaring (a proxy that is not a CIDR).
    pub(crate) errors: Vec<DeclarationError>,
}

impl<S: Store> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let declared = &self.declared;
        f.debug_struct("Builder")
            .field("application", &declared.application)
            .field("defaults", &declared.defaults)
            .field("routes", &declared.routes)
            .field("exempt", &declared.exempt)
            .field("proxies", &declared.proxies)
            .field("headers", &declared.headers)
            .field("header_policies", &declared.header_policies)
            .field("headers_include_shadow", &declared.headers_include_shadow)
            .field("errors", &declared.errors)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Builder<S> {
    /// Stores this rate limiter's counts under names starting with `namespace`, so that
    /// rate limiters sharing one store (or other users of it) never share a count.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate::MemoryStore;
    /// use tollgate_tower::HttpLimiter;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let public = HttpLimiter::builder().store(Arc::clone(&store)).namespace("public:");
    /// let admin = HttpLimiter::builder().store(store).namespace("admin:");
    /// # let _ = (public.default_limit("1/second").build()?, admin.build()?);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.declared.namespace = namespace.into();
        self
    }

    /// Keys every limit without a key of its own with `key` (the client IP unless set).
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, key};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().key(key::header("x-api-key")).default_limit("1/minute").build()?;
    /// let with_key = |k: &str| http::Request::get("/").header("x-api-key", k).body(()).unwrap();
    /// assert_eq!(send(&limiter, with_key("k1")).status(), 200);
    /// assert_eq!(send(&limiter, with_key("k1")).status(), 429);
    /// assert_eq!(send(&limiter, with_key("k2")).status(), 200); // another key, another count
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn key(mut self, key: impl KeyExtractor) -> Self {
        self.declared.key = Arc::new(key);
        self
    }

    /// Believes `X-Forwarded-For` from peers in `nets` (CIDRs or addresses); see
    /// [`TrustedProxies`].
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, ProxyHeader};
    ///
    /// let limiter = HttpLimiter::builder()
    ///     .trusted_proxies(["10.0.0.0/8", "fd00::/8"])
    ///     .proxy_header(ProxyHeader::Forwarded)
    ///     .build()?;
    ///
    /// let err = HttpLimiter::builder().trusted_proxies(["10.0.0.0/40"]).build().unwrap_err();
    /// assert!(err.to_string().contains("\"10.0.0.0/40\""));
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn trusted_proxies<I>(mut self, nets: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        match TrustedProxies::new(nets) {
            Ok(proxies) => {
                self.declared.proxies = proxies.with_header(self.declared.proxies.header())
            }
            Err(err) => self.declared.errors.push(DeclarationError::Proxy(err)),
        }
        self
    }

    /// Finds the peer address with `peer` instead of in axum's `ConnectInfo<SocketAddr>`, a
    /// [`crate::PeerAddr`] or a `SocketAddr`: for servers that record it under a type of their
    /// own, such as tonic's `TcpConnectInfo`.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tollgate_tower::HttpLimiter;
    ///
    /// /// What some server puts in each request's extensions.
    /// #[derive(Clone)]
    /// struct Remote(IpAddr);
    ///
    /// let limiter = HttpLimiter::builder()
    ///     .peer_addr_from(|extensions| extensions.get::<Remote>().map(|remote| remote.0))
    ///     .default_limit("10/second")
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn peer_addr_from<F>(mut self, peer: F) -> Self
    where
        F: Fn(&http::Extensions) -> Option<std::net::IpAddr> + Send + Sync + 'static,
    {
        self.declared.peer = Arc::new(peer);
        self
    }

    /// Reads the client's address from `header` (when the peer is trusted) instead of
    /// `X-Forwarded-For`.
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, PeerAddr, ProxyHeader};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder()
    ///     .trusted_proxies(["10.0.0.0/8"])
    ///     .proxy_header(ProxyHeader::XRealIp)
    ///     .default_limit("1/minute")
    ///     .build()?;
    /// let via_proxy = |client: &str| {
    ///     let mut request = http::Request::get("/").header("x-real-ip", client).body(()).unwrap();
    ///     request.extensions_mut().insert(PeerAddr("10.0.0.2:4000".parse().unwrap()));
    ///     request
    /// };
    /// assert_eq!(send(&limiter, via_proxy("203.0.113.7")).status(), 200);
    /// assert_eq!(send(&limiter, via_proxy("203.0.113.7")).status(), 429);
    /// assert_eq!(send(&limiter, via_proxy("198.51.100.1")).status(), 200); // another client
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn proxy_header(mut self, header: ProxyHeader) -> Self {
        self.declared.proxies = self.declared.proxies.with_header(header);
        self
    }

    /// Which rate-limit headers responses carry.
    ///
    /// ```
    /// use tollgate_tower::{HeaderStyle, HttpLimiter};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().headers(HeaderStyle::Legacy).default_limit("5/minute").build()?;
    /// let response = send(&limiter, get("/"));
    /// assert_eq!(response.headers()["x-ratelimit-limit"], "5");
    /// assert_eq!(response.headers()["x-ratelimit-remaining"], "4");
    /// assert!(!response.headers().contains_key("ratelimit")); // no IETF fields
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn headers(mut self, style: HeaderStyle) -> Self {
        self.declared.headers = style;
        self
    }

    /// Adds a limit for every route that has none of its own, counted per route.
    ///
    /// ```
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder()
    ///     .default_limit("1/minute")
    ///     .route("/login", "5/minute")
    ///     .build()?;
    /// assert_eq!(send(&limiter, get("/search")).status(), 200);
    /// assert_eq!(send(&limiter, get("/search")).status(), 429);
    /// assert_eq!(send(&limiter, get("/login")).status(), 200); // it has a limit of its own
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn default_limit(mut self, limit: impl Into<Limit>) -> Self {
        self.declared.defaults.push(limit.into());
        self
    }

    /// Adds a limit every request meets, counted once per key across all routes.
    ///
    /// ```
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder()
    ///     .application_limit("2/minute")
    ///     .route("/a", "10/minute")
    ///     .route("/b", "10/minute")
    ///     .build()?;
    /// assert_eq!(send(&limiter, get("/a")).status(), 200);
    /// assert_eq!(send(&limiter, get("/b")).status(), 200);
    /// assert_eq!(send(&limiter, get("/a")).status(), 429); // one count across the routes
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn application_limit(mut self, limit: impl Into<Limit>) -> Self {
        self.declared.application.push(limit.into());
        self
    }

    /// Adds a limit on the route `path` (axum's route pattern, such as `/users/{id}`, or an
    /// exact path for other services). A route with limits of its own does not meet the
    /// default limits.
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
    ///     .route("/login", "1/minute")
    ///     .route("/export", Limit::new("10/hour"))
    ///     .build()?;
    /// assert_eq!(send(&limiter, get("/login")).status(), 200);
    /// assert_eq!(send(&limiter, get("/login")).status(), 429);
    /// assert_eq!(send(&limiter, get("/export")).status(), 200); // a count of its own
    /// assert_eq!(send(&limiter, get("/about")).status(), 200); // no limit, no default
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn route(mut self, path: impl Into<String>, limit: impl Into<Limit>) -> Self {
        self.declared.routes.push((path.into(), limit.into()));
        self
    }

    /// Exempts the route `path` from every limit, application limits included.
    ///
    /// ```
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().application_limit("1/minute").exempt("/health").build()?;
    /// assert_eq!(send(&limiter, get("/")).status(), 200);
    /// assert_eq!(send(&limiter, get("/")).status(), 429);
    /// assert_eq!(send(&limiter, get("/health")).status(), 200);
    /// assert!(!send(&limiter, get("/health")).headers().contains_key("ratelimit")); // not counted
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn exempt(mut self, path: impl Into<String>) -> Self {
        self.declared.exempt.insert(path.into().into_boxed_str());
        self
    }

    /// Exempts requests for which `exempt` holds (internal callers, health checkers).
    ///
    /// ```
    /// use tollgate_tower::HttpLimiter;
    ///
    /// let limiter = HttpLimiter::builder()
    ///     .default_limit("10/minute")
    ///     .exempt_when(|parts| parts.headers.get("x-internal-token").is_some_and(|t| t == "s3cret"))
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn exempt_when<F>(mut self, exempt: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.declared.exempt_when.push(Arc::new(exempt));
        self
    }

    /// Calls `hook` with each denied request (to log or count breaches).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use tollgate_tower::HttpLimiter;
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let breaches = Arc::new(AtomicU64::new(0));
    /// let count = Arc::clone(&breaches);
    /// let limiter = HttpLimiter::builder()
    ///     .default_limit("1/minute")
    ///     .on_breach(move |_parts, _breach| {
    ///         count.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .build()?;
    /// for _ in 0..3 {
    ///     send(&limiter, get("/"));
    /// }
    /// assert_eq!(breaches.load(Ordering::Relaxed), 2);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn on_breach<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Parts, &Breach) + Send + Sync + 'static,
    {
        self.declared.on_breach = Some(Arc::new(hook));
        self
    }

    /// Answers denied requests with `respond(breach)` instead of the default 429 with
    /// `Retry-After` and `{"error":"rate limit exceeded","retry_after":N}`. The rate-limit
    /// headers are added to the response, and `Retry-After` too if it is a 429 without one.
    ///
    /// ```
    /// use axum::body::Body;
    /// use tollgate_tower::{Breach, HttpLimiter};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder()
    ///     .default_limit("1/minute")
    ///     .rejection(|_: &Breach| {
    ///         let mut response = http::Response::new(Body::from("slow down\n"));
    ///         *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    ///         response
    ///     })
    ///     .build()?;
    /// send(&limiter, get("/"));
    /// let denied = send(&limiter, get("/"));
    /// assert_eq!(denied.status(), 429);
    /// assert_eq!(denied.headers()["retry-after"], "60"); // added: a 429 without one
    /// assert!(denied.headers().contains_key("ratelimit"));
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn rejection<F>(mut self, respond: F) -> Self
    where
        F: Fn(&Breach) -> Response<Body> + Send + Sync + 'static,
    {
        self.declared.rejection = Arc::new(respond);
        self
    }

    /// Trusts `proxies` (already checked) for the client's address: see
    /// [`Builder::trusted_proxies`].
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, TrustedProxies};
    ///
    /// let proxies = TrustedProxies::new(["10.0.0.0/8"])?;
    /// let limiter = HttpLimiter::builder().trusting(proxies).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trusting(mut self, proxies: TrustedProxies) -> Self {
        self.declared.proxies = proxies;
        self
    }

    /// Compiles every limit over the store, or lists every mistake found.
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// let err = HttpLimiter::builder()
    ///     .route("/search", Limit::new("10/sec"))
    ///     .route("/export", Limit::new("1/minute").burst(5))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.mistakes().len(), 2);
    /// assert_eq!(
    ///     err.to_string(),
    ///     "limit on route \"/search\": invalid rate \"10/sec\" at byte 3: unknown unit \"sec\"; \
    ///      expected second, minute, hour, day, month or year\n\
    ///      limit on route \"/export\": burst applies to token-bucket only, not fixed-window",
    /// );
    /// ```
    pub fn build(self) -> Result<HttpLimiter<S>, BuildError> {
        compile::compile(self.engine.into_limiter(), self.declared).map(HttpLimiter::new)
    }
}
