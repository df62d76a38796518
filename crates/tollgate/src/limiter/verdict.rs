//! [`Verdict`]: what an admission decided; [`Settlement`]: what its response may give back.

use std::fmt;
use std::time::Duration;

use smallvec::SmallVec;

use crate::decision::Decision;
use crate::limiter::admission::closest;
use crate::limiter::charge::{Charge, ChargeResult};
use crate::limiter::in_flight::{HeldLeases, SlotResult};
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError};

/// What an [`Admission`](crate::Admission) decided: admitted or refused, and what each charge came to.
///
/// ```
/// use tollgate::{Admission, Charge, ChargeResult, Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new());
/// let daily = limiter.policy("daily", Policy::fixed_window(Rate::per_day(1000).into()));
/// let burst = limiter.policy("burst", Policy::fixed_window(Rate::per_second(2).into()));
/// let request = || {
///     Admission::new()
///         .charge(Charge::new(daily.clone(), "alice", 1))
///         .charge(Charge::new(burst.clone(), "alice", 1).settle_after())
/// };
/// let admitted = request().decide().await;
/// assert!(admitted.is_admitted());
/// assert!(admitted.refused_by().is_none());
/// assert_eq!(admitted.results().len(), 2);
/// // `burst` has 1 unit left, `daily` 999: the closest to denying is `burst`, at index 1.
/// assert_eq!(admitted.closest().map(|(i, d)| (i, d.remaining())), Some((1, 1)));
/// assert!(!admitted.into_settlement().is_empty()); // its settle-after charge
///
/// assert!(request().decide().await.is_admitted());
/// let refused = request().decide().await;
/// assert!(matches!(refused.refused_by(), Some((1, ChargeResult::Denied(_)))));
/// assert!(refused.give_back_error().is_none()); // `daily`'s charge was given back
/// assert!(refused.into_settlement().is_empty());
/// assert_eq!(daily.peek("alice").await?.remaining(), 998);
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
pub struct Verdict<S: Store = MemoryStore> {
    pub(super) results: SmallVec<[ChargeResult; 2]>,
    pub(super) refused_by: Option<usize>,
    pub(super) closest: Option<usize>,
    /// Whether each charge is a shadow one.
    pub(super) shadow: SmallVec<[bool; 8]>,
    /// What each concurrency slot came to, and the first that refused.
    pub(super) slot_results: Vec<SlotResult>,
    pub(super) slot_refused_by: Option<usize>,
    /// The slots an admitted request holds.
    pub(super) held: HeldLeases<S>,
    pub(super) give_back_error: Option<StoreError>,
    pub(super) settlement: Settlement<S>,
    /// For an admitted request that must wait ([`Verdict::delay`]), its charges that are not
    /// settled after the response: what [`Verdict::withdraw`] gives back with the settlement's.
    pub(super) reserved: SmallVec<[Charge<S>; 1]>,
}

impl<S: Store> fmt::Debug for Verdict<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verdict")
            .field("results", &self.results)
            .field("refused_by", &self.refused_by)
            .field("slot_results", &self.slot_results)
            .field("held", &self.held)
            .field("closest", &self.closest)
            .field("give_back_error", &self.give_back_error)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Verdict<S> {
    /// Whether every (enforced) charge allowed the request, and every concurrency slot was
    /// free.
    pub fn is_admitted(&self) -> bool {
        self.refused_by.is_none() && self.slot_refused_by.is_none()
    }

    /// The first concurrency slot that refused the request (full, or its store failed), by
    /// index among the slots, with its result. The charges were then not made.
    ///
    /// ```
    /// use tollgate::{Admission, ConcurrencyLimit, InFlight, Limiter, MemoryStore, SlotResult};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let uploads = limiter.concurrency("uploads", ConcurrencyLimit::new(1)?);
    /// let request = || Admission::new().slot(InFlight::new(uploads.clone(), "alice"));
    /// let mut first = request().decide().await;
    /// let _held = first.take_leases();
    /// let refused = request().decide().await;
    /// let Some((0, SlotResult::Full(decision))) = refused.refused_by_slot() else { panic!() };
    /// // Until the held lease expires, at the latest.
    /// assert!(decision.retry_after().is_some_and(|wait| wait <= tollgate::DEFAULT_LEASE_TTL));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn refused_by_slot(&self) -> Option<(usize, &SlotResult)> {
        self.slot_refused_by
            .map(|index| (index, &self.slot_results[index]))
    }

    /// What each concurrency slot came to, in the order they were asked for.
    pub fn slot_results(&self) -> &[SlotResult] {
        &self.slot_results
    }

    /// The decision a refusal is rendered from: the refusing slot's or charge's.
    pub fn refusing_decision(&self) -> Option<&Decision> {
        match self.refused_by_slot() {
            Some((_, result)) => result.decision(),
            None => self.refused_by().and_then(|(_, result)| result.decision()),
        }
    }

    /// Takes the concurrency slots the admitted request holds, to release when its response
    /// has ended (none for a refused request, or one without slots).
    pub fn take_leases(&mut self) -> HeldLeases<S> {
        std::mem::take(&mut self.held)
    }

    /// The first charge that refused the request, by index, with its result.
    pub fn refused_by(&self) -> Option<(usize, &ChargeResult)> {
        self.refused_by.map(|index| (index, &self.results[index]))
    }

    /// What each charge came to, in the order they were added.
    pub fn results(&self) -> &[ChargeResult] {
        &self.results
    }

    /// The decision closest to denying, by index: the refusing charge's, or among the
    /// enforced charges that allowed the request the one with the fewest units left. What
    /// rate-limit headers describe.
    pub fn closest(&self) -> Option<(usize, &Decision)> {
        let index = self.closest?;
        self.results[index]
            .decision()
            .map(|decision| (index, decision))
    }

    /// How long an admitted request must wait before it runs: the longest
    /// [`Decision::delay`] of its enforced charges (their slots are reserved; see
    /// [`crate::Policy::with_max_delay`]). [`Duration::ZERO`] when it runs at once, and for
    /// a refused request (whose reservations were given back). A shadow charge never delays.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Admission, Charge, Limiter, ManualClock, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(ManualClock::new());
    /// let bucket = Policy::token_bucket(Rate::per_second(10).into())?.with_burst(1)?;
    /// let api = limiter.policy("api", bucket.with_max_delay(Duration::from_millis(500))?);
    /// let request = || Admission::new().charge(Charge::new(api.clone(), "k", 1));
    /// assert_eq!(request().decide().await.delay(), Duration::ZERO);
    /// let second = request().decide().await;
    /// assert!(second.is_admitted());
    /// assert_eq!(second.delay(), Duration::from_millis(100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn delay(&self) -> Duration {
        if !self.is_admitted() {
            return Duration::ZERO;
        }
        self.results
            .iter()
            .enumerate()
            .filter(|&(index, _)| !self.is_shadow(index))
            .filter_map(|(_, result)| result.decision().map(Decision::delay))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Gives back everything an admitted request charged, its reserved slots and the
    /// concurrency slots it holds (unless taken with [`Verdict::take_leases`]) included: for a
    /// request that was admitted with a [`Verdict::delay`] but is turned away all the same
    /// (a front end that already holds as many waiting requests as it may). Returns the first
    /// store error; a refused request has nothing left to give back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Admission, Charge, Limiter, ManualClock, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(ManualClock::new());
    /// let bucket = Policy::token_bucket(Rate::per_second(10).into())?.with_burst(1)?;
    /// let api = limiter.policy("api", bucket.with_max_delay(Duration::from_secs(1))?);
    /// let request = || Admission::new().charge(Charge::new(api.clone(), "k", 1));
    /// request().decide().await;
    /// let waiting = request().decide().await;
    /// assert_eq!(waiting.delay(), Duration::from_millis(100));
    /// waiting.withdraw().await?; // turned away: its slot is free again
    /// assert_eq!(request().decide().await.delay(), Duration::from_millis(100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn withdraw(self) -> Result<(), StoreError> {
        let mut first_error = None;
        let settled = self.settlement.pending.iter().map(|(_, charge)| charge);
        for charge in self.reserved.iter().chain(settled) {
            if let Err(err) = charge.give_back().await {
                first_error.get_or_insert(err);
            }
        }
        // The concurrency slots it took are freed too (not left to their leases' expiry).
        if let Err(err) = self.held.release().await {
            first_error.get_or_insert(err);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether the charge at `index` is a shadow one ([`Charge::shadow`]).
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let api = Limiter::new(MemoryStore::new())
    ///     .policy("api", Policy::fixed_window(Rate::per_minute(5).into()));
    /// let verdict = Admission::new()
    ///     .charge(Charge::new(api.clone(), "k", 1))
    ///     .charge(Charge::new(api, "k", 1).shadow())
    ///     .decide()
    ///     .await;
    /// assert!(!verdict.is_shadow(0));
    /// assert!(verdict.is_shadow(1));
    /// assert!(!verdict.is_shadow(2)); // no such charge
    /// # });
    /// ```
    pub fn is_shadow(&self, index: usize) -> bool {
        self.shadow.get(index).copied().unwrap_or(false)
    }

    /// Whether a shadow charge would have refused the request (over its limit, or asked for
    /// a cost its policy never allows): what a front end reports as *shadow denied* while
    /// letting the request through.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let trial = Limiter::new(MemoryStore::new())
    ///     .policy("trial", Policy::fixed_window(Rate::per_minute(1).into()));
    /// let request = || Admission::new().charge(Charge::new(trial.clone(), "k", 1).shadow());
    /// assert!(!request().decide().await.shadow_denied());
    /// let over = request().decide().await;
    /// assert!(over.is_admitted() && over.shadow_denied());
    /// # });
    /// ```
    pub fn shadow_denied(&self) -> bool {
        self.results.iter().enumerate().any(|(index, result)| {
            self.is_shadow(index)
                && matches!(
                    result,
                    ChargeResult::ShadowDenied(_) | ChargeResult::CostExceedsLimit { .. }
                )
        })
    }

    /// The decisions that describe the request, by index, in the order of the charges: what
    /// rate-limit fields listing every limit describe. For an admitted request, those of
    /// every enforced charge, and of the shadow charges too if `shadow`; for a refused one,
    /// only the refusing charge's (the others were given back, or never made).
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let login = limiter.policy("login", Policy::fixed_window(Rate::per_minute(2).into()));
    /// let app = limiter.policy("app", Policy::fixed_window(Rate::per_hour(100).into()));
    /// let trial = limiter.policy("trial", Policy::fixed_window(Rate::per_minute(1).into()));
    /// let request = || {
    ///     Admission::new()
    ///         .charge(Charge::new(login.clone(), "k", 1))
    ///         .charge(Charge::new(trial.clone(), "k", 1).shadow())
    ///         .charge(Charge::new(app.clone(), "k", 1))
    /// };
    /// let remaining = |verdict: &tollgate::Verdict, shadow| -> Vec<(usize, u64)> {
    ///     verdict.decisions(shadow).map(|(index, decision)| (index, decision.remaining())).collect()
    /// };
    /// let first = request().decide().await;
    /// assert_eq!(remaining(&first, false), [(0, 1), (2, 99)]);
    /// assert_eq!(remaining(&first, true), [(0, 1), (1, 0), (2, 99)]);
    /// request().decide().await;
    /// let refused = request().decide().await; // `login` is spent
    /// assert_eq!(remaining(&refused, true), [(0, 0)]);
    /// # });
    /// ```
    pub fn decisions(&self, shadow: bool) -> impl Iterator<Item = (usize, &Decision)> {
        let refused_by = self.refused_by;
        self.results
            .iter()
            .enumerate()
            .filter(move |&(index, _)| match refused_by {
                Some(refusing) => index == refusing,
                None => shadow || !self.is_shadow(index),
            })
            .filter_map(|(index, result)| result.decision().map(|decision| (index, decision)))
    }

    /// [`Verdict::closest`] among the shadow charges' decisions too: the refusing charge's;
    /// else the first shadow denial's (it would have refused the request); else, of those
    /// [`Verdict::decisions`] gives with `shadow`, the one with the fewest units left, the
    /// first of equals.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let app = limiter.policy("app", Policy::fixed_window(Rate::per_hour(100).into()));
    /// let trial = limiter.policy("trial", Policy::fixed_window(Rate::per_minute(3).into()));
    /// let verdict = Admission::new()
    ///     .charge(Charge::new(app, "k", 1))
    ///     .charge(Charge::new(trial, "k", 1).shadow())
    ///     .decide()
    ///     .await;
    /// assert_eq!(verdict.closest().map(|(index, _)| index), Some(0)); // enforced only
    /// assert_eq!(verdict.closest_with_shadow().map(|(index, d)| (index, d.remaining())), Some((1, 2)));
    /// # });
    /// ```
    pub fn closest_with_shadow(&self) -> Option<(usize, &Decision)> {
        let shadow_denial = self
            .results
            .iter()
            .position(|result| matches!(result, ChargeResult::ShadowDenied(_)));
        let index = match (self.refused_by, shadow_denial) {
            (None, Some(index)) => index,
            _ => closest(&self.results, self.refused_by, |_| true)?,
        };
        self.results[index]
            .decision()
            .map(|decision| (index, decision))
    }

    /// The first store error met while giving back the charges of a refused request (the
    /// key then pays for those units until its state resets).
    pub fn give_back_error(&self) -> Option<&StoreError> {
        self.give_back_error.as_ref()
    }

    /// What is left to settle after the response: the charges of an admitted request made
    /// with [`Charge::settle_after`] (none for a refused one).
    pub fn into_settlement(self) -> Settlement<S> {
        self.settlement
    }
}

/// The charges of an admitted request that its response may give back (*deduct-when*), or
/// settle at the cost it turns out to have (*late charges*).
///
/// ```
/// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let login = Limiter::new(MemoryStore::new())
///     .policy("login", Policy::fixed_window(Rate::per_minute(1).into()));
/// let attempt = || Admission::new().charge(Charge::new(login.clone(), "alice", 1).settle_after());
/// // Only failed logins count: this one succeeded, so its charge is given back.
/// let verdict = attempt().decide().await;
/// assert!(verdict.is_admitted());
/// let login_failed = false;
/// verdict.into_settlement().settle(|_index| login_failed).await?;
/// assert!(attempt().decide().await.is_admitted());
/// # Ok::<(), tollgate::StoreError>(())
/// # }).unwrap();
/// ```
pub struct Settlement<S: Store = MemoryStore> {
    /// Charges that may be given back, with their index in the admission.
    pub(super) pending: SmallVec<[(usize, Charge<S>); 1]>,
}

impl<S: Store> fmt::Debug for Settlement<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.pending).finish()
    }
}

impl<S: Store> Settlement<S> {
    /// Whether there is nothing to settle.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let login = Limiter::new(MemoryStore::new())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(5).into()));
    /// let charge = || Charge::new(login.clone(), "alice", 1);
    /// let plain = Admission::new().charge(charge()).decide().await;
    /// assert!(plain.into_settlement().is_empty()); // nothing may be given back
    /// let deduct = Admission::new().charge(charge().settle_after()).decide().await;
    /// assert!(!deduct.into_settlement().is_empty());
    /// # });
    /// ```
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Gives back every pending charge for which `counts(index)` (its index in the
    /// admission) is false. Every charge is tried; the first store error is returned.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let a = limiter.policy("a", Policy::fixed_window(Rate::per_minute(1).into()));
    /// let b = limiter.policy("b", Policy::fixed_window(Rate::per_minute(1).into()));
    /// let verdict = Admission::new()
    ///     .charge(Charge::new(a.clone(), "k", 1).settle_after())
    ///     .charge(Charge::new(b.clone(), "k", 1).settle_after())
    ///     .decide()
    ///     .await;
    /// // Only the charge at index 1 counts: the one at index 0 is given back.
    /// verdict.into_settlement().settle(|index| index == 1).await?;
    /// assert!(a.peek("k").await?.allowed());
    /// assert!(!b.peek("k").await?.allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn settle(self, mut counts: impl FnMut(usize) -> bool) -> Result<(), StoreError> {
        self.settle_costs(|index, charged| if counts(index) { charged } else { 0 })
            .await
    }

    /// Settles every pending charge at the cost `cost(index, charged)` says it has in all,
    /// given its index in the admission and what it charged up front: a lower cost gives
    /// back the difference (0 gives it all back, as [`Settlement::settle`] does), a higher
    /// one is charged late, whatever the room left, and may leave the key in debt (see
    /// [`crate::PolicyHandle::overdraw`]). Every charge is tried; the first store error is
    /// returned.
    ///
    /// This is how a cost known only after the response (the tokens of an LLM's answer) is
    /// charged: admit the request with a charge of 1 (the key must have some allowance left),
    /// then settle it at the response's cost.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let tokens = Limiter::new(MemoryStore::new())
    ///     .policy("tokens", Policy::fixed_window(Rate::per_minute(100).into()));
    /// let request = || Admission::new().charge(Charge::new(tokens.clone(), "alice", 1).settle_after());
    /// let verdict = request().decide().await;
    /// assert!(verdict.is_admitted());
    /// let answer_tokens = 130;
    /// verdict.into_settlement().settle_costs(|_index, _charged| answer_tokens).await?;
    /// // 130 of 100 spent: the key owes 30 and is refused until the debt is repaid.
    /// assert!(!request().decide().await.is_admitted());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn settle_costs(
        self,
        mut cost: impl FnMut(usize, u64) -> u64,
    ) -> Result<(), StoreError> {
        let mut first_error = None;
        for (index, charge) in &self.pending {
            if let Err(err) = charge.settle_at(cost(*index, charge.cost)).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
