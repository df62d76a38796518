//! [`Admission`]: one request meeting several policies, charged all or none.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use smallvec::SmallVec;

use crate::limiter::charge::{Charge, ChargeResult};
use crate::limiter::handle::poll_once;
use crate::limiter::in_flight::{HeldLeases, InFlight, SlotResult};
use crate::limiter::verdict::{Settlement, Verdict};
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError};

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
    /// Concurrency slots, taken before the charges are made (empty: no allocation).
    slots: Vec<InFlight<S>>,
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
            .field("slots", &self.slots)
            .field("every", &self.every)
            .finish()
    }
}

impl<S: Store> Admission<S> {
    /// An admission with no charges (admitted, deciding nothing).
    ///
    /// ```
    /// use tollgate::{Admission, MemoryStore};
    ///
    /// # futures_executor::block_on(async {
    /// let verdict = Admission::<MemoryStore>::new().decide().await;
    /// assert!(verdict.is_admitted());
    /// assert!(verdict.results().is_empty());
    /// assert!(verdict.closest().is_none());
    /// # });
    /// ```
    pub fn new() -> Self {
        Self {
            charges: SmallVec::new(),
            slots: Vec::new(),
            every: false,
        }
    }

    /// Adds `charge`, to be made after those added before.
    pub fn charge(mut self, charge: Charge<S>) -> Self {
        self.push(charge);
        self
    }

    /// Asks for a concurrency slot as well: the slots are taken before any charge is made,
    /// so a request that finds a slot full is refused without charging anything; one that a
    /// charge refuses gives its slots back. An admitted request holds its slots until they
    /// are released ([`Verdict::take_leases`](crate::Verdict::take_leases)).
    pub fn slot(mut self, slot: InFlight<S>) -> Self {
        self.slots.push(slot);
        self
    }

    /// Adds `charge`, to be made after those added before.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let limits = [
    ///     limiter.policy("per-second", Policy::fixed_window("2/second".parse()?)),
    ///     limiter.policy("per-day", Policy::fixed_window("100/day".parse()?)),
    /// ];
    /// let mut admission = Admission::new();
    /// for limit in &limits {
    ///     admission.push(Charge::new(limit.clone(), "alice", 1));
    /// }
    /// assert_eq!(admission.charges().len(), 2);
    /// assert!(admission.decide().await.is_admitted());
    /// assert_eq!(limits[1].peek("alice").await?.remaining(), 99);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn push(&mut self, charge: Charge<S>) {
        self.charges.push(charge);
    }

    /// The charges, in order.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let bucket = Policy::token_bucket(Rate::per_second(10).into()).expect("a valid token bucket");
    /// let api = limiter.policy("api", bucket);
    /// let admission = Admission::new()
    ///     .charge(Charge::new(api.clone(), "alice", 1))
    ///     .charge(Charge::new(api, "tenant:acme", 3));
    /// let charged: Vec<(&[u8], u64)> = admission.charges().iter().map(|c| (c.key(), c.cost())).collect();
    /// assert_eq!(charged, [(&b"alice"[..], 1), (&b"tenant:acme"[..], 3)]);
    /// ```
    pub fn charges(&self) -> &[Charge<S>] {
        &self.charges
    }

    /// Decides every charge even after one refuses the admission, to report each (as
    /// Envoy's protocol reports a status per descriptor); their charges are given back with
    /// the rest. Without it, charges after a refusal are [`ChargeResult::Skipped`]. A store
    /// failure stops the admission either way.
    ///
    /// ```
    /// use tollgate::{Admission, Charge, ChargeResult, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let a = limiter.policy("a", Policy::fixed_window(Rate::per_minute(1).into()));
    /// let b = limiter.policy("b", Policy::fixed_window(Rate::per_minute(1).into()));
    /// a.hit("k").await?; // `a` is spent
    /// let request = || {
    ///     Admission::new().charge(Charge::new(a.clone(), "k", 1)).charge(Charge::new(b.clone(), "k", 1))
    /// };
    /// let first_only = request().decide().await;
    /// assert!(matches!(first_only.results(), [ChargeResult::Denied(_), ChargeResult::Skipped]));
    /// let every = request().decide_every_charge().decide().await;
    /// assert!(!every.is_admitted());
    /// assert!(matches!(every.results(), [ChargeResult::Denied(_), ChargeResult::Allowed(_)]));
    /// assert!(b.hit("k").await?.allowed()); // b's charge was given back
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn decide_every_charge(mut self) -> Self {
        self.every = true;
        self
    }

    /// Makes the charges in order, and gives every charge back if one refuses.
    ///
    /// Over stores that [answer at once](Store::answers_immediately), an admission without
    /// concurrency slots is decided in place, and its future holds only the verdict; any
    /// other is decided in a future of its own on the heap.
    pub fn decide(self) -> impl Future<Output = Verdict<S>> + Send + use<S> {
        if self.slots.is_empty() && self.charges.iter().all(Charge::answers_immediately) {
            let shadow = self.charges.iter().map(|charge| charge.shadow).collect();
            let count = self.charges.len();
            let verdict = poll_once(self.decide_all()).unwrap_or_else(|| {
                tracing::error!("a store that answers at once kept an admission waiting");
                store_kept_waiting(shadow, count)
            });
            Decide::Ready(Some(verdict))
        } else {
            Decide::Waiting(Box::pin(self.decide_all()))
        }
    }

    /// What [`Admission::decide`] does, in one future.
    async fn decide_all(self) -> Verdict<S> {
        let Admission {
            charges,
            slots,
            every,
        } = self;
        let (slot_results, slot_refused_by, mut held) = if slots.is_empty() {
            (Vec::new(), None, HeldLeases::default())
        } else {
            acquire_slots(slots).await
        };
        if slot_refused_by.is_some() {
            return Verdict {
                closest: None,
                shadow: charges.iter().map(|charge| charge.shadow).collect(),
                results: charges.iter().map(|_| ChargeResult::Skipped).collect(),
                refused_by: None,
                slot_results,
                slot_refused_by,
                held,
                give_back_error: None,
                settlement: Settlement {
                    pending: SmallVec::new(),
                },
                reserved: SmallVec::new(),
            };
        }
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
        let shadow: SmallVec<[bool; 8]> = charges.iter().map(|charge| charge.shadow).collect();
        let closest = closest(&results, refused_by, |index| !shadow[index]);
        let charged = |charge: &Charge<S>, result: &ChargeResult| {
            charge.cost > 0 && matches!(result, ChargeResult::Allowed(_))
        };
        let mut give_back_error = None;
        let mut pending = SmallVec::new();
        let mut reserved = SmallVec::new();
        if refused_by.is_some() {
            if let Err(err) = std::mem::take(&mut held).release().await {
                give_back_error.get_or_insert(err);
            }
            for (charge, result) in charges.iter().zip(&results) {
                if charged(charge, result)
                    && let Err(err) = charge.give_back().await
                {
                    give_back_error.get_or_insert(err);
                }
            }
        } else {
            // A request that waits for reserved slots may still be turned away (by a front
            // end's cap on waiting requests): keep what it charged, to give it back then.
            let delayed = results.iter().enumerate().any(|(index, result)| {
                !shadow[index] && result.decision().is_some_and(|d| !d.delay().is_zero())
            });
            for (index, (charge, result)) in charges.into_iter().zip(&results).enumerate() {
                if charge.settle_after && charged(&charge, result) {
                    pending.push((index, charge));
                } else if delayed && charged(&charge, result) {
                    reserved.push(charge);
                }
            }
        }
        Verdict {
            closest,
            shadow,
            results,
            refused_by,
            slot_results,
            slot_refused_by,
            held,
            give_back_error,
            settlement: Settlement { pending },
            reserved,
        }
    }
}

/// The verdict of an admission of `count` charges (`shadow`: which are shadow charges) whose
/// store promised to answer at once and kept it waiting: refused by the first charge, as a
/// store that fails, since it can be neither awaited in place nor moved. What its charges
/// took before is not given back (a broken store).
#[cold]
fn store_kept_waiting<S: Store>(shadow: SmallVec<[bool; 8]>, count: usize) -> Verdict<S> {
    let failed = StoreError::unavailable("a store that answers at once kept an admission waiting");
    let mut results: SmallVec<[ChargeResult; 2]> = SmallVec::with_capacity(count);
    results.push(ChargeResult::Failed(failed));
    results.extend((1..count).map(|_| ChargeResult::Skipped));
    Verdict {
        closest: None,
        shadow,
        results,
        refused_by: Some(0),
        slot_results: Vec::new(),
        slot_refused_by: None,
        held: HeldLeases::default(),
        give_back_error: None,
        settlement: Settlement {
            pending: SmallVec::new(),
        },
        reserved: SmallVec::new(),
    }
}

/// The future of [`Admission::decide`]: the verdict, when it was decided in place.
enum Decide<F: Future> {
    Ready(Option<F::Output>),
    Waiting(Pin<Box<F>>),
}

impl<F: Future> Future for Decide<F>
where
    F::Output: Unpin,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.get_mut() {
            Decide::Ready(verdict) => Poll::Ready(
                verdict
                    .take()
                    .expect("an admission polled after it was decided"),
            ),
            Decide::Waiting(decide) => decide.as_mut().poll(cx),
        }
    }
}

/// Takes `slots` in order: what each came to, the first that refused, and the leases held
/// (none when one refused: those taken are given back).
async fn acquire_slots<S: Store>(
    slots: Vec<InFlight<S>>,
) -> (Vec<SlotResult>, Option<usize>, HeldLeases<S>) {
    let mut results = Vec::with_capacity(slots.len());
    let mut held = HeldLeases::default();
    let mut refused_by = None;
    for slot in slots {
        if refused_by.is_some() {
            results.push(SlotResult::Skipped);
            continue;
        }
        let (result, lease) = slot.acquire().await;
        if matches!(result, SlotResult::Acquired(_)) {
            held.held.push((slot, lease));
        } else {
            refused_by = Some(results.len());
        }
        results.push(result);
    }
    if refused_by.is_some() {
        // A release that fails leaves the lease to expire by itself.
        let _ = held.release().await;
        held = HeldLeases::default();
    }
    (results, refused_by, held)
}

/// The charge closest to denying: the one that refused, else among the charges with a
/// decision that `counted` admits (the enforced ones that allowed the request, say) the one
/// with the fewest units left, the first of equals.
pub(super) fn closest(
    results: &[ChargeResult],
    refused_by: Option<usize>,
    counted: impl Fn(usize) -> bool,
) -> Option<usize> {
    if let Some(index) = refused_by {
        return results[index].decision().map(|_| index);
    }
    let mut closest: Option<(usize, u64)> = None;
    for (index, result) in results.iter().enumerate() {
        if let Some(decision) = result.decision()
            && counted(index)
            && closest.is_none_or(|(_, remaining)| decision.remaining() < remaining)
        {
            closest = Some((index, decision.remaining()));
        }
    }
    closest.map(|(index, _)| index)
}
