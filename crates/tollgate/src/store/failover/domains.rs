//! [`Domains`]: which failure domains of a store a [`Failover`](super::Failover) counts in
//! memory, the probes that bring each one back, and the [`FailoverSwitch`]es of the whole.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::clock::Timestamp;

/// A domain's state while its store answers.
const HEALTHY: u64 = u64::MAX;

/// The most probes that start in one probe interval, over every failing domain together.
pub(crate) const MAX_PROBES_PER_INTERVAL: u64 = 16;

/// Where a [`Failover`](super::Failover) sends hits now, as its observer hears of it: once
/// when hits start being counted in memory (with why), once when they are all counted in
/// the store again.
///
/// In a store of several failure domains (the hash slots of a Redis Cluster), only the keys
/// of failing domains are counted in memory: the switch to the fallback is reported when the
/// first domain fails, the switch back when the last one answers again.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use tollgate::testing::FlakyStore; // behind the `test-util` feature
/// use tollgate::{Failover, FailoverSwitch, FailureMode, Policy, Rate, Store, Timestamp};
///
/// # futures_executor::block_on(async {
/// let heard = Arc::new(Mutex::new(Vec::new()));
/// let flaky = FlakyStore::new();
/// let failover = Failover::new(flaky.clone(), FailureMode::Fallback).on_switch({
///     let heard = Arc::clone(&heard);
///     move |switch: &FailoverSwitch| heard.lock().unwrap().push(switch.to_string())
/// });
/// let p = failover.prepare("p", &Policy::fixed_window(Rate::per_minute(100).into()));
/// flaky.set_down(true);
/// let at = |ms| Timestamp::from_nanos(0) + Duration::from_millis(ms);
/// for ms in [0, 10, 20] {
///     failover.hit(&p, b"k", at(ms), 1).await?; // reported once
/// }
/// flaky.set_down(false);
/// failover.hit(&p, b"k", at(1_000), 1).await?; // a probe: the store answers
/// assert_eq!(*heard.lock().unwrap(), [
///     "storage failing, counting in memory: store timed out: flaky store is down",
///     "storage answering again after 1s in memory",
/// ]);
/// # Ok::<(), tollgate::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailoverSwitch {
    /// The store failed: hits (those of the failing domain) are counted in memory.
    ToFallback {
        /// The store's error, as text.
        cause: String,
    },
    /// Every failing domain answered a probe: hits are counted in the store again.
    Back {
        /// How long hits were counted in memory, by the hits' clock.
        after: Duration,
    },
}

impl fmt::Display for FailoverSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailoverSwitch::ToFallback { cause } => {
                write!(f, "storage failing, counting in memory: {cause}")
            }
            FailoverSwitch::Back { after } => {
                write!(f, "storage answering again after {after:?} in memory")
            }
        }
    }
}

/// What hears of each switch.
pub(crate) type SwitchObserver = Arc<dyn Fn(&FailoverSwitch) + Send + Sync>;

/// Where a hit goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route {
    /// To the store, its domain healthy (`None` when no domain fails, so it was not asked).
    Store(Option<usize>),
    /// To the store as the probe of a failing domain.
    Probe(usize),
    /// To memory: the domain fails and its probe is not due.
    Fallback(usize),
}

impl Route {
    /// The domain, if it was worked out.
    pub(crate) fn domain(self) -> Option<usize> {
        match self {
            Route::Store(domain) => domain,
            Route::Probe(domain) | Route::Fallback(domain) => Some(domain),
        }
    }
}

/// The probes started in the current probe interval, over every failing domain: at most
/// [`MAX_PROBES_PER_INTERVAL`], so that a dead node owning thousands of hash slots is not
/// tried once per slot per interval (each try perhaps waiting out the store's timeout). A
/// probe that succeeds gives its place back: once the store answers, failing domains come
/// back as fast as their hits arrive.
#[derive(Debug, Default)]
struct ProbeBudget {
    /// The interval's number (the hits' clock divided by the interval) in the high bits,
    /// the probes started in it in the low [`ProbeBudget::COUNT_BITS`].
    window: AtomicU64,
}

impl ProbeBudget {
    const COUNT_BITS: u32 = 16;

    fn interval_of(now: u64, interval: Duration) -> u64 {
        now / (interval.as_nanos() as u64).max(1)
    }

    /// Takes a place for a probe at `now`, if the interval has one left. A clock that went
    /// back counts in the latest interval.
    fn take(&self, now: u64, interval: Duration) -> bool {
        let current = Self::interval_of(now, interval);
        self.window
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |window| {
                let (at, started) = (window >> Self::COUNT_BITS, window & 0xFFFF);
                if current > at {
                    Some((current << Self::COUNT_BITS) | 1)
                } else if started < MAX_PROBES_PER_INTERVAL {
                    Some(window + 1)
                } else {
                    None
                }
            })
            .is_ok()
    }

    /// Gives back the place a probe at `now` took, if its interval is still the current one.
    fn give_back(&self, now: u64, interval: Duration) {
        let current = Self::interval_of(now, interval);
        let _ = self
            .window
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |window| {
                let (at, started) = (window >> Self::COUNT_BITS, window & 0xFFFF);
                (at == current && started > 0).then(|| window - 1)
            });
    }
}

/// The state of each failure domain, and the switches of the whole.
pub(crate) struct Domains {
    /// Per domain: [`HEALTHY`], or when (in the hits' clock, ns) its store was last tried.
    states: Box<[AtomicU64]>,
    /// The probes of this interval, over every domain.
    probes: ProbeBudget,
    /// Domains failing now: while 0, a hit goes to the store without asking its domain.
    failing: AtomicUsize,
    /// Switches to the fallback so far.
    switches: AtomicU64,
    /// Held while a domain changes state, so that `failing` and the switches reported
    /// follow the domains exactly, in order; holds when the current fallback began.
    switching: Mutex<u64>,
    observer: Option<SwitchObserver>,
}

impl fmt::Debug for Domains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Domains")
            .field("domains", &self.states.len())
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

impl Domains {
    /// `count` healthy domains (at least 1).
    pub(crate) fn new(count: usize) -> Self {
        Self {
            states: (0..count.max(1)).map(|_| AtomicU64::new(HEALTHY)).collect(),
            probes: ProbeBudget::default(),
            failing: AtomicUsize::new(0),
            switches: AtomicU64::new(0),
            switching: Mutex::new(0),
            observer: None,
        }
    }

    pub(crate) fn set_observer(&mut self, observer: SwitchObserver) {
        self.observer = Some(observer);
    }

    /// How many domains fail now.
    pub(crate) fn failing(&self) -> usize {
        self.failing.load(Ordering::Relaxed)
    }

    /// Switches to the fallback so far.
    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// `domain` as an index of `states`.
    pub(crate) fn index(&self, domain: usize) -> usize {
        domain % self.states.len()
    }

    /// Where a hit at `now` goes: to the store while no domain fails (without asking
    /// `domain` for the key's), else by its domain's state; of the hits of a failing domain,
    /// one per `probe_interval` claims the probe, while the interval has probes left over
    /// every domain ([`MAX_PROBES_PER_INTERVAL`]; else the domain stays due).
    pub(crate) fn route(
        &self,
        now: Timestamp,
        probe_interval: Duration,
        domain: impl FnOnce() -> usize,
    ) -> Route {
        if self.failing() == 0 {
            return Route::Store(None);
        }
        let domain = self.index(domain());
        let state = &self.states[domain];
        let last = state.load(Ordering::Acquire);
        if last == HEALTHY {
            return Route::Store(Some(domain));
        }
        let now = now.as_nanos();
        let due = now.saturating_sub(last) >= probe_interval.as_nanos() as u64;
        if !due || !self.probes.take(now, probe_interval) {
            return Route::Fallback(domain);
        }
        if state
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            Route::Probe(domain)
        } else {
            self.probes.give_back(now, probe_interval); // another hit claimed it
            Route::Fallback(domain)
        }
    }

    /// Whether `domain` fails now.
    pub(crate) fn is_failing(&self, domain: usize) -> bool {
        self.states[self.index(domain)].load(Ordering::Acquire) != HEALTHY
    }

    /// The store failed for `domain` at `now` with `cause`: its hits go to memory; the first
    /// failing domain reports the switch.
    pub(crate) fn fell_back(&self, domain: usize, now: Timestamp, cause: &dyn fmt::Display) {
        let state = &self.states[self.index(domain)];
        if state.load(Ordering::Acquire) != HEALTHY {
            return; // a failed probe, or another hit was first
        }
        let mut since = self
            .switching
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.load(Ordering::Acquire) != HEALTHY {
            return;
        }
        state.store(now.as_nanos().min(HEALTHY - 1), Ordering::Release);
        if self.failing.fetch_add(1, Ordering::AcqRel) == 0 {
            *since = now.as_nanos();
            self.switches.fetch_add(1, Ordering::Relaxed);
            self.report(&FailoverSwitch::ToFallback {
                cause: cause.to_string(),
            });
        }
    }

    /// The probe of `domain` at `now` succeeded: its place in the interval's probes is given
    /// back, and its hits go to the store again; the last failing domain reports the switch
    /// back.
    pub(crate) fn recovered(&self, domain: usize, now: Timestamp, probe_interval: Duration) {
        self.probes.give_back(now.as_nanos(), probe_interval);
        let since = self
            .switching
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = &self.states[self.index(domain)];
        if state.swap(HEALTHY, Ordering::AcqRel) == HEALTHY {
            return;
        }
        if self.failing.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.report(&FailoverSwitch::Back {
                after: Duration::from_nanos(now.as_nanos().saturating_sub(*since)),
            });
        }
    }

    fn report(&self, switch: &FailoverSwitch) {
        if let Some(observer) = &self.observer {
            observer(switch);
        }
    }
}
