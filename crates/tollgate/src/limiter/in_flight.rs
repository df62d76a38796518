//! [`ConcurrencyHandle`]: one prepared concurrency limit; [`InFlight`]: a slot an admission
//! asks for; [`SlotResult`]: what it came to; [`HeldLeases`]: the slots an admitted request
//! holds until its response ends.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::clock::{Clock, Timestamp};
use crate::decision::Decision;
use crate::key::Key;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};
use crate::limiter::error::Error;
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError};

/// A concurrency limit prepared over a limiter's store: how many requests of one key may be
/// in flight at once. Cheap to clone.
///
/// ```
/// use tollgate::{ConcurrencyLimit, Limiter, MemoryStore, SlotResult};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new());
/// let uploads = limiter.concurrency("uploads", ConcurrencyLimit::new(1)?);
/// let (lease, decision) = uploads.acquire("alice").await?;
/// let lease = lease.expect("a free slot");
/// assert_eq!(decision.remaining(), 0);
/// let (none, full) = uploads.acquire("alice").await?;
/// assert!(none.is_none() && !full.allowed());
/// assert!(uploads.release("alice", lease).await?);
/// assert!(uploads.acquire("alice").await?.0.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct ConcurrencyHandle<S: Store = MemoryStore> {
    prepared: Arc<PreparedConcurrency<S>>,
}

struct PreparedConcurrency<S: Store> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    name: Box<str>,
    limit: ConcurrencyLimit,
    prepared: S::PreparedLeases,
}

impl<S: Store> Clone for ConcurrencyHandle<S> {
    fn clone(&self) -> Self {
        Self {
            prepared: Arc::clone(&self.prepared),
        }
    }
}

impl<S: Store> fmt::Debug for ConcurrencyHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyHandle")
            .field("name", &self.prepared.name)
            .field("limit", &self.prepared.limit)
            .finish()
    }
}

impl<S: Store> ConcurrencyHandle<S> {
    /// Prepares `limit` under `name` in `store`.
    pub(crate) fn prepare(
        store: &Arc<S>,
        clock: &Arc<dyn Clock>,
        name: &str,
        limit: ConcurrencyLimit,
    ) -> Self {
        Self {
            prepared: Arc::new(PreparedConcurrency {
                prepared: store.prepare_leases(name, &limit),
                store: Arc::clone(store),
                clock: Arc::clone(clock),
                name: name.into(),
                limit,
            }),
        }
    }

    /// The name the limit was prepared under.
    pub fn name(&self) -> &str {
        &self.prepared.name
    }

    /// The limit.
    pub fn limit(&self) -> &ConcurrencyLimit {
        &self.prepared.limit
    }

    /// Takes a slot of `key`: the lease that holds it (`None` when every slot is taken), and
    /// the decision (the slots left; when full, the time until the earliest lease expires).
    pub async fn acquire<K: Key + ?Sized>(
        &self,
        key: &K,
    ) -> Result<(Option<LeaseId>, Decision), Error> {
        let lease = LeaseId::random();
        let acquisition = self.store_acquire(&key.key_bytes(), lease).await?;
        let decision = acquisition.decision(self.limit());
        Ok((decision.allowed().then_some(lease), decision))
    }

    /// Gives back the slot `lease` holds for `key`: whether a live lease was released (an
    /// unknown, expired or already released lease changes nothing).
    pub async fn release<K: Key + ?Sized>(&self, key: &K, lease: LeaseId) -> Result<bool, Error> {
        Ok(self.store_release(&key.key_bytes(), lease).await?)
    }

    fn now(&self) -> Timestamp {
        self.prepared.clock.now()
    }

    async fn store_acquire(&self, key: &[u8], lease: LeaseId) -> Result<Acquisition, StoreError> {
        let prepared = &*self.prepared;
        prepared
            .store
            .acquire(&prepared.prepared, key, lease, self.now())
            .await
    }

    async fn store_release(&self, key: &[u8], lease: LeaseId) -> Result<bool, StoreError> {
        let prepared = &*self.prepared;
        prepared
            .store
            .release(&prepared.prepared, key, lease, self.now())
            .await
    }
}

/// A concurrency slot an [`Admission`](crate::Admission) asks for: one of `handle`'s slots,
/// held by `key`.
///
/// ```
/// use tollgate::{ConcurrencyLimit, InFlight, Limiter, MemoryStore};
///
/// let limiter = Limiter::new(MemoryStore::new());
/// let uploads = limiter.concurrency("uploads", ConcurrencyLimit::new(2)?);
/// let slot = InFlight::new(uploads, "alice");
/// assert_eq!((slot.handle().name(), slot.key()), ("uploads", &b"alice"[..]));
/// # Ok::<(), tollgate::ConcurrencyLimitError>(())
/// ```
pub struct InFlight<S: Store = MemoryStore> {
    handle: ConcurrencyHandle<S>,
    key: SmallVec<[u8; 32]>,
}

impl<S: Store> fmt::Debug for InFlight<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("limit", &self.handle.name())
            .field("key", &String::from_utf8_lossy(&self.key))
            .finish()
    }
}

impl<S: Store> InFlight<S> {
    /// One of `handle`'s slots, held by `key` (its bytes are copied).
    pub fn new<K: Key + ?Sized>(handle: ConcurrencyHandle<S>, key: &K) -> Self {
        Self {
            handle,
            key: SmallVec::from_slice(&key.key_bytes()),
        }
    }

    /// The concurrency limit.
    pub fn handle(&self) -> &ConcurrencyHandle<S> {
        &self.handle
    }

    /// The key's bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Asks for the slot with a fresh lease.
    pub(super) async fn acquire(&self) -> (SlotResult, LeaseId) {
        let lease = LeaseId::random();
        let result = match self.handle.store_acquire(&self.key, lease).await {
            Ok(acquisition) => {
                let decision = acquisition.decision(self.handle.limit());
                if decision.allowed() {
                    SlotResult::Acquired(decision)
                } else {
                    SlotResult::Full(decision)
                }
            }
            Err(err) => SlotResult::Failed(err),
        };
        (result, lease)
    }
}

/// What asking for one concurrency slot of an admission came to.
#[derive(Debug)]
#[non_exhaustive]
pub enum SlotResult {
    /// A slot was taken: the decision tells the slots left.
    Acquired(Decision),
    /// Every slot was taken: the request is refused; the decision's `retry_after` is the
    /// time until the key's earliest lease expires.
    Full(Decision),
    /// The store failed; the admission stops here.
    Failed(StoreError),
    /// Not tried: an earlier slot refused the admission.
    Skipped,
}

impl SlotResult {
    /// The decision, for a slot that got one.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            SlotResult::Acquired(decision) | SlotResult::Full(decision) => Some(decision),
            _ => None,
        }
    }
}

/// The concurrency slots an admitted request holds: release them when its response has
/// ended (or been dropped). A lease never released expires after its limit's lease time.
///
/// ```
/// use tollgate::{Admission, ConcurrencyLimit, InFlight, Limiter, MemoryStore};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new());
/// let uploads = limiter.concurrency("uploads", ConcurrencyLimit::new(1)?);
/// let request = || Admission::new().slot(InFlight::new(uploads.clone(), "alice"));
/// let mut admitted = request().decide().await;
/// assert!(admitted.is_admitted());
/// let held = admitted.take_leases();
/// assert_eq!(held.leases().count(), 1);
/// assert!(!request().decide().await.is_admitted()); // the only slot is held
/// held.release().await?;
/// assert!(request().decide().await.is_admitted());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct HeldLeases<S: Store = MemoryStore> {
    pub(super) held: Vec<(InFlight<S>, LeaseId)>,
}

impl<S: Store> Default for HeldLeases<S> {
    fn default() -> Self {
        Self { held: Vec::new() }
    }
}

impl<S: Store> fmt::Debug for HeldLeases<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.held).finish()
    }
}

impl<S: Store> HeldLeases<S> {
    /// Whether no slot is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The slots held, each with its lease.
    pub fn leases(&self) -> impl Iterator<Item = (&InFlight<S>, LeaseId)> {
        self.held.iter().map(|(slot, lease)| (slot, *lease))
    }

    /// Releases every slot; every one is tried, the first store error is returned.
    pub async fn release(self) -> Result<(), StoreError> {
        let mut first_error = None;
        for (slot, lease) in &self.held {
            if let Err(err) = slot.handle.store_release(&slot.key, *lease).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
