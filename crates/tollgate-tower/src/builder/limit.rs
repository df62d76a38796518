//! [`Limit`]: one declared limit (rates, strategy, key, cost), before the builder compiles
//! it.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tollgate::{
    ChargeResult, ConcurrencyLimit, ConcurrencyLimitError, ParseError, Policy, Rate, Rates,
    Strategy,
};

use crate::key::{KeyExtractor, RequestKey};

pub(crate) type CostFn = Arc<dyn Fn(&Parts) -> u64 + Send + Sync>;
pub(crate) type DeductFn = Arc<dyn Fn(&http::response::Parts) -> bool + Send + Sync>;
pub(crate) type DynamicFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;
pub(crate) type DecisionFn = Arc<dyn Fn(&ChargeResult, &RequestKey) + Send + Sync>;
pub(crate) type LateCostFn = Arc<dyn Fn(&http::response::Parts) -> u64 + Send + Sync>;

/// A ban as declared: the breaches that ban (notation, parsed when declared) and how long.
pub(crate) type DeclaredBan = (Result<Rate, ParseError>, std::time::Duration);

/// One limit as the user declares it: `"5/minute"`, with a strategy, a key, a cost and when
/// a hit counts.
///
/// A string is a fixed-window limit in the notation of [`tollgate::Rates`] (several rates
/// separated by `;` are charged all or none); a [`Policy`] is taken as it is. Notation errors
/// are reported by [`crate::Builder::build`], with the route they belong to.
///
/// ```
/// use tollgate::Strategy;
/// use tollgate_tower::{key, Limit};
///
/// // 5 per minute, fixed window (what a bare "5/minute" means).
/// let login = Limit::new("5/minute");
/// // A token bucket of 20 refilled at 10 per second, charging 5 per request, per API key.
/// let export = Limit::new("10/second")
///     .strategy(Strategy::TokenBucket)
///     .burst(20)
///     .cost(|_| 5)
///     .key(key::header("x-api-key").or(key::client_ip()));
/// // Count only failed logins.
/// let failed_logins = Limit::new("3/minute")
///     .deduct_when(|response| response.status == http::StatusCode::UNAUTHORIZED);
/// ```
#[derive(Clone)]
pub struct Limit {
    pub(crate) rates: LimitRates,
    /// Set by [`Limit::strategy`]; a fixed window unless set.
    pub(crate) strategy: Option<Strategy>,
    pub(crate) burst: Option<u64>,
    pub(crate) shared: Option<String>,
    pub(crate) per_method: bool,
    pub(crate) methods: Option<Arc<[http::Method]>>,
    pub(crate) key: Option<Arc<dyn KeyExtractor>>,
    pub(crate) cost: Option<CostFn>,
    pub(crate) deduct_when: Option<DeductFn>,
    pub(crate) on_decision: Option<DecisionFn>,
    /// Set by [`Limit::name`]: what rate-limit headers and breaches call it.
    pub(crate) name: Option<String>,
    /// Set by [`Limit::shadow`]: counted and reported, never denying.
    pub(crate) shadow: bool,
    /// Set by [`Limit::ban`] (`builder/ban.rs`).
    pub(crate) ban: Option<DeclaredBan>,
    /// Set by [`Limit::max_delay`] (`builder/delay.rs`).
    pub(crate) max_delay: Option<std::time::Duration>,
    /// Set by [`Limit::charge_after`] (`builder/late_charge.rs`).
    pub(crate) charge_after: Option<LateCostFn>,
    /// Set by [`Limit::lease_ttl`] (`builder/concurrency.rs`).
    pub(crate) lease_ttl: Option<std::time::Duration>,
}

/// The rates of a limit: in the notation, a whole policy, or chosen per request.
#[derive(Clone)]
pub(crate) enum LimitRates {
    Notation(Result<Rates, ParseError>),
    Policy(Policy),
    Dynamic(DynamicFn),
    /// A concurrency limit (`builder/concurrency.rs`).
    Concurrency(Result<ConcurrencyLimit, ConcurrencyLimitError>),
}

impl Limit {
    /// A fixed-window limit of `rates` (`"5/minute"`, `"10/second; 1000/day"`).
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
    /// let limiter = HttpLimiter::builder().route("/login", Limit::new("2/second; 3/hour")).build()?;
    /// assert_eq!(send(&limiter, get("/login")).status(), 200);
    /// assert_eq!(send(&limiter, get("/login")).status(), 200);
    /// assert_eq!(send(&limiter, get("/login")).status(), 429);
    /// // A notation error is reported by `build`, with the route.
    /// let err = HttpLimiter::builder().route("/login", Limit::new("5 a minute")).build().unwrap_err();
    /// assert!(err.to_string().starts_with(r#"limit on route "/login": invalid rate "5 a minute""#));
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn new(rates: &str) -> Self {
        Self::with_rates(LimitRates::Notation(rates.parse()))
    }

    /// A fixed-window limit of already parsed `rates`.
    ///
    /// ```
    /// use tollgate::Rate;
    /// use tollgate_tower::Limit;
    ///
    /// let limit = Limit::rates(Rate::per_minute(3).into());
    /// ```
    pub fn rates(rates: Rates) -> Self {
        Self::with_rates(LimitRates::Notation(Ok(rates)))
    }

    /// A limit applying `policy` as it is (rates, strategy and burst); [`Limit::strategy`]
    /// and [`Limit::burst`] do not apply to it.
    ///
    /// ```
    /// use tollgate::Policy;
    /// use tollgate_tower::Limit;
    ///
    /// let bucket = Policy::token_bucket("10/second".parse()?)?.with_burst(20)?;
    /// let limit = Limit::policy(bucket);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn policy(policy: Policy) -> Self {
        Self::with_rates(LimitRates::Policy(policy))
    }

    /// A limit whose rates `rates_for` picks per request (a free plan and a paid plan), in
    /// the notation of [`Limit::new`]; `None` leaves the request unlimited by this limit.
    ///
    /// Each distinct answer is a separate count (a client moving to the paid plan starts
    /// afresh) and is parsed once. An answer that does not parse is a server bug: the request
    /// gets a 500 naming it.
    ///
    /// ```
    /// use tollgate_tower::Limit;
    ///
    /// let by_plan = Limit::dynamic(|parts| {
    ///     let paid = parts.headers.get("x-plan").is_some_and(|plan| plan == "paid");
    ///     Some(if paid { "1000/minute" } else { "10/minute" }.to_owned())
    /// });
    /// ```
    pub fn dynamic<F>(rates_for: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self::with_rates(LimitRates::Dynamic(Arc::new(rates_for)))
    }

    pub(crate) fn with_rates(rates: LimitRates) -> Self {
        Self {
            rates,
            strategy: None,
            burst: None,
            shared: None,
            per_method: false,
            methods: None,
            key: None,
            cost: None,
            deduct_when: None,
            on_decision: None,
            name: None,
            shadow: false,
            ban: None,
            max_delay: None,
            charge_after: None,
            lease_ttl: None,
        }
    }

    /// Applies the rates with `strategy` instead of a fixed window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{ManualClock, Strategy};
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let clock = ManualClock::new();
    /// let limiter = HttpLimiter::builder()
    ///     .clock(clock.clone())
    ///     .default_limit(Limit::new("2/minute").strategy(Strategy::TokenBucket))
    ///     .build()?;
    /// assert_eq!(send(&limiter, get("/")).status(), 200);
    /// assert_eq!(send(&limiter, get("/")).status(), 200);
    /// assert_eq!(send(&limiter, get("/")).status(), 429);
    /// clock.advance(Duration::from_secs(30)); // the bucket refills a token every 30 s
    /// assert_eq!(send(&limiter, get("/")).status(), 200);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// A token bucket's size, when it should differ from the rate's amount (see
    /// [`tollgate::Policy::with_burst`]); only for [`Strategy::TokenBucket`] with one rate.
    ///
    /// ```
    /// use tollgate::Strategy;
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let bucket = Limit::new("1/second").strategy(Strategy::TokenBucket).burst(3);
    /// let limiter = HttpLimiter::builder().default_limit(bucket).build()?;
    /// for _ in 0..3 {
    ///     assert_eq!(send(&limiter, get("/")).status(), 200); // three at once
    /// }
    /// assert_eq!(send(&limiter, get("/")).status(), 429);
    ///
    /// let err = HttpLimiter::builder().default_limit(Limit::new("1/second").burst(3)).build().unwrap_err();
    /// assert_eq!(err.to_string(), "limit on default: burst applies to token-bucket only, not fixed-window");
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Makes this one count named `name`, shared by every route it is applied to (and not
    /// split by route as a default limit is).
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// let uploads = Limit::new("10/hour").shared("uploads");
    /// let limiter = HttpLimiter::builder()
    ///     .route("/upload", uploads.clone())
    ///     .route("/import", uploads)
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn shared(mut self, name: impl Into<String>) -> Self {
        self.shared = Some(name.into());
        self
    }

    /// Counts each HTTP method apart (`GET /items` and `POST /items` get a count each).
    ///
    /// ```
    /// use http::Method;
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder().route("/items", Limit::new("1/minute").per_method()).build()?;
    /// let items = |method| http::Request::builder().method(method).uri("/items").body(()).unwrap();
    /// assert_eq!(send(&limiter, items(Method::GET)).status(), 200);
    /// assert_eq!(send(&limiter, items(Method::GET)).status(), 429);
    /// assert_eq!(send(&limiter, items(Method::POST)).status(), 200); // a count of its own
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn per_method(mut self) -> Self {
        self.per_method = true;
        self
    }

    /// Applies this limit to requests with one of `methods` only. On a route, a request whose
    /// method none of the route's limits applies to meets the default limits instead. `GET`
    /// covers `HEAD` too, as axum's `get` routes (and most servers) answer it with the same
    /// work.
    ///
    /// ```
    /// use http::Method;
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// // Writes are limited; reads of /items meet the defaults.
    /// let limiter = HttpLimiter::builder()
    ///     .default_limit("100/minute")
    ///     .route("/items", Limit::new("10/minute").methods([Method::POST, Method::PUT]))
    ///     .route("/search", Limit::new("1/minute").methods([Method::GET]))
    ///     .build()?;
    /// let search = |method| http::Request::builder().method(method).uri("/search").body(()).unwrap();
    /// assert_eq!(send(&limiter, search(Method::GET)).status(), 200);
    /// assert_eq!(send(&limiter, search(Method::HEAD)).status(), 429); // GET's count
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn methods(mut self, methods: impl IntoIterator<Item = http::Method>) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// Keys this limit with `key` instead of the limiter's key (see [`crate::Builder::key`]).
    ///
    /// ```
    /// use tollgate_tower::{HttpLimiter, Limit, key};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let limiter = HttpLimiter::builder()
    ///     .route("/search", Limit::new("1/minute").key(key::header("x-user-id")))
    ///     .build()?;
    /// let search = |user: &str| http::Request::get("/search").header("x-user-id", user).body(()).unwrap();
    /// assert_eq!(send(&limiter, search("alice")).status(), 200);
    /// assert_eq!(send(&limiter, search("alice")).status(), 429);
    /// assert_eq!(send(&limiter, search("bob")).status(), 200);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn key(mut self, key: impl KeyExtractor) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// Charges `cost(request)` units per request instead of 1 (an expensive endpoint costs
    /// 5). A cost of 0 lets the request through uncounted; a cost above what the limit could
    /// ever allow is refused with a 429 that has no `Retry-After`.
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
    /// let bulk = |parts: &http::request::Parts| if parts.uri.query() == Some("bulk") { 20 } else { 4 };
    /// let limiter = HttpLimiter::builder().route("/export", Limit::new("10/minute").cost(bulk)).build()?;
    /// assert_eq!(send(&limiter, get("/export")).status(), 200); // 4 units
    /// assert_eq!(send(&limiter, get("/export")).status(), 200); // 8
    /// assert_eq!(send(&limiter, get("/export")).status(), 429); // 12 would be over 10
    /// let too_big = send(&limiter, get("/export?bulk"));
    /// assert_eq!(too_big.status(), 429);
    /// assert!(!too_big.headers().contains_key("retry-after")); // waiting would not help
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn cost<F>(mut self, cost: F) -> Self
    where
        F: Fn(&Parts) -> u64 + Send + Sync + 'static,
    {
        self.cost = Some(Arc::new(cost));
        self
    }

    /// Counts a request only if `counts(response)` says so (count only failed logins).
    ///
    /// The request is charged before it runs, so parallel requests cannot slip past the limit
    /// while earlier ones are in flight; the charge is given back when the response does not
    /// count (or when the handler fails).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::StatusCode;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// let limiter = HttpLimiter::builder()
    ///     .route("/login", Limit::new("2/minute").deduct_when(|response| response.status == 401))
    ///     .build()?;
    /// // A login service answering with the status the request asks for.
    /// let login = service_fn(|request: http::Request<StatusCode>| async move {
    ///     let mut response = http::Response::new(());
    ///     *response.status_mut() = *request.body();
    ///     Ok::<_, Infallible>(response)
    /// });
    /// let service = limiter.layer().layer(login);
    /// let attempt = |answer| {
    ///     let request = http::Request::post("/login").body(answer).unwrap();
    ///     futures_executor::block_on(service.clone().oneshot(request)).unwrap().status()
    /// };
    /// for _ in 0..5 {
    ///     assert_eq!(attempt(StatusCode::OK), 200); // successful logins do not count
    /// }
    /// assert_eq!(attempt(StatusCode::UNAUTHORIZED), 401);
    /// assert_eq!(attempt(StatusCode::UNAUTHORIZED), 401);
    /// assert_eq!(attempt(StatusCode::OK), 429); // two failures: the limit is spent
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn deduct_when<F>(mut self, counts: F) -> Self
    where
        F: Fn(&http::response::Parts) -> bool + Send + Sync + 'static,
    {
        self.deduct_when = Some(Arc::new(counts));
        self
    }

    /// Calls `observe` with what this limit's charge came to, and the key it charged, for
    /// every request that meets it (allowed, denied, failed...; not for requests it never got
    /// to, after another limit denied): to count decisions per limit in metrics, or the keys
    /// denied most. A charge is reported as it was
    /// decided: allowed, even when a later limit refused the request and the charge was given
    /// back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use tollgate::ChargeResult;
    /// use tollgate_tower::Limit;
    ///
    /// let denied = Arc::new(AtomicU64::new(0));
    /// let count = Arc::clone(&denied);
    /// let login = Limit::new("5/minute").on_decision(move |result, _key| {
    ///     if matches!(result, ChargeResult::Denied(_)) {
    ///         count.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// ```
    pub fn on_decision<F>(mut self, observe: F) -> Self
    where
        F: Fn(&ChargeResult, &RequestKey) + Send + Sync + 'static,
    {
        self.on_decision = Some(Arc::new(observe));
        self
    }
}

impl Limit {
    /// Whether `other` is this limit declared again: the same rates and options, and the
    /// same closures (clones of one `Limit` share them; two closures are never compared by
    /// what they do).
    pub(crate) fn same_as(&self, other: &Limit) -> bool {
        fn same<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        let rates = match (&self.rates, &other.rates) {
            (LimitRates::Notation(a), LimitRates::Notation(b)) => a == b,
            (LimitRates::Policy(a), LimitRates::Policy(b)) => a == b,
            (LimitRates::Dynamic(a), LimitRates::Dynamic(b)) => Arc::ptr_eq(a, b),
            (LimitRates::Concurrency(a), LimitRates::Concurrency(b)) => a == b,
            _ => false,
        };
        rates
            && self.strategy == other.strategy
            && self.burst == other.burst
            && self.shared == other.shared
            && self.per_method == other.per_method
            && self.methods == other.methods
            && same(&self.key, &other.key)
            && same(&self.cost, &other.cost)
            && same(&self.deduct_when, &other.deduct_when)
            && same(&self.on_decision, &other.on_decision)
            && self.name == other.name
            && self.shadow == other.shadow
            && self.ban == other.ban
            && self.max_delay == other.max_delay
            && same(&self.charge_after, &other.charge_after)
            && self.lease_ttl == other.lease_ttl
    }
}

impl From<&str> for Limit {
    fn from(rates: &str) -> Self {
        Limit::new(rates)
    }
}

impl From<Rates> for Limit {
    fn from(rates: Rates) -> Self {
        Limit::rates(rates)
    }
}

impl From<Policy> for Limit {
    fn from(policy: Policy) -> Self {
        Limit::policy(policy)
    }
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Limit");
        match &self.rates {
            LimitRates::Notation(Ok(rates)) => debug.field("rates", &rates.to_string()),
            LimitRates::Notation(Err(err)) => debug.field("rates", err),
            LimitRates::Policy(policy) => debug.field("policy", &policy.to_string()),
            LimitRates::Dynamic(_) => debug.field("rates", &"dynamic"),
            LimitRates::Concurrency(limit) => debug.field("concurrency", limit),
        };
        debug
            .field("strategy", &self.strategy)
            .field("burst", &self.burst)
            .field("shared", &self.shared)
            .field("per_method", &self.per_method)
            .field("methods", &self.methods)
            .field("key", &self.key.as_ref().map(|_| "custom"))
            .field("cost", &self.cost.as_ref().map(|_| "custom"))
            .field("deduct_when", &self.deduct_when.as_ref().map(|_| "custom"))
            .field("on_decision", &self.on_decision.as_ref().map(|_| "custom"))
            .field("name", &self.name)
            .field("shadow", &self.shadow)
            .field("ban", &self.ban)
            .field("max_delay", &self.max_delay)
            .field(
                "charge_after",
                &self.charge_after.as_ref().map(|_| "custom"),
            )
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}
