//! [`Charge`]: one charge of an admission, and [`ChargeResult`], what it came to.

use std::fmt;

use smallvec::SmallVec;

use crate::decision::Decision;
use crate::key::{Key, LoggedKey};
use crate::limiter::handle::PolicyHandle;
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError};

/// Key bytes up to this length are kept in a charge without allocating.
const INLINE_KEY: usize = 64;

/// One charge of an [`Admission`](crate::Admission): `cost` units of a policy, paid by a key.
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
    pub(super) cost: u64,
    /// Counted and decided, but never refuses the admission.
    pub(super) shadow: bool,
    /// May be given back when the admission is settled (deduct-when).
    pub(super) settle_after: bool,
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
    ///
    /// ```
    /// use tollgate::{Admission, Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let login = Limiter::new(MemoryStore::new())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(1).into()));
    /// let peek = || Admission::new().charge(Charge::new(login.clone(), "alice", 0));
    /// assert!(peek().decide().await.is_admitted());
    /// assert!(login.hit("alice").await?.allowed()); // the peek left the unit there
    /// assert!(!peek().decide().await.is_admitted()); // now a hit of one would be denied
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
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
    ///
    /// ```
    /// use tollgate::{Admission, Charge, ChargeResult, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let trial = Limiter::new(MemoryStore::new())
    ///     .policy("trial", Policy::fixed_window(Rate::per_minute(1).into()));
    /// let request = || Admission::new().charge(Charge::new(trial.clone(), "alice", 1).shadow());
    /// assert!(request().decide().await.is_admitted());
    /// let over = request().decide().await;
    /// assert!(over.is_admitted()); // over the limit, but only watched
    /// assert!(matches!(over.results()[0], ChargeResult::ShadowDenied(_)));
    /// # });
    /// ```
    pub fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }

    /// Lets the admission's [`Settlement`] give this charge back once the response shows it
    /// should not count (*deduct-when*: charged before the request runs, so parallel requests
    /// see each other), or settle it at the cost the response turns out to have (a *late
    /// charge*, which may leave the key in debt): see [`Settlement::settle_costs`].
    ///
    /// [`Settlement`]: crate::Settlement
    /// [`Settlement::settle_costs`]: crate::Settlement::settle_costs
    pub fn settle_after(mut self) -> Self {
        self.settle_after = true;
        self
    }

    /// The policy charged.
    ///
    /// ```
    /// use tollgate::{Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// let login = Limiter::new(MemoryStore::new())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(5).into()));
    /// let charge = Charge::new(login.clone(), "alice", 1);
    /// assert!(charge.handle().same_as(&login));
    /// assert_eq!(charge.handle().name(), "login");
    /// ```
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
    ///
    /// ```
    /// use tollgate::{Charge, Limiter, MemoryStore, Policy, Rate};
    ///
    /// let login = Limiter::new(MemoryStore::new())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(5).into()));
    /// assert!(!Charge::new(login.clone(), "alice", 1).is_shadow());
    /// assert!(Charge::new(login, "alice", 1).shadow().is_shadow());
    /// ```
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Whether the charge's store answers at once ([`Store::answers_immediately`]).
    pub(super) fn answers_immediately(&self) -> bool {
        self.handle.answers_immediately()
    }

    /// Applies the charge: its result.
    pub(super) async fn apply(&self) -> ChargeResult {
        let handle = &self.handle;
        if self.cost > handle.max_cost() {
            return ChargeResult::CostExceedsLimit {
                cost: self.cost,
                max_cost: handle.max_cost(),
            };
        }
        match handle.store_hit(&self.key, handle.now(), self.cost).await {
            Ok(decision) if decision.allowed() => ChargeResult::Allowed(decision),
            Ok(decision) => {
                self.log_denial(&decision);
                if self.shadow {
                    ChargeResult::ShadowDenied(decision)
                } else {
                    ChargeResult::Denied(decision)
                }
            }
            Err(err) => ChargeResult::Failed(err),
        }
    }

    /// Logs a denial at debug level: the one place every front end's denials (check API,
    /// proxy, Tower layer, Envoy service) pass. A peek (cost 0) denies nothing. The key comes
    /// from clients, so it is logged escaped and truncated ([`LoggedKey`]).
    fn log_denial(&self, decision: &Decision) {
        if self.cost == 0 {
            return;
        }
        tracing::debug!(
            policy = self.handle.name(),
            key = %LoggedKey(&self.key),
            cost = self.cost,
            shadow = self.shadow,
            banned = decision.banned(),
            retry_after_ms = decision.retry_after().map(|wait| wait.as_millis() as u64),
            "denied"
        );
    }

    /// Gives back what the charge took.
    pub(super) async fn give_back(&self) -> Result<(), StoreError> {
        self.settle_at(0).await
    }

    /// Makes what the charge took `cost` units in all: gives back what it took beyond, or
    /// charges late what it took short of it (into debt if need be).
    pub(super) async fn settle_at(&self, cost: u64) -> Result<(), StoreError> {
        let handle = &self.handle;
        let now = handle.now();
        match cost.cmp(&self.cost) {
            std::cmp::Ordering::Less => handle.store_refund(&self.key, now, self.cost - cost).await,
            std::cmp::Ordering::Greater => handle
                .store_overdraw(&self.key, now, cost - self.cost)
                .await
                .map(drop),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }
}

/// What one charge of an admission came to.
///
/// ```
/// use tollgate::{Admission, Charge, ChargeResult, Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let api = Limiter::new(MemoryStore::new())
///     .policy("api", Policy::fixed_window(Rate::per_minute(2).into()));
/// let verdict = Admission::new()
///     .charge(Charge::new(api.clone(), "k", 2))
///     .charge(Charge::new(api.clone(), "k", 1)) // the first took both units
///     .charge(Charge::new(api.clone(), "k", 1))
///     .decide()
///     .await;
/// let results = verdict.results();
/// assert!(matches!(
///     results,
///     [ChargeResult::Allowed(_), ChargeResult::Denied(_), ChargeResult::Skipped]
/// ));
/// assert_eq!(results[0].decision().map(|d| d.remaining()), Some(0));
/// assert!(results[1].decision().is_some_and(|d| d.retry_after().is_some()));
/// assert!(results[2].decision().is_none());
///
/// let too_big = Admission::new().charge(Charge::new(api, "k", 3)).decide().await;
/// assert!(matches!(
///     too_big.results()[0],
///     ChargeResult::CostExceedsLimit { cost: 3, max_cost: 2 }
/// ));
/// # });
/// ```
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
    pub(super) fn refuses(&self) -> bool {
        matches!(
            self,
            ChargeResult::Denied(_)
                | ChargeResult::CostExceedsLimit { .. }
                | ChargeResult::Failed(_)
        )
    }
}
