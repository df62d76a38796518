//! [`RateLimiter`]: the declared limits, prepared over a store, and the check each request
//! goes through.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;
use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::MatchedPath;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use tollgate::{
    Clock, Decision, Error, Key, Limiter, MemoryStore, MonotonicClock, ParseError, Policy,
    PolicyError, Rates, Store, Strategy,
};

use crate::breach::{self, Breach};
use crate::client_ip::{self, InvalidProxy, ProxyHeader, TrustedProxies};
use crate::headers::{HeaderStyle, LimitHeaders};
use crate::key::{self, KeyExtractor, RequestKey};
use crate::limit::{CostFn, DeductFn, DynamicFn, Limit, LimitRates};
use crate::{ClientIp, RateLimitLayer};

type Predicate = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;
type BreachFn = Arc<dyn Fn(&Parts, &Breach) + Send + Sync>;
type RejectionFn = Arc<dyn Fn(&Breach) -> Response<Body> + Send + Sync>;
type PeerFn = Arc<dyn Fn(&http::Extensions) -> Option<std::net::IpAddr> + Send + Sync>;

/// Declared limits prepared over a store: build one with [`RateLimiter::builder`], then put
/// [`RateLimiter::layer`] in front of a router or service. Cloning is cheap and shares the
/// counts.
///
/// Which limits a request meets:
/// - none, if its route is exempt or an exempt-when predicate holds;
/// - otherwise the application limits (one count per key across all routes), plus the
///   limits declared on its route, or, if its route has none, the default limits (counted
///   per route).
///
/// A route is axum's matched path (`/users/{id}`), or the request's path for other Tower
/// services. Every limit a request meets charges it, all or none: when one denies, the
/// charges of the others are given back.
///
/// ```
/// use axum::{Router, routing::get};
/// use tollgate_tower::{Limit, RateLimiter, key};
///
/// let limiter = RateLimiter::builder()
///     .default_limit("100/minute")
///     .route("/login", Limit::new("5/minute"))
///     .route("/search", Limit::new("10/minute").key(key::header("x-api-key").or(key::client_ip())))
///     .exempt("/health")
///     .build()?;
/// let app: Router = Router::new()
///     .route("/login", get(|| async { "login" }))
///     .route("/search", get(|| async { "results" }))
///     .route("/health", get(|| async { "ok" }))
///     .layer(limiter.layer());
/// // Serve it with the peer address available:
/// // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
/// # Ok::<(), tollgate_tower::ConfigError>(())
/// ```
pub struct RateLimiter<S: Store = MemoryStore> {
    shared: Arc<Shared<S>>,
}

impl<S: Store> Clone for RateLimiter<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: Store> fmt::Debug for RateLimiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &*self.shared;
        let names = |limits: &[Arc<PreparedLimit>]| -> Vec<String> {
            limits.iter().map(|limit| limit.name.to_string()).collect()
        };
        let mut routes: Vec<_> = shared
            .routes
            .iter()
            .map(|(path, limits)| (path.to_string(), names(limits)))
            .collect();
        routes.sort();
        f.debug_struct("RateLimiter")
            .field("application", &names(&shared.application))
            .field("defaults", &names(&shared.defaults))
            .field("routes", &routes)
            .field("exempt", &shared.exempt)
            .field("proxies", &shared.proxies)
            .field("headers", &shared.headers)
            .finish_non_exhaustive()
    }
}

impl RateLimiter<MemoryStore> {
    /// A builder over a fresh [`MemoryStore`], keyed on the client IP, trusting no proxy,
    /// with [`HeaderStyle::Ietf`] headers and no limits yet.
    pub fn builder() -> Builder<MemoryStore> {
        Builder {
            store: MemoryStore::new(),
            clock: Arc::new(MonotonicClock::new()),
            key: Arc::new(key::client_ip()),
            proxies: TrustedProxies::none(),
            headers: HeaderStyle::default(),
            application: Vec::new(),
            defaults: Vec::new(),
            routes: Vec::new(),
            exempt: HashSet::default(),
            exempt_when: Vec::new(),
            on_breach: None,
            rejection: Arc::new(breach::too_many_requests),
            peer: Arc::new(client_ip::peer_addr),
            namespace: String::new(),
            errors: Vec::new(),
        }
    }
}

impl<S: Store> RateLimiter<S> {
    /// The Tower layer applying these limits.
    pub fn layer(&self) -> RateLimitLayer<S> {
        RateLimitLayer::new(self.clone())
    }

    /// The store the counts live in.
    pub fn store(&self) -> &S {
        self.shared.limiter.store()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<S>> {
        &self.shared
    }
}

/// Declares a [`RateLimiter`]; made by [`RateLimiter::builder`].
///
/// Limits are given as [`Limit`]s or plain strings (`"5/minute"`). Mistakes (a rate that does
/// not parse, a burst on a fixed window, a bad proxy CIDR) are collected and reported by
/// [`Builder::build`], naming where they are.
pub struct Builder<S: Store> {
    store: S,
    clock: Arc<dyn Clock>,
    key: Arc<dyn KeyExtractor>,
    proxies: TrustedProxies,
    headers: HeaderStyle,
    application: Vec<Limit>,
    defaults: Vec<Limit>,
    routes: Vec<(String, Limit)>,
    exempt: HashSet<Box<str>, RandomState>,
    exempt_when: Vec<Predicate>,
    on_breach: Option<BreachFn>,
    rejection: RejectionFn,
    peer: PeerFn,
    namespace: String,
    errors: Vec<ConfigError>,
}

impl<S: Store> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("application", &self.application)
            .field("defaults", &self.defaults)
            .field("routes", &self.routes)
            .field("exempt", &self.exempt)
            .field("proxies", &self.proxies)
            .field("headers", &self.headers)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Builder<S> {
    /// Keeps the counts in `store` instead of memory: a Redis store shares them between
    /// processes. Wrap it in [`tollgate::Failover`] to choose what happens when it fails;
    /// otherwise a store error answers `503 Service Unavailable`.
    ///
    /// ```
    /// use tollgate::{Failover, FailurePolicy, MemoryStore};
    /// use tollgate_tower::RateLimiter;
    ///
    /// let limiter = RateLimiter::builder()
    ///     .store(Failover::new(MemoryStore::new(), FailurePolicy::Allow))
    ///     .default_limit("10/second")
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::ConfigError>(())
    /// ```
    pub fn store<T: Store>(self, store: T) -> Builder<T> {
        Builder {
            store,
            clock: self.clock,
            key: self.key,
            proxies: self.proxies,
            headers: self.headers,
            application: self.application,
            defaults: self.defaults,
            routes: self.routes,
            exempt: self.exempt,
            exempt_when: self.exempt_when,
            on_breach: self.on_breach,
            rejection: self.rejection,
            peer: self.peer,
            namespace: self.namespace,
            errors: self.errors,
        }
    }

    /// Stores this rate limiter's counts under names starting with `namespace`, so that
    /// rate limiters sharing one store (or other users of it) never share a count.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate::MemoryStore;
    /// use tollgate_tower::RateLimiter;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let public = RateLimiter::builder().store(Arc::clone(&store)).namespace("public:");
    /// let admin = RateLimiter::builder().store(store).namespace("admin:");
    /// # let _ = (public.default_limit("1/second").build()?, admin.build()?);
    /// # Ok::<(), tollgate_tower::ConfigError>(())
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Reads time from `clock` (a [`tollgate::ManualClock`] in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Keys every limit without a key of its own with `key` (the client IP unless set).
    pub fn key(mut self, key: impl KeyExtractor) -> Self {
        self.key = Arc::new(key);
        self
    }

    /// Believes `X-Forwarded-For` from peers in `nets` (CIDRs or addresses); see
    /// [`TrustedProxies`].
    ///
    /// ```
    /// use tollgate_tower::{ProxyHeader, RateLimiter};
    ///
    /// let limiter = RateLimiter::builder()
    ///     .trusted_proxies(["10.0.0.0/8", "fd00::/8"])
    ///     .proxy_header(ProxyHeader::Forwarded)
    ///     .build()?;
    ///
    /// let err = RateLimiter::builder().trusted_proxies(["10.0.0.0/40"]).build().unwrap_err();
    /// assert!(err.to_string().contains("\"10.0.0.0/40\""));
    /// # Ok::<(), tollgate_tower::ConfigError>(())
    /// ```
    pub fn trusted_proxies<I>(mut self, nets: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        match TrustedProxies::new(nets) {
            Ok(proxies) => self.proxies = proxies.with_header(self.proxies.header()),
            Err(err) => self.errors.push(ConfigError::Proxy(err)),
        }
        self
    }

    /// Finds the peer address with `peer` instead of in axum's `ConnectInfo<SocketAddr>`, a
    /// [`crate::PeerAddr`] or a `SocketAddr`: for servers that record it under a type of their
    /// own, such as tonic's `TcpConnectInfo`.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tollgate_tower::RateLimiter;
    ///
    /// /// What some server puts in each request's extensions.
    /// #[derive(Clone)]
    /// struct Remote(IpAddr);
    ///
    /// let limiter = RateLimiter::builder()
    ///     .peer_addr_from(|extensions| extensions.get::<Remote>().map(|remote| remote.0))
    ///     .default_limit("10/second")
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::ConfigError>(())
    /// ```
    pub fn peer_addr_from<F>(mut self, peer: F) -> Self
    where
        F: Fn(&http::Extensions) -> Option<std::net::IpAddr> + Send + Sync + 'static,
    {
        self.peer = Arc::new(peer);
        self
    }

    /// Reads the client's address from `header` (when the peer is trusted) instead of
    /// `X-Forwarded-For`.
    pub fn proxy_header(mut self, header: ProxyHeader) -> Self {
        self.proxies = self.proxies.with_header(header);
        self
    }

    /// Which rate-limit headers responses carry.
    pub fn headers(mut self, style: HeaderStyle) -> Self {
        self.headers = style;
        self
    }

    /// Adds a limit for every route that has none of its own, counted per route.
    pub fn default_limit(mut self, limit: impl Into<Limit>) -> Self {
        self.defaults.push(limit.into());
        self
    }

    /// Adds a limit every request meets, counted once per key across all routes.
    pub fn application_limit(mut self, limit: impl Into<Limit>) -> Self {
        self.application.push(limit.into());
        self
    }

    /// Adds a limit on the route `path` (axum's route pattern, such as `/users/{id}`, or an
    /// exact path for other services). A route with limits of its own does not meet the
    /// default limits.
    pub fn route(mut self, path: impl Into<String>, limit: impl Into<Limit>) -> Self {
        self.routes.push((path.into(), limit.into()));
        self
    }

    /// Exempts the route `path` from every limit, application limits included.
    pub fn exempt(mut self, path: impl Into<String>) -> Self {
        self.exempt.insert(path.into().into_boxed_str());
        self
    }

    /// Exempts requests for which `exempt` holds (internal callers, health checkers).
    ///
    /// ```
    /// use tollgate_tower::RateLimiter;
    ///
    /// let limiter = RateLimiter::builder()
    ///     .default_limit("10/minute")
    ///     .exempt_when(|parts| parts.headers.get("x-internal-token").is_some_and(|t| t == "s3cret"))
    ///     .build()?;
    /// # Ok::<(), tollgate_tower::ConfigError>(())
    /// ```
    pub fn exempt_when<F>(mut self, exempt: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.exempt_when.push(Arc::new(exempt));
        self
    }

    /// Calls `hook` with each denied request (to log or count breaches).
    pub fn on_breach<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Parts, &Breach) + Send + Sync + 'static,
    {
        self.on_breach = Some(Arc::new(hook));
        self
    }

    /// Answers denied requests with `respond(breach)` instead of the default 429 with
    /// `Retry-After` and `{"error":"rate limit exceeded","retry_after":N}`. The rate-limit
    /// headers are added to the response, and `Retry-After` too if it is a 429 without one.
    pub fn rejection<F>(mut self, respond: F) -> Self
    where
        F: Fn(&Breach) -> Response<Body> + Send + Sync + 'static,
    {
        self.rejection = Arc::new(respond);
        self
    }

    /// Prepares every limit over the store.
    ///
    /// ```
    /// use tollgate_tower::{Limit, RateLimiter};
    ///
    /// let err = RateLimiter::builder()
    ///     .route("/search", Limit::new("10/sec"))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "limit on route \"/search\": invalid rate \"10/sec\" at byte 3: unknown unit \"sec\"; \
    ///      expected second, minute, hour, day, month or year",
    /// );
    /// ```
    pub fn build(mut self) -> Result<RateLimiter<S>, ConfigError> {
        if !self.errors.is_empty() {
            return Err(self.errors.swap_remove(0));
        }
        let mut preparer = Preparer {
            namespace: self.namespace,
            fixed: Vec::new(),
            shared: HashMap::new(),
        };
        let application = preparer.all(Scope::Application, self.application)?;
        let defaults = preparer.all(Scope::Default, self.defaults)?;
        let mut routes: HashMap<Box<str>, Vec<Arc<PreparedLimit>>, RandomState> =
            HashMap::default();
        for (path, limit) in self.routes {
            let on_route = routes.entry(path.clone().into_boxed_str()).or_default();
            let limit = preparer.one(Scope::Route(&path), on_route.len(), limit)?;
            on_route.push(limit);
        }
        let limiter = preparer.fixed.into_iter().fold(
            Limiter::new(self.store).with_clock(self.clock),
            |limiter, (name, policy)| limiter.with_policy(name, policy),
        );
        Ok(RateLimiter {
            shared: Arc::new(Shared {
                limiter,
                key: self.key,
                proxies: self.proxies,
                headers: self.headers,
                application,
                defaults,
                routes,
                exempt: self.exempt,
                exempt_when: self.exempt_when,
                on_breach: self.on_breach,
                rejection: self.rejection,
                peer: self.peer,
            }),
        })
    }
}

/// A mistake in a [`Builder`]'s declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit's rates do not parse.
    Rates {
        /// Where the limit was declared: `default`, `application`, `route "/search"`.
        scope: String,
        /// What is wrong with them.
        error: ParseError,
    },
    /// A limit's strategy and burst do not fit its rates.
    Policy {
        /// Where the limit was declared.
        scope: String,
        /// What is wrong.
        error: PolicyError,
    },
    /// Two different limits were given the same shared name.
    SharedNameReused(String),
    /// A trusted proxy is not a CIDR or an address.
    Proxy(InvalidProxy),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Rates { scope, error } => write!(f, "limit on {scope}: {error}"),
            ConfigError::Policy { scope, error } => write!(f, "limit on {scope}: {error}"),
            ConfigError::SharedNameReused(name) => write!(
                f,
                "shared limit {name:?} is declared twice with different rates or options; \
                 declare it once and apply the same Limit to each route"
            ),
            ConfigError::Proxy(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Rates { error, .. } => Some(error),
            ConfigError::Policy { error, .. } => Some(error),
            ConfigError::Proxy(err) => Some(err),
            ConfigError::SharedNameReused(_) => None,
        }
    }
}

/// Where a limit was declared.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Application,
    Default,
    Route(&'a str),
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Application => f.write_str("application"),
            Scope::Default => f.write_str("default"),
            Scope::Route(path) => write!(f, "route {path:?}"),
        }
    }
}

/// Turns declared limits into prepared ones, once per shared name, collecting the fixed
/// policies for the [`Limiter`].
struct Preparer {
    namespace: String,
    fixed: Vec<(String, Policy)>,
    /// Shared limits by name, as first declared.
    shared: HashMap<String, (Limit, Arc<PreparedLimit>)>,
}

impl Preparer {
    fn all(
        &mut self,
        scope: Scope<'_>,
        limits: Vec<Limit>,
    ) -> Result<Vec<Arc<PreparedLimit>>, ConfigError> {
        limits
            .into_iter()
            .enumerate()
            .map(|(index, limit)| self.one(scope, index, limit))
            .collect()
    }

    /// Prepares the `index`th limit declared at `scope`.
    fn one(
        &mut self,
        scope: Scope<'_>,
        index: usize,
        limit: Limit,
    ) -> Result<Arc<PreparedLimit>, ConfigError> {
        // The name headers show, and the limiter's name, which keeps scopes apart.
        let (name, unspaced) = match (&limit.shared, scope) {
            (Some(shared), _) => (shared.clone(), format!("shared:{shared}")),
            (None, Scope::Application) => numbered("application", index),
            (None, Scope::Default) => numbered("default", index),
            (None, Scope::Route(path)) => {
                let (name, _) = numbered(path, index);
                (name.clone(), format!("route:{name}"))
            }
        };
        let store_name = format!("{}{unspaced}", self.namespace);
        if let Some((existing, prepared)) =
            self.shared.get(&name).filter(|_| limit.shared.is_some())
        {
            return if existing.same_as(&limit) {
                Ok(Arc::clone(prepared))
            } else {
                Err(ConfigError::SharedNameReused(name))
            };
        }
        let invalid = |error| ConfigError::Policy {
            scope: scope.to_string(),
            error,
        };
        let policy = match &limit.rates {
            LimitRates::Fixed(rates) => {
                let rates = rates.clone().map_err(|error| ConfigError::Rates {
                    scope: scope.to_string(),
                    error,
                })?;
                let policy = policy(limit.strategy, limit.burst, rates).map_err(invalid)?;
                self.fixed.push((store_name.clone(), policy));
                LimitPolicy::Fixed
            }
            LimitRates::Dynamic(rates_for) => {
                // Check the strategy and burst once, on a rate they must fit.
                policy(
                    limit.strategy,
                    limit.burst,
                    tollgate::Rate::per_second(1).into(),
                )
                .map_err(invalid)?;
                LimitPolicy::Dynamic {
                    rates_for: Arc::clone(rates_for),
                    strategy: limit.strategy,
                    burst: limit.burst,
                }
            }
        };
        let prepared = Arc::new(PreparedLimit {
            name: name.as_str().into(),
            headers: LimitHeaders::new(&name),
            store_name,
            policy,
            key: limit.key.clone(),
            per_method: limit.per_method,
            methods: limit.methods.clone(),
            per_route: limit.shared.is_none() && matches!(scope, Scope::Default),
            cost: limit.cost.clone(),
            deduct_when: limit.deduct_when.clone(),
        });
        if limit.shared.is_some() {
            self.shared.insert(name, (limit, Arc::clone(&prepared)));
        }
        Ok(prepared)
    }
}

/// `base` for the first limit declared at a scope, `base#2`, `base#3`... for the next, as
/// (shown name, store name).
fn numbered(base: &str, index: usize) -> (String, String) {
    let name = match index {
        0 => base.to_owned(),
        n => format!("{base}#{}", n + 1),
    };
    (name.clone(), name)
}

fn policy(strategy: Strategy, burst: Option<u64>, rates: Rates) -> Result<Policy, PolicyError> {
    let policy = Policy::new(strategy, rates);
    match burst {
        Some(burst) => policy.with_burst(burst),
        None => Ok(policy),
    }
}

/// The state behind a [`RateLimiter`], shared by its clones and layers.
pub(crate) struct Shared<S: Store> {
    /// The store, the clock and the fixed policies, by store name.
    limiter: Limiter<S>,
    key: Arc<dyn KeyExtractor>,
    proxies: TrustedProxies,
    headers: HeaderStyle,
    application: Vec<Arc<PreparedLimit>>,
    defaults: Vec<Arc<PreparedLimit>>,
    /// Limits by route; a route listed here does not meet the defaults.
    routes: HashMap<Box<str>, Vec<Arc<PreparedLimit>>, RandomState>,
    exempt: HashSet<Box<str>, RandomState>,
    exempt_when: Vec<Predicate>,
    on_breach: Option<BreachFn>,
    rejection: RejectionFn,
    peer: PeerFn,
}

/// A declared limit, ready to check requests.
struct PreparedLimit {
    /// The name headers and breaches show.
    name: Arc<str>,
    /// Its rate-limit fields, partly rendered.
    headers: LimitHeaders,
    /// The name of its policy in the [`Limiter`] (or the scope of its inline policies):
    /// unique per rate limiter.
    store_name: String,
    policy: LimitPolicy,
    key: Option<Arc<dyn KeyExtractor>>,
    per_method: bool,
    /// The methods it applies to; all if `None`.
    methods: Option<Arc<[http::Method]>>,
    /// Counts each route apart (the default limits).
    per_route: bool,
    cost: Option<CostFn>,
    deduct_when: Option<DeductFn>,
}

enum LimitPolicy {
    /// The limiter's policy named `store_name`.
    Fixed,
    /// Chosen per request, by the notation `rates_for` returns.
    Dynamic {
        rates_for: DynamicFn,
        strategy: Strategy,
        burst: Option<u64>,
    },
}

/// The policy a request meets under a limit.
enum Chosen {
    /// The limit's fixed policy.
    Fixed,
    /// A dynamic limit's policy for this request.
    Inline(Policy),
}

impl PreparedLimit {
    fn applies_to(&self, method: &http::Method) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.contains(method))
    }

    /// The policy applying to the request with head `parts`: `Ok(None)` when a dynamic limit
    /// leaves it unlimited, `Err` naming a notation the dynamic limit got wrong.
    fn policy_for(&self, parts: &Parts) -> Result<Option<Chosen>, String> {
        let LimitPolicy::Dynamic {
            rates_for,
            strategy,
            burst,
        } = &self.policy
        else {
            return Ok(Some(Chosen::Fixed));
        };
        let Some(notation) = rates_for(parts) else {
            return Ok(None);
        };
        let wrong = |error: &dyn fmt::Display| format!("dynamic limit {:?}: {error}", self.name);
        let rates: Rates = notation.parse().map_err(|err| wrong(&err))?;
        let policy = policy(*strategy, *burst, rates).map_err(|err| wrong(&err))?;
        Ok(Some(Chosen::Inline(policy)))
    }
}

/// What the check of a request decided.
pub(crate) enum Verdict {
    /// No limit applies.
    Exempt,
    /// Every limit allowed it; what to do once it has been answered.
    Admitted(Admission),
    /// Denied (or the store failed): the response to send.
    Rejected(Response<Body>),
}

/// An admitted request's charges that may have to be given back, and the decision its
/// headers describe.
pub(crate) struct Admission {
    charges: Vec<Charge>,
    closest: Option<(Arc<PreparedLimit>, Decision)>,
}

struct Charge {
    limit: Arc<PreparedLimit>,
    policy: Chosen,
    key: Vec<u8>,
    cost: u64,
}

impl<S: Store> Shared<S> {
    /// Whether checks and settlements complete when first polled (the store never waits).
    pub(crate) fn answers_immediately(&self) -> bool {
        self.limiter.store().answers_immediately()
    }

    /// Checks the request with head `parts` against its limits, charging them.
    pub(crate) async fn check(&self, parts: &mut Parts) -> Verdict {
        let matched = parts.extensions.get::<MatchedPath>().cloned();
        let route = matched
            .as_ref()
            .map_or(parts.uri.path(), MatchedPath::as_str);
        if self.exempt.contains(route) || self.exempt_when.iter().any(|exempt| exempt(parts)) {
            return Verdict::Exempt;
        }
        let method = &parts.method;
        let own = self
            .routes
            .get(route)
            .filter(|limits| limits.iter().any(|limit| limit.applies_to(method)));
        let meets = own.map_or(&self.defaults, |limits| limits);
        if self.application.is_empty() && meets.is_empty() {
            return Verdict::Exempt;
        }
        if let Some(peer) = (self.peer)(&parts.extensions) {
            let client = self.proxies.resolve(peer, &parts.headers);
            parts.extensions.insert(ClientIp(client));
        }
        // Only the defaults are split by route, and by matched route only: unmatched paths
        // share one count, so inventing paths does not earn new allowances.
        let route_key = matched.as_ref().map_or("", MatchedPath::as_str);
        let several = self.application.len() + meets.len() > 1;
        let mut charges = Vec::new();
        let mut closest: Option<(Arc<PreparedLimit>, Decision)> = None;
        let limits = self.application.iter().chain(meets);
        for limit in limits.filter(|limit| limit.applies_to(&parts.method)) {
            let policy = match limit.policy_for(parts) {
                Ok(Some(policy)) => policy,
                Ok(None) => continue,
                Err(message) => {
                    tracing::error!("{message}");
                    self.give_back(charges).await;
                    return Verdict::Rejected(breach::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &message,
                    ));
                }
            };
            let cost = limit.cost.as_ref().map_or(1, |cost| cost(parts));
            if cost == 0 {
                continue;
            }
            let key = limit
                .key
                .as_ref()
                .unwrap_or(&self.key)
                .extract(parts)
                .unwrap_or(RequestKey::UNKNOWN);
            let key_bytes = key.key_bytes();
            let (mut buffer, mut spill) = ([0u8; KEY_BUFFER], Vec::new());
            let store_key: &[u8] = if limit.per_method || limit.per_route {
                prefixed_key(limit, parts, route_key, &key_bytes, &mut buffer, &mut spill)
            } else {
                &key_bytes
            };
            let hit = match &policy {
                Chosen::Fixed => {
                    self.limiter
                        .hit_cost(&limit.store_name, store_key, cost)
                        .await
                }
                Chosen::Inline(inline) => {
                    self.limiter
                        .hit_with(&limit.store_name, inline, store_key, cost)
                        .await
                }
            };
            let decision = match hit {
                Ok(decision) => decision,
                Err(err) => {
                    self.give_back(charges).await;
                    return Verdict::Rejected(failure(&limit.name, &err));
                }
            };
            if !decision.allowed() {
                self.give_back(charges).await;
                let breach = Breach {
                    limit_name: Arc::clone(&limit.name),
                    key,
                    decision,
                };
                if let Some(hook) = &self.on_breach {
                    hook(parts, &breach);
                }
                let mut response = (self.rejection)(&breach);
                if response.status() == StatusCode::TOO_MANY_REQUESTS
                    && !response.headers().contains_key(header::RETRY_AFTER)
                {
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(breach.retry_after_secs()),
                    );
                }
                limit
                    .headers
                    .render(self.headers, &decision, response.headers_mut());
                return Verdict::Rejected(response);
            }
            if closest
                .as_ref()
                .is_none_or(|(_, d)| decision.remaining() < d.remaining())
            {
                closest = Some((Arc::clone(limit), decision));
            }
            if several || limit.deduct_when.is_some() {
                charges.push(Charge {
                    limit: Arc::clone(limit),
                    policy,
                    key: store_key.to_vec(),
                    cost,
                });
            }
        }
        Verdict::Admitted(Admission { charges, closest })
    }

    /// Settles an admitted request once answered with `response` (`None` if the service
    /// failed): gives back the charges that do not count, and writes the headers.
    pub(crate) async fn settle(
        &self,
        admission: Admission,
        response: Option<&mut http::response::Parts>,
    ) {
        for charge in admission.charges {
            let Some(counts) = &charge.limit.deduct_when else {
                continue;
            };
            if response.as_deref().is_none_or(|response| !counts(response)) {
                self.refund(charge).await;
            }
        }
        if let (Some(response), Some((fields, decision))) = (response, admission.closest) {
            fields
                .headers
                .render(self.headers, &decision, &mut response.headers);
        }
    }

    async fn give_back(&self, charges: Vec<Charge>) {
        for charge in charges {
            self.refund(charge).await;
        }
    }

    async fn refund(&self, charge: Charge) {
        let name = &charge.limit.store_name;
        let key: &[u8] = &charge.key;
        let refunded = match &charge.policy {
            Chosen::Fixed => self.limiter.refund(name, key, charge.cost).await,
            Chosen::Inline(policy) => {
                self.limiter
                    .refund_with(name, policy, key, charge.cost)
                    .await
            }
        };
        if let Err(err) = refunded {
            tracing::warn!(limit = %charge.limit.name, "rate limit store failed to give a charge back: {err}");
        }
    }
}

/// The answer to a hit that gave no decision: a cost the limit never allows (429 without
/// `Retry-After`: waiting will not help), a store failure (503), or too many distinct dynamic
/// policies (500).
fn failure(limit: &str, err: &Error) -> Response<Body> {
    match err {
        Error::CostExceedsLimit { cost, max_cost, .. } => breach::error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("request cost {cost} exceeds what limit {limit:?} ever allows ({max_cost})"),
        ),
        Error::Store(err) => {
            tracing::warn!(limit, "rate limit store failed: {err}");
            let mut response = breach::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "rate limit store unavailable",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            response
        }
        err => {
            tracing::error!(limit, "rate limit failed: {err}");
            breach::error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
        }
    }
}

/// Room for most prefixed keys on the stack.
const KEY_BUFFER: usize = 128;

/// `METHOD ` and `route\0` before the key bytes, as the limit asks: written into `buffer`, or
/// into `spill` if it does not fit.
fn prefixed_key<'b>(
    limit: &PreparedLimit,
    parts: &Parts,
    route: &str,
    key: &[u8],
    buffer: &'b mut [u8; KEY_BUFFER],
    spill: &'b mut Vec<u8>,
) -> &'b [u8] {
    let method: &[u8] = if limit.per_method {
        parts.method.as_str().as_bytes()
    } else {
        b""
    };
    let route: &[u8] = if limit.per_route {
        route.as_bytes()
    } else {
        b""
    };
    let pieces: [&[u8]; 5] = [
        method,
        if limit.per_method { b" " } else { b"" },
        route,
        if limit.per_route { b"\0" } else { b"" },
        key,
    ];
    let len: usize = pieces.iter().map(|piece| piece.len()).sum();
    if len > KEY_BUFFER {
        *spill = pieces.concat();
        return spill;
    }
    let mut at = 0;
    for piece in pieces {
        buffer[at..at + piece.len()].copy_from_slice(piece);
        at += piece.len();
    }
    &buffer[..len]
}
