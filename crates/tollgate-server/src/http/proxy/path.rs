//! The proxy's one path step, before routing, so that an encoded or dotted path cannot dodge
//! the limit of the route it names: encoded slashes and backslashes refused or decoded
//! (`[proxy] escaped_slashes`), unreserved escapes decoded, dot segments resolved, repeated
//! slashes merged, and the path spelled as the route it meets when that route ignores case
//! or a trailing slash (`matching.rs`). `/log%69n` and `/x/../login` meet `/login`'s limit
//! and reach the upstream as `/login`.

use axum::extract::Request;
use axum::response::Response;
use http::Uri;
use http::uri::PathAndQuery;

use crate::config::{EscapedSlashes, ProxyConfig};
use crate::http::proxy::matching::Spellings;

/// What the path step does, from the proxy's configuration.
pub(crate) struct PathRules {
    escaped_slashes: EscapedSlashes,
    /// The routes with `ignore_case` or `ignore_trailing_slash`, if any.
    spellings: Option<Spellings>,
}

impl PathRules {
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        Self {
            escaped_slashes: config.escaped_slashes,
            spellings: Spellings::new(&config.routes),
        }
    }

    /// `request` with its path in normal form, spelled as the route it meets if that route
    /// ignores case or a trailing slash, ready for routing; or the refusal of a path with an
    /// encoded slash or backslash (`%2F`, `%5C`, either case) or a backslash under
    /// `escaped_slashes = "reject"`.
    pub(crate) fn apply(&self, mut request: Request) -> Result<Request, EscapedSeparator> {
        let uri = request.uri();
        let decode = match self.escaped_slashes {
            EscapedSlashes::Decode => true,
            EscapedSlashes::Reject if has_escaped_separator(uri.path()) => {
                return Err(EscapedSeparator);
            }
            EscapedSlashes::Reject => false,
        };
        let normal = normalized(uri.path(), decode);
        let spelled = self
            .spellings
            .as_ref()
            .and_then(|spellings| spellings.respell(normal.as_deref().unwrap_or(uri.path())));
        let Some(path) = spelled.or(normal) else {
            return Ok(request);
        };
        let target = match uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = uri.clone().into_parts();
        // The normal form of a valid path is a valid path: only characters of it, and `/`.
        if let Ok(path_and_query) = PathAndQuery::try_from(target) {
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
        Ok(request)
    }
}

/// Whether a request path can be `path` once through the path step: normal, and without
/// an encoded slash or backslash, or a backslash (a route path that is not could never
/// match).
pub(crate) fn is_routable(path: &str) -> bool {
    !has_escaped_separator(path) && normalized(path, false).is_none()
}

/// A path refused for an encoded slash or backslash, or a backslash.
#[derive(Debug)]
pub(crate) struct EscapedSeparator;

impl EscapedSeparator {
    /// The `400` that refuses it.
    pub(crate) fn answer(&self) -> Response {
        tollgate_tower::json_error(
            http::StatusCode::BAD_REQUEST,
            "the path holds an encoded slash or backslash (%2F, %5C) or a backslash, which \
             the proxy refuses",
        )
    }
}

/// Whether `path` holds `%2F` or `%5C` in either case, or a backslash: what an upstream may take
/// for a separator where the routes see none.
fn has_escaped_separator(path: &str) -> bool {
    path.contains('\\')
        || path.as_bytes().windows(3).any(|w| {
            w[0] == b'%'
                && matches!(
                    (w[1], w[2].to_ascii_lowercase()),
                    (b'2', b'f') | (b'5', b'c')
                )
        })
}

/// The normal form of `path`, or `None` if it already is normal. With `separators`, an
/// encoded slash or backslash and a backslash are read as `/`.
fn normalized(path: &str, separators: bool) -> Option<String> {
    let suspicious = path.contains('%')
        || path.contains("//")
        || path.contains("/.")
        || (separators && path.contains('\\'));
    if !suspicious {
        return None;
    }
    // Decode only unreserved characters (and, if asked, separators): a decoded `%` or
    // another reserved character would change the path's meaning.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = path
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .filter(|b| {
                    b.is_ascii_alphanumeric()
                        || b"-._~".contains(b)
                        || (separators && matches!(b, b'/' | b'\\'))
                })
        {
            decoded.push(if byte == b'\\' { '/' } else { char::from(byte) });
            i += 3;
            continue;
        }
        if separators && bytes[i] == b'\\' {
            decoded.push('/');
            i += 1;
            continue;
        }
        // A character of the path, whole (the path is UTF-8, and may hold more than ASCII).
        let len = path[i..].chars().next().map_or(1, char::len_utf8);
        decoded.push_str(&path[i..i + len]);
        i += len;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." | "" => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (trailing && !out.ends_with('/')) {
        out.push('/');
    }
    (out != path).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::{has_escaped_separator, normalized};

    #[test]
    fn escaped_separators_and_backslashes_are_found_in_either_case() {
        for path in [
            "/static/..%2flogin",
            "/a%2Fb",
            "/a%5cb",
            "/a%5C",
            "%2f",
            "/a/b\\c",
        ] {
            assert!(has_escaped_separator(path), "{path}");
        }
        for path in ["/login", "/a%2", "/a%25", "/a%2e", "/%5", "/a%F2"] {
            assert!(!has_escaped_separator(path), "{path}");
        }
    }

    #[test]
    fn paths_are_normalised_before_routing() {
        let normal = |path| normalized(path, false);
        assert_eq!(normal("/login"), None);
        assert_eq!(normal("/log%69n").as_deref(), Some("/login"));
        assert_eq!(normal("/LOG%2dIN").as_deref(), Some("/LOG-IN"));
        assert_eq!(normal("/x/../login").as_deref(), Some("/login"));
        assert_eq!(normal("/./login").as_deref(), Some("/login"));
        assert_eq!(normal("//login").as_deref(), Some("/login"));
        assert_eq!(normal("/../../login").as_deref(), Some("/login"));
        assert_eq!(normal("/api/").as_deref(), None);
        assert_eq!(normal("/api/v1/.").as_deref(), Some("/api/v1/"));
        // Reserved characters stay encoded: %2F is not a path separator.
        assert_eq!(normal("/a%2Fb"), None);
        assert_eq!(normal("/a%2fb/%7euser").as_deref(), Some("/a%2fb/~user"));
        // Junk escapes are kept as they are.
        assert_eq!(normal("/a%zz"), None);
        assert_eq!(normal("/a%"), None);
        // Characters beyond ASCII are kept whole.
        assert_eq!(normal("/caf\u{e9}/./x").as_deref(), Some("/caf\u{e9}/x"));
    }

    #[test]
    fn decoded_separators_are_slashes_before_dot_segments_are_resolved() {
        let decoded = |path| normalized(path, true);
        assert_eq!(decoded("/static/..%2flogin").as_deref(), Some("/login"));
        assert_eq!(decoded("/static/..%2Flogin").as_deref(), Some("/login"));
        assert_eq!(decoded("/static/..%5clogin").as_deref(), Some("/login"));
        assert_eq!(decoded("/static/..\\login").as_deref(), Some("/login"));
        assert_eq!(decoded("/a%2F%2Fb").as_deref(), Some("/a/b"));
        assert_eq!(decoded("/a%252Fb"), None, "decoded once: %25 stays");
        assert_eq!(decoded("/login"), None);
    }
}
