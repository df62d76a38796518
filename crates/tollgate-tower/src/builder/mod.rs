//! [`Builder`]: declaring an [`HttpLimiter`]'s limits, keys, exemptions and answers.
//!
//! - `limit.rs`: [`Limit`], one declared limit.
//! - `compile.rs`: the declarations compiled into the limits requests are checked against,
//!   and [`BuildError`], which lists every mistake found.

pub(crate) mod compile;
pub(crate) mod limit;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use foldhash::fast::RandomState;
use http::Response;
use http::request::Parts;
use tollgate::{Clock, Limiter, MemoryStore, Store};

use crate::check::{BreachFn, HttpLimiter, PeerFn, Predicate, RejectionFn};
use crate::client_ip::{self, ProxyHeader, TrustedProxies};
use crate::headers::HeaderStyle;
use crate::key::{self, KeyExtractor};
use crate::respond::{self, Breach};
pub use compile::{BuildError, DeclarationError};
pub use limit::Limit;

impl HttpLimiter<MemoryStore> {
    /// A builder over a fresh [`MemoryStore`], keyed on the client IP, trusting no proxy,
    /// with [`HeaderStyle::Ietf`] headers and no limits yet.
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
                application: Vec::new(),
                defaults: Vec::new(),
                routes: Vec::new(),
                exempt: HashSet::default(),
                exempt_when: Vec::new(),
                on_breach: None,
                rejection: Arc::new(respond::too_many_requests),
                peer: Arc::new(client_ip::peer_addr),
                namespace: String::new(),
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
pub struct Builder<S: Store> {
    engine: Engine<S>,
    declared: Declared,
}

/// Where the counts will live.
enum Engine<S: Store> {
    /// A limiter made by [`Builder::build`], over this store and clock.
    New {
        store: S,
        clock: Option<Arc<dyn Clock>>,
    },
    /// A limiter shared with other users.
    Shared(Limiter<S>),
}

/// Everything declared, whatever the store.
pub(crate) struct Declared {
    pub(crate) key: Arc<dyn KeyExtractor>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) headers: HeaderStyle,
    pub(crate) application: Vec<Limit>,
    pub(crate) defaults: Vec<Limit>,
    pub(crate) routes: Vec<(String, Limit)>,
    pub(crate) exempt: HashSet<Box<str>, RandomState>,
    pub(crate) exempt_when: Vec<Predicate>,
    pub(crate) on_breach: Option<BreachFn>,
    pub(crate) rejection: RejectionFn,
    pub(crate) peer: PeerFn,
    pub(crate) namespace: String,
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
            .field("errors", &declared.errors)
            .finish_non_exhaustive()
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

    /// Reads time from `clock` (a [`tollgate::ManualClock`] in tests).
    ///
    /// A builder given a [`Builder::limiter`] reads that limiter's clock: set it there.
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

    /// Keys every limit without a key of its own with `key` (the client IP unless set).
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
    pub fn proxy_header(mut self, header: ProxyHeader) -> Self {
        self.declared.proxies = self.declared.proxies.with_header(header);
        self
    }

    /// Which rate-limit headers responses carry.
    pub fn headers(mut self, style: HeaderStyle) -> Self {
        self.declared.headers = style;
        self
    }

    /// Adds a limit for every route that has none of its own, counted per route.
    pub fn default_limit(mut self, limit: impl Into<Limit>) -> Self {
        self.declared.defaults.push(limit.into());
        self
    }

    /// Adds a limit every request meets, counted once per key across all routes.
    pub fn application_limit(mut self, limit: impl Into<Limit>) -> Self {
        self.declared.application.push(limit.into());
        self
    }

    /// Adds a limit on the route `path` (axum's route pattern, such as `/users/{id}`, or an
    /// exact path for other services). A route with limits of its own does not meet the
    /// default limits.
    pub fn route(mut self, path: impl Into<String>, limit: impl Into<Limit>) -> Self {
        self.declared.routes.push((path.into(), limit.into()));
        self
    }

    /// Exempts the route `path` from every limit, application limits included.
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
        let limiter = match self.engine {
            Engine::New { store, clock } => {
                let limiter = Limiter::new(store);
                match clock {
                    Some(clock) => limiter.with_clock(clock),
                    None => limiter,
                }
            }
            Engine::Shared(limiter) => limiter,
        };
        compile::compile(limiter, self.declared).map(HttpLimiter::new)
    }
}
