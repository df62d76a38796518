//! A Redis store for tollgate: one count across workers, processes and machines.
//!
//! ```no_run
//! use tollgate::{Limiter, Policy};
//! use tollgate_redis::RedisStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let api = Limiter::new(store).policy("api", Policy::token_bucket("100/second".parse()?));
//! if !api.hit("203.0.113.7").await?.allowed() {
//!     // answer 429
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! Each (policy, key) is one Redis string:
//!
//! ```text
//! {prefix}{policy name}:{fingerprint}:{key}      e.g. tollgate:login:1a2b3c4d:user:42
//! ```
//!
//! - `prefix` is `tollgate:` unless set with [`RedisStore::with_prefix`];
//! - `fingerprint` is 8 hex digits of a hash of the policy's canonical text, so a changed
//!   policy starts from fresh keys rather than reading states of another shape;
//! - the value is a MessagePack array with one state per rate of the policy, in the layout of
//!   the strategy's state in [`tollgate::strategy`] (fixed window `[start, count]`, sliding
//!   window log `[[at, units, ...], total]`, sliding window counter
//!   `[start, previous, current]`, token bucket `[tat]`), times in ticks of
//!   [`PreparedRedis::tick`];
//! - the TTL is the time until every rate's state is fresh again, so idle keys vanish by
//!   themselves.
//!
//! All rates of a (policy, key) live in that one key, so every script touches one key and one
//! cluster slot.
//!
//! The scripts (`src/lua/`) are twins of the pure functions of [`tollgate::strategy`], two per
//! strategy (a hit, [`apply`](tollgate::strategy::apply), and a
//! [`refund`](tollgate::strategy::refund)): the same integer arithmetic, checked against them
//! by a differential test over random hits and refunds that compares decisions and stored
//! states. Each script is `prelude.lua` (helpers), the strategy's file (its state machine),
//! `state.lua` (the arguments, the key's states, writing them back) and `apply.lua` or
//! `refund.lua`. A refund of a key with no state leaves it absent.
//! Times are counted in ticks of 1 µs (the resolution of Redis's `TIME`); a policy whose
//! `amount × window` reaches 2^49 µs counts in 10 µs, 100 µs, ... so that every number stays
//! exact in Lua's doubles, and amounts above [`MAX_AMOUNT`] are capped to it. So decisions
//! are the memory store's, computed at that resolution instead of nanoseconds: a token
//! bucket refills at most one token per tick, and a wait is rounded to whole ticks. In
//! client-time mode keys live at least a minute, since the client's clock need not run with
//! Redis's.

mod connection;
mod late;
mod script;
mod store;
mod uri;

pub use connection::redacted;
pub use late::LateHitStats;
pub use store::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, MAX_AMOUNT, PreparedRedis, RedisStore};
pub use uri::{AnyStore, PreparedAny, StorageUri, UriError};
