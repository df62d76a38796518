//! Compiling a [`Builder`](super::Builder)'s declarations: each [`Limit`] becomes a
//! [`PreparedLimit`] with its policy prepared over the limiter, each shared limit once; and
//! every mistake is collected into one [`BuildError`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tollgate::{
    Ban, ConcurrencyLimitError, InvalidBan, Limiter, ParseError, Policy, PolicyError, Rates, Store,
    Strategy,
};

use crate::builder::Declared;
use crate::builder::limit::{Limit, LimitRates};
use crate::check::{LimitPolicy, PreparedLimit, Rules, WaitingRoom};
use crate::client_ip::InvalidProxy;
use crate::headers::LimitHeaders;

/// Every mistake in a [`Builder`](super::Builder)'s declarations: those of its settings
/// (trusted proxies, the clock) first, then the limits' in the order they were declared
/// (application, default, routes).
///
/// ```
/// use std::error::Error as _;
/// use tollgate_tower::{BuildError, DeclarationError, HttpLimiter, Limit};
///
/// let err: BuildError = HttpLimiter::builder()
///     .default_limit("5/minit")
///     .route("/export", Limit::new("1/second").burst(5))
///     .build()
///     .unwrap_err();
/// let mistakes = err.mistakes();
/// assert!(matches!(&mistakes[0], DeclarationError::Rates { scope, .. } if scope == "default"));
/// assert!(matches!(&mistakes[1], DeclarationError::Policy { scope, .. } if scope == r#"route "/export""#));
/// assert_eq!(err.to_string().lines().count(), 2); // one line per mistake
/// assert_eq!(err.source().map(|first| first.to_string()), Some(mistakes[0].to_string()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    mistakes: Vec<DeclarationError>,
}

impl BuildError {
    /// The mistakes, at least one.
    pub fn mistakes(&self) -> &[DeclarationError] {
        &self.mistakes
    }
}

impl fmt::Display for BuildError {
    /// One mistake per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, mistake) in self.mistakes.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            mistake.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.mistakes
            .first()
            .map(|mistake| mistake as &(dyn std::error::Error + 'static))
    }
}

/// One mistake in a [`Builder`](super::Builder)'s declarations.
///
/// ```
/// use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Strategy};
/// use tollgate_tower::{DeclarationError, HttpLimiter, Limit};
///
/// let err = HttpLimiter::builder()
///     .limiter(Limiter::new(MemoryStore::new()))
///     .clock(ManualClock::new()) // the shared limiter has its own
///     .route("/upload", Limit::new("10/hour").shared("uploads"))
///     .route("/import", Limit::new("20/hour").shared("uploads"))
///     .route("/export", Limit::policy(Policy::fixed_window("1/second".parse()?)).strategy(Strategy::TokenBucket))
///     .build()
///     .unwrap_err();
/// assert!(matches!(
///     err.mistakes(),
///     [
///         DeclarationError::ClockOfSharedLimiter,
///         DeclarationError::SharedNameReused(name),
///         DeclarationError::OptionsOnPolicy { .. },
///     ] if name == "uploads"
/// ));
/// assert_eq!(
///     err.mistakes()[0].to_string(),
///     "a clock was set on a builder that shares a Limiter; set it on the Limiter with Limiter::with_clock"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeclarationError {
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
    /// A limit made from a [`Policy`] was also given a strategy or a burst.
    OptionsOnPolicy {
        /// Where the limit was declared.
        scope: String,
    },
    /// Two different limits were given the same shared name.
    SharedNameReused(String),
    /// A trusted proxy is not a CIDR or an address.
    Proxy(InvalidProxy),
    /// A clock was set on a builder that shares a limiter, which has its own.
    ClockOfSharedLimiter,
    /// The breaches of a limit's ban do not parse.
    BanRate {
        /// Where the limit was declared.
        scope: String,
        /// What is wrong with them.
        error: ParseError,
    },
    /// A concurrency limit's bounds are wrong (no slot, too many, a lease time out of
    /// bounds).
    Concurrency {
        /// Where the limit was declared.
        scope: String,
        /// What is wrong.
        error: ConcurrencyLimitError,
    },
    /// An option was set that does not apply to the limit: a rate option on a concurrency
    /// limit, or a lease time on a rate limit.
    OptionNotApplicable {
        /// Where the limit was declared.
        scope: String,
        /// The option.
        option: &'static str,
    },
    /// A limit's ban cannot be (no breaches, or a duration out of bounds).
    Ban {
        /// Where the limit was declared.
        scope: String,
        /// What is wrong.
        error: InvalidBan,
    },
}

impl fmt::Display for DeclarationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeclarationError::Rates { scope, error } => write!(f, "limit on {scope}: {error}"),
            DeclarationError::Policy { scope, error } => write!(f, "limit on {scope}: {error}"),
            DeclarationError::OptionsOnPolicy { scope } => write!(
                f,
                "limit on {scope}: made from a Policy, so its strategy, burst, ban and max delay \
                 are the policy's; set them on the Policy"
            ),
            DeclarationError::BanRate { scope, error } => {
                write!(f, "limit on {scope}: ban after: {error}")
            }
            DeclarationError::Ban { scope, error } => write!(f, "limit on {scope}: {error}"),
            DeclarationError::Concurrency { scope, error } => {
                write!(f, "limit on {scope}: {error}")
            }
            DeclarationError::OptionNotApplicable {
                scope,
                option: "lease_ttl",
            } => write!(
                f,
                "limit on {scope}: lease_ttl applies to concurrency limits only"
            ),
            DeclarationError::OptionNotApplicable { scope, option } => write!(
                f,
                "limit on {scope}: {option} applies to rate limits, not to a concurrency limit"
            ),
            DeclarationError::SharedNameReused(name) => write!(
                f,
                "shared limit {name:?} is declared twice with different rates or options; \
                 declare it once and apply the same Limit to each route"
            ),
            DeclarationError::Proxy(err) => err.fmt(f),
            DeclarationError::ClockOfSharedLimiter => f.write_str(
                "a clock was set on a builder that shares a Limiter; set it on the Limiter \
                 with Limiter::with_clock",
            ),
        }
    }
}

impl std::error::Error for DeclarationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DeclarationError::Rates { error, .. } => Some(error),
            DeclarationError::Policy { error, .. } => Some(error),
            DeclarationError::Proxy(err) => Some(err),
            DeclarationError::BanRate { error, .. } => Some(error),
            DeclarationError::Ban { error, .. } => Some(error),
            DeclarationError::Concurrency { error, .. } => Some(error),
            _ => None,
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

/// Compiles `declared` over `limiter`, or lists every mistake.
pub(crate) fn compile<S: Store>(
    limiter: Limiter<S>,
    declared: Declared,
) -> Result<Rules<S>, BuildError> {
    let mut compiler = Compiler {
        limiter: &limiter,
        namespace: &declared.namespace,
        shared: HashMap::new(),
        mistakes: declared.errors,
    };
    let application = compiler.all(Scope::Application, declared.application);
    let defaults = compiler.all(Scope::Default, declared.defaults);
    let mut routes: HashMap<Box<str>, Vec<Arc<PreparedLimit<S>>>, _> = HashMap::default();
    let mut declared_on: HashMap<String, usize> = HashMap::new();
    for (path, limit) in declared.routes {
        let index = declared_on.entry(path.clone()).or_default();
        let compiled = compiler.one(Scope::Route(&path), *index, limit);
        *index += 1;
        let on_route: &mut Vec<_> = routes.entry(path.into_boxed_str()).or_default();
        on_route.extend(compiled);
    }
    if !compiler.mistakes.is_empty() {
        return Err(BuildError {
            mistakes: compiler.mistakes,
        });
    }
    Ok(Rules {
        limiter,
        key: declared.key,
        proxies: declared.proxies,
        headers: declared.headers,
        header_policies: declared.header_policies,
        headers_include_shadow: declared.headers_include_shadow,
        application,
        defaults,
        routes,
        exempt: declared.exempt,
        exempt_when: declared.exempt_when,
        on_breach: declared.on_breach,
        rejection: declared.rejection,
        peer: declared.peer,
        waiting: Arc::new(WaitingRoom::new(declared.max_waiting)),
        wait_for_delays: declared.wait_for_delays,
    })
}

/// Turns declared limits into prepared ones, once per shared name, noting every mistake.
struct Compiler<'a, S: Store> {
    limiter: &'a Limiter<S>,
    namespace: &'a str,
    /// Shared limits by name, as first declared.
    shared: HashMap<String, (Limit, Arc<PreparedLimit<S>>)>,
    mistakes: Vec<crate::builder::DeclarationError>,
}

impl<S: Store> Compiler<'_, S> {
    fn all(&mut self, scope: Scope<'_>, limits: Vec<Limit>) -> Vec<Arc<PreparedLimit<S>>> {
        limits
            .into_iter()
            .enumerate()
            .filter_map(|(index, limit)| self.one(scope, index, limit))
            .collect()
    }

    /// Prepares the `index`th limit declared at `scope`; `None` (and a mistake noted) if it
    /// is wrong.
    fn one(
        &mut self,
        scope: Scope<'_>,
        index: usize,
        limit: Limit,
    ) -> Option<Arc<PreparedLimit<S>>> {
        // The name breaches show (unless the limit has one of its own), and the name in the
        // store, which keeps scopes apart.
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
            if existing.same_as(&limit) {
                return Some(Arc::clone(prepared));
            }
            self.mistakes.push(DeclarationError::SharedNameReused(name));
            return None;
        }
        let policy = match self.policy(scope, &limit, store_name) {
            Ok(policy) => policy,
            Err(mistake) => {
                self.mistakes.push(mistake);
                return None;
            }
        };
        // Headers show a name the user declared, never a scope or a route path.
        let headers = match limit.name.as_ref().or(limit.shared.as_ref()) {
            Some(declared) => LimitHeaders::new(declared),
            None => LimitHeaders::unnamed(),
        };
        let prepared = Arc::new(PreparedLimit {
            name: limit.name.as_deref().unwrap_or(&name).into(),
            headers,
            shadow: limit.shadow,
            policy,
            key: limit.key.clone(),
            per_method: limit.per_method,
            methods: limit.methods.clone(),
            per_route: limit.shared.is_none() && matches!(scope, Scope::Default),
            cost: limit.cost.clone(),
            deduct_when: limit.deduct_when.clone(),
            charge_after: limit.charge_after.clone(),
            on_decision: limit.on_decision.clone(),
        });
        if limit.shared.is_some() {
            self.shared.insert(name, (limit, Arc::clone(&prepared)));
        }
        Some(prepared)
    }

    /// The policy of `limit` declared at `scope`, prepared under `store_name`.
    fn policy(
        &self,
        scope: Scope<'_>,
        limit: &Limit,
        store_name: String,
    ) -> Result<LimitPolicy<S>, DeclarationError> {
        let invalid = |error| DeclarationError::Policy {
            scope: scope.to_string(),
            error,
        };
        let not_applicable = |option| DeclarationError::OptionNotApplicable {
            scope: scope.to_string(),
            option,
        };
        if limit.lease_ttl.is_some() && !matches!(limit.rates, LimitRates::Concurrency(_)) {
            return Err(not_applicable("lease_ttl"));
        }
        let strategy = limit.strategy.unwrap_or(Strategy::FixedWindow);
        let with_ban = |policy: Policy| -> Result<Policy, DeclarationError> {
            Ok(match self.ban(scope, limit)? {
                Some(ban) => policy.with_ban(ban),
                None => policy,
            })
        };
        let with_delay = |policy: Policy| match limit.max_delay {
            Some(max_delay) => policy.with_max_delay(max_delay),
            None => Ok(policy),
        };
        Ok(match &limit.rates {
            LimitRates::Concurrency(declared) => {
                if let Some(option) = limit.rate_options() {
                    return Err(not_applicable(option));
                }
                let concurrency = |error| DeclarationError::Concurrency {
                    scope: scope.to_string(),
                    error,
                };
                let mut concurrency_limit = declared.clone().map_err(concurrency)?;
                if let Some(ttl) = limit.lease_ttl {
                    concurrency_limit =
                        concurrency_limit.with_lease_ttl(ttl).map_err(concurrency)?;
                }
                LimitPolicy::Concurrency(self.limiter.concurrency(&store_name, concurrency_limit))
            }
            LimitRates::Notation(rates) => {
                let rates = rates.clone().map_err(|error| DeclarationError::Rates {
                    scope: scope.to_string(),
                    error,
                })?;
                let policy = Policy::from_parts(strategy, rates, limit.burst)
                    .and_then(with_delay)
                    .map_err(invalid)?;
                LimitPolicy::Fixed(self.limiter.policy(&store_name, with_ban(policy)?))
            }
            LimitRates::Policy(policy) => {
                let ban = self.ban(scope, limit)?;
                if limit.strategy.is_some()
                    || limit.burst.is_some()
                    || ban.is_some()
                    || limit.max_delay.is_some()
                {
                    return Err(DeclarationError::OptionsOnPolicy {
                        scope: scope.to_string(),
                    });
                }
                LimitPolicy::Fixed(self.limiter.policy(&store_name, policy.clone()))
            }
            LimitRates::Dynamic(rates_for) => {
                // Check the strategy and burst once, on a rate they must fit: the fastest
                // a token bucket may have, which refills any burst in time.
                let one: Rates = tollgate::Rate::per_second(1_000_000).into();
                Policy::from_parts(strategy, one, limit.burst).map_err(invalid)?;
                // And the delay on a day's window, longer than any delay: whether a fixed
                // window's delay is shorter than its windows is known once the rates are.
                Policy::from_parts(strategy, tollgate::Rate::per_day(1).into(), None)
                    .and_then(with_delay)
                    .map_err(invalid)?;
                LimitPolicy::Dynamic {
                    rates_for: Arc::clone(rates_for),
                    strategy,
                    burst: limit.burst,
                    ban: self.ban(scope, limit)?,
                    max_delay: limit.max_delay,
                    scope: store_name,
                }
            }
        })
    }

    /// The ban declared on `limit` at `scope`, if any.
    fn ban(&self, scope: Scope<'_>, limit: &Limit) -> Result<Option<Ban>, DeclarationError> {
        let Some((after, duration)) = &limit.ban else {
            return Ok(None);
        };
        let after = after.clone().map_err(|error| DeclarationError::BanRate {
            scope: scope.to_string(),
            error,
        })?;
        Ban::new(after, *duration)
            .map(Some)
            .map_err(|error| DeclarationError::Ban {
                scope: scope.to_string(),
                error,
            })
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
