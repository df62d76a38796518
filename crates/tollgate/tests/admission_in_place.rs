//! `Admission::decide` decides in place over stores that answer at once, and in a future of
//! its own over the others: both give the same verdicts, and a store that breaks its promise
//! to answer at once fails the admission rather than hang it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tollgate::{Acquisition, Admission, Charge, ChargeResult, ConcurrencyLimit, Decision};
use tollgate::{LeaseId, Limiter, MemoryStore, Policy, PreparedMemory, PreparedMemoryLeases};
use tollgate::{Rate, Store, StoreError, Timestamp};

/// A memory store whose every answer waits one poll first (`stuck`: forever), and that says
/// it answers at once when `claims_at_once`.
#[derive(Debug)]
struct Waiting {
    store: MemoryStore,
    stuck: bool,
    claims_at_once: bool,
}

/// `output`, after one `Pending` (forever `Pending` when `stuck`).
struct Later<T> {
    output: Option<T>,
    waited: bool,
    stuck: bool,
}

impl<T: Unpin> Future for Later<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.stuck || !self.waited {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(self.output.take().expect("polled once more"))
    }
}

impl Waiting {
    /// The memory store's answer (ready at once), given later.
    fn later<T: Unpin>(&self, future: impl Future<Output = T>) -> Later<T> {
        let mut context = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(output) = std::pin::pin!(future).poll(&mut context) else {
            panic!("the memory store answers at once");
        };
        Later {
            output: Some(output),
            waited: false,
            stuck: self.stuck,
        }
    }
}

impl Store for Waiting {
    type Prepared = PreparedMemory;
    type PreparedLeases = PreparedMemoryLeases;
    fn prepare(&self, name: &str, policy: &Policy) -> PreparedMemory {
        self.store.prepare(name, policy)
    }
    fn answers_immediately(&self) -> bool {
        self.claims_at_once
    }
    fn hit<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        self.later(self.store.hit(policy, key, now, cost))
    }
    fn refund<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a> {
        self.later(self.store.refund(policy, key, now, cost))
    }
    fn overdraw<'a>(
        &'a self,
        policy: &'a PreparedMemory,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        self.later(self.store.overdraw(policy, key, now, cost))
    }
    async fn reset(&self, policy: &PreparedMemory, key: &[u8]) -> Result<(), StoreError> {
        self.later(self.store.reset(policy, key)).await
    }
    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> PreparedMemoryLeases {
        self.store.prepare_leases(name, limit)
    }
    fn acquire<'a>(
        &'a self,
        leases: &'a PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a> {
        self.later(self.store.acquire(leases, key, lease, now))
    }
    fn release<'a>(
        &'a self,
        leases: &'a PreparedMemoryLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a> {
        self.later(self.store.release(leases, key, lease, now))
    }
}

fn two_per_minute(stuck: bool, claims_at_once: bool) -> tollgate::PolicyHandle<Waiting> {
    let store = Waiting {
        store: MemoryStore::new(),
        stuck,
        claims_at_once,
    };
    Limiter::new(store).policy("api", Policy::fixed_window(Rate::per_minute(2).into()))
}

#[test]
fn a_store_that_waits_is_decided_as_one_that_answers_at_once() {
    let at_once = Limiter::new(MemoryStore::new())
        .policy("api", Policy::fixed_window(Rate::per_minute(2).into()));
    let waiting = two_per_minute(false, false);
    let decide = |handle| {
        Admission::new()
            .charge(Charge::new(handle, "k", 1))
            .decide()
    };
    for expected in [true, true, false] {
        assert_eq!(
            futures_executor::block_on(decide(at_once.clone())).is_admitted(),
            expected
        );
        let verdict = futures_executor::block_on(
            Admission::new()
                .charge(Charge::new(waiting.clone(), "k", 1))
                .decide(),
        );
        assert_eq!(verdict.is_admitted(), expected);
    }
}

#[test]
fn a_store_that_breaks_its_promise_to_answer_at_once_fails_the_admission() {
    let stuck = two_per_minute(true, true);
    let other = two_per_minute(true, true);
    let verdict = futures_executor::block_on(
        Admission::new()
            .charge(Charge::new(stuck, "k", 1))
            .charge(Charge::new(other, "k", 1))
            .decide(),
    );
    assert!(!verdict.is_admitted());
    assert!(matches!(
        verdict.refused_by(),
        Some((0, ChargeResult::Failed(_)))
    ));
    assert!(matches!(
        verdict.results(),
        [ChargeResult::Failed(_), ChargeResult::Skipped]
    ));
}
