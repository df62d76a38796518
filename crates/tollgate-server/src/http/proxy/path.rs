//! Paths normalised before routing, so that an encoded or dotted path cannot dodge the
//! limit of the route it names: `/log%69n` and `/x/../login` meet `/login`'s limit and reach
//! the upstream as `/login`.

use axum::extract::Request;
use http::Uri;
use http::uri::PathAndQuery;

/// `request` with its path normalised: percent-encoded unreserved characters decoded
/// (`%69` is `i`), dot segments resolved (`/a/../b` is `/b`) and repeated slashes merged.
/// A path that cannot be normalised is left as it is.
pub(crate) fn normalize_path(mut request: Request) -> Request {
    let uri = request.uri();
    let Some(normalized) = normalized(uri.path()) else {
        return request;
    };
    let target = match uri.query() {
        Some(query) => format!("{normalized}?{query}"),
        None => normalized,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = PathAndQuery::try_from(target) {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Refuses (400, JSON) a request whose path holds an encoded slash or backslash (`%2F`,
/// `%5C`, either case): routes match the path as sent, but an upstream that decodes it sees
/// another path, so `/static/..%2flogin` would reach `/login` past its limit. Envoy's
/// `path_with_escaped_slashes_action` offers the same refusal.
pub(crate) async fn refuse_escaped_separators(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if has_escaped_separator(request.uri().path()) {
        return tollgate_tower::json_error(
            http::StatusCode::BAD_REQUEST,
            "the path holds an encoded slash or backslash (%2F, %5C), which the proxy refuses",
        );
    }
    next.run(request).await
}

/// Whether `path` holds `%2F` or `%5C` in either case.
fn has_escaped_separator(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f') | (b'5', b'c')
            )
    })
}

/// The normal form of `path`, or `None` if it already is normal.
fn normalized(path: &str) -> Option<String> {
    let suspicious = path.contains('%') || path.contains("//") || path.contains("/.");
    if !suspicious {
        return None;
    }
    // Decode only unreserved characters: a decoded `/` or `%` would change the path's meaning.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = path
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b))
        {
            decoded.push(char::from(byte));
            i += 3;
            continue;
        }
        decoded.push(char::from(bytes[i]));
        i += 1;
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
    fn escaped_separators_are_found_in_either_case() {
        for path in ["/static/..%2flogin", "/a%2Fb", "/a%5cb", "/a%5C", "%2f"] {
            assert!(has_escaped_separator(path), "{path}");
        }
        for path in [
            "/login", "/a%2", "/a%25", "/a%2e", "/a/b\\c", "/%5", "/a%F2",
        ] {
            assert!(!has_escaped_separator(path), "{path}");
        }
    }

    #[test]
    fn paths_are_normalised_before_routing() {
        assert_eq!(normalized("/login"), None);
        assert_eq!(normalized("/log%69n").as_deref(), Some("/login"));
        assert_eq!(normalized("/LOG%2dIN").as_deref(), Some("/LOG-IN"));
        assert_eq!(normalized("/x/../login").as_deref(), Some("/login"));
        assert_eq!(normalized("/./login").as_deref(), Some("/login"));
        assert_eq!(normalized("//login").as_deref(), Some("/login"));
        assert_eq!(normalized("/../../login").as_deref(), Some("/login"));
        assert_eq!(normalized("/api/").as_deref(), None);
        assert_eq!(normalized("/api/v1/.").as_deref(), Some("/api/v1/"));
        // Reserved characters stay encoded: %2F is not a path separator.
        assert_eq!(normalized("/a%2Fb"), None);
        assert_eq!(
            normalized("/a%2fb/%7euser").as_deref(),
            Some("/a%2fb/~user")
        );
        // Junk escapes are kept as they are.
        assert_eq!(normalized("/a%zz"), None);
        assert_eq!(normalized("/a%"), None);
    }
}
