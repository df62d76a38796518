//! [`Activity`]: one policy's allowed, denied and shadow-denied hits per second over the last
//! [`SECONDS`] seconds, counted without a lock or an allocation.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many seconds a policy's activity covers (five minutes).
pub(crate) const SECONDS: usize = 300;

/// The low half of a slot: its count.
const COUNT: u64 = u32::MAX as u64;

/// What a hit came to, as the dashboard charts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allowed = 0,
    Denied = 1,
    ShadowDenied = 2,
}

/// Per outcome, a ring of one slot per second: each slot holds the second it counts (the
/// high 32 bits) and its count (the low 32 bits), so that a slot reused for a later second
/// starts afresh in the same compare-and-swap that counts the hit.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Outcome `o`'s slot for second `s` is at `o * SECONDS + s % SECONDS`.
    slots: Box<[AtomicU64]>,
}

/// The counts of each second of a window, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Series {
    pub(crate) allowed: Vec<u64>,
    pub(crate) denied: Vec<u64>,
    pub(crate) shadow_denied: Vec<u64>,
}

impl Activity {
    /// No hits yet.
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..3 * SECONDS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts a hit that came to `outcome` during `second` (since the recorder's start).
    pub(crate) fn count(&self, outcome: Outcome, second: u64) {
        let stamp = second & COUNT;
        let slot = &self.slots[outcome as usize * SECONDS + second as usize % SECONDS];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = match current >> 32 {
                // A hit that waited until its slot counts a later second: too old to show.
                later if later > stamp => return,
                same if same == stamp => {
                    if current & COUNT == COUNT {
                        return; // saturated: four billion hits in one second
                    }
                    current + 1
                }
                _ => (stamp << 32) | 1,
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The counts of the [`SECONDS`] seconds up to `now` (included, the last), oldest first.
    pub(crate) fn series(&self, now: u64) -> Series {
        let outcome = |outcome: Outcome| -> Vec<u64> {
            (0..SECONDS as u64)
                .map(|ago| {
                    let Some(second) = now.checked_sub(SECONDS as u64 - 1 - ago) else {
                        return 0;
                    };
                    let slot = self.slots[outcome as usize * SECONDS + second as usize % SECONDS]
                        .load(Ordering::Relaxed);
                    if slot >> 32 == second & COUNT {
                        slot & COUNT
                    } else {
                        0
                    }
                })
                .collect()
        };
        Series {
            allowed: outcome(Outcome::Allowed),
            denied: outcome(Outcome::Denied),
            shadow_denied: outcome(Outcome::ShadowDenied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_second_apart_and_forgets_after_the_window() {
        let activity = Activity::new();
        for _ in 0..7 {
            activity.count(Outcome::Allowed, 1000);
        }
        activity.count(Outcome::Denied, 1000);
        activity.count(Outcome::Denied, 1001);
        activity.count(Outcome::ShadowDenied, 1001);
        let series = activity.series(1001);
        assert_eq!(series.allowed.len(), SECONDS);
        assert_eq!(series.allowed[SECONDS - 2..], [7, 0]);
        assert_eq!(series.denied[SECONDS - 2..], [1, 1]);
        assert_eq!(series.shadow_denied[SECONDS - 2..], [0, 1]);
        assert_eq!(series.allowed.iter().sum::<u64>(), 7);
        // A window later, the slot of second 1000 counts second 1300 afresh.
        activity.count(Outcome::Allowed, 1000 + SECONDS as u64);
        let series = activity.series(1000 + SECONDS as u64);
        assert_eq!(series.allowed.iter().sum::<u64>(), 1);
        assert_eq!(
            series.denied.iter().sum::<u64>(),
            1,
            "second 1001 is still in the window"
        );
        // A late hit for the old second is dropped, not counted in the new one.
        activity.count(Outcome::Allowed, 1000);
        assert_eq!(
            activity
                .series(1000 + SECONDS as u64)
                .allowed
                .iter()
                .sum::<u64>(),
            1
        );
    }

    #[test]
    fn the_first_seconds_have_no_history() {
        let activity = Activity::new();
        activity.count(Outcome::Allowed, 0);
        let series = activity.series(2);
        assert_eq!(series.allowed[SECONDS - 3..], [1, 0, 0]);
        assert_eq!(series.allowed.iter().sum::<u64>(), 1);
    }

    #[test]
    fn threads_lose_no_hit() {
        let activity = std::sync::Arc::new(Activity::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let activity = std::sync::Arc::clone(&activity);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        activity.count(Outcome::Denied, 5 + i % 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(activity.series(6).denied[SECONDS - 2..], [20_000, 20_000]);
    }
}
