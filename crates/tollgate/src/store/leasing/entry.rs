//! [`LeaseEntry`]: what one instance holds for one (policy, key): the units of its lease, the
//! store's last denial, and the key's recent rate; the steps of a hit before and after it
//! asks the store. Times are local nanoseconds.

use std::time::Duration;

use crate::decision::Decision;
use crate::store::grant::{GiveBack, Grant};
use crate::strategy::{BanStatus, TickDecision};

/// The most units one lease asks for.
pub(crate) const MAX_LEASE_UNITS: u64 = 1024;

/// One key's lease, denial and rate.
#[derive(Debug, Clone)]
pub(crate) struct LeaseEntry {
    /// Units charged to the store and not spent yet.
    pub(crate) left: u64,
    /// When they may no longer be spent: the lease's lifetime, or its window's end if sooner.
    pub(crate) expires: u64,
    /// The store's deadline to give them back by ([`Grant::give_back_before`]), and the
    /// same here: past it, the units are dropped without a call.
    give_back_before: Option<u64>,
    window_ends: Option<u64>,
    /// Until when a hit of `denied_cost` units or more is denied without asking.
    deny_until: u64,
    denied_cost: u64,
    /// The store's last decision, and when it was made.
    basis: Decision,
    basis_at: u64,
    /// Units spent since the last take, and when that was: the key's rate here.
    spent: u64,
    last_take: Option<u64>,
}

/// What a hit does before (or instead of) asking the store.
#[derive(Debug)]
pub(crate) enum Step {
    /// Answered here.
    Answered(Decision),
    /// Ask the store: take `need` units (up to `want`), giving back `give_back` first;
    /// `have` units of the lease are spent with them.
    Take {
        need: u64,
        want: u64,
        give_back: GiveBack,
        have: u64,
    },
}

/// What the table counts from one step.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) local_allowed: u64,
    pub(crate) local_denials: u64,
    pub(crate) leases_expired: u64,
    pub(crate) leases_evicted: u64,
    pub(crate) units_dropped: u64,
}

impl LeaseEntry {
    /// A key not seen yet.
    pub(crate) fn new(now: u64) -> Self {
        Self {
            left: 0,
            expires: now,
            give_back_before: None,
            window_ends: None,
            deny_until: 0,
            denied_cost: u64::MAX,
            basis: TickDecision::UNLIMITED.into_decision(Duration::from_nanos(1)),
            basis_at: now,
            spent: 0,
            last_take: None,
        }
    }

    /// Ends an expired lease: its unspent units, to give back if `gives_back` (and the
    /// store's deadline allows), else dropped.
    pub(crate) fn expire(&mut self, now: u64, gives_back: bool, counts: &mut Counts) -> GiveBack {
        if self.left == 0 || now < self.expires {
            return GiveBack::NONE;
        }
        counts.leases_expired += 1;
        let window_over = self.window_ends.is_some_and(|end| now >= end);
        self.surrender(gives_back && !window_over, counts)
    }

    /// Ends the lease whatever its time: its unspent units, as [`LeaseEntry::expire`].
    pub(crate) fn surrender(&mut self, gives_back: bool, counts: &mut Counts) -> GiveBack {
        let units = std::mem::take(&mut self.left);
        if gives_back {
            GiveBack::new(units, self.give_back_before)
        } else {
            counts.units_dropped += units;
            GiveBack::NONE
        }
    }

    /// A hit of `cost` at `now` (0: a peek), for a policy whose leases last `lifetime` ns
    /// and whose hits cost at most `max_cost`.
    pub(crate) fn before(
        &mut self,
        now: u64,
        cost: u64,
        lifetime: u64,
        max_cost: u64,
        gives_back: bool,
        counts: &mut Counts,
    ) -> Step {
        if now < self.deny_until && cost.max(1) >= self.denied_cost {
            counts.local_denials += 1;
            return Step::Answered(self.denial(now));
        }
        let give_back = self.expire(now, gives_back, counts);
        if cost == 0 && self.left > 0 {
            counts.local_allowed += 1;
            return Step::Answered(self.allowed(now));
        }
        if cost > 0 && self.left >= cost {
            self.left -= cost;
            self.spent += cost;
            counts.local_allowed += 1;
            return Step::Answered(self.allowed(now));
        }
        let have = std::mem::take(&mut self.left);
        let need = cost - have.min(cost);
        let rate_units = self.spent.saturating_add(cost);
        let want = match self.last_take {
            Some(at) if now > at => {
                let wanted = u128::from(rate_units) * u128::from(lifetime) / u128::from(now - at);
                u64::try_from(wanted).unwrap_or(u64::MAX)
            }
            _ => 1,
        };
        let want = want.clamp(1, MAX_LEASE_UNITS).min(max_cost).max(need);
        Step::Take {
            need,
            want,
            give_back,
            have,
        }
    }

    /// The store's answer to [`Step::Take`], asked at `now` for a hit of `cost`.
    pub(crate) fn after(
        &mut self,
        now: u64,
        cost: u64,
        have: u64,
        grant: &Grant,
        lifetime: u64,
    ) -> Decision {
        let decision = grant.decision();
        if grant.granted() == 0 {
            if have > 0 {
                self.left += have;
            } else if let Some(wait) = decision.retry_after() {
                self.deny_until = now.saturating_add(nanos(wait));
                self.denied_cost = cost.max(1);
                self.basis = decision;
                self.basis_at = now;
            }
            return decision;
        }
        let leftover = grant.granted().saturating_sub(cost.saturating_sub(have));
        let window_ends = grant.horizon().map(|h| now.saturating_add(nanos(h)));
        let ends = now
            .saturating_add(lifetime)
            .min(window_ends.unwrap_or(u64::MAX));
        if self.left > 0 && now < self.expires {
            self.left += leftover;
            self.expires = self.expires.min(ends);
            self.give_back_before = earliest(self.give_back_before, grant.give_back_before());
            self.window_ends = earliest(self.window_ends, window_ends);
        } else {
            self.left = leftover;
            self.expires = ends;
            self.give_back_before = grant.give_back_before();
            self.window_ends = window_ends;
        }
        self.deny_until = 0;
        self.denied_cost = u64::MAX;
        self.basis = decision;
        self.basis_at = now;
        self.spent = 0;
        self.last_take = Some(now);
        self.allowed(now)
    }

    /// Puts back `have` units a failed take would have spent.
    pub(crate) fn restore(&mut self, have: u64) {
        self.left += have;
    }

    /// Whether nothing here matters any more at `now` (no lease, no denial) and the key has
    /// been idle for `idle` ns: it may be forgotten.
    pub(crate) fn idle(&self, now: u64, idle: u64) -> bool {
        self.left == 0 && now >= self.deny_until && now >= self.expires.saturating_add(idle)
    }

    /// An allowed hit answered here: the store's last numbers, aged, with the lease's units
    /// counted as remaining.
    fn allowed(&self, now: u64) -> Decision {
        self.report(now, None)
    }

    /// A denial answered here, until the store's `retry_after` has passed.
    fn denial(&self, now: u64) -> Decision {
        self.report(now, Some(self.deny_until.saturating_sub(now).max(1)))
    }

    fn report(&self, now: u64, retry_after: Option<u64>) -> Decision {
        let age = now.saturating_sub(self.basis_at);
        let remaining = if retry_after.is_some() {
            0
        } else {
            self.basis.remaining().saturating_add(self.left)
        };
        TickDecision {
            allowed: retry_after.is_none(),
            limit: self.basis.limit(),
            remaining,
            reset_after: nanos(self.basis.reset_after()).saturating_sub(age),
            retry_after,
            window: nanos(self.basis.window()),
            ban: BanStatus::Clear,
            delay: 0,
        }
        .into_decision(Duration::from_nanos(1))
    }
}

/// The earlier of two deadlines, `None` being no deadline.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `duration` in nanoseconds, saturating.
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
