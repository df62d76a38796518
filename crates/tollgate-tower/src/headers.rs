//! Rate-limit response headers: `Retry-After`, the legacy `X-RateLimit-*` fields and the
//! IETF draft's `RateLimit-Policy` and `RateLimit`.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate::Decision;

/// Which rate-limit fields responses carry, allowed and denied alike. `Retry-After` is on
/// every 429 whatever the choice.
///
/// The fields describe the limit closest to denying the request: the one that denied it, or
/// the one with the fewest units left.
///
/// ```
/// use tollgate::{Limiter, MemoryStore, Policy, Rate};
/// use tollgate_tower::HeaderStyle;
///
/// assert_eq!(HeaderStyle::default(), HeaderStyle::Ietf);
/// let api = Limiter::new(MemoryStore::new())
///     .policy("api", Policy::fixed_window(Rate::per_minute(10).into()));
/// let decision = api.hit_sync("alice", 1)?;
/// let fields = |style: HeaderStyle| {
///     let mut headers = http::HeaderMap::new();
///     style.render("api", &decision, &mut headers);
///     let mut names: Vec<String> = headers.keys().map(|name| name.to_string()).collect();
///     names.sort();
///     names
/// };
/// assert!(fields(HeaderStyle::None).is_empty());
/// assert_eq!(fields(HeaderStyle::Legacy), ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]);
/// assert_eq!(fields(HeaderStyle::Ietf), ["ratelimit", "ratelimit-policy"]);
/// assert_eq!(fields(HeaderStyle::Both).len(), 5);
/// # Ok::<(), tollgate::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderStyle {
    /// No rate-limit fields.
    None,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (the Unix time,
    /// in whole seconds, at which the window resets), as GitHub and Flask-Limiter send them.
    Legacy,
    /// `RateLimit-Policy: "name";q=100;w=60` and `RateLimit: "name";r=50;t=30`, from
    /// draft-ietf-httpapi-ratelimit-headers-10 (structured fields; `t` in seconds).
    #[default]
    Ietf,
    /// Both sets.
    Both,
}

static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

impl HeaderStyle {
    /// Writes this style's fields describing `decision` of the limit called `name` (not
    /// `Retry-After`: see [`Decision::retry_after_secs`]).
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy, Rate};
    /// use tollgate_tower::HeaderStyle;
    ///
    /// # futures_executor::block_on(async {
    /// let login = Limiter::new(MemoryStore::new())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(5).into()));
    /// let decision = login.hit("alice").await?;
    /// let mut headers = http::HeaderMap::new();
    /// HeaderStyle::Ietf.render("login", &decision, &mut headers);
    /// assert_eq!(headers["ratelimit-policy"], r#""login";q=5;w=60"#);
    /// assert_eq!(headers["ratelimit"], r#""login";r=4;t=60"#);
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn render(self, name: &str, decision: &Decision, headers: &mut HeaderMap) {
        LimitHeaders::new(name).render(self, decision, headers);
    }
}

/// The rate-limit fields of one limit, rendered in advance where they do not change from one
/// response to the next (the quoted name, and `RateLimit-Policy` for a policy's usual rate).
/// Keep one per limit; [`HeaderStyle::render`] is the same without the reuse.
///
/// ```
/// use tollgate::{Limiter, MemoryStore, Policy, Rate};
/// use tollgate_tower::{HeaderStyle, LimitHeaders};
///
/// # futures_executor::block_on(async {
/// let policy = Limiter::new(MemoryStore::new())
///     .policy("login", Policy::fixed_window(Rate::per_minute(5).into()));
/// let login = LimitHeaders::new("login");
/// let decision = policy.hit("alice").await?;
/// let mut headers = http::HeaderMap::new();
/// login.render(HeaderStyle::Both, &decision, &mut headers);
/// assert_eq!(headers["ratelimit"], r#""login";r=4;t=60"#);
/// assert_eq!(headers["x-ratelimit-remaining"], "4");
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct LimitHeaders {
    /// The name as a structured-field string, quotes included.
    quoted: Box<str>,
    /// The fields of the first (limit, window) seen, reused while they stay the same.
    fixed: OnceLock<Fixed>,
}

/// Fields that depend only on a decision's limit and window.
#[derive(Debug)]
struct Fixed {
    limit: u64,
    window_secs: u64,
    policy: HeaderValue,
    limit_value: HeaderValue,
}

impl LimitHeaders {
    /// The fields of the limit called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            quoted: sf_string(name).into_boxed_str(),
            fixed: OnceLock::new(),
        }
    }

    fn fixed_for(&self, limit: u64, window_secs: u64) -> Fixed {
        let mut policy = String::with_capacity(self.quoted.len() + 24);
        policy.push_str(&self.quoted);
        policy.push_str(";q=");
        policy.push_str(itoa::Buffer::new().format(limit));
        policy.push_str(";w=");
        policy.push_str(itoa::Buffer::new().format(window_secs));
        Fixed {
            limit,
            window_secs,
            policy: HeaderValue::try_from(policy)
                .unwrap_or_else(|_| HeaderValue::from_static("\"?\"")),
            limit_value: HeaderValue::from(limit),
        }
    }

    /// Writes the `style` fields describing `decision` (not `Retry-After`: see
    /// [`Decision::retry_after_secs`]).
    pub fn render(&self, style: HeaderStyle, decision: &Decision, headers: &mut HeaderMap) {
        if style == HeaderStyle::None {
            return;
        }
        let limit = decision.limit();
        let window_secs = decision.window_secs();
        let first = self
            .fixed
            .get_or_init(|| self.fixed_for(limit, window_secs));
        let other;
        let fixed = if first.limit == limit && first.window_secs == window_secs {
            first
        } else {
            other = self.fixed_for(limit, window_secs);
            &other
        };
        let reset_secs = decision.reset_after_secs();
        if matches!(style, HeaderStyle::Legacy | HeaderStyle::Both) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            headers.insert(X_RATELIMIT_LIMIT.clone(), fixed.limit_value.clone());
            headers.insert(X_RATELIMIT_REMAINING.clone(), decision.remaining().into());
            // The Unix time of the reset, rounded up to the second.
            let reset_at = now.saturating_add(decision.reset_after());
            let reset_at = reset_at.as_secs() + u64::from(reset_at.subsec_nanos() > 0);
            headers.insert(X_RATELIMIT_RESET.clone(), reset_at.into());
        }
        if matches!(style, HeaderStyle::Ietf | HeaderStyle::Both) {
            let mut state = String::with_capacity(self.quoted.len() + 24);
            state.push_str(&self.quoted);
            state.push_str(";r=");
            state.push_str(itoa::Buffer::new().format(decision.remaining()));
            state.push_str(";t=");
            state.push_str(itoa::Buffer::new().format(reset_secs));
            headers.insert(RATELIMIT_POLICY.clone(), fixed.policy.clone());
            if let Ok(state) = HeaderValue::try_from(state) {
                headers.insert(RATELIMIT.clone(), state);
            }
        }
    }
}

/// `text` as a structured-field string (RFC 8941 §3.3.3): quoted, with `"` and `\` escaped
/// and characters outside printable ASCII replaced by `?`.
fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_field_strings() {
        assert_eq!(sf_string("/search"), r#""/search""#);
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("tab\there é"), r#""tab?here ?""#);
    }
}
