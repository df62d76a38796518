//! The tollgate rate limiting engine: limit notation, four strategies, an in-memory store and
//! the [`Limiter`].
//!
//! A [`Policy`] is one or more [`Rate`]s (`"10/second; 100/minute"`) applied with one
//! [`Strategy`]. A [`Key`] names who pays. A [`Store`] keeps one small state per (policy,
//! key) and applies a hit atomically, returning a [`Decision`]: allowed or not, the limit,
//! what remains, when the state resets and, when denied, exactly how long until the same
//! hit would succeed. A [`Limiter`] prepares policies over a store as [`PolicyHandle`]s,
//! which are what hits go through. An [`Admission`] is one request meeting several policies:
//! it charges all of them or none, and may give charges back after the response
//! (*deduct-when*: charge before a request runs, so that parallel requests count, and give
//! it back if it should not count, when only failed logins count, say).
//!
//! ```
//! use std::time::Duration;
//! use tollgate::{Limiter, ManualClock, MemoryStore, Policy};
//!
//! # futures_executor::block_on(async {
//! let clock = ManualClock::new();
//! let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
//! let ping = limiter.policy("ping", Policy::token_bucket("1/second".parse()?)?.with_burst(2)?);
//!
//! assert!(ping.hit("alice").await?.allowed());
//! assert!(ping.hit("alice").await?.allowed());
//! let denied = ping.hit("alice").await?;
//! assert_eq!(denied.retry_after(), Some(Duration::from_secs(1)));
//! clock.advance(Duration::from_millis(1050));
//! assert!(ping.hit("alice").await?.allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//!
//! - `rate/`: [`Rate`], [`Rates`] and the notation parser: `"5/minute"` to rates and back;
//!   the bounds every store shares, [`MAX_AMOUNT`] and [`MAX_WINDOW_SECS`] (and
//!   [`MAX_RATES`]).
//! - `policy/`: [`Policy`] (rates, a [`Strategy`], a token bucket's burst), and the
//!   token bucket's bound, [`MAX_TOKENS_PER_SECOND`].
//! - [`strategy`]: each strategy as a pure state machine, time passed in;
//!   [`strategy::apply`], which charges a hit to all of a policy's rates or none; and
//!   [`strategy::refund`], which gives units back to all of them. Every store uses these
//!   functions; nothing else decides. This module is for store implementors.
//! - `decision.rs`: [`Decision`], what a hit is told.
//! - `key.rs`: [`Key`], who pays.
//! - `clock.rs`: [`Clock`]; [`MonotonicClock`] by default, [`ManualClock`] for tests,
//!   [`SystemClock`] where processes must agree.
//! - `limiter/`: [`Limiter`], [`PolicyHandle`] (hits), the inline policies, [`Admission`]
//!   (a request meeting several policies) and [`Error`].
//! - `store/`: the [`Store`] seam; [`MemoryStore`], sharded and bounded; [`Failover`], a
//!   store around another that applies a [`FailureMode`] (allow, deny or fall back to
//!   memory) when it fails; [`Leasing`], a store around a shared one that serves hits from
//!   quota leases ([`Store::take`]); and, behind the `test-util` feature,
//!   `testing::FlakyStore`.
//!
//! Nothing here knows about HTTP or Redis: those live in `tollgate-tower`, `tollgate-redis`
//! and `tollgate-server`.

mod ban;
mod clock;
mod decision;
mod key;
mod lease;
mod limiter;
mod policy;
mod rate;
mod store;
pub mod strategy;

pub use ban::{Ban, InvalidBan};
pub use clock::{Clock, ManualClock, MonotonicClock, SystemClock, Timestamp};
pub use decision::Decision;
pub use key::{Key, KeyBytes};
pub use lease::{
    Acquisition, ConcurrencyLimit, ConcurrencyLimitError, DEFAULT_LEASE_TTL, InvalidLeaseId,
    LeaseId, MAX_IN_FLIGHT,
};
pub use limiter::{
    Admission, Charge, ChargeResult, ConcurrencyHandle, Error, HeldLeases, InFlight, Limiter,
    MAX_INLINE_POLICIES, PolicyHandle, Settlement, SlotResult, Verdict,
};
pub use policy::{MAX_DELAY, MAX_LOG_AMOUNT, MAX_TOKENS_PER_SECOND, Policy, PolicyError, Strategy};
pub use rate::{
    InvalidRate, MAX_AMOUNT, MAX_RATES, MAX_WINDOW_SECS, ParseError, Rate, Rates, parse_duration,
};
pub use store::failover::{
    Failover, FailoverSwitch, FailureMode, PreparedFailover, PreparedFailoverLeases,
};
pub use store::grant::{GiveBack, Grant};
pub use store::leasing::{
    DEFAULT_MAX_LEASED_KEYS, InvalidQuotaLease, LeaseStats, Leasing, MAX_LEASE, MIN_LEASE,
    PreparedLeasing, QuotaLease,
};
pub use store::memory::{
    DEFAULT_MAX_KEYS, MemoryStats, MemoryStore, PreparedMemory, PreparedMemoryLeases,
};
#[cfg(feature = "test-util")]
pub use store::testing;
pub use store::{PendingHit, Store, StoreError, SyncStore};
