//! The tollgate rate limiting engine: limit notation, four strategies, an in-memory store and
//! the [`Limiter`].
//!
//! A [`Policy`] is one or more [`Rate`]s (`"10/second; 100/minute"`) applied with one
//! [`Strategy`]. A [`Key`] names who pays. A [`Store`] keeps one small state per (policy,
//! key) and applies a hit atomically, returning a [`Decision`]: allowed or not, the limit,
//! what remains, when the state resets and, when denied, exactly how long until the same
//! hit would succeed. A [refund](Limiter::refund) gives units back, for *deduct-when*: charge
//! a hit before a request runs, so that parallel requests count, and give it back after the
//! response if it should not count (when only failed logins count, say).
//!
//! ```
//! use std::time::Duration;
//! use tollgate::{Limiter, ManualClock, MemoryStore, Policy};
//!
//! # futures_executor::block_on(async {
//! let clock = ManualClock::new();
//! let limiter = Limiter::new(MemoryStore::new())
//!     .with_clock(clock.clone())
//!     .with_policy("ping", Policy::token_bucket("1/second".parse()?).with_burst(2)?);
//!
//! assert!(limiter.hit("ping", "alice").await?.allowed());
//! assert!(limiter.hit("ping", "alice").await?.allowed());
//! let denied = limiter.hit("ping", "alice").await?;
//! assert_eq!(denied.retry_after(), Some(Duration::from_secs(1)));
//! clock.advance(Duration::from_millis(1050));
//! assert!(limiter.hit("ping", "alice").await?.allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//!
//! - [`rate`](Rate) and the notation parser: `"5/minute"` to [`Rate`]s and back.
//! - [`policy`](Policy): rates, a [`Strategy`], a token bucket's burst.
//! - [`strategy`]: each strategy as a pure state machine, time passed in;
//!   [`strategy::apply`], which charges a hit to all of a policy's rates or none; and
//!   [`strategy::refund`], which gives units back to all of them. Every store uses these
//!   functions; nothing else decides.
//! - [`Store`]: the seam between the limiter and where states live; [`MemoryStore`] keeps
//!   them in this process, sharded and bounded.
//! - [`Clock`]: [`MonotonicClock`] by default, [`ManualClock`] for tests, [`SystemClock`]
//!   where processes must agree.
//! - [`Failover`]: a store around another that applies a [`FailurePolicy`] (allow, deny or
//!   fall back to memory) when it fails.
//! - [`Limiter`]: named policies over a store and a clock; what users call.
//!
//! Nothing here knows about HTTP or Redis: those live in `tollgate-tower`, `tollgate-redis`
//! and `tollgate-server`.

mod clock;
mod decision;
mod failover;
mod flaky;
mod key;
mod limiter;
mod memory;
mod notation;
mod policy;
mod rate;
mod store;
pub mod strategy;

pub use clock::{Clock, ManualClock, MonotonicClock, SystemClock, Timestamp};
pub use decision::Decision;
pub use failover::{Failover, FailurePolicy, PreparedFailover};
pub use flaky::FlakyStore;
pub use key::{Key, KeyBytes};
pub use limiter::{Error, Limiter, MAX_INLINE_POLICIES, NamedPolicy};
pub use memory::{DEFAULT_MAX_KEYS, MemoryPolicy, MemoryStats, MemoryStore};
pub use notation::ParseError;
pub use policy::{Policy, PolicyError, Strategy};
pub use rate::{InvalidWindow, MAX_WINDOW_SECS, Rate, Rates};
pub use store::{Store, StoreError};
