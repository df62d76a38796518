//! Time for the limiter: the [`Clock`] trait and its three clocks.
//!
//! The engine never reads the system clock directly. A [`crate::Limiter`] asks its clock for
//! a [`Timestamp`] once per hit and passes it down, so tests drive time with a
//! [`ManualClock`].

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: nanoseconds since the epoch of the clock that made it.
///
/// Timestamps of different clocks do not compare; a store only ever sees one clock's.
///
/// ```
/// use std::time::Duration;
/// use tollgate::Timestamp;
///
/// let t = Timestamp::from_nanos(1_500);
/// assert_eq!((t + Duration::from_nanos(500)).as_nanos(), 2_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The timestamp `nanos` nanoseconds after the clock's epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the clock's epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Adds a duration, saturating at the largest timestamp.
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos(d)))
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX`.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A source of [`Timestamp`]s. The default, [`MonotonicClock`], never goes backwards; the
/// strategies tolerate clocks that do ([`SystemClock`], [`ManualClock::set`]).
///
/// ```
/// use tollgate::{Clock, Timestamp};
///
/// /// A clock stuck at one instant.
/// #[derive(Debug)]
/// struct Frozen(Timestamp);
///
/// impl Clock for Frozen {
///     fn now(&self) -> Timestamp {
///         self.0
///     }
/// }
///
/// assert_eq!(Frozen(Timestamp::from_nanos(7)).now().as_nanos(), 7);
/// ```
pub trait Clock: Any + Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The default clock: a monotonic clock whose epoch is the first time any `MonotonicClock`
/// was made in this process.
///
/// Every `MonotonicClock` of a process shares that epoch, so limiters rebuilt over the same
/// store (a configuration reload) read the same time as the states they find. It reads the
/// CPU's time-stamp counter where that is reliable (through `quanta`) and the operating
/// system's monotonic clock otherwise, so it is cheap enough to read on every hit.
///
/// ```
/// use tollgate::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    /// The epoch in the clock's raw ticks (the time-stamp counter's, or nanoseconds): a hit
    /// reads the raw counter and scales only its distance from here, once, to nanoseconds.
    epoch: u64,
}

/// The process-wide clock and epoch of every [`MonotonicClock`].
static PROCESS_CLOCK: LazyLock<(quanta::Clock, u64)> = LazyLock::new(|| {
    let clock = quanta::Clock::new();
    let epoch = clock.raw();
    (clock, epoch)
});

impl MonotonicClock {
    /// The process's monotonic clock.
    pub fn new() -> Self {
        let (clock, epoch) = &*PROCESS_CLOCK;
        Self {
            clock: clock.clone(),
            epoch: *epoch,
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

/// A shared clock, such as one a test keeps a handle on.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Timestamp {
        Timestamp(self.clock.delta_as_nanos(self.epoch, self.clock.raw()))
    }
}

/// The clock a [`crate::PolicyHandle`] reads on every hit: a [`MonotonicClock`] read in
/// place (no call through a `dyn Clock`), or any other clock through its trait object.
#[derive(Debug, Clone)]
pub(crate) enum HitClock {
    Monotonic(MonotonicClock),
    Other(Arc<dyn Clock>),
}

impl HitClock {
    /// `clock`, read in place if it is a [`MonotonicClock`].
    pub(crate) fn new(clock: &Arc<dyn Clock>) -> Self {
        let any: &dyn Any = &**clock;
        match any.downcast_ref::<MonotonicClock>() {
            Some(monotonic) => Self::Monotonic(monotonic.clone()),
            None => Self::Other(Arc::clone(clock)),
        }
    }

    /// The time now.
    #[inline]
    pub(crate) fn now(&self) -> Timestamp {
        match self {
            Self::Monotonic(clock) => clock.now(),
            Self::Other(clock) => clock.now(),
        }
    }
}

/// Wall-clock time: nanoseconds since the Unix epoch.
///
/// Use it where timestamps must agree across processes (a shared store in client-time
/// mode). It can jump when the system time is set; the strategies tolerate a time that goes
/// backwards, but counts may then last longer than their window.
///
/// ```
/// use tollgate::{Clock, SystemClock};
///
/// // Some time after 2020-01-01.
/// assert!(SystemClock.now().as_nanos() > 1_577_836_800_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(nanos(since_epoch))
    }
}

/// A clock that moves only when told to; clones share the same time. For tests.
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let handle = clock.clone();
/// handle.advance(Duration::from_millis(1050));
/// assert_eq!(clock.now().as_nanos(), 1_050_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at its epoch (timestamp 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = nanos(by);
        // fetch_update with Some never fails.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the clock to `to`; setting it backwards is allowed, to test that the strategies
    /// cope.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Clock, ManualClock, Timestamp};
    ///
    /// let clock = ManualClock::new();
    /// clock.set(Timestamp::from_nanos(5_000));
    /// assert_eq!(clock.now().as_nanos(), 5_000);
    /// clock.set(Timestamp::from_nanos(1_000)); // backwards
    /// clock.advance(Duration::from_nanos(1));
    /// assert_eq!(clock.now(), Timestamp::from_nanos(1_001));
    /// ```
    pub fn set(&self, to: Timestamp) {
        self.nanos.store(to.0, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_read_a_monotonic_clock_in_place_and_any_other_through_its_trait() {
        let monotonic: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
        assert!(matches!(HitClock::new(&monotonic), HitClock::Monotonic(_)));
        let manual = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(manual.clone());
        let clock = HitClock::new(&shared);
        assert!(matches!(clock, HitClock::Other(_)));
        manual.set(Timestamp::from_nanos(42));
        assert_eq!(clock.now(), Timestamp::from_nanos(42));
    }

    #[test]
    fn monotonic_clocks_share_their_epoch_and_count_nanoseconds() {
        let (a, b) = (MonotonicClock::new(), MonotonicClock::new());
        let first = a.now();
        std::thread::sleep(Duration::from_millis(20));
        let second = b.now();
        let elapsed = second.as_nanos() - first.as_nanos();
        assert!(
            (20_000_000..2_000_000_000).contains(&elapsed),
            "{elapsed} ns"
        );
    }
}
