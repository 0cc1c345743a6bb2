//! Time as an input: the driver's clock reading, and measured round-trip times.
//!
//! The core never reads a clock. Every input carries a [`Time`], microseconds since an epoch
//! the driver picks (page load, process start, simulation start); only differences matter.

use core::ops::{Add, Sub};
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// A reading of the driver's monotonic clock, in microseconds since the driver's epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The driver's epoch.
    pub const ZERO: Time = Time(0);

    /// `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Time(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(micros))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, rhs: Duration) -> Time {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_sub(micros))
    }
}

/// A measured round-trip time, the proximity metric of Pastry; smaller is closer.
///
/// [`Rtt::UNKNOWN`] sorts after every measured value, so a measured candidate always beats
/// one that has not been measured yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rtt(u32);

impl Rtt {
    /// Not measured yet.
    pub const UNKNOWN: Rtt = Rtt(u32::MAX);

    /// A round trip of `duration` (saturating at about 71 minutes).
    pub fn from_duration(duration: Duration) -> Self {
        Rtt(u32::try_from(duration.as_micros()).unwrap_or(u32::MAX - 1))
    }

    /// A round trip of `micros` microseconds.
    pub const fn from_micros(micros: u32) -> Self {
        Rtt(if micros == u32::MAX { u32::MAX - 1 } else { micros })
    }

    /// Whether this is a measurement.
    pub const fn is_known(self) -> bool {
        self.0 != u32::MAX
    }

    /// The measured duration, if known.
    pub fn duration(self) -> Option<Duration> {
        self.is_known().then(|| Duration::from_micros(u64::from(self.0)))
    }

    /// The measurement in microseconds, if known.
    pub const fn micros(self) -> Option<u32> {
        if self.is_known() { Some(self.0) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_rtt_is_farthest() {
        assert!(Rtt::from_micros(5) < Rtt::UNKNOWN);
        assert!(Rtt::from_micros(u32::MAX) < Rtt::UNKNOWN);
        assert_eq!(Rtt::UNKNOWN.duration(), None);
    }

    #[test]
    fn time_arithmetic_saturates() {
        let t = Time::from_micros(10);
        assert_eq!(t.since(Time::from_micros(20)), Duration::ZERO);
        assert_eq!((t + Duration::from_micros(5)).as_micros(), 15);
        assert_eq!((t - Duration::from_secs(1)).as_micros(), 0);
    }
}
