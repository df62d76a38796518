//! [`Admission`]: one request meeting several policies, charged all or none, and settled
//! after its response.

use std::fmt;

use smallvec::SmallVec;

use crate::decision::Decision;
use crate::key::Key;
use crate::limiter::handle::PolicyHandle;
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError};

/// Key bytes up to this length are kept in a charge without allocating.
const INLINE_KEY: usize = 64;

/// One charge of an [`Admission`]: `cost` units of a policy, paid by a key.
///
/// ```
/// use tollgate::{Charge, Limiter, MemoryStore, Policy, Rate};
///
/// let limiter = Limiter::new(MemoryStore::new());
/// let login = limiter.policy("login", Policy::fixed_window(Rate::per_minute(5).into()));
/// let charge = Charge::new(login, "203.0.113.7", 1).settle_after();
/// assert_eq!((charge.key(), charge.cost()), (&b"203.0.113.7"[..], 1));
/// ```
pub struct Charge<S: Store = MemoryStore> {
    handle: PolicyHandle<S>,
    key: SmallVec<[u8; INLINE_KEY]>,
    cost: u64,
    /// Counted and decided, but never refuses the admission.
    shadow: bool,
    /// May be given back when the admission is settled (deduct-when).
    settle_after: bool,
}

impl<S: Store> fmt::Debug for Charge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Charge")
            .field("policy", &self.handle.name())
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("cost", &self.cost)
            .field("shadow", &self.shadow)
            .field("settle_after", &self.settle_after)
            .finish()
    }
}

impl<S: Store> Charge<S> {
    /// `cost` units of `handle`'s policy, paid by `key` (its bytes are copied). A cost of 0
    /// is a peek: it charges nothing, and refuses the admission if a hit of one unit would be
    /// denied now.
    pub fn new<K: Key + ?Sized>(handle: PolicyHandle<S>, key: &K, cost: u64) -> Self {
        Self {
            handle,
            key: SmallVec::from_slice(&key.key_bytes()),
            cost,
            shadow: false,
            settle_after: false,
        }
    }

    /// Makes this a shadow charge: counted and decided like any other, reported, but never
    /// refusing the admission (a limit rolled out to watch what it would deny). A store
    /// failure still fails the admission: the store the enforced charges count in is likely
    /// down too.
    pub fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }

    /// Lets [`Settlement::settle`] give this charge back once the response shows it should
    /// not count (*deduct-when*: charged before the request runs, so parallel requests see
    /// each other).
    pub fn settle_after(mut self) -> Self {
        self.settle_after = true;
        self
    }

    /// The policy charged.
    pub fn handle(&self) -> &PolicyHandle<S> {
        &self.handle
    }

    /// The key's bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The units charged.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// Whether this is a shadow charge.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Applies the charge: its result.
    async fn apply(&self) -> ChargeResult {
        let handle = &self.handle;
        if self.cost > handle.max_cost() {
            return ChargeResult::CostExceedsLimit {
                cost: self.cost,
                max_cost: handle.max_cost(),
            };
        }
        match handle.store_hit(&self.key, handle.now(), self.cost).await {
            Ok(decision) if decision.allowed() => ChargeResult::Allowed(decision),
            Ok(decision) if self.shadow => ChargeResult::ShadowDenied(decision),
            Ok(decision) => ChargeResult::Denied(decision),
            Err(err) => ChargeResult::Failed(err),
        }
    }

    /// Gives back what the charge took.
    async fn give_back(&self) -> Result<(), StoreError> {
        let handle = &self.handle;
        handle
            .store_refund(&self.key, handle.now(), self.cost)
            .await
    }
}

/// What one charge of an admission came to.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChargeResult {
    /// Allowed, and charged (unless its cost was 0).
    Allowed(Decision),
    /// Denied: the admission is refused.
    Denied(Decision),
    /// A shadow charge over its limit: it would have been denied; nothing was charged, and
    /// the admission goes on.
    ShadowDenied(Decision),
    /// The cost is more than the policy could ever allow: refused without a wait (waiting
    /// would not help).
    CostExceedsLimit {
        /// The cost asked for.
        cost: u64,
        /// The largest the policy allows at once.
        max_cost: u64,
    },
    /// The store failed; the admission stops here.
    Failed(StoreError),
    /// Not tried: an earlier charge had refused the admission, or the store had failed.
    Skipped,
}

impl ChargeResult {
    /// The decision, for a charge that got one.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            ChargeResult::Allowed(decision)
            | ChargeResult::Denied(decision)
            | ChargeResult::ShadowDenied(decision) => Some(decision),
            _ => None,
        }
    }

    /// Whether a charge with this result refuses the admission (unless it is a shadow one).
    fn refuses(&self) -> bool {
        matches!(
            self,
            ChargeResult::Denied(_)
                | ChargeResult::CostExceedsLimit { .. }
                | ChargeResult::Failed(_)
        )
    }
}

/// One request meeting several policies: each [`Charge`] is made in turn, and the request is
/// admitted only if every one allows it. When one refuses, what the others charged is given
/// back, so a refused request costs nothing (as a policy with several rates charges all of
/// them or none). A request that is admitted may be [settled](Settlement) after its
/// response: charges made with [`Charge::settle_after`] are given back if the response shows
/// they should not count.
///
/// Every front end of tollgate (the Tower layer, the server's check API and proxy, the Envoy
/// service) turns its request into an admission and renders the [`Verdict`].
///
/// ```
/// use tollgate::{Admission, Charge, ChargeResult, Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new());
/// let per_user = limiter.policy("user", Policy::fixed_window(Rate::per_minute(2).into()));
/// let global = limiter.policy("global", Policy::fixed_window(Rate::per_minute(3).into()));
/// let request = |user: &str| {
///     Admission::new()
///         .charge(Charge::new(global.clone(), "all", 1))
///         .charge(Charge::new(per_user.clone(), user, 1))
/// };
/// assert!(request("alice").decide().await.is_admitted());
/// assert!(request("alice").decide().await.is_admitted());
/// // Alice is over her own limit: refused, and the global charge is given back.
/// let refused = request("alice").decide().await;
/// assert!(matches!(refused.refused_by(), Some((1, ChargeResult::Denied(_)))));
/// let closest = refused.closest().map(|(index, decision)| (index, decision.remaining()));
/// assert_eq!(closest, Some((1, 0)));
/// // So the global limit still has room for Bob.
/// assert!(request("bob").decide().await.is_admitted());
/// # });
/// ```
pub struct Admission<S: Store = MemoryStore> {
    charges: SmallVec<[Charge<S>; 2]>,
    /// Whether to decide every charge even after one refuses.
    every: bool,
}

impl<S: Store> Default for Admission<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Store> fmt::Debug for Admission<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("charges", &self.charges)
            .field("every", &self.every)
            .finish()
    }
}

impl<S: Store> Admission<S> {
    /// An admission with no charges (admitted, deciding nothing).
    pub fn new() -> Self {
        Self {
            charges: SmallVec::new(),
            every: false,
        }
    }

    /// Adds `charge`, to be made after those added before.
    pub fn charge(mut self, charge: Charge<S>) -> Self {
        self.push(charge);
        self
    }

    /// Adds `charge`, to be made after those added before.
    pub fn push(&mut self, charge: Charge<S>) {
        self.charges.push(charge);
    }

    /// The charges, in order.
    pub fn charges(&self) -> &[Charge<S>] {
        &self.charges
    }

    /// Decides every charge even after one refuses the admission, to report each (as
    /// Envoy's protocol reports a status per descriptor); their charges are given back with
    /// the rest. Without it, charges after a refusal are [`ChargeResult::Skipped`]. A store
    /// failure stops the admission either way.
    pub fn decide_every_charge(mut self) -> Self {
        self.every = true;
        self
    }

    /// Makes the charges in order, and gives every charge back if one refuses.
    pub async fn decide(self) -> Verdict<S> {
        let Admission { charges, every } = self;
        let mut results: SmallVec<[ChargeResult; 2]> = SmallVec::with_capacity(charges.len());
        let mut refused_by = None;
        let mut failed = false;
        for charge in &charges {
            if failed || (refused_by.is_some() && !every) {
                results.push(ChargeResult::Skipped);
                continue;
            }
            let result = charge.apply().await;
            let failure = matches!(result, ChargeResult::Failed(_));
            failed |= failure;
            // A shadow charge never denies, but a store that fails fails the request.
            if refused_by.is_none() && (failure || (!charge.shadow && result.refuses())) {
                refused_by = Some(results.len());
            }
            results.push(result);
        }
        let closest = closest(&results, refused_by, |index| !charges[index].shadow);
        let charged = |charge: &Charge<S>, result: &ChargeResult| {
            charge.cost > 0 && matches!(result, ChargeResult::Allowed(_))
        };
        let mut give_back_error = None;
        let mut pending = SmallVec::new();
        if refused_by.is_some() {
            for (charge, result) in charges.iter().zip(&results) {
                if charged(charge, result)
                    && let Err(err) = charge.give_back().await
                {
                    give_back_error.get_or_insert(err);
                }
            }
        } else {
            for (index, (charge, result)) in charges.into_iter().zip(&results).enumerate() {
                if charge.settle_after && charged(&charge, result) {
                    pending.push((index, charge));
                }
            }
        }
        Verdict {
            closest,
            results,
            refused_by,
            give_back_error,
            settlement: Settlement { pending },
        }
    }
}

/// The charge closest to denying: the one that refused, else the allowed one (among those
/// `enforced` says are not shadow charges) with the fewest units left, the first of equals.
fn closest(
    results: &[ChargeResult],
    refused_by: Option<usize>,
    enforced: impl Fn(usize) -> bool,
) -> Option<usize> {
    if let Some(index) = refused_by {
        return results[index].decision().map(|_| index);
    }
    let mut closest: Option<(usize, u64)> = None;
    for (index, result) in results.iter().enumerate() {
        if let ChargeResult::Allowed(decision) = result
            && enforced(index)
            && closest.is_none_or(|(_, remaining)| decision.remaining() < remaining)
        {
            closest = Some((index, decision.remaining()));
        }
    }
    closest.map(|(index, _)| index)
}

/// What an [`Admission`] decided: admitted or refused, and what each charge came to.
pub struct Verdict<S: Store = MemoryStore> {
    results: SmallVec<[ChargeResult; 2]>,
    refused_by: Option<usize>,
    closest: Option<usize>,
    give_back_error: Option<StoreError>,
    settlement: Settlement<S>,
}

impl<S: Store> fmt::Debug for Verdict<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verdict")
            .field("results", &self.results)
            .field("refused_by", &self.refused_by)
            .field("closest", &self.closest)
            .field("give_back_error", &self.give_back_error)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Verdict<S> {
    /// Whether every (enforced) charge allowed the request.
    pub fn is_admitted(&self) -> bool {
        self.refused_by.is_none()
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

/// The charges of an admitted request that its response may give back (*deduct-when*).
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
    pending: SmallVec<[(usize, Charge<S>); 1]>,
}

impl<S: Store> fmt::Debug for Settlement<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.pending).finish()
    }
}

impl<S: Store> Settlement<S> {
    /// Whether there is nothing to settle.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Gives back every pending charge for which `counts(index)` (its index in the
    /// admission) is false. Every charge is tried; the first store error is returned.
    pub async fn settle(self, mut counts: impl FnMut(usize) -> bool) -> Result<(), StoreError> {
        let mut first_error = None;
        for (index, charge) in &self.pending {
            if !counts(*index)
                && let Err(err) = charge.give_back().await
            {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
