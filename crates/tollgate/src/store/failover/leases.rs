//! Concurrency leases through a [`Failover`]: to the store, and what the failure mode answers
//! when it fails.

use std::future::Future;
use std::sync::atomic::Ordering;

use super::{Failover, FailureMode};
use crate::clock::Timestamp;
use crate::lease::{Acquisition, ConcurrencyLimit, LeaseId};
use crate::store::memory::PreparedMemoryLeases;
use crate::store::{Store, StoreError};

/// A concurrency limit prepared for a [`Failover`]: for its store and, under
/// [`FailureMode::Fallback`], for the local store.
///
/// ```
/// use tollgate::{ConcurrencyLimit, Failover, FailureMode, MemoryStore, Store};
///
/// let failover = Failover::new(MemoryStore::new(), FailureMode::Fallback);
/// let uploads = failover.prepare_leases("uploads", &ConcurrencyLimit::new(2)?);
/// assert!(format!("{uploads:?}").contains("local: Some"));
/// # Ok::<(), tollgate::ConcurrencyLimitError>(())
/// ```
#[derive(Debug)]
pub struct PreparedFailoverLeases<P> {
    prepared: P,
    local: Option<PreparedMemoryLeases>,
}

impl<S: Store> Failover<S> {
    pub(super) fn prepare_failover_leases(
        &self,
        name: &str,
        limit: &ConcurrencyLimit,
    ) -> PreparedFailoverLeases<S::PreparedLeases> {
        PreparedFailoverLeases {
            prepared: self.store.prepare_leases(name, limit),
            local: (self.mode == FailureMode::Fallback)
                .then(|| self.fallback.prepare_leases(name, limit)),
        }
    }

    /// An acquire goes to the store. When the store fails, the error is counted and the
    /// failure mode answers: [`FailureMode::Deny`] returns it, [`FailureMode::Allow`] lets
    /// the request in without a slot (nothing is counted), and [`FailureMode::Fallback`]
    /// takes a slot in the local store (this process's count only).
    pub(super) fn acquire_failover<'a>(
        &'a self,
        leases: &'a PreparedFailoverLeases<S::PreparedLeases>,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a, S> {
        let attempt = self.store.acquire(&leases.prepared, key, lease, now);
        let key = leases.local.is_some().then(|| key.to_vec());
        async move {
            let err = match attempt.await {
                Ok(acquisition) => return Ok(acquisition),
                Err(err) => err,
            };
            self.errors.fetch_add(1, Ordering::Relaxed);
            match (self.mode, &leases.local, key) {
                (FailureMode::Fallback, Some(local), Some(key)) => {
                    Ok(self.fallback.acquire_in_place(local, &key, lease, now))
                }
                (FailureMode::Allow, ..) => Ok(Acquisition::Acquired { in_flight: 0 }),
                _ => Err(err),
            }
        }
    }

    /// A release goes to the local store (under [`FailureMode::Fallback`], where the lease
    /// may have been taken) and to the store. When the store fails, [`FailureMode::Deny`]
    /// returns the error; the others answer what the local store did (the lease then expires
    /// in the store by itself).
    pub(super) fn release_failover<'a>(
        &'a self,
        leases: &'a PreparedFailoverLeases<S::PreparedLeases>,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a, S> {
        let local = leases
            .local
            .as_ref()
            .is_some_and(|local| self.fallback.release_in_place(local, key, lease, now));
        let attempt = self.store.release(&leases.prepared, key, lease, now);
        async move {
            match attempt.await {
                Ok(released) => Ok(released || local),
                Err(err) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    match self.mode {
                        FailureMode::Deny => Err(err),
                        FailureMode::Allow | FailureMode::Fallback => Ok(local),
                    }
                }
            }
        }
    }
}
