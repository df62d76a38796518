//! A Redis store for tollgate: one count across workers, processes and machines.
//!
//! ```no_run
//! use tollgate::{Limiter, Policy};
//! use tollgate_redis::RedisStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let api = Limiter::new(store).policy("api", Policy::token_bucket("100/second".parse()?)?);
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
//! - `key` is the client's key as it is when it is at most [`MAX_PLAIN_KEY_LEN`] (64) bytes
//!   long, and otherwise `sha256:` and the 64 lowercase hex digits of the SHA-256 of its
//!   bytes (`tollgate:api:1a2b3c4d:sha256:9f86d081...`): a client's key takes at most 71
//!   bytes of Redis, however long it is. Plain keys are at most 64 bytes and digested ones
//!   71, so the two never meet, and two long keys share a count only if SHA-256 collides.
//!   The digest is not keyed (the memory store's is, with a secret per process) because
//!   every process must find the same Redis key for a client, with no secret to share;
//!   SHA-256's collision resistance is what keeps clients from aiming at each other's counts;
//! - the value is a MessagePack array with one state per rate of the policy, in the layout of
//!   the strategy's state in [`tollgate::strategy`] (fixed window `[start, count]`, sliding
//!   window log `[[at, units, ...], total]`, sliding window counter
//!   `[start, previous, current]`, token bucket `[tat]`), and, for a policy with a ban, the
//!   key's [`BanState`](tollgate::strategy::BanState) after them
//!   (`[until, breach window start, breaches]`), times in ticks of [`PreparedRedis::tick`];
//! - the TTL is the time until every rate's state is fresh again (and a ban over, with its
//!   breaches' window), so idle keys vanish by themselves.
//!
//! All rates of a (policy, key) live in that one key, so every script touches one key and one
//! cluster slot.
//!
//! The scripts (`src/lua/`) are twins of the pure functions of [`tollgate::strategy`], three
//! per strategy (a hit, [`apply`](tollgate::strategy::apply) and, for a policy with a ban,
//! [`apply_banned`](tollgate::strategy::apply_banned); a
//! [`refund`](tollgate::strategy::refund); and a late charge,
//! [`overdraw`](tollgate::strategy::overdraw) and
//! [`overdraw_banned`](tollgate::strategy::overdraw_banned)): the same integer arithmetic,
//! checked against them by a differential test over random hits, refunds and late charges
//! that compares decisions and stored states. Each script is `prelude.lua` (helpers), the
//! strategy's file (its state machine), `state.lua` (the arguments, the key's states, writing
//! them back), `decide.lua` (the decisions and the ban) and `apply.lua`, `refund.lua` or
//! `overdraw.lua`. A refund of a key with no state leaves it absent. A ban is kept in the
//! key's value and applied by the hit's script: no round trip more. A hit of the most common
//! shape, a fixed window of one rate with no ban and no delay, runs a script with the
//! policy's numbers written into its source instead (`fixed_window_one.lua`, the fixed
//! window's state machine written out for that shape, on the same stored state): it takes
//! two arguments (the time and the cost) and answers an allowed hit with one number
//! (`remaining × (window + 1) + reset_after`, or two numbers where that could pass 2^53), a
//! denied one with three, which takes about 1.6 times as many hits a second through Redis
//! (see `BENCHMARKS.md`); each such policy loads its own script once.
//! Times are counted in ticks of 1 µs (the resolution of Redis's `TIME`). A policy for which
//! a number a script forms would reach 2^49 ticks (a window; for the sliding window counter,
//! amount × window; for a token bucket, its depth, burst × the ticks a token takes) counts
//! in ticks of 10 µs, 100 µs, ... instead, so that every number stays exact in Lua's
//! doubles. Amounts, bursts and costs are at most [`tollgate::MAX_AMOUNT`] and windows at
//! most [`tollgate::MAX_WINDOW_SECS`]: the core refuses anything larger where policies are
//! made, so nothing is capped here. So decisions are the memory store's, computed at that
//! resolution instead of nanoseconds: a wait is rounded up to whole ticks, and a token
//! bucket refills at most one token per tick (the core refuses buckets faster than one
//! token per microsecond, and a bucket counts in 1 µs ticks unless it takes longer than
//! 2^49 µs, about 17 years, to refill). In client-time mode keys live at least a minute,
//! since the client's clock need not run with Redis's.

mod any_store;
mod connection;
mod grant;
mod key;
mod late;
mod leases;
mod prepared;
mod script;
mod store;
mod tick;
mod uri;

pub use any_store::{AnyStore, PreparedAny, PreparedAnyLeases};
pub use connection::redacted;
pub use key::MAX_PLAIN_KEY_LEN;
pub use late::LateHitStats;
pub use leases::PreparedRedisLeases;
pub use prepared::PreparedRedis;
pub use store::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, RedisStore};
pub use uri::{StorageUri, UriError};
