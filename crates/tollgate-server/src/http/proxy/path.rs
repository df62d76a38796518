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
    use super::normalized;

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
