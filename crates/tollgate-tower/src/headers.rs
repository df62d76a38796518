//! Rate-limit response headers: `Retry-After`, the legacy `X-RateLimit-*` fields and the
//! IETF draft's `RateLimit-Policy` and `RateLimit` (structured-field lists, one member per
//! limit); [`Described`], which decisions of a verdict they describe.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;
use tollgate::{Decision, Rate, Store, Verdict};

/// Which rate-limit fields responses carry, allowed and denied alike. `Retry-After` is on
/// every 429 whatever the choice.
///
/// The IETF fields list the limits the request met ([`HeaderPolicies`] chooses every one or
/// the closest); the legacy fields describe the limit closest to denying the request: the
/// one that denied it, or the one with the fewest units left.
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

/// Which limits the IETF fields `RateLimit-Policy` and `RateLimit` list. The legacy
/// `X-RateLimit-*` fields describe one limit whatever the choice: the closest to denying.
///
/// ```
/// use tollgate_tower::HeaderPolicies;
///
/// assert_eq!(HeaderPolicies::default(), HeaderPolicies::All);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderPolicies {
    /// Every limit the request met, each its own list member, in the order they were
    /// charged: `RateLimit-Policy: "login";q=5;w=60, "app";q=5000;w=3600` (as
    /// express-rate-limit does with draft 8). A denied request lists the limit that denied
    /// it: the others' charges were given back.
    #[default]
    All,
    /// Only the limit closest to denying: the one that denied the request, or the one with
    /// the fewest units left.
    Closest,
}

/// The rate-limit fields of one limit, rendered in advance where they do not change from one
/// response to the next (the quoted name, and `RateLimit-Policy` for a policy's usual rate).
/// Keep one per limit; [`HeaderStyle::render`] is the same without the reuse.
///
/// A limit is named in the fields by the name it was declared with ([`LimitHeaders::new`]),
/// or, if it has none ([`LimitHeaders::unnamed`]), by the rate each decision describes in
/// tollgate's notation (`"5/minute"`).
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
///
/// LimitHeaders::unnamed().render(HeaderStyle::Ietf, &decision, &mut headers);
/// assert_eq!(headers["ratelimit-policy"], r#""5/minute";q=5;w=60"#);
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct LimitHeaders {
    /// The declared name as a structured-field string, quotes included; `None` for a limit
    /// named by the rate of each decision.
    quoted: Option<Box<str>>,
    /// The fields of the first (limit, window) seen, reused while they stay the same.
    fixed: OnceLock<Fixed>,
}

/// Fields that depend only on a decision's limit and window (and the limit's name).
#[derive(Debug, Clone)]
struct Fixed {
    limit: u64,
    window_secs: u64,
    /// The name in the fields, quoted.
    quoted: Box<str>,
    /// `"name";q=LIMIT;w=WINDOW`.
    policy: HeaderValue,
    limit_value: HeaderValue,
}

impl LimitHeaders {
    /// The fields of the limit called `name` (any text: quotes and backslashes are escaped,
    /// characters outside printable ASCII become `?`).
    pub fn new(name: &str) -> Self {
        Self {
            quoted: Some(sf_string(name).into_boxed_str()),
            fixed: OnceLock::new(),
        }
    }

    /// The fields of a limit declared without a name: each decision names it by the rate it
    /// describes, in tollgate's notation (`"100/minute"`, `"20/2 seconds"`), so that clients
    /// never see an internal name such as a route path.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy};
    /// use tollgate_tower::{HeaderStyle, LimitHeaders};
    ///
    /// let api = Limiter::new(MemoryStore::new())
    ///     .policy("route:/api/*", Policy::fixed_window("10 per 30 seconds; 1000/day".parse()?));
    /// let decision = api.hit_sync("alice", 1)?;
    /// let mut headers = http::HeaderMap::new();
    /// LimitHeaders::unnamed().render(HeaderStyle::Ietf, &decision, &mut headers);
    /// assert_eq!(headers["ratelimit-policy"], r#""10/30 seconds";q=10;w=30"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unnamed() -> Self {
        Self {
            quoted: None,
            fixed: OnceLock::new(),
        }
    }

    fn fixed_for(&self, limit: u64, window_secs: u64) -> Fixed {
        let quoted = match &self.quoted {
            Some(quoted) => quoted.clone(),
            None => {
                let rate = Rate::new(limit, Duration::from_secs(window_secs));
                let notation = match rate {
                    Ok(rate) => rate.to_string(),
                    Err(_) => format!("{limit}/{window_secs} seconds"),
                };
                sf_string(&notation).into_boxed_str()
            }
        };
        let policy = policy_item(&quoted, limit, window_secs);
        Fixed {
            limit,
            window_secs,
            quoted,
            policy: HeaderValue::try_from(policy)
                .unwrap_or_else(|_| HeaderValue::from_static("\"?\"")),
            limit_value: HeaderValue::from(limit),
        }
    }

    /// The fixed fields for `decision`: those rendered in advance, if its limit and window
    /// are the usual ones.
    fn fixed(&self, decision: &Decision) -> Cow<'_, Fixed> {
        let limit = decision.limit();
        let window_secs = decision.window_secs();
        let first = self
            .fixed
            .get_or_init(|| self.fixed_for(limit, window_secs));
        if first.limit == limit && first.window_secs == window_secs {
            Cow::Borrowed(first)
        } else {
            Cow::Owned(self.fixed_for(limit, window_secs))
        }
    }

    /// Writes the `style` fields describing `decision` (not `Retry-After`: see
    /// [`Decision::retry_after_secs`]).
    pub fn render(&self, style: HeaderStyle, decision: &Decision, headers: &mut HeaderMap) {
        write_fields(style, &[(self, decision)], 0, headers);
    }
}

/// The decisions a response's rate-limit fields describe, chosen from a [`Verdict`]: the
/// choice every front end makes the same way (the Tower layer, the server's check API and
/// proxy).
///
/// By default ([`HeaderPolicies::All`]) they are every enforced limit's the request met, or
/// for a denied request the denying one's; shadow limits are left out unless `shadow` asks
/// for them. The legacy fields describe the closest to denying among them
/// ([`Verdict::closest`], or [`Verdict::closest_with_shadow`]).
///
/// ```
/// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
/// use tollgate_tower::{Described, HeaderPolicies, HeaderStyle, LimitHeaders};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new());
/// let login = limiter.policy("login", Policy::fixed_window(Rate::per_minute(5).into()));
/// let app = limiter.policy("app", Policy::fixed_window(Rate::per_hour(5000).into()));
/// let trial = limiter.policy("trial", Policy::fixed_window(Rate::per_minute(1).into()));
/// let names = [LimitHeaders::new("login"), LimitHeaders::new("app"), LimitHeaders::new("trial")];
/// let verdict = Admission::new()
///     .charge(Charge::new(login, "alice", 1))
///     .charge(Charge::new(app, "alice", 1))
///     .charge(Charge::new(trial, "alice", 1).shadow())
///     .decide()
///     .await;
/// let fields = |described: Described| {
///     let mut headers = http::HeaderMap::new();
///     described.render(HeaderStyle::Both, |index| &names[index], &mut headers);
///     headers
/// };
/// let all = fields(Described::of(&verdict, HeaderPolicies::All, false));
/// assert_eq!(all["ratelimit-policy"], r#""login";q=5;w=60, "app";q=5000;w=3600"#);
/// assert_eq!(all["ratelimit"], r#""login";r=4;t=60, "app";r=4999;t=3600"#);
/// assert_eq!(all["x-ratelimit-remaining"], "4"); // the closest
/// let closest = fields(Described::of(&verdict, HeaderPolicies::Closest, false));
/// assert_eq!(closest["ratelimit"], r#""login";r=4;t=60"#);
/// let with_shadow = fields(Described::of(&verdict, HeaderPolicies::All, true));
/// assert!(with_shadow["ratelimit"].to_str()?.ends_with(r#", "trial";r=0;t=60"#));
/// assert_eq!(with_shadow["x-ratelimit-limit"], "1"); // the shadow limit is the closest now
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Described {
    /// The charges described, by index in the admission, with their decisions.
    entries: SmallVec<[(usize, Decision); 2]>,
    /// The position in `entries` of the closest to denying.
    closest: usize,
}

impl Described {
    /// The decisions of `verdict` that `policies` lists, shadow ones too if `shadow`.
    pub fn of<S: Store>(verdict: &Verdict<S>, policies: HeaderPolicies, shadow: bool) -> Self {
        let closest = if shadow {
            verdict.closest_with_shadow()
        } else {
            verdict.closest()
        };
        let Some((closest_index, closest_decision)) = closest else {
            return Self::default();
        };
        if policies == HeaderPolicies::Closest {
            let mut entries = SmallVec::new();
            entries.push((closest_index, *closest_decision));
            return Self {
                entries,
                closest: 0,
            };
        }
        let entries: SmallVec<[(usize, Decision); 2]> = verdict
            .decisions(shadow)
            .map(|(index, decision)| (index, *decision))
            .collect();
        let closest = entries
            .iter()
            .position(|(index, _)| *index == closest_index)
            .unwrap_or(0);
        Self { entries, closest }
    }

    /// Whether there is nothing to describe (no limit decided, or only shadow ones).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The charges described, by index in the admission, with their decisions.
    pub fn entries(&self) -> &[(usize, Decision)] {
        &self.entries
    }

    /// Writes the `style` fields, naming the charge at each index with the fields
    /// `headers_of` gives (not `Retry-After`: see [`Decision::retry_after_secs`]). Two
    /// limits of one name are told apart: the second is `"name#2"`.
    pub fn render<'a>(
        &self,
        style: HeaderStyle,
        headers_of: impl Fn(usize) -> &'a LimitHeaders,
        headers: &mut HeaderMap,
    ) {
        if style == HeaderStyle::None || self.entries.is_empty() {
            return;
        }
        let limits: SmallVec<[(&LimitHeaders, &Decision); 4]> = self
            .entries
            .iter()
            .map(|(index, decision)| (headers_of(*index), decision))
            .collect();
        write_fields(style, &limits, self.closest, headers);
    }
}

/// Writes the `style` fields describing `limits` (at least one), the legacy ones for the one
/// at `closest`.
fn write_fields(
    style: HeaderStyle,
    limits: &[(&LimitHeaders, &Decision)],
    closest: usize,
    headers: &mut HeaderMap,
) {
    if style == HeaderStyle::None {
        return;
    }
    let Some(&(closest_headers, closest_decision)) = limits.get(closest).or(limits.first()) else {
        return;
    };
    if matches!(style, HeaderStyle::Legacy | HeaderStyle::Both) {
        let fixed = closest_headers.fixed(closest_decision);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        headers.insert(X_RATELIMIT_LIMIT.clone(), fixed.limit_value.clone());
        headers.insert(
            X_RATELIMIT_REMAINING.clone(),
            closest_decision.remaining().into(),
        );
        // The Unix time of the reset, rounded up to the second.
        let reset_at = now.saturating_add(closest_decision.reset_after());
        let reset_at = reset_at.as_secs() + u64::from(reset_at.subsec_nanos() > 0);
        headers.insert(X_RATELIMIT_RESET.clone(), reset_at.into());
    }
    if !matches!(style, HeaderStyle::Ietf | HeaderStyle::Both) {
        return;
    }
    if let [(limit, decision)] = limits {
        // One limit: its `RateLimit-Policy` as rendered in advance.
        let fixed = limit.fixed(decision);
        let mut state = String::with_capacity(fixed.quoted.len() + 24);
        push_state_item(&mut state, &fixed.quoted, decision);
        headers.insert(RATELIMIT_POLICY.clone(), fixed.policy.clone());
        if let Ok(state) = HeaderValue::try_from(state) {
            headers.insert(RATELIMIT.clone(), state);
        }
        return;
    }
    let fixed: SmallVec<[Cow<'_, Fixed>; 4]> = limits
        .iter()
        .map(|(limit, decision)| limit.fixed(decision))
        .collect();
    let mut policy = Vec::with_capacity(fixed.iter().map(|f| f.policy.len() + 2).sum());
    let mut state = String::with_capacity(fixed.iter().map(|f| f.quoted.len() + 26).sum());
    for (i, (item, (_, decision))) in fixed.iter().zip(limits).enumerate() {
        if i > 0 {
            policy.extend_from_slice(b", ");
            state.push_str(", ");
        }
        let earlier = fixed[..i]
            .iter()
            .filter(|other| other.quoted == item.quoted)
            .count();
        if earlier == 0 {
            policy.extend_from_slice(item.policy.as_bytes());
            push_state_item(&mut state, &item.quoted, decision);
        } else {
            // `"name"` again: `"name#2"`, `"name#3"`...
            let open = &item.quoted[..item.quoted.len() - 1];
            let renamed = format!("{open}#{}\"", earlier + 1);
            policy
                .extend_from_slice(policy_item(&renamed, item.limit, item.window_secs).as_bytes());
            push_state_item(&mut state, &renamed, decision);
        }
    }
    if let Ok(policy) = HeaderValue::from_maybe_shared(Bytes::from(policy)) {
        headers.insert(RATELIMIT_POLICY.clone(), policy);
    }
    if let Ok(state) = HeaderValue::try_from(state) {
        headers.insert(RATELIMIT.clone(), state);
    }
}

/// `"name";q=LIMIT;w=WINDOW`, a member of `RateLimit-Policy`.
fn policy_item(quoted: &str, limit: u64, window_secs: u64) -> String {
    let mut item = String::with_capacity(quoted.len() + 24);
    item.push_str(quoted);
    item.push_str(";q=");
    item.push_str(itoa::Buffer::new().format(limit));
    item.push_str(";w=");
    item.push_str(itoa::Buffer::new().format(window_secs));
    item
}

/// Appends `"name";r=REMAINING;t=RESET`, a member of `RateLimit`, describing `decision`.
fn push_state_item(state: &mut String, quoted: &str, decision: &Decision) {
    state.push_str(quoted);
    state.push_str(";r=");
    state.push_str(itoa::Buffer::new().format(decision.remaining()));
    state.push_str(";t=");
    state.push_str(itoa::Buffer::new().format(decision.reset_after_secs()));
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
