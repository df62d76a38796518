//! The `[[proxy.routes]]` entries: paths, methods, policies and keys, and the axum patterns
//! they become, checked once.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::Deserialize;
use tollgate::Policy;
use toml::Spanned;

use crate::config::file::Checker;
use crate::config::{ConfigError, KeySpec};
use crate::http::proxy::matching::{fold_case, without_trailing_slash};
use crate::http::proxy::path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    path: Spanned<String>,
    #[serde(default)]
    methods: Vec<Spanned<String>>,
    policy: Option<Spanned<String>>,
    shadow_policy: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    exempt: Option<Spanned<bool>>,
    ignore_case: Option<Spanned<bool>>,
    ignore_trailing_slash: Option<Spanned<bool>>,
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
/// assert!(!routes[0].ignore_case && !routes[0].ignore_trailing_slash); // unless asked
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
///
/// With `ignore_case` and `ignore_trailing_slash`, a route meets the other spellings of its
/// path too; routes that would share a spelling must agree:
///
/// ```
/// use tollgate_server::Config;
///
/// let routes = |routes: &str| {
///     let text = format!(
///         "[policies.login]\nlimits = \"5/minute\"\n\n[proxy]\nlisten = \"127.0.0.1:8081\"\n\
///          upstream = \"http://127.0.0.1:3000\"\n{routes}"
///     );
///     Config::parse(&text, "tollgate.toml").map(|config| config.proxy.expect("a [proxy] section").routes)
/// };
/// let login = "[[proxy.routes]]\npath = \"/login\"\npolicy = \"login\"\nignore_case = true\nignore_trailing_slash = true\n";
/// let parsed = routes(login)?;
/// assert!(parsed[0].ignore_case && parsed[0].ignore_trailing_slash);
/// // `/LOGIN` would be both exempt and limited.
/// let err = routes(&format!("{login}[[proxy.routes]]\npath = \"/LOGIN\"\nexempt = true\n")).unwrap_err();
/// assert!(err.message().contains("match some of the same paths"));
/// // `/STATIC/admin` would meet the exempt prefix, not the limit.
/// let nested = "[[proxy.routes]]\npath = \"/static/*\"\nexempt = true\nignore_case = true\n\n\
///               [[proxy.routes]]\npath = \"/static/admin\"\npolicy = \"login\"\n";
/// assert!(routes(nested).unwrap_err().message().contains("give it ignore_case = true too"));
/// # Ok::<(), tollgate_server::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `/ping` (exact) or `/api/*` (a prefix).
    pub path: String,
    /// The methods this route's policy applies to (GET covers HEAD); all when empty.
    pub methods: Vec<http::Method>,
    /// The policy, by name; `None` for an exempt route, or one with only a shadow policy.
    pub policy: Option<String>,
    /// A policy applied beside `policy` as a shadow (`shadow_policy = "NAME"`): counted,
    /// reported, never denying, to watch what a new limit would deny before enforcing it. A
    /// route with a shadow policy and no policy meets the proxy's `default_policy` as if the
    /// route were not there, plus the shadow.
    ///
    /// ```
    /// use tollgate_server::Config;
    ///
    /// let config = Config::parse(r#"
    /// [policies.api]
    /// limits = "100/minute"
    ///
    /// [policies.api-next]
    /// limits = "60/minute"
    ///
    /// [proxy]
    /// listen = "127.0.0.1:8081"
    /// upstream = "http://127.0.0.1:3000"
    ///
    /// [[proxy.routes]]
    /// path = "/api/*"
    /// policy = "api"
    /// shadow_policy = "api-next"
    /// "#, "tollgate.toml")?;
    /// let route = &config.proxy.expect("a [proxy] section").routes[0];
    /// assert_eq!((route.policy.as_deref(), route.shadow_policy.as_deref()), (Some("api"), Some("api-next")));
    /// assert!(!route.is_exempt());
    /// # Ok::<(), tollgate_server::ConfigError>(())
    /// ```
    pub shadow_policy: Option<String>,
    /// Who pays, if not the proxy's key.
    pub key: Option<KeySpec>,
    /// Whether the route matches its path in any case (`ignore_case = true`): `/LOGIN` and
    /// `/LoGiN` meet `/login`'s limit. Every route under a case-insensitive prefix ignores
    /// case too.
    pub ignore_case: bool,
    /// Whether an exact route matches its path with and without a trailing slash
    /// (`ignore_trailing_slash = true`): `/login/` meets `/login`'s limit.
    pub ignore_trailing_slash: bool,
}

impl RouteConfig {
    /// Whether the route is exempt (`exempt = true`): it meets no limit at all.
    pub fn is_exempt(&self) -> bool {
        self.policy.is_none() && self.shadow_policy.is_none()
    }
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
    /// The deciding routes, by index in [`ProxyConfig::routes`](crate::ProxyConfig::routes).
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
                         prefix such as /api/*, without a query, fragment, spaces, dot \
                         segments (..; too), backslashes or escapes the proxy decodes or \
                         refuses (%69, %2F, %5C, %zz, %00): it could never match"
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
                (None, _) => None,
                (Some(name), true) => {
                    return Err(self.error(
                        name.span(),
                        format!("{field}.policy"),
                        "a route is either exempt or limited by a policy, not both; remove \
                         exempt = true or the policy",
                    ));
                }
            };
            let shadow_policy = match (&route.shadow_policy, exempt) {
                (Some(name), false) => {
                    Some(self.policy_name(name, &format!("{field}.shadow_policy"), policies)?)
                }
                (Some(name), true) => {
                    return Err(self.error(
                        name.span(),
                        format!("{field}.shadow_policy"),
                        "an exempt route meets no limit, not even a shadow one; remove \
                         exempt = true or the shadow policy",
                    ));
                }
                (None, _) => None,
            };
            if !exempt && policy.is_none() && shadow_policy.is_none() {
                return Err(self.error(
                    section.span(),
                    field,
                    "a route needs a policy, a shadow_policy or exempt = true",
                ));
            }
            let key = route
                .key
                .as_ref()
                .map(|key| self.key(key, &format!("{field}.key")))
                .transpose()?;
            let set =
                |option: &Option<Spanned<bool>>| option.as_ref().is_some_and(|on| *on.get_ref());
            let ignore_trailing_slash = set(&route.ignore_trailing_slash);
            if let (Specificity::Prefix, Some(option)) = (
                specificity,
                route
                    .ignore_trailing_slash
                    .as_ref()
                    .filter(|_| ignore_trailing_slash),
            ) {
                return Err(self.error(
                    option.span(),
                    format!("{field}.ignore_trailing_slash"),
                    format!(
                        "a prefix route already matches {prefix} and {prefix}/; \
                         ignore_trailing_slash is for exact paths",
                        prefix = path.trim_end_matches("/*")
                    ),
                ));
            }
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
                shadow_policy,
                key,
                ignore_case: set(&route.ignore_case),
                ignore_trailing_slash,
            });
        }
        self.options_agree(sections, &routes)?;
        let mut patterns = Vec::with_capacity(claims.len());
        for (pattern, (_, deciding)) in claims {
            let exempt = routes[deciding[0]].is_exempt();
            if let Some(&other) = deciding.iter().find(|&&i| routes[i].is_exempt() != exempt) {
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

    /// Refuses routes whose options let one path meet two routes that do not agree, or
    /// another spelling of a route under a case-insensitive prefix dodge it.
    fn options_agree(
        &self,
        sections: &[Spanned<RouteSection>],
        routes: &[RouteConfig],
    ) -> Result<(), ConfigError> {
        for (j, later) in routes.iter().enumerate() {
            let field = || format!("proxy.routes[{j}]");
            for (i, earlier) in routes[..j].iter().enumerate() {
                let same = later.path == earlier.path
                    && later.ignore_case == earlier.ignore_case
                    && later.ignore_trailing_slash == earlier.ignore_trailing_slash;
                if !same && share_a_spelling(earlier, later) {
                    return Err(self.error(
                        sections[j].span(),
                        field(),
                        format!(
                            "{:?} and {:?} (proxy.routes[{i}]) match some of the same paths \
                             through ignore_case or ignore_trailing_slash; give them one path \
                             and the same options",
                            later.path, earlier.path
                        ),
                    ));
                }
            }
            if later.ignore_case {
                continue;
            }
            let under = routes.iter().enumerate().find(|(i, prefix)| {
                *i != j && prefix.ignore_case && is_under(&later.path, &prefix.path)
            });
            if let Some((i, prefix)) = under {
                return Err(self.error(
                    sections[j].span(),
                    field(),
                    format!(
                        "{:?} lies under the case-insensitive prefix {:?} (proxy.routes[{i}]); \
                         give it ignore_case = true too, or its other spellings (such as {:?}) \
                         would meet that prefix instead",
                        later.path,
                        prefix.path,
                        later.path.to_ascii_uppercase()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether some request path meets both routes through their options: two exact routes
/// with a spelling in common, or two prefixes that are one.
fn share_a_spelling(a: &RouteConfig, b: &RouteConfig) -> bool {
    let ignore_case = a.ignore_case || b.ignore_case;
    let same = |x: &str, y: &str| {
        if ignore_case {
            fold_case(x) == fold_case(y)
        } else {
            x == y
        }
    };
    match (a.path.strip_suffix("/*"), b.path.strip_suffix("/*")) {
        (Some(x), Some(y)) => same(x, y),
        (None, None) => {
            let spellings = |route: &RouteConfig| {
                let bare = without_trailing_slash(&route.path).to_owned();
                if !route.ignore_trailing_slash || bare == "/" {
                    vec![route.path.clone()]
                } else {
                    vec![format!("{bare}/"), bare]
                }
            };
            let theirs = spellings(b);
            spellings(a)
                .iter()
                .any(|x| theirs.iter().any(|y| same(x, y)))
        }
        _ => false,
    }
}

/// Whether the route `path` lies at or under the prefix route `prefix` (`/static/*`),
/// whatever the case.
fn is_under(path: &str, prefix: &str) -> bool {
    let Some(prefix) = prefix.strip_suffix("/*") else {
        return false;
    };
    let path = fold_case(path.strip_suffix("/*").unwrap_or(path));
    let prefix = fold_case(prefix);
    path.strip_prefix(&prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The axum patterns a configured path becomes: `/ping` itself, or for the prefix `/api/*`
/// the prefix without and with its slash and everything below it; `None` for a path that is
/// neither.
fn route_patterns(path: &str) -> Option<(Specificity, Vec<String>)> {
    // A request's path is normalised before routing and never holds a query, a fragment,
    // spaces or dot segments, so a route path with any of them would never match.
    let unmatchable = !path::is_routable(path)
        || path.contains(['{', '}', '?', '#'])
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
