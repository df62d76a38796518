//! `[policies.NAME]` sections: read raw, then checked into a [`Policy`] (rates, strategy,
//! burst, delay, ban, quota lease) and its concurrency limit, every mistake naming its field and line.

use serde::Deserialize;
use tollgate::{Ban, ConcurrencyLimit, MAX_IN_FLIGHT, Policy, Rate, Rates, Strategy};
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::file::Checker;

/// One `[policies.NAME]` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicySection {
    pub(super) limits: Spanned<String>,
    pub(super) strategy: Option<Spanned<String>>,
    pub(super) burst: Option<Spanned<u64>>,
    pub(super) shadow: Option<Spanned<bool>>,
    pub(super) ban_after: Option<Spanned<String>>,
    pub(super) ban_for: Option<Spanned<String>>,
    pub(super) max_delay: Option<Spanned<String>>,
    pub(super) max_in_flight: Option<Spanned<u64>>,
    pub(super) lease_ttl: Option<Spanned<String>>,
    pub(super) lease: Option<Spanned<String>>,
}

impl Checker<'_> {
    pub(super) fn policy(
        &self,
        section: &PolicySection,
        field: &str,
    ) -> Result<Policy, ConfigError> {
        let rates: Rates = section
            .limits
            .get_ref()
            .parse()
            .map_err(|err| self.error(section.limits.span(), format!("{field}.limits"), err))?;
        let strategy = match &section.strategy {
            Some(strategy) => strategy
                .get_ref()
                .parse::<Strategy>()
                .map_err(|err| self.error(strategy.span(), format!("{field}.strategy"), err))?,
            None => Strategy::FixedWindow,
        };
        let burst = section.burst.as_ref().map(|burst| *burst.get_ref());
        let policy = Policy::from_parts(strategy, rates, burst).map_err(|err| {
            if err.is_about_rates() {
                return self.error(section.limits.span(), format!("{field}.limits"), err);
            }
            let span = section
                .burst
                .as_ref()
                .map_or_else(|| section.limits.span(), Spanned::span);
            self.error(span, format!("{field}.burst"), err)
        })?;
        let policy = match self.duration(&section.max_delay, &format!("{field}.max_delay"))? {
            Some(max_delay) => policy.with_max_delay(max_delay).map_err(|err| {
                let span = section.max_delay.as_ref().map_or(0..0, Spanned::span);
                self.error(span, format!("{field}.max_delay"), err)
            })?,
            None => policy,
        };
        let policy = match self.ban(section, field)? {
            Some(ban) => policy.with_ban(ban),
            None => policy,
        };
        Ok(
            match self.lease(&section.lease, &format!("{field}.lease"))? {
                Some(lease) => self.leased(policy, lease, section, field)?,
                None => policy,
            },
        )
    }

    /// `policy` with its own `lease`; a lease on a policy that is never leased (one with a
    /// ban, whose every denial must count as a breach, or a `max_delay`, as a lease reserves
    /// no slot) is a mistake.
    fn leased(
        &self,
        policy: Policy,
        lease: tollgate::QuotaLease,
        section: &PolicySection,
        field: &str,
    ) -> Result<Policy, ConfigError> {
        let with = match (section.ban_after.is_some(), section.max_delay.is_some()) {
            (true, _) => "ban_after",
            (_, true) => "max_delay",
            _ => return Ok(policy.with_quota_lease(lease)),
        };
        if lease == tollgate::QuotaLease::Off {
            return Ok(policy.with_quota_lease(lease));
        }
        let span = section.lease.as_ref().map_or(0..0, Spanned::span);
        Err(self.error(
            span,
            format!("{field}.lease"),
            format!(
                "a policy with {with} is never leased (every hit must reach the storage); \
                 drop lease or set it to \"off\""
            ),
        ))
    }

    /// A policy's concurrency limit: `max_in_flight` (1 to [`MAX_IN_FLIGHT`]) and its
    /// `lease_ttl` (a duration, at most an hour), which needs it; never on a shadow policy.
    pub(super) fn in_flight(
        &self,
        section: &PolicySection,
        field: &str,
    ) -> Result<Option<ConcurrencyLimit>, ConfigError> {
        let ttl_field = format!("{field}.lease_ttl");
        let lease_ttl = self.duration(&section.lease_ttl, &ttl_field)?;
        let Some(max) = &section.max_in_flight else {
            return match &section.lease_ttl {
                Some(ttl) => Err(self.error(
                    ttl.span(),
                    ttl_field,
                    "needs max_in_flight, the requests of one key in flight at once",
                )),
                None => Ok(None),
            };
        };
        let max_field = format!("{field}.max_in_flight");
        if section.shadow.as_ref().is_some_and(|on| *on.get_ref()) {
            return Err(self.error(
                max.span(),
                max_field,
                "a shadow policy cannot limit requests in flight (a slot is held or not); \
                 drop shadow or max_in_flight",
            ));
        }
        let count = u32::try_from(*max.get_ref()).unwrap_or(u32::MAX);
        let limit = ConcurrencyLimit::new(count).map_err(|_| {
            self.error(
                max.span(),
                max_field,
                format!("must be between 1 and {MAX_IN_FLIGHT}"),
            )
        })?;
        Ok(Some(match lease_ttl {
            // Within a millisecond and an hour, as `duration` checked.
            Some(ttl) => limit
                .with_lease_ttl(ttl)
                .map_err(|err| self.flag_error(field, err))?,
            None => limit,
        }))
    }

    /// A policy's ban: `ban_after` (one rate, the breaches per window) and `ban_for` (a
    /// duration such as `"1 hour"`), both or neither.
    fn ban(&self, section: &PolicySection, field: &str) -> Result<Option<Ban>, ConfigError> {
        let (after, duration) = match (&section.ban_after, &section.ban_for) {
            (None, None) => return Ok(None),
            (Some(after), Some(duration)) => (after, duration),
            (Some(after), None) => {
                return Err(self.error(
                    after.span(),
                    format!("{field}.ban_after"),
                    "needs ban_for, how long a ban lasts, such as \"1 hour\"",
                ));
            }
            (None, Some(duration)) => {
                return Err(self.error(
                    duration.span(),
                    format!("{field}.ban_for"),
                    "needs ban_after, the breaches that ban, such as \"3/10 minutes\"",
                ));
            }
        };
        let after_field = format!("{field}.ban_after");
        let rate: Rate = after
            .get_ref()
            .parse()
            .map_err(|err| self.error(after.span(), &after_field, err))?;
        let length = tollgate::parse_duration(duration.get_ref())
            .map_err(|err| self.error(duration.span(), format!("{field}.ban_for"), err))?;
        Ban::new(rate, length)
            .map(Some)
            .map_err(|err| self.error(after.span(), after_field, err))
    }
}
