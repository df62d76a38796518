//! The proxy's one path step, before routing, so that an encoded or dotted path cannot dodge
//! the limit of the route it names: malformed escapes (`%` without two hex digits after it,
//! which decoding could otherwise join into a new escape: `%%32%46` into `%2F`), `%00`, and
//! dot segments with parameters (`..;`, a dot segment to Java servers) refused; encoded
//! slashes and backslashes refused or decoded (`[proxy] escaped_slashes`); unreserved escapes
//! decoded, dot segments resolved, repeated slashes merged; and the path spelled as the route
//! it meets when that route ignores case or a trailing slash (`matching.rs`). `/log%69n` and
//! `/x/../login` meet `/login`'s limit and reach the upstream as `/login`.

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
    /// ignores case or a trailing slash, ready for routing; or the refusal of a path that
    /// [`RefusedPath`] describes.
    pub(crate) fn apply(&self, mut request: Request) -> Result<Request, RefusedPath> {
        let uri = request.uri();
        if has_malformed_escape(uri.path()) {
            return Err(RefusedPath::MalformedEscape);
        }
        let decode = match self.escaped_slashes {
            EscapedSlashes::Decode => true,
            EscapedSlashes::Reject if has_escaped_separator(uri.path()) => {
                return Err(RefusedPath::EscapedSeparator);
            }
            EscapedSlashes::Reject => false,
        };
        let normal = normalized(uri.path(), decode)?;
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
/// a malformed escape, an encoded slash or backslash, or a backslash (a route path that is
/// not could never match).
pub(crate) fn is_routable(path: &str) -> bool {
    !has_malformed_escape(path)
        && !has_escaped_separator(path)
        && normalized(path, false).is_ok_and(|normal| normal.is_none())
}

/// A path the proxy refuses with `400`, before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedPath {
    /// An encoded slash or backslash (`%2F`, `%5C`, either case) or a backslash, under
    /// `escaped_slashes = "reject"`.
    EscapedSeparator,
    /// A `%` without two hex digits after it, or `%00`: no valid path holds one, and
    /// decoding around it could make a new escape (`%%32%46` would become `%2F`).
    MalformedEscape,
    /// A dot segment with parameters (`..;x`, `.;x`), which Java servers read as a dot
    /// segment: `/static/..;/login` is `/login` to them.
    DotSegmentParameters,
}

impl RefusedPath {
    /// The `400` that refuses it.
    pub(crate) fn answer(&self) -> Response {
        let error = match self {
            RefusedPath::EscapedSeparator => {
                "the path holds an encoded slash or backslash (%2F, %5C) or a backslash, \
                 which the proxy refuses"
            }
            RefusedPath::MalformedEscape => {
                "the path holds a malformed escape (a % without two hex digits after it) or \
                 %00, which the proxy refuses"
            }
            RefusedPath::DotSegmentParameters => {
                "the path holds a dot segment with parameters (..; or .;), which the proxy \
                 refuses"
            }
        };
        tollgate_tower::json_error(http::StatusCode::BAD_REQUEST, error)
    }
}

/// Whether `path` holds a `%` not followed by two hex digits, or `%00`.
fn has_malformed_escape(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.iter().enumerate().any(|(i, &byte)| {
        byte == b'%'
            && !matches!(
                bytes.get(i + 1..i + 3),
                Some([high, low]) if high.is_ascii_hexdigit()
                    && low.is_ascii_hexdigit()
                    && (*high, *low) != (b'0', b'0')
            )
    })
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

/// The normal form of `path` (whose escapes are well formed), or `None` if it already is
/// normal; refused if it holds a dot segment with parameters. With `separators`, an encoded
/// slash or backslash and a backslash are read as `/`.
fn normalized(path: &str, separators: bool) -> Result<Option<String>, RefusedPath> {
    let suspicious = path.contains('%')
        || path.contains("//")
        || path.contains("/.")
        || (separators && path.contains('\\'));
    if !suspicious {
        return Ok(None);
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
            segment if segment.starts_with(".;") || segment.starts_with("..;") => {
                return Err(RefusedPath::DotSegmentParameters);
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
    Ok((out != path).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::{RefusedPath, has_escaped_separator, has_malformed_escape, normalized};

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
        let normal = |path| normalized(path, false).expect("not refused");
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
        let decoded = |path| normalized(path, true).expect("not refused");
        assert_eq!(decoded("/static/..%2flogin").as_deref(), Some("/login"));
        assert_eq!(decoded("/static/..%2Flogin").as_deref(), Some("/login"));
        assert_eq!(decoded("/static/..%5clogin").as_deref(), Some("/login"));
        assert_eq!(decoded("/static/..\\login").as_deref(), Some("/login"));
        assert_eq!(decoded("/a%2F%2Fb").as_deref(), Some("/a/b"));
        assert_eq!(decoded("/a%252Fb"), None, "decoded once: %25 stays");
        assert_eq!(decoded("/login"), None);
    }

    #[test]
    fn malformed_escapes_and_nul_are_found() {
        // Decoding `%32` and `%46` after a lone `%` would make `%2F`, past the check for it.
        for path in [
            "/static/..%%32%46login",
            "/a%2%66",
            "/a%",
            "/a%f",
            "/a%zz",
            "/a%00",
        ] {
            assert!(has_malformed_escape(path), "{path}");
        }
        for path in ["/login", "/a%2F", "/a%25", "/a%c4%b1", "/a%0A", "/%7e"] {
            assert!(!has_malformed_escape(path), "{path}");
        }
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        for path in [
            "/static/..;/login",
            "/static/.;/login",
            "/a/%2e%2e;x/b",
            "/..;",
        ] {
            assert_eq!(
                normalized(path, false),
                Err(RefusedPath::DotSegmentParameters),
                "{path}"
            );
        }
        assert_eq!(normalized("/login;jsessionid=1", false), Ok(None));
        assert_eq!(
            normalized("/a/.x;y/./b", false),
            Ok(Some("/a/.x;y/b".to_owned()))
        );
    }
}
