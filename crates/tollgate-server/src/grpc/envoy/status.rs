//! A descriptor's status in the answer, and [`DescriptorVerdict`], what observers are told.

use std::fmt;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use tollgate::{Decision, Store};

use crate::grpc::envoy::matched::Matched;

/// What a descriptor's rate limit decided, as reported to an observer (see
/// [`EnvoyService::with_observer`](crate::EnvoyService::with_observer)).
///
/// ```
/// use tollgate_server::DescriptorVerdict;
///
/// assert_eq!(DescriptorVerdict::ShadowOverLimit.name(), "shadow_over_limit");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DescriptorVerdict {
    /// Within the limit (charged, unless it was a check of cost 0).
    Allowed,
    /// Over the limit: the descriptor's status is `OVER_LIMIT`.
    OverLimit,
    /// Over the limit in shadow mode: reported `OK`, but would have been refused.
    ShadowOverLimit,
    /// An `unlimited: true` descriptor: always `OK`, never counted.
    Unlimited,
    /// Units given back (a descriptor with `is_negative_hits`).
    Refunded,
}

impl DescriptorVerdict {
    /// A short name for metrics labels: `allowed`, `over_limit`, `shadow_over_limit`,
    /// `unlimited` or `refunded`.
    pub const fn name(self) -> &'static str {
        match self {
            DescriptorVerdict::Allowed => "allowed",
            DescriptorVerdict::OverLimit => "over_limit",
            DescriptorVerdict::ShadowOverLimit => "shadow_over_limit",
            DescriptorVerdict::Unlimited => "unlimited",
            DescriptorVerdict::Refunded => "refunded",
        }
    }
}

impl fmt::Display for DescriptorVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `OK` without a limit: remaining `u32::MAX` for an unlimited descriptor (as
/// envoyproxy/ratelimit answers), 0 when nothing matched.
pub(super) fn no_limit(unlimited: bool) -> DescriptorStatus {
    DescriptorStatus {
        code: Code::Ok as i32,
        limit_remaining: if unlimited { u32::MAX } else { 0 },
        ..Default::default()
    }
}

/// The status of a descriptor whose limit decided `decision` as `verdict`.
pub(super) fn descriptor_status<S: Store>(
    matched: &Matched<'_, S>,
    decision: &Decision,
    verdict: DescriptorVerdict,
) -> DescriptorStatus {
    // Envoy renders `x-ratelimit-reset` from the seconds alone, so a fraction rounds up.
    let until_reset = match decision.retry_after_secs() {
        Some(retry_after) if verdict != DescriptorVerdict::Allowed => retry_after,
        _ => decision.reset_after_secs(),
    };
    DescriptorStatus {
        code: if verdict == DescriptorVerdict::OverLimit {
            Code::OverLimit
        } else {
            Code::Ok
        } as i32,
        current_limit: matched.current_limit(),
        limit_remaining: u32::try_from(decision.remaining()).unwrap_or(u32::MAX),
        duration_until_reset: Some(ProtoDuration {
            seconds: i64::try_from(until_reset).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        quota: None,
    }
}

/// The verdict of a hit over the limit.
pub(super) fn over_limit(shadow: bool) -> DescriptorVerdict {
    if shadow {
        DescriptorVerdict::ShadowOverLimit
    } else {
        DescriptorVerdict::OverLimit
    }
}
