//! One s2s link between two hosts: its configuration, its state, and the two FIFO queues of
//! stanzas in flight (one per direction).
//!
//! Timing of a stanza of `size` bytes sent at `now` on one direction:
//!
//! ```text
//! start    = max(now, end of the previous stanza's serialisation on this direction)
//! end      = start + per_stanza + ceil(size × 1000 / bandwidth_bytes_per_ms) µs
//!                                                  (the last term 0 if bandwidth is None)
//! arrival  = max(end + latency + jitter, arrival of the previous stanza on this direction)
//! ```
//!
//! The last `max` is what keeps a direction FIFO when jitter is on: a stanza never overtakes an
//! earlier one on the same direction (a TCP stream does not reorder). `per_stanza` models the
//! cost of handling one stanza: a direction carries one stanza at a time, so a burst of small
//! stanzas is paced by it as a burst of large ones is by the bandwidth.

use std::collections::VecDeque;
use std::time::Duration;

use minidom::Element;

use crate::sim::host::SimTime;

/// How a link between two hosts behaves.
///
/// ```
/// use std::time::Duration;
/// use presence_sync::sim::LinkConfig;
///
/// let slow = LinkConfig::default().with_latency(Duration::from_millis(50)).with_bandwidth(100);
/// assert_eq!(slow.latency, Duration::from_millis(50));
/// assert_eq!(slow.bandwidth_bytes_per_ms, Some(100));
/// assert!(slow.up);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// One-way latency, added to every stanza (default 20 ms). Precision: microseconds.
    pub latency: Duration,
    /// Bandwidth of each direction in bytes per millisecond, `None` for infinite (default).
    /// A stanza of `n` bytes occupies its direction for `ceil(n × 1000 / bandwidth)` µs.
    pub bandwidth_bytes_per_ms: Option<u64>,
    /// Whether the link is up when connected (default `true`). A link connected down behaves
    /// as partitioned: [`crate::sim::Net::repair`] brings it up.
    pub up: bool,
    /// Extra one-way latency drawn uniformly in `[0, jitter]` per stanza from the net's seeded
    /// generator (default zero: no draw at all). Never reorders a direction.
    pub jitter: Duration,
    /// Time a stanza occupies its direction whatever its size: the cost of handling it
    /// (default zero). Precision: microseconds.
    pub per_stanza: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(20),
            bandwidth_bytes_per_ms: None,
            up: true,
            jitter: Duration::ZERO,
            per_stanza: Duration::ZERO,
        }
    }
}

impl LinkConfig {
    /// This configuration with another one-way latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// This configuration with a finite bandwidth per direction (bytes per millisecond, > 0).
    pub fn with_bandwidth(mut self, bytes_per_ms: u64) -> Self {
        assert!(bytes_per_ms > 0, "bandwidth must be positive");
        self.bandwidth_bytes_per_ms = Some(bytes_per_ms);
        self
    }

    /// This configuration with a cost per stanza: each stanza occupies its direction for
    /// `cost` on top of its serialisation.
    pub fn with_per_stanza(mut self, cost: Duration) -> Self {
        self.per_stanza = cost;
        self
    }

    /// This configuration with random extra latency in `[0, jitter]`.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// This configuration, connected down (partitioned until repaired).
    pub fn down(mut self) -> Self {
        self.up = false;
        self
    }

    /// Time a stanza of `size` bytes occupies its direction, in microseconds: the cost per
    /// stanza plus the serialisation at the bandwidth.
    pub(crate) fn serialisation_micros(&self, size: u64) -> u64 {
        let bytes = match self.bandwidth_bytes_per_ms {
            None => 0,
            Some(bw) => (size.saturating_mul(1000)).div_ceil(bw),
        };
        micros(self.per_stanza).saturating_add(bytes)
    }
}

/// Microseconds of a duration (sub-microsecond parts are dropped, huge values saturate).
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Whether stanzas can be sent on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Both hosts up, not partitioned: both directions carry stanzas.
    Up,
    /// `host` shut down: its last stanzas and its stream close are still travelling to the
    /// peer; the peer's sends are refused. If `host` restarts meanwhile, it is not told about
    /// this old stream.
    Closing {
        /// The host that shut down.
        host: usize,
    },
    /// No stream: sends are refused.
    Down,
}

/// What travels on a direction.
#[derive(Debug)]
pub(crate) enum Payload {
    /// A stanza.
    Stanza(Element),
    /// The stream close of a host that shut down; the link goes down when it arrives.
    Close,
}

/// A stanza (or stream close) in flight.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// When it reaches the receiver (before any hold).
    pub arrival: SimTime,
    /// When it was sent.
    pub sent: SimTime,
    /// Global sequence number (stanzas only).
    pub index: u64,
    /// Causal depth.
    pub depth: u32,
    /// Serialised length in bytes.
    pub size: u64,
    /// The stanza or the stream close.
    pub payload: Payload,
}

/// One direction of a link.
#[derive(Debug, Default)]
pub(crate) struct Dir {
    /// FIFO of what is in flight.
    pub queue: VecDeque<InFlight>,
    /// Deliveries are held back until released.
    pub held: bool,
    /// Generation of the scheduled delivery of the front; bumped whenever it is rescheduled
    /// or invalidated, so that at most one scheduled delivery per direction is live.
    pub generation: u64,
    /// End of the last serialisation on this direction.
    tx_free: SimTime,
    /// Arrival time of the last stanza queued on this direction.
    last_arrival: SimTime,
}

impl Dir {
    /// Queues `payload` sent at `now`; returns its arrival time.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &mut self,
        config: &LinkConfig,
        now: SimTime,
        extra_micros: u64,
        index: u64,
        depth: u32,
        size: u64,
        payload: Payload,
    ) -> SimTime {
        let start = now.max(self.tx_free);
        let end = start.plus_micros(config.serialisation_micros(size));
        let arrival = end
            .plus_micros(micros(config.latency))
            .plus_micros(extra_micros)
            .max(self.last_arrival);
        self.tx_free = end;
        self.last_arrival = arrival;
        self.queue.push_back(InFlight {
            arrival,
            sent: now,
            index,
            depth,
            size,
            payload,
        });
        arrival
    }

    /// Empties the direction (the stream is gone); a new stream starts with no backlog.
    pub fn clear(&mut self) -> VecDeque<InFlight> {
        self.generation += 1;
        self.tx_free = SimTime::ZERO;
        self.last_arrival = SimTime::ZERO;
        std::mem::take(&mut self.queue)
    }
}

/// A link between hosts `ends[0]` and `ends[1]` (indices into the net's hosts).
#[derive(Debug)]
pub(crate) struct Link {
    /// The two hosts; direction 0 goes from `ends[0]` to `ends[1]`, direction 1 back.
    pub ends: [usize; 2],
    /// Its configuration.
    pub config: LinkConfig,
    /// Partitioned by the script (or connected down).
    pub cut: bool,
    /// Current state.
    pub status: Status,
    /// The two directions.
    pub dirs: [Dir; 2],
}

impl Link {
    /// A link, down until the driver brings it up.
    pub fn new(a: usize, b: usize, config: LinkConfig) -> Link {
        Link {
            ends: [a, b],
            cut: !config.up,
            config,
            status: Status::Down,
            dirs: [Dir::default(), Dir::default()],
        }
    }

    /// The direction whose sender is `from`.
    pub fn dir_from(&self, from: usize) -> usize {
        usize::from(self.ends[0] != from)
    }

    /// (sender, receiver) of direction `dir`.
    pub fn sender_receiver(&self, dir: usize) -> (usize, usize) {
        (self.ends[dir], self.ends[1 - dir])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enqueue(dir: &mut Dir, config: &LinkConfig, now_ms: u64, size: u64) -> SimTime {
        dir.enqueue(
            config,
            SimTime::from_millis(now_ms),
            0,
            0,
            1,
            size,
            Payload::Close,
        )
    }

    #[test]
    fn latency_only() {
        let config = LinkConfig::default();
        let mut dir = Dir::default();
        assert_eq!(enqueue(&mut dir, &config, 0, 100), SimTime::from_millis(20));
        assert_eq!(enqueue(&mut dir, &config, 5, 100), SimTime::from_millis(25));
    }

    #[test]
    fn bandwidth_serialises_back_to_back() {
        // 10 bytes per ms: 100 bytes take 10 ms, 15 bytes take 1.5 ms.
        let config = LinkConfig::default().with_bandwidth(10);
        let mut dir = Dir::default();
        assert_eq!(enqueue(&mut dir, &config, 0, 100), SimTime::from_millis(30));
        assert_eq!(enqueue(&mut dir, &config, 0, 100), SimTime::from_millis(40));
        assert_eq!(enqueue(&mut dir, &config, 0, 15), SimTime(41_500));
        // After the backlog is gone, a stanza starts when it is sent.
        assert_eq!(
            enqueue(&mut dir, &config, 100, 10),
            SimTime::from_millis(121)
        );
    }

    #[test]
    fn serialisation_rounds_up_to_the_microsecond() {
        let config = LinkConfig::default().with_bandwidth(3);
        assert_eq!(config.serialisation_micros(1), 334);
        assert_eq!(config.serialisation_micros(3), 1000);
        assert_eq!(LinkConfig::default().serialisation_micros(1 << 40), 0);
    }

    #[test]
    fn a_cost_per_stanza_paces_small_stanzas() {
        // 100 µs a stanza, 1000 bytes per ms: 10 bytes take 100 + 10 µs, back to back.
        let config = LinkConfig::default()
            .with_bandwidth(1000)
            .with_per_stanza(Duration::from_micros(100));
        let mut dir = Dir::default();
        assert_eq!(enqueue(&mut dir, &config, 0, 10), SimTime(20_110));
        assert_eq!(enqueue(&mut dir, &config, 0, 10), SimTime(20_220));
        assert_eq!(config.serialisation_micros(1000), 1100);
        let unpaced = LinkConfig::default().with_per_stanza(Duration::from_micros(7));
        assert_eq!(unpaced.serialisation_micros(1 << 40), 7);
    }

    #[test]
    fn jitter_never_reorders() {
        let config = LinkConfig::default();
        let mut dir = Dir::default();
        let first = dir.enqueue(&config, SimTime::ZERO, 9_000, 0, 1, 1, Payload::Close);
        let second = dir.enqueue(&config, SimTime(1), 0, 1, 1, 1, Payload::Close);
        assert_eq!(first, SimTime::from_millis(29));
        assert_eq!(second, first);
    }

    #[test]
    fn clear_forgets_the_backlog() {
        let config = LinkConfig::default().with_bandwidth(1);
        let mut dir = Dir::default();
        enqueue(&mut dir, &config, 0, 1000);
        assert_eq!(dir.clear().len(), 1);
        assert_eq!(enqueue(&mut dir, &config, 1, 1), SimTime::from_millis(22));
    }

    #[test]
    fn directions() {
        let link = Link::new(3, 7, LinkConfig::default().down());
        assert!(link.cut);
        assert_eq!(link.dir_from(3), 0);
        assert_eq!(link.dir_from(7), 1);
        assert_eq!(link.sender_receiver(1), (7, 3));
    }
}
