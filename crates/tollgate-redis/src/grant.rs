//! The reply of the quota lease script (`lua/take.lua`), read into a [`Grant`].

use std::time::Duration;

use tollgate::{Grant, StoreError};

use crate::prepared::PreparedRedis;

/// The grant a take script replied with: a decision, the units granted, the horizon in ticks
/// and the tick to give back before (-1: none); or, for a policy with a ban, the decision of
/// a hit of `need`.
pub(crate) fn grant(
    policy: &PreparedRedis,
    reply: &[i64],
    banned: bool,
    need: u64,
) -> Result<Grant, StoreError> {
    if banned {
        let decision = policy.decision(reply)?;
        let granted = if decision.allowed() { need } else { 0 };
        let horizon = (need > 0).then_some(Duration::ZERO);
        return Ok(Grant::new(granted, decision, horizon, None));
    }
    let unexpected =
        || StoreError::unavailable(format!("unexpected reply from the take script: {reply:?}"));
    let Some((decision, &[granted, horizon, before])) = reply.split_last_chunk::<3>() else {
        return Err(unexpected());
    };
    let decision = policy.decision(decision)?;
    let granted = u64::try_from(granted).map_err(|_| unexpected())?;
    let horizon = u64::try_from(horizon)
        .ok()
        .map(|ticks| Duration::from_micros(ticks.saturating_mul(policy.tick_us())));
    Ok(Grant::new(
        granted,
        decision,
        horizon,
        u64::try_from(before).ok(),
    ))
}
