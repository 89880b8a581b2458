//! Time as the engine sees it (XEP §Flow Control and Limits, §Link Loss): microseconds since
//! an origin the driver chooses. The engine never reads a clock; every input carries the time,
//! from a simulated clock or from the driver's monotonic one (`tokio::time::Instant` minus the
//! server's start).

use std::fmt;

/// A point in time: microseconds since the driver's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// Time zero.
    pub const ZERO: Time = Time(0);

    /// `ms` milliseconds.
    pub fn from_millis(ms: u64) -> Time {
        Time(ms * 1000)
    }

    /// Whole milliseconds.
    pub fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// This time plus `us` microseconds (saturating).
    pub fn plus_micros(self, us: u64) -> Time {
        Time(self.0.saturating_add(us))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03} ms", self.0 / 1000, self.0 % 1000)
    }
}
