//! The Lua twins of the strategies: for each strategy one script that applies hits, one that
//! refunds and one that charges late, each the shared prelude, the strategy's state machine,
//! the shared arguments and state (`state.lua`), the shared decisions and ban (`decide.lua`)
//! and the operation (`apply.lua`, `refund.lua` or `overdraw.lua`); and the hit scripts baked
//! for one policy's numbers (`fixed_window_one.lua`).

use std::sync::LazyLock;

use redis::Script;
use tollgate::Strategy;
use tollgate::strategy::TickRate;

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

/// The hit script of a fixed window of one rate `limit`, with no ban and no delay, counted in
/// ticks of `tick_us`: `lua/fixed_window_one.lua`, the rate's numbers (and the `pack` of its
/// one-number answers, see [`crate::prepared`]) written before it. It takes two arguments instead of eight and
/// replies with two or three numbers instead of eight (see [`crate::prepared`]).
pub(crate) fn fixed_window_one(limit: &TickRate, tick_us: u64, pack: u64) -> Script {
    Script::new(&format!(
        "local CAPACITY, WINDOW, TICK_US, PACK = {}, {}, {}, {}\n{}",
        limit.capacity(),
        limit.window(),
        tick_us,
        pack,
        include_str!("lua/fixed_window_one.lua"),
    ))
}
