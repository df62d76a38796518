//! The route options `ignore_case` and `ignore_trailing_slash`: what they fold, and the
//! [`Spellings`] that give a request path the spelling of the route it meets, so that axum
//! routes it there and the upstream receives that spelling.
//!
//! Case folding covers ASCII letters, and the four other characters whose simple case
//! mapping is an ASCII letter (`İ` and `ı` are `i`, `ſ` is `s`, the Kelvin sign `K` is `k`),
//! raw or percent-encoded: an upstream that compares with Unicode case rules (Java's
//! `equalsIgnoreCase`, .NET's `OrdinalIgnoreCase`) takes `/log%C4%B1n` for `/LOGIN`.

use std::collections::{HashMap, HashSet};

use crate::config::RouteConfig;

/// The characters beyond ASCII that fold to an ASCII letter, raw and encoded.
const FOLDS: [(char, &str, char); 4] = [
    ('\u{130}', "%C4%B0", 'i'),
    ('\u{131}', "%C4%B1", 'i'),
    ('\u{17F}', "%C5%BF", 's'),
    ('\u{212A}', "%E2%84%AA", 'k'),
];

/// The first unit of `path` under case folding: its length in `path`, and the one character
/// it folds to.
fn folded_unit(path: &str) -> Option<(usize, char)> {
    let first = path.chars().next()?;
    if first == '%' {
        let encoded = FOLDS.iter().find(|(_, encoded, _)| {
            path.get(..encoded.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(encoded))
        });
        if let Some((_, encoded, folded)) = encoded {
            return Some((encoded.len(), *folded));
        }
    } else if let Some((raw, _, folded)) = FOLDS.iter().find(|(raw, _, _)| *raw == first) {
        return Some((raw.len_utf8(), *folded));
    }
    Some((first.len_utf8(), first.to_ascii_lowercase()))
}

/// `path` with its case folded: `/LoG%C4%B1N` is `/login`.
pub(crate) fn fold_case(path: &str) -> String {
    let mut folded = String::with_capacity(path.len());
    let mut rest = path;
    while let Some((len, unit)) = folded_unit(rest) {
        folded.push(unit);
        rest = &rest[len..];
    }
    folded
}

/// How far `path` begins with `prefix` (already folded) once folded, in bytes of `path`.
fn folded_prefix_len(path: &str, prefix: &str) -> Option<usize> {
    let mut consumed = 0;
    let mut wanted = prefix.chars();
    for expected in wanted.by_ref() {
        let (len, unit) = folded_unit(&path[consumed..])?;
        if unit != expected {
            return None;
        }
        consumed += len;
    }
    Some(consumed)
}

/// `path` without one trailing slash (the root stays `/`).
pub(crate) fn without_trailing_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped,
        _ => path,
    }
}

/// What a path is compared as, for an exact route with these options.
pub(crate) fn exact_key(path: &str, ignore_case: bool, ignore_trailing_slash: bool) -> String {
    let path = if ignore_trailing_slash {
        without_trailing_slash(path)
    } else {
        path
    };
    if ignore_case {
        fold_case(path)
    } else {
        path.to_owned()
    }
}

/// A prefix route, for matching.
struct Prefix {
    /// The prefix as configured, without `/*` (empty for the root).
    path: String,
    /// Folded, when the route ignores case.
    folded: Option<String>,
}

impl Prefix {
    /// How far `path` lies within the prefix, in bytes, if it does.
    fn matched_len(&self, path: &str) -> Option<usize> {
        let len = match &self.folded {
            Some(folded) => folded_prefix_len(path, folded)?,
            None => path.starts_with(&self.path).then_some(self.path.len())?,
        };
        (path.len() == len || path[len..].starts_with('/')).then_some(len)
    }
}

/// The routes with options, for the spelling of request paths.
pub(crate) struct Spellings {
    /// Every exact route's path: a request that spells one exactly is routed as it is.
    exact: HashSet<String>,
    /// For each combination of options in use, the exact routes by their key.
    folded: Vec<((bool, bool), HashMap<String, String>)>,
    /// The prefix routes, longest first.
    prefixes: Vec<Prefix>,
}

impl Spellings {
    /// `None` when no route has an option: paths are routed as they are.
    pub(crate) fn new(routes: &[RouteConfig]) -> Option<Self> {
        if !routes
            .iter()
            .any(|route| route.ignore_case || route.ignore_trailing_slash)
        {
            return None;
        }
        let mut exact = HashSet::new();
        let mut folded: Vec<((bool, bool), HashMap<String, String>)> = Vec::new();
        let mut prefixes = Vec::new();
        for route in routes {
            if let Some(prefix) = route.path.strip_suffix("/*") {
                prefixes.push(Prefix {
                    path: prefix.to_owned(),
                    folded: route.ignore_case.then(|| fold_case(prefix)),
                });
                continue;
            }
            exact.insert(route.path.clone());
            let options = (route.ignore_case, route.ignore_trailing_slash);
            if options == (false, false) {
                continue;
            }
            let key = exact_key(&route.path, options.0, options.1);
            match folded.iter_mut().find(|(known, _)| *known == options) {
                Some((_, keys)) => {
                    keys.insert(key, route.path.clone());
                }
                None => folded.push((options, HashMap::from([(key, route.path.clone())]))),
            }
        }
        prefixes.sort_by_key(|prefix| std::cmp::Reverse(prefix.path.len()));
        Some(Self {
            exact,
            folded,
            prefixes,
        })
    }

    /// The spelling `path` (normalised) is routed and forwarded as, if not its own: the
    /// path of the exact route it meets through an option, or its prefix spelled as the
    /// case-insensitive prefix route's. Exact routes come before prefixes, longer prefixes
    /// before shorter, as in routing.
    pub(crate) fn respell(&self, path: &str) -> Option<String> {
        if self.exact.contains(path) {
            return None;
        }
        for ((ignore_case, ignore_trailing_slash), keys) in &self.folded {
            if let Some(route) = keys.get(&exact_key(path, *ignore_case, *ignore_trailing_slash)) {
                return Some(route.clone());
            }
        }
        let (prefix, len) = self
            .prefixes
            .iter()
            .find_map(|prefix| Some((prefix, prefix.matched_len(path)?)))?;
        let spelled = format!("{}{}", prefix.path, &path[len..]);
        (spelled != path).then_some(spelled)
    }
}

#[cfg(test)]
mod tests {
    use super::{Spellings, fold_case};
    use crate::config::RouteConfig;

    fn route(path: &str, ignore_case: bool, ignore_trailing_slash: bool) -> RouteConfig {
        RouteConfig {
            path: path.to_owned(),
            methods: Vec::new(),
            policy: Some("p".to_owned()),
            shadow_policy: None,
            key: None,
            ignore_case,
            ignore_trailing_slash,
        }
    }

    #[test]
    fn case_folds_ascii_and_the_characters_that_fold_into_it() {
        assert_eq!(fold_case("/LoGiN"), "/login");
        assert_eq!(fold_case("/log%C4%B1n"), "/login");
        assert_eq!(fold_case("/LOG%c4%b0N"), "/login");
        assert_eq!(fold_case("/\u{212A}ey/\u{17F}et/\u{131}"), "/key/set/i");
        assert_eq!(fold_case("/caf\u{c9}%2F"), "/caf\u{c9}%2f");
    }

    #[test]
    fn paths_take_the_spelling_of_the_route_they_meet() {
        let spellings = Spellings::new(&[
            route("/login", true, true),
            route("/Export", false, true),
            route("/Api/*", true, false),
            route("/Api/V2/*", true, false),
            route("/static/*", false, false),
        ])
        .expect("routes with options");
        let respell = |path| spellings.respell(path);
        assert_eq!(respell("/login"), None);
        for path in ["/LOGIN", "/login/", "/LoGiN/", "/log%C4%B1n"] {
            assert_eq!(respell(path).as_deref(), Some("/login"), "{path}");
        }
        assert_eq!(respell("/Export/").as_deref(), Some("/Export"));
        assert_eq!(respell("/export"), None, "case matters to /Export");
        assert_eq!(respell("/API/items/7").as_deref(), Some("/Api/items/7"));
        assert_eq!(respell("/api").as_deref(), Some("/Api"));
        assert_eq!(
            respell("/api/v2/x").as_deref(),
            Some("/Api/V2/x"),
            "the longer prefix"
        );
        assert_eq!(respell("/Api/items"), None);
        assert_eq!(respell("/apix"), None);
        assert_eq!(respell("/STATIC/x"), None);
        assert_eq!(respell("/login/x"), None);
        assert!(Spellings::new(&[route("/login", false, false)]).is_none());
    }
}
