//! The body of a check, a peek, a charge or a reset ([`CheckRequest`]): read, parsed and
//! turned into the policy it names or carries inline; and [`Refusal`], the 4xx saying what is
//! wrong with it.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tollgate::{Ban, Policy, PolicyHandle, Rate, Rates, Strategy};
use tollgate_tower::json_error;

use crate::config::INLINE_POLICY;
use crate::state::{InForce, PolicyFront, ServerState, ServerStore};

/// The scope of the check API's shadow inline policies, whose counts are apart from the
/// same limits enforced.
const INLINE_SHADOW_SCOPE: &str = "inline-shadow";

/// A request body, or the JSON error saying why it could not be read (too large: 413).
pub(super) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|rejection| {
        Refusal(
            rejection.status(),
            format!("request body: {}", rejection.body_text()),
        )
    })
}

/// The body of a check, a peek or a reset. The policy's name and the key are borrowed from
/// the body unless they hold escapes: no allocation for them per check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckRequest<'a> {
    /// A configured policy, by name...
    #[serde(borrow)]
    pub(super) policy: Option<Cow<'a, str>>,
    /// ... or an inline one.
    pub(super) limits: Option<String>,
    pub(super) strategy: Option<String>,
    pub(super) burst: Option<u64>,
    /// Makes an inline policy a shadow one.
    pub(super) shadow: Option<bool>,
    /// An inline policy's ban: the breaches that ban (`"3/10 minutes"`) and for how long
    /// (`"1 hour"`), both or neither.
    pub(super) ban_after: Option<String>,
    pub(super) ban_for: Option<String>,
    /// Lets an inline policy's requests wait up to this many milliseconds for a reserved
    /// slot (see `tollgate::Policy::with_max_delay`).
    pub(super) max_delay_ms: Option<u64>,
    #[serde(borrow)]
    pub(super) key: Cow<'a, str>,
    /// 1 unless given; `/v1/charge` requires it.
    pub(super) cost: Option<u64>,
}

/// A request the API refuses: its status and what is wrong.
pub(super) struct Refusal(pub(super) StatusCode, pub(super) String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_error(self.0, &self.1)
    }
}

impl<'a> CheckRequest<'a> {
    /// The policy's name for messages: the configured one, or the notation of an inline one.
    pub(super) fn policy_name(&self) -> &str {
        self.policy
            .as_deref()
            .or(self.limits.as_deref())
            .unwrap_or(INLINE_POLICY)
    }

    pub(super) fn parse(body: &'a [u8]) -> Result<Self, Refusal> {
        // serde reads a struct from an array of its fields too; the API takes objects only.
        if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "invalid request body: expected a JSON object, such as {\"policy\": \"login\", \"key\": \"user:42\"}".to_owned(),
            ));
        }
        serde_json::from_slice(body).map_err(|err| {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {err}"),
            )
        })
    }

    /// The policy the request is about (borrowed from the configuration in force, or an
    /// inline one), with its fields and counters, and whether it is a shadow one.
    pub(super) fn policy<'f>(
        &self,
        state: &ServerState,
        in_force: &'f InForce,
    ) -> Result<(Cow<'f, PolicyHandle<ServerStore>>, &'f PolicyFront, bool), Refusal> {
        let bad = |message: String| Refusal(StatusCode::BAD_REQUEST, message);
        match (&self.policy, &self.limits) {
            (Some(name), None) => {
                if self.strategy.is_some() || self.burst.is_some() {
                    return Err(bad(
                        "strategy and burst go with inline limits, not a named policy".to_owned(),
                    ));
                }
                if self.shadow.is_some() {
                    return Err(bad(
                        "shadow goes with inline limits; a named policy is a shadow one when \
                         configured with shadow = true"
                            .to_owned(),
                    ));
                }
                if self.ban_after.is_some() || self.ban_for.is_some() {
                    return Err(bad(
                        "ban_after and ban_for go with inline limits, not a named policy \
                         (configure its ban in [policies])"
                            .to_owned(),
                    ));
                }
                if self.max_delay_ms.is_some() {
                    return Err(bad(
                        "max_delay_ms goes with inline limits, not a named policy \
                         (configure its max_delay in [policies])"
                            .to_owned(),
                    ));
                }
                let Some(named) = in_force.policy(name) else {
                    let names = in_force.policy_names();
                    return Err(Refusal(
                        StatusCode::NOT_FOUND,
                        format!(
                            "unknown policy {name:?}; configured: {}",
                            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                        ),
                    ));
                };
                Ok((Cow::Borrowed(&named.handle), &named.front, named.shadow))
            }
            (None, Some(limits)) => {
                let rates: Rates = limits.parse().map_err(|err| bad(format!("limits: {err}")))?;
                let strategy: Strategy = match &self.strategy {
                    Some(name) => name.parse().map_err(|err| bad(format!("strategy: {err}")))?,
                    None => Strategy::FixedWindow,
                };
                let policy = Policy::from_parts(strategy, rates, self.burst).map_err(|err| {
                    let field = if err.is_about_rates() { "limits" } else { "burst" };
                    bad(format!("{field}: {err}"))
                })?;
                let policy = match self.inline_ban()? {
                    Some(ban) => policy.with_ban(ban),
                    None => policy,
                };
                let policy = match self.max_delay_ms {
                    Some(ms) => policy
                        .with_max_delay(Duration::from_millis(ms))
                        .map_err(|err| bad(format!("max_delay_ms: {err}")))?,
                    None => policy,
                };
                // A shadow inline policy counts apart from the same limits enforced.
                let shadow = self.shadow.unwrap_or(false);
                let scope = if shadow {
                    INLINE_SHADOW_SCOPE
                } else {
                    INLINE_POLICY
                };
                let handle = state.limiter().inline(scope, &policy);
                Ok((Cow::Owned(handle), in_force.inline(), shadow))
            }
            (Some(_), Some(_)) => Err(bad(
                "give either \"policy\" (a configured name) or \"limits\" (inline), not both"
                    .to_owned(),
            )),
            (None, None) => Err(bad(
                "missing \"policy\" (a configured name) or \"limits\" (inline, such as \"5/minute\")"
                    .to_owned(),
            )),
        }
    }
}

impl CheckRequest<'_> {
    /// The ban of an inline policy, from `ban_after` and `ban_for`.
    pub(super) fn inline_ban(&self) -> Result<Option<Ban>, Refusal> {
        let bad = |message: String| Refusal(StatusCode::BAD_REQUEST, message);
        let (after, duration) = match (&self.ban_after, &self.ban_for) {
            (None, None) => return Ok(None),
            (Some(after), Some(duration)) => (after, duration),
            _ => {
                return Err(bad(
                    "give both \"ban_after\" (such as \"3/10 minutes\") and \"ban_for\" \
                     (such as \"1 hour\"), or neither"
                        .to_owned(),
                ));
            }
        };
        let after: Rate = after
            .parse()
            .map_err(|err| bad(format!("ban_after: {err}")))?;
        let duration =
            tollgate::parse_duration(duration).map_err(|err| bad(format!("ban_for: {err}")))?;
        Ban::new(after, duration)
            .map(Some)
            .map_err(|err| bad(format!("ban_after: {err}")))
    }
}
