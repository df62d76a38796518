//! Bans after repeated breaches: a key denied N times within a window is denied outright
//! for a while, without its hits touching the policy's counts. [`apply_banned`] is
//! [`apply`] with a ban, [`overdraw_banned`] is [`overdraw`] with one.

use std::time::Duration;

use super::{FixedWindow, RateState, TickDecision, TickRate, apply, judge, overdraw};

/// A policy's ban in ticks: after `N` breaches within a window, the key is banned for a
/// duration. Made by [`crate::Policy::ban_rule`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::BanRule;
///
/// // 3 breaches per 10 minutes ban for an hour; ticks of one second.
/// let rule = BanRule::new(3, Duration::from_secs(600), Duration::from_secs(3600), Duration::from_secs(1));
/// assert_eq!((rule.breaches().amount(), rule.breaches().window()), (3, 600));
/// assert_eq!(rule.duration(), 3600);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanRule {
    /// `N` breaches per window, counted in a fixed window that starts at the first breach.
    breaches: TickRate,
    /// How long a ban lasts, in ticks, at least 1.
    duration: u64,
}

impl BanRule {
    /// A ban after `breaches` breaches (at least 1) within `window`, lasting `duration`, in
    /// ticks of length `tick` (each span rounded up to whole ticks, and at least one).
    pub fn new(breaches: u64, window: Duration, duration: Duration, tick: Duration) -> Self {
        let breaches = breaches.max(1);
        let duration = TickRate::new(1, 1, duration, tick).window();
        Self {
            breaches: TickRate::new(breaches, breaches, window, tick),
            duration,
        }
    }

    /// The breaches that ban, as a rate: its amount per its window.
    pub fn breaches(&self) -> &TickRate {
        &self.breaches
    }

    /// How long a ban lasts, in ticks.
    pub fn duration(&self) -> u64 {
        self.duration
    }
}

/// Whether a decision was a ban's.
///
/// ```
/// use tollgate::strategy::BanStatus;
///
/// assert_eq!(BanStatus::default(), BanStatus::Clear);
/// assert!(BanStatus::Started.is_banned() && BanStatus::Ongoing.is_banned());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BanStatus {
    /// Not banned.
    #[default]
    Clear,
    /// Banned by this hit: it was the breach that completed the count.
    Started,
    /// Banned by an earlier breach; the ban still runs.
    Ongoing,
}

impl BanStatus {
    /// Whether the key is banned.
    pub fn is_banned(self) -> bool {
        self != BanStatus::Clear
    }
}

/// The ban state of one key: its breaches in the current breach window, and until when it
/// is banned. `Default` is a key that has never breached.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{BanRule, BanState, FixedWindow, RateState, TickRate, apply_banned};
///
/// let rule = BanRule::new(2, Duration::from_secs(60), Duration::from_secs(600), Duration::from_secs(1));
/// let limits = [TickRate::new(1, 1, Duration::from_secs(10), Duration::from_secs(1))];
/// let (mut ban, mut states) = (BanState::default(), [FixedWindow::default()]);
/// apply_banned(&mut ban, &rule, &mut states, &limits, 0, 1);
/// apply_banned(&mut ban, &rule, &mut states, &limits, 1, 1); // a breach
/// assert_eq!(ban.banned_for(1), 0);
/// apply_banned(&mut ban, &rule, &mut states, &limits, 2, 1); // the second: banned
/// assert_eq!(ban.banned_for(2), 600);
/// assert_eq!(ban.reset_after(&rule, 2), 600);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanState {
    /// When the ban ends; at or before `now`, the key is not banned.
    until: u64,
    /// Breaches since the last ban, in a fixed window of [`BanRule::breaches`].
    breaches: FixedWindow,
}

impl BanState {
    /// Ticks the key stays banned from `now`; 0 when it is not banned.
    pub fn banned_for(&self, now: u64) -> u64 {
        self.until.saturating_sub(now)
    }

    /// Ticks until this state is as good as fresh at `now`: the ban over and its breaches'
    /// window ended.
    pub fn reset_after(&self, rule: &BanRule, now: u64) -> u64 {
        self.banned_for(now)
            .max(self.breaches.reset_after(&rule.breaches, now))
    }

    /// Counts a breach at `now`; returns whether it completes the count, which bans the key
    /// (the breaches then start again from none).
    fn breach(&mut self, rule: &BanRule, now: u64) -> bool {
        self.breaches.consume(&rule.breaches, now, 1);
        if self.breaches.remaining(&rule.breaches, now) > 0 {
            return false;
        }
        *self = Self {
            until: now.saturating_add(rule.duration),
            breaches: FixedWindow::default(),
        };
        true
    }
}

/// [`apply`] under a ban: a hit of a banned key is denied without touching the rates'
/// states, with a `retry_after` of at least the ban's remaining time; a hit the rates deny
/// (a *breach*; a peek of cost 0 never is one) is counted, and the `N`th breach within the
/// breach window bans the key for the rule's duration, starting now, and is itself denied as
/// banned. A ban is not extended by the hits it denies, and the count of breaches starts
/// again after it.
///
/// The decision of a banned key is the rates' own for that hit, denied, with `remaining` 0,
/// `retry_after` the longer of the ban's remaining time and the rates' wait, `reset_after`
/// at least the ban's remaining time, and `ban` saying so.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{BanRule, BanState, BanStatus, FixedWindow, TickRate, apply_banned};
///
/// // 1 per 10 s; 2 breaches within a minute ban for 10 minutes (ticks of one second).
/// let rule = BanRule::new(2, Duration::from_secs(60), Duration::from_secs(600), Duration::from_secs(1));
/// let limits = [TickRate::new(1, 1, Duration::from_secs(10), Duration::from_secs(1))];
/// let (mut ban, mut states) = (BanState::default(), [FixedWindow::default()]);
/// let mut hit = |now| apply_banned(&mut ban, &rule, &mut states, &limits, now, 1);
/// assert!(hit(0).allowed);
/// let breach = hit(1);
/// assert_eq!((breach.allowed, breach.retry_after, breach.ban), (false, Some(9), BanStatus::Clear));
/// let second = hit(2);
/// assert_eq!((second.retry_after, second.ban), (Some(600), BanStatus::Started));
/// let later = hit(400); // the window would allow it, the ban does not
/// assert_eq!((later.allowed, later.retry_after, later.ban), (false, Some(202), BanStatus::Ongoing));
/// assert!(hit(602).allowed);
/// ```
pub fn apply_banned<S: RateState>(
    ban: &mut BanState,
    rule: &BanRule,
    states: &mut [S],
    limits: &[TickRate],
    now: u64,
    cost: u64,
) -> TickDecision {
    let left = ban.banned_for(now);
    if left > 0 {
        return banned(judge(states, limits, now, cost), left, BanStatus::Ongoing);
    }
    let decision = apply(states, limits, now, cost);
    if decision.allowed || cost == 0 || !ban.breach(rule, now) {
        return decision;
    }
    banned(decision, rule.duration, BanStatus::Started)
}

/// [`overdraw`] under a ban: the late charge applies to the rates whatever the ban, and the
/// decision after it is a banned one (as [`apply_banned`] gives) while the ban runs. A late
/// charge is never a breach.
///
/// ```
/// use std::time::Duration;
/// use tollgate::strategy::{BanState, FixedWindow, TickRate, overdraw_banned};
///
/// let limits = [TickRate::new(5, 5, Duration::from_secs(10), Duration::from_secs(1))];
/// let (ban, mut states) = (BanState::default(), [FixedWindow::default()]);
/// let after = overdraw_banned(&ban, &mut states, &limits, 0, 7);
/// assert_eq!((after.allowed, after.retry_after), (false, Some(10)));
/// assert_eq!(ban, BanState::default()); // in debt, but no breach
/// ```
pub fn overdraw_banned<S: RateState>(
    ban: &BanState,
    states: &mut [S],
    limits: &[TickRate],
    now: u64,
    cost: u64,
) -> TickDecision {
    let decision = overdraw(states, limits, now, cost);
    match ban.banned_for(now) {
        0 => decision,
        left => banned(decision, left, BanStatus::Ongoing),
    }
}

/// `decision` denied by a ban with `left` ticks to run.
fn banned(decision: TickDecision, left: u64, status: BanStatus) -> TickDecision {
    TickDecision {
        allowed: false,
        remaining: 0,
        reset_after: decision.reset_after.max(left),
        retry_after: Some(decision.retry_after.unwrap_or(0).max(left)),
        ban: status,
        ..decision
    }
}
