//! The Lua twins of the strategies: one script per strategy, each the shared prelude, the
//! strategy's state machine and the shared `apply`.

use std::sync::LazyLock;

use redis::Script;
use tollgate::Strategy;

macro_rules! strategy_script {
    ($file:literal) => {
        concat!(
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $file)),
            include_str!("lua/apply.lua"),
        )
    };
}

/// The source of the script that applies hits for `strategy`.
pub(crate) fn source(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::FixedWindow => strategy_script!("fixed_window.lua"),
        Strategy::SlidingWindowLog => strategy_script!("sliding_window_log.lua"),
        Strategy::SlidingWindowCounter => strategy_script!("sliding_window_counter.lua"),
        Strategy::TokenBucket => strategy_script!("token_bucket.lua"),
    }
}

static SCRIPTS: LazyLock<[Script; 4]> =
    LazyLock::new(|| Strategy::ALL.map(|strategy| Script::new(source(strategy))));

/// The script for `strategy`, with its SHA1 computed once per process.
pub(crate) fn script(strategy: Strategy) -> &'static Script {
    let [fixed_window, log, counter, bucket] = &*SCRIPTS;
    match strategy {
        Strategy::FixedWindow => fixed_window,
        Strategy::SlidingWindowLog => log,
        Strategy::SlidingWindowCounter => counter,
        Strategy::TokenBucket => bucket,
    }
}
