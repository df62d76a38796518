//! The Lua twins of the strategies: for each strategy one script that applies hits, one that
//! refunds and one that charges late, each the shared prelude, the strategy's state machine,
//! the shared arguments and state (`state.lua`), the shared decisions and ban (`decide.lua`)
//! and the operation (`apply.lua`, `refund.lua` or `overdraw.lua`).

use std::sync::LazyLock;

use redis::Script;
use tollgate::Strategy;

macro_rules! strategy_script {
    ($file:literal, $operation:literal) => {
        concat!(
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $file)),
            include_str!("lua/state.lua"),
            include_str!("lua/decide.lua"),
            include_str!(concat!("lua/", $operation)),
        )
    };
}

/// The source of `strategy`'s script for `$operation` (`"apply.lua"`, `"refund.lua"` or
/// `"overdraw.lua"`).
macro_rules! strategy_scripts {
    ($strategy:expr, $operation:literal) => {
        match $strategy {
            Strategy::FixedWindow => strategy_script!("fixed_window.lua", $operation),
            Strategy::SlidingWindowLog => strategy_script!("sliding_window_log.lua", $operation),
            Strategy::SlidingWindowCounter => {
                strategy_script!("sliding_window_counter.lua", $operation)
            }
            Strategy::TokenBucket => strategy_script!("token_bucket.lua", $operation),
        }
    };
}

/// The source of `strategy`'s quota lease script: as [`strategy_script!`] with `take.lua`,
/// `take_args.lua` taking its own arguments off ARGV before `state.lua` reads it.
macro_rules! take_script {
    ($file:literal) => {
        concat!(
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $file)),
            include_str!("lua/take_args.lua"),
            include_str!("lua/state.lua"),
            include_str!("lua/decide.lua"),
            include_str!("lua/take.lua"),
        )
    };
}

/// The source of `strategy`'s quota lease script.
fn take_source(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::FixedWindow => take_script!("fixed_window.lua"),
        Strategy::SlidingWindowLog => take_script!("sliding_window_log.lua"),
        Strategy::SlidingWindowCounter => take_script!("sliding_window_counter.lua"),
        Strategy::TokenBucket => take_script!("token_bucket.lua"),
    }
}

/// A strategy's scripts.
#[derive(Debug)]
pub(crate) struct Scripts {
    /// Applies a hit.
    pub(crate) apply: Script,
    /// Gives units back.
    pub(crate) refund: Script,
    /// Charges late, whatever the room left.
    pub(crate) overdraw: Script,
    /// Gives back, then charges a quota lease.
    pub(crate) take: Script,
}

static SCRIPTS: LazyLock<[Scripts; 4]> = LazyLock::new(|| {
    Strategy::ALL.map(|strategy| Scripts {
        apply: Script::new(strategy_scripts!(strategy, "apply.lua")),
        refund: Script::new(strategy_scripts!(strategy, "refund.lua")),
        overdraw: Script::new(strategy_scripts!(strategy, "overdraw.lua")),
        take: Script::new(take_source(strategy)),
    })
});

/// The scripts for `strategy`, with their SHA1s computed once per process.
pub(crate) fn scripts(strategy: Strategy) -> &'static Scripts {
    let [fixed_window, log, counter, bucket] = &*SCRIPTS;
    match strategy {
        Strategy::FixedWindow => fixed_window,
        Strategy::SlidingWindowLog => log,
        Strategy::SlidingWindowCounter => counter,
        Strategy::TokenBucket => bucket,
    }
}
