//! Naive models of the four strategies: what each would decide for a sequence of hits of
//! cost 1, by plain arithmetic over the timestamps (nanoseconds), one state per key.

use std::collections::HashMap;

/// A strategy, as the model computes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Model {
    /// A window opens at a key's first hit after the last one closed; `amount` hits fit.
    FixedWindow,
    /// A hit fits when fewer than `amount` allowed hits lie within the window before it.
    SlidingLog,
    /// Windows of fixed length from a key's first hit; a hit fits when the previous window's
    /// count, weighted by how much of it still overlaps the sliding window, plus the current
    /// window's, stays within `amount`.
    SlidingCounter,
    /// A bucket of `burst` tokens, one coming back every ⌈window / amount⌉.
    TokenBucket { burst: u64 },
}

/// What the model decided.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) denied: u64,
    /// Denials per key.
    pub(crate) per_key: HashMap<String, u64>,
}

impl Outcome {
    /// How many keys were denied at least once.
    pub(crate) fn keys_denied(&self) -> u64 {
        self.per_key.values().filter(|&&n| n > 0).count() as u64
    }

    /// The `n` keys denied most, most first, ties by key.
    pub(crate) fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut keys: Vec<(String, u64)> = self
            .per_key
            .iter()
            .filter(|(_, denied)| **denied > 0)
            .map(|(key, denied)| (key.clone(), *denied))
            .collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        keys.truncate(n);
        keys
    }
}

/// Decides `hits` (key, time in ns, never decreasing) under `model` with `amount` hits per
/// `window` ns.
pub(crate) fn decide(model: Model, amount: u64, window: u64, hits: &[(&str, u64)]) -> Outcome {
    // Per key: the times of allowed hits (the log), or two numbers of state.
    let mut allowed: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut state: HashMap<&str, (u64, u64, u64)> = HashMap::new();
    let mut outcome = Outcome::default();
    for &(key, t) in hits {
        let fits = match model {
            Model::FixedWindow => {
                let (start, count, _) = state.entry(key).or_default();
                if *count == 0 || t >= *start + window {
                    (*start, *count) = (t, 0);
                }
                let fits = *count < amount;
                *count += u64::from(fits);
                fits
            }
            Model::SlidingLog => {
                let log = allowed.entry(key).or_default();
                let live = log.iter().filter(|&&at| at + window > t).count() as u64;
                let fits = live < amount;
                if fits {
                    log.push(t);
                }
                fits
            }
            Model::SlidingCounter => {
                let (start, previous, current) = state.entry(key).or_default();
                if t >= *start + 2 * window {
                    (*previous, *current) = (0, 0);
                } else if t >= *start + window {
                    (*start, *previous, *current) = (*start + window, *current, 0);
                }
                if (*previous, *current) == (0, 0) {
                    *start = t;
                }
                let elapsed = (t - *start).min(window);
                let weighted = u128::from(*previous) * u128::from(window - elapsed)
                    + u128::from(*current + 1) * u128::from(window);
                let fits = weighted <= u128::from(amount) * u128::from(window);
                *current += u64::from(fits);
                fits
            }
            Model::TokenBucket { burst } => {
                let interval = window.div_ceil(amount);
                // The theoretical arrival time: when the bucket is full again.
                let (tat, _, _) = state.entry(key).or_default();
                let fits = tat.saturating_sub(t) + interval <= burst * interval;
                if fits {
                    *tat = (*tat).max(t) + interval;
                }
                fits
            }
        };
        let denied = outcome.per_key.entry(key.to_owned()).or_default();
        if !fits {
            *denied += 1;
            outcome.denied += 1;
        }
    }
    outcome
}
