//! The optional event log of a [`crate::sim::Net`] ([`crate::sim::Net::trace`]), for
//! debugging failing scenarios and for checking that a seed names one run.

use std::fmt;

use crate::sim::host::SimTime;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A stanza was put on a link (`from` → `to`).
    Sent,
    /// A stanza was delivered to `to`.
    Delivered,
    /// The filter replaced a stanza; the replacement (whose kind is given) was delivered.
    Replaced,
    /// The filter dropped a stanza.
    Dropped,
    /// A stanza in flight was lost when its link went down.
    Lost,
    /// A stanza was sent to a domain with no link up; it will be reported undeliverable.
    Refused,
    /// `from` was told that a stanza it sent to `to` is undeliverable.
    Undeliverable,
    /// The timer of `from` fired.
    Timer,
    /// The link `from` – `to` came up (both hosts told).
    LinkUp,
    /// The link `from` – `to` went down.
    LinkDown,
    /// Partition of `from` – `to` by the script (or by [`crate::sim::Verdict::DropLinkAfter`]).
    Partition,
    /// Repair of `from` – `to` by the script.
    Repair,
    /// `from` crashed.
    Crash,
    /// `from` shut down.
    Shutdown,
    /// `from` restarted.
    Restart,
    /// The link `from` – `to` was held.
    Hold,
    /// The link `from` – `to` was released.
    Release,
    /// A scheduled script action ran.
    Action,
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub time: SimTime,
    /// What.
    pub kind: EventKind,
    /// The sender of the stanza, one end of the link, or the host concerned.
    pub from: String,
    /// The receiver of the stanza or the other end of the link; `None` for host events.
    pub to: Option<String>,
    /// The kind of the stanza (as counted in [`crate::sim::Stats`]), for stanza events.
    pub stanza: Option<String>,
    /// The global sequence number of the stanza, for stanzas that went on a link.
    pub index: Option<u64>,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>14}  {:<13} {}",
            self.time.to_string(),
            format!("{:?}", self.kind),
            self.from
        )?;
        if let Some(to) = &self.to {
            write!(f, " -> {to}")?;
        }
        if let Some(index) = self.index {
            write!(f, " #{index}")?;
        }
        if let Some(stanza) = &self.stanza {
            write!(f, " {stanza}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let event = Event {
            time: SimTime(20_500),
            kind: EventKind::Delivered,
            from: "a.example".into(),
            to: Some("b.example".into()),
            stanza: Some("iq/get/ping".into()),
            index: Some(3),
        };
        assert_eq!(
            event.to_string(),
            "     20.500 ms  Delivered     a.example -> b.example #3 iq/get/ping"
        );
        let timer = Event {
            kind: EventKind::Timer,
            to: None,
            stanza: None,
            index: None,
            ..event
        };
        assert_eq!(timer.to_string(), "     20.500 ms  Timer         a.example");
    }
}
