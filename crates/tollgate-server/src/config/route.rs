//! The `[[proxy.routes]]` entries: paths, methods, policies and keys, and the axum patterns
//! they become, checked once.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::Deserialize;
use tollgate::Policy;
use toml::Spanned;

use crate::config::file::Checker;
use crate::config::{ConfigError, KeySpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    path: Spanned<String>,
    #[serde(default)]
    methods: Vec<Spanned<String>>,
    policy: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    exempt: Option<Spanned<bool>>,
}

/// One `[[proxy.routes]]` entry.
///
/// ```
/// use tollgate_server::{Config, KeySpec};
///
/// let config = Config::parse(r#"
/// [policies.login]
/// limits = "5/minute"
///
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
///
/// [[proxy.routes]]
/// path = "/login"
/// methods = ["post"]
/// policy = "login"
/// key = "header:x-user-id"
///
/// [[proxy.routes]]
/// path = "/static/*"
/// exempt = true
/// "#, "tollgate.toml")?;
/// let routes = config.proxy.expect("a [proxy] section").routes;
/// assert_eq!((routes[0].path.as_str(), &routes[0].methods[..]), ("/login", &[http::Method::POST][..]));
/// assert_eq!(routes[0].policy.as_deref(), Some("login"));
/// assert!(matches!(&routes[0].key, Some(KeySpec::Header { or_ip: false, .. })));
/// assert_eq!((routes[1].path.as_str(), routes[1].policy.as_deref()), ("/static/*", None)); // exempt
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `/ping` (exact) or `/api/*` (a prefix).
    pub path: String,
    /// The methods this route's policy applies to; all when empty.
    pub methods: Vec<http::Method>,
    /// The policy, by name; `None` for an exempt route.
    pub policy: Option<String>,
    /// Who pays, if not the proxy's key.
    pub key: Option<KeySpec>,
}

/// An axum route pattern of the proxy (`/api/{*rest}`), with the routes that decide it (by
/// index): all exempt, or all limited.
///
/// ```
/// use tollgate_server::{Config, RoutePattern};
///
/// let config = Config::parse(r#"
/// [policies.api]
/// limits = "100/minute"
///
/// [proxy]
/// listen = "127.0.0.1:8081"
/// upstream = "http://127.0.0.1:3000"
///
/// [[proxy.routes]]
/// path = "/api/*"
/// policy = "api"
/// "#, "tollgate.toml")?;
/// let patterns = config.proxy.expect("a [proxy] section").patterns;
/// let pattern = |text: &str| RoutePattern { pattern: text.to_owned(), routes: vec![0], exempt: false };
/// // A prefix covers itself, with and without its slash, and everything below it.
/// assert_eq!(patterns, [pattern("/api"), pattern("/api/"), pattern("/api/{*rest}")]);
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// The axum pattern.
    pub pattern: String,
    /// The deciding routes, by index in [`ProxyConfig::routes`].
    pub routes: Vec<usize>,
    /// Whether the deciding routes are exempt.
    pub exempt: bool,
}

/// How specific a route's claim on an axum pattern is: an exact path beats a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Prefix,
    Exact,
}

impl Checker<'_> {
    /// The routes of `sections`, in order, and the axum patterns they claim.
    pub(crate) fn routes(
        &self,
        sections: &[Spanned<RouteSection>],
        policies: &BTreeMap<String, Policy>,
    ) -> Result<(Vec<RouteConfig>, Vec<RoutePattern>), ConfigError> {
        let mut routes = Vec::with_capacity(sections.len());
        let mut claims: BTreeMap<String, (Specificity, Vec<usize>)> = BTreeMap::new();
        for (index, section) in sections.iter().enumerate() {
            let field = format!("proxy.routes[{index}]");
            let route = section.get_ref();
            let path = route.path.get_ref();
            let (specificity, patterns) = route_patterns(path).ok_or_else(|| {
                self.error(
                    route.path.span(),
                    format!("{field}.path"),
                    format!(
                        "invalid path {path:?}; expected an exact path such as /ping or a \
                         prefix such as /api/*, without a query, fragment, spaces or \
                         dot segments (it could never match)"
                    ),
                )
            })?;
            let methods = route
                .methods
                .iter()
                .map(|method| {
                    method
                        .get_ref()
                        .to_ascii_uppercase()
                        .parse::<http::Method>()
                        .map_err(|_| {
                            self.error(
                                method.span(),
                                format!("{field}.methods"),
                                format!("invalid method {:?}", method.get_ref()),
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
            let exempt = route
                .exempt
                .as_ref()
                .is_some_and(|exempt| *exempt.get_ref());
            let policy = match (&route.policy, exempt) {
                (Some(name), false) => {
                    Some(self.policy_name(name, &format!("{field}.policy"), policies)?)
                }
                (None, true) => None,
                (Some(name), true) => {
                    return Err(self.error(
                        name.span(),
                        format!("{field}.policy"),
                        "a route is either exempt or limited by a policy, not both; remove \
                         exempt = true or the policy",
                    ));
                }
                (None, false) => {
                    return Err(self.error(
                        section.span(),
                        field,
                        "a route needs either a policy or exempt = true",
                    ));
                }
            };
            let key = route
                .key
                .as_ref()
                .map(|key| self.key(key, &format!("{field}.key")))
                .transpose()?;
            for pattern in patterns {
                match claims.entry(pattern) {
                    Entry::Vacant(entry) => {
                        entry.insert((specificity, vec![index]));
                    }
                    Entry::Occupied(mut entry) => {
                        let (claimed, deciding) = entry.get_mut();
                        if specificity > *claimed {
                            *entry.get_mut() = (specificity, vec![index]);
                        } else if specificity == *claimed {
                            deciding.push(index);
                        }
                    }
                }
            }
            routes.push(RouteConfig {
                path: path.clone(),
                methods,
                policy,
                key,
            });
        }
        let mut patterns = Vec::with_capacity(claims.len());
        for (pattern, (_, deciding)) in claims {
            let exempt = routes[deciding[0]].policy.is_none();
            if let Some(&other) = deciding
                .iter()
                .find(|&&i| routes[i].policy.is_none() != exempt)
            {
                return Err(self.error(
                    sections[other].span(),
                    format!("proxy.routes[{other}]"),
                    format!(
                        "{:?} is both exempt and limited (see proxy.routes[{}]); an exempt route \
                         is exempt for every method, so remove one of them",
                        routes[other].path, deciding[0]
                    ),
                ));
            }
            patterns.push(RoutePattern {
                pattern,
                routes: deciding,
                exempt,
            });
        }
        Ok((routes, patterns))
    }
}

/// The axum patterns a configured path becomes: `/ping` itself, or for the prefix `/api/*`
/// the prefix without and with its slash and everything below it; `None` for a path that is
/// neither.
fn route_patterns(path: &str) -> Option<(Specificity, Vec<String>)> {
    // A request's path is normalised before routing and never holds a query, a fragment,
    // spaces or dot segments, so a route path with any of them would never match.
    let unmatchable = path.contains(['{', '}', '?', '#'])
        || path.contains("//")
        || path.chars().any(|c| c.is_whitespace() || c.is_control())
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    if !path.starts_with('/') || unmatchable {
        return None;
    }
    let Some(prefix) = path.strip_suffix("/*") else {
        return (!path.contains('*')).then(|| (Specificity::Exact, vec![path.to_owned()]));
    };
    if prefix.contains('*') {
        return None;
    }
    let patterns = if prefix.is_empty() {
        vec!["/".to_owned(), "/{*rest}".to_owned()]
    } else {
        vec![
            prefix.to_owned(),
            format!("{prefix}/"),
            format!("{prefix}/{{*rest}}"),
        ]
    };
    Some((Specificity::Prefix, patterns))
}
