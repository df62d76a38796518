//! What one limit saw during a replay: requests, denials, each key's denials, and both over
//! time in a bounded number of buckets.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde::Serialize;

/// The most buckets a [`Timeline`] keeps; past it, neighbours merge and buckets widen.
const MAX_BUCKETS: usize = 512;

/// Requests and denials over time, in buckets of one second at first, doubled in width
/// (neighbours merged) whenever the log outgrows [`MAX_BUCKETS`] of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Timeline {
    /// The first bucket's start, in nanoseconds since the epoch.
    pub(crate) start: u64,
    /// Each bucket's width, in nanoseconds.
    pub(crate) width: u64,
    pub(crate) requests: Vec<u64>,
    pub(crate) denied: Vec<u64>,
}

impl Timeline {
    /// A timeline whose first bucket starts at `start`.
    pub(crate) fn new(start: u64) -> Self {
        Self {
            start,
            width: 1_000_000_000,
            requests: Vec::new(),
            denied: Vec::new(),
        }
    }

    /// Counts a request at `time` (never before `start` nor an earlier count's time).
    fn record(&mut self, time: u64, denied: bool) {
        let mut index = (time.saturating_sub(self.start) / self.width) as usize;
        while index >= MAX_BUCKETS {
            self.widen();
            index = (time.saturating_sub(self.start) / self.width) as usize;
        }
        if index >= self.requests.len() {
            self.requests.resize(index + 1, 0);
            self.denied.resize(index + 1, 0);
        }
        self.requests[index] += 1;
        self.denied[index] += u64::from(denied);
    }

    /// Merges neighbouring buckets: half as many, twice as wide.
    fn widen(&mut self) {
        let merge = |counts: &mut Vec<u64>| {
            *counts = counts.chunks(2).map(|pair| pair.iter().sum()).collect();
        };
        merge(&mut self.requests);
        merge(&mut self.denied);
        self.width *= 2;
    }
}

/// What one limit saw.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) requests: u64,
    pub(crate) denied: u64,
    /// Every key met, with its denials, up to `max_keys` of them.
    keys: HashMap<Box<[u8]>, u64, RandomState>,
    max_keys: usize,
    /// Whether a key was met once `max_keys` were tracked: key counts are then lower bounds.
    pub(crate) capped: bool,
    pub(crate) timeline: Timeline,
}

impl Tally {
    /// A tally whose timeline starts at `start`, tracking at most `max_keys` keys.
    pub(crate) fn new(start: u64, max_keys: usize) -> Self {
        Self {
            requests: 0,
            denied: 0,
            keys: HashMap::default(),
            max_keys,
            capped: false,
            timeline: Timeline::new(start),
        }
    }

    /// Counts a decision on `key` at `time`.
    #[inline]
    pub(crate) fn record(&mut self, key: &[u8], denied: bool, time: u64) {
        self.requests += 1;
        self.denied += u64::from(denied);
        let room = self.keys.len() < self.max_keys;
        match self.keys.get_mut(key) {
            Some(count) => *count += u64::from(denied),
            None if room => {
                self.keys.insert(key.into(), u64::from(denied));
            }
            None => self.capped = true,
        }
        self.timeline.record(time, denied);
    }

    /// How many keys were met.
    pub(crate) fn distinct_keys(&self) -> usize {
        self.keys.len()
    }

    /// How many keys were denied at least once.
    pub(crate) fn keys_denied(&self) -> usize {
        self.keys.values().filter(|&&denied| denied > 0).count()
    }

    /// The `top` keys denied most, most first (ties by key), with their denials.
    pub(crate) fn top_denied(&self, top: usize) -> Vec<(String, u64)> {
        let mut denied: Vec<(&[u8], u64)> = self
            .keys
            .iter()
            .filter(|(_, denied)| **denied > 0)
            .map(|(key, denied)| (&**key, *denied))
            .collect();
        let order = |a: &(&[u8], u64), b: &(&[u8], u64)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
        if denied.len() > top {
            denied.select_nth_unstable_by(top, order);
            denied.truncate(top);
        }
        denied.sort_unstable_by(order);
        denied
            .into_iter()
            .map(|(key, count)| (String::from_utf8_lossy(key).into_owned(), count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_BUCKETS, Tally};

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn keys_and_denials_are_counted() {
        let mut tally = Tally::new(0, 3);
        for (key, denied) in [
            ("a", false),
            ("a", true),
            ("b", true),
            ("b", true),
            ("c", false),
        ] {
            tally.record(key.as_bytes(), denied, 0);
        }
        assert_eq!((tally.requests, tally.denied), (5, 3));
        assert_eq!((tally.distinct_keys(), tally.keys_denied()), (3, 2));
        assert_eq!(tally.top_denied(1), [("b".to_owned(), 2)]);
        assert_eq!(
            tally.top_denied(5),
            [("b".to_owned(), 2), ("a".to_owned(), 1)]
        );
        assert!(!tally.capped);
        tally.record(b"d", true, 0);
        assert_eq!(
            (tally.requests, tally.denied, tally.distinct_keys()),
            (6, 4, 3)
        );
        assert!(tally.capped, "a fourth key is not tracked");
    }

    #[test]
    fn timelines_stay_bounded() {
        let mut tally = Tally::new(10 * SECOND, 10);
        tally.record(b"k", false, 10 * SECOND);
        tally.record(b"k", true, 11 * SECOND);
        assert_eq!(tally.timeline.requests, [1, 1]);
        let far = 10 * SECOND + 10 * MAX_BUCKETS as u64 * SECOND;
        tally.record(b"k", true, far);
        let timeline = &tally.timeline;
        assert!(timeline.requests.len() <= MAX_BUCKETS);
        assert_eq!(timeline.width, 16 * SECOND);
        assert_eq!(timeline.requests.iter().sum::<u64>(), 3);
        assert_eq!((timeline.requests[0], timeline.denied[0]), (2, 1));
        assert_eq!(*timeline.denied.last().expect("buckets"), 1);
    }
}
