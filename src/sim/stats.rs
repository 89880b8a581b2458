//! Exact traffic counts per direction and per stanza kind, and the causal depth of exchanges.
//!
//! See [`Stats`] for what is counted and how.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::AddAssign;

use minidom::Element;

use crate::wire::ns::JABBER_SERVER;

/// Computes the "kind" of a stanza under which it is counted.
pub type Classifier = Box<dyn Fn(&Element) -> String>;

/// The default stanza kind: the element name, then `/{type}` when it has a `type` attribute,
/// then `/{name of the first child element}` when that child is not in `jabber:server`; a
/// stream error is `stream-error` ([`crate::sim::STREAM_ERROR_KIND`]).
///
/// ```
/// use presence_sync::sim::stanza_kind;
///
/// let iq = "<iq xmlns='jabber:server' type='set' id='1'>\
///     <hello xmlns='urn:xmpp:presence-sync:0'/></iq>";
/// assert_eq!(stanza_kind(&iq.parse().unwrap()), "iq/set/hello");
/// let away = "<presence xmlns='jabber:server'><show>away</show></presence>";
/// assert_eq!(stanza_kind(&away.parse().unwrap()), "presence");
/// ```
pub fn stanza_kind(stanza: &Element) -> String {
    if crate::sim::is_stream_error(stanza) {
        return crate::sim::STREAM_ERROR_KIND.to_owned();
    }
    let mut kind = stanza.name().to_owned();
    if let Some(ty) = stanza.attr("type") {
        kind.push('/');
        kind.push_str(ty);
    }
    if let Some(child) = stanza.children().next() {
        if !child.has_ns(JABBER_SERVER) {
            kind.push('/');
            kind.push_str(child.name());
        }
    }
    kind
}

/// The length in bytes of a stanza as it would go on the wire (see [`Stats`]): its
/// serialisation without the `xmlns='jabber:server'` declaration on the stanza itself, which a
/// real s2s stream declares once in its header and every stanza inherits.
pub fn wire_len(stanza: &Element) -> u64 {
    let mut out = Measure::default();
    // Measuring cannot fail on I/O; minidom only fails on names it could not have parsed or
    // built in the first place.
    stanza
        .write_to(&mut out)
        .expect("a minidom element serialises");
    let inherited = [
        &b" xmlns='jabber:server'"[..],
        &b" xmlns=\"jabber:server\""[..],
    ];
    let declared = inherited
        .iter()
        .find(|decl| out.head.windows(decl.len()).any(|w| w == **decl))
        .map_or(0, |decl| decl.len());
    (out.len - declared) as u64
}

/// A writer that counts the bytes of a serialisation and keeps only its start tag (what
/// precedes the first `>`), instead of the whole stanza.
#[derive(Default)]
struct Measure {
    len: usize,
    head: Vec<u8>,
    head_done: bool,
}

impl std::io::Write for Measure {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.len += buf.len();
        if !self.head_done {
            match buf.iter().position(|&b| b == b'>') {
                Some(end) => {
                    self.head.extend_from_slice(&buf[..end]);
                    self.head_done = true;
                }
                None => self.head.extend_from_slice(buf),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts for one direction and kind (or a sum of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Stanzas delivered to the receiver (after any replacement by the filter).
    pub stanzas: u64,
    /// Bytes of the delivered stanzas.
    pub bytes: u64,
    /// Stanzas dropped by the filter ([`crate::sim::Verdict::Drop`]): silently lost.
    pub dropped: u64,
    /// Stanzas in flight when their link went down (partition, crash, shutdown): lost and, if
    /// the sender is alive, reported to it as undeliverable.
    pub lost: u64,
    /// Stanzas sent while the link was down (or to an unknown or unconnected domain): never on
    /// the wire, reported to the sender as undeliverable.
    pub refused: u64,
}

impl AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, other: &Counts) {
        self.stanzas += other.stanzas;
        self.bytes += other.bytes;
        self.dropped += other.dropped;
        self.lost += other.lost;
        self.refused += other.refused;
    }
}

/// Traffic statistics of a [`crate::sim::Net`] since it started or since the last reset.
///
/// **Bytes** are the length of the stanza as minidom serialises it (`Element::write_to`), in
/// UTF-8. That text carries the stanza's own `xmlns='jabber:server'` declaration, which a real
/// s2s stream would inherit from its stream header; stream framing (`<stream:stream>`, TLS,
/// dialback, whitespace keepalives) is not counted at all.
///
/// **Causal depth.** Every stanza carries a depth: 1 + the depth of the stanza whose handling
/// made its sender emit it, where a stanza emitted in reaction to no stanza (a timer, a fault,
/// a link coming up, a script call) counts from 0, so it has depth 1. The longest causal chain
/// of delivered stanzas since the last [`Stats::reset`] is [`Stats::max_depth`], and
/// [`Stats::round_trips`] is `ceil(max_depth / 2)`: a ping and its answer are one round trip,
/// `k` ping-pong exchanges in sequence are `k`. A host that defers a reply to a timer breaks
/// the chain (the deferred stanza counts from 0 again), so the depth is a lower bound for such
/// hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    per: BTreeMap<(String, String), BTreeMap<String, Counts>>,
    max_depth: u32,
    deliveries: u64,
}

impl Stats {
    /// Counts from `from` to `to` for stanzas of `kind`.
    pub fn get(&self, from: &str, to: &str, kind: &str) -> Counts {
        self.per
            .get(&(from.to_owned(), to.to_owned()))
            .and_then(|kinds| kinds.get(kind))
            .copied()
            .unwrap_or_default()
    }

    /// Counts from `from` to `to`, all kinds together.
    pub fn direction(&self, from: &str, to: &str) -> Counts {
        self.kinds(from, to)
            .fold(Counts::default(), |mut sum, (_, c)| {
                sum += c;
                sum
            })
    }

    /// Counts of all directions and kinds together.
    pub fn total(&self) -> Counts {
        self.iter()
            .fold(Counts::default(), |mut sum, (_, _, _, c)| {
                sum += c;
                sum
            })
    }

    /// The kinds seen from `from` to `to`, in name order, with their counts.
    pub fn kinds<'a>(
        &'a self,
        from: &str,
        to: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Counts)> {
        self.per
            .get(&(from.to_owned(), to.to_owned()))
            .into_iter()
            .flat_map(|kinds| kinds.iter().map(|(k, c)| (k.as_str(), c)))
    }

    /// Every (from, to, kind, counts), ordered by direction then kind.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &str, &Counts)> {
        self.per.iter().flat_map(|((from, to), kinds)| {
            kinds
                .iter()
                .map(move |(k, c)| (from.as_str(), to.as_str(), k.as_str(), c))
        })
    }

    /// The longest causal chain of delivered stanzas (see [`Stats`]).
    pub fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// Stanzas and stream errors delivered: a counter that moves with every delivery, cheaper
    /// to read than [`Stats::total`].
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// `ceil(max_depth / 2)`.
    pub fn round_trips(&self) -> u32 {
        self.max_depth.div_ceil(2)
    }

    /// Forgets every count and the depth.
    pub fn reset(&mut self) {
        *self = Stats::default();
    }

    /// A human-readable table (one row per direction and kind, then totals).
    pub fn table(&self) -> Table<'_> {
        Table(self)
    }

    /// Updates the counts of one direction and kind.
    pub(crate) fn count(&mut self, from: &str, to: &str, kind: &str, f: impl FnOnce(&mut Counts)) {
        let key = (from.to_owned(), to.to_owned());
        let kinds = self.per.entry(key).or_default();
        match kinds.get_mut(kind) {
            Some(c) => f(c),
            None => f(kinds.entry(kind.to_owned()).or_default()),
        }
    }

    /// Notes the delivery of a stanza of causal depth `depth`.
    pub(crate) fn depth(&mut self, depth: u32) {
        self.max_depth = self.max_depth.max(depth);
        self.deliveries += 1;
    }
}

/// [`Stats`] as a table, for humans ([`Stats::table`]).
pub struct Table<'a>(&'a Stats);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.0;
        let rows: Vec<(String, &str, &Counts)> = stats
            .iter()
            .map(|(from, to, kind, c)| (format!("{from} -> {to}"), kind, c))
            .collect();
        let dir_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(9);
        let kind_w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(4);
        let line = |f: &mut fmt::Formatter<'_>, d: &str, k: &str, c: &Counts| {
            writeln!(
                f,
                "{d:<dir_w$}  {k:<kind_w$}  {:>8}  {:>10}  {:>7}  {:>7}  {:>7}",
                c.stanzas, c.bytes, c.dropped, c.lost, c.refused
            )
        };
        writeln!(
            f,
            "{:<dir_w$}  {:<kind_w$}  {:>8}  {:>10}  {:>7}  {:>7}  {:>7}",
            "direction", "kind", "stanzas", "bytes", "dropped", "lost", "refused"
        )?;
        for (d, k, c) in &rows {
            line(f, d, k, c)?;
        }
        line(f, "total", "", &stats.total())?;
        writeln!(
            f,
            "max causal depth {}, round trips {}",
            stats.max_depth,
            stats.round_trips()
        )
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(xml: &str) -> String {
        stanza_kind(&xml.parse().expect("test XML parses"))
    }

    #[test]
    fn default_kinds() {
        assert_eq!(kind("<presence xmlns='jabber:server'/>"), "presence");
        assert_eq!(
            kind("<presence xmlns='jabber:server' type='probe'/>"),
            "presence/probe"
        );
        assert_eq!(
            kind(
                "<presence xmlns='jabber:server' type='unavailable'><status>bye</status></presence>"
            ),
            "presence/unavailable"
        );
        assert_eq!(
            kind("<iq xmlns='jabber:server' type='result' id='a'><hello xmlns='urn:x'/></iq>"),
            "iq/result/hello"
        );
        assert_eq!(
            kind(
                "<message xmlns='jabber:server'><shutdown xmlns='urn:x'/><body>x</body></message>"
            ),
            "message/shutdown"
        );
    }

    #[test]
    fn wire_len_is_the_serialised_text() {
        let el: Element = "<presence xmlns='jabber:server' type='probe'/>"
            .parse()
            .unwrap();
        assert_eq!(
            String::from(&el),
            "<presence xmlns='jabber:server' type='probe'/>"
        );
        // The stream declares jabber:server once: `<presence type='probe'/>` is 24 bytes.
        assert_eq!(wire_len(&el), 24);
        let utf8: Element = "<message xmlns='jabber:server'><body>é</body></message>"
            .parse()
            .unwrap();
        assert_eq!(wire_len(&utf8), String::from(&utf8).len() as u64 - 22);
        assert_eq!(wire_len(&utf8), 34); // é is two bytes: 33 characters
        // Other namespaces, and declarations deeper in the stanza, are on the wire.
        let other: Element = "<x xmlns='urn:x'/>".parse().unwrap();
        assert_eq!(wire_len(&other), 18);
    }

    #[test]
    fn sums_and_round_trips() {
        let mut stats = Stats::default();
        stats.count("a", "b", "iq/get", |c| {
            c.stanzas += 2;
            c.bytes += 100;
        });
        stats.count("a", "b", "presence", |c| c.lost += 1);
        stats.count("b", "a", "iq/result", |c| {
            c.stanzas += 1;
            c.refused += 3;
        });
        assert_eq!(stats.get("a", "b", "iq/get").bytes, 100);
        assert_eq!(stats.get("b", "a", "iq/get"), Counts::default());
        let ab = stats.direction("a", "b");
        assert_eq!((ab.stanzas, ab.bytes, ab.lost), (2, 100, 1));
        let total = stats.total();
        assert_eq!((total.stanzas, total.refused), (3, 3));
        assert_eq!(
            stats.kinds("a", "b").map(|(k, _)| k).collect::<Vec<_>>(),
            ["iq/get", "presence"]
        );
        for (depth, trips) in [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2), (7, 4)] {
            stats.max_depth = 0;
            stats.depth(depth);
            assert_eq!(stats.round_trips(), trips, "depth {depth}");
        }
        stats.reset();
        assert_eq!(stats, Stats::default());
    }

    #[test]
    fn table_lists_every_row_and_the_total() {
        let mut stats = Stats::default();
        stats.count("a.example", "b.example", "presence/probe", |c| {
            c.stanzas = 3;
            c.bytes = 138;
        });
        stats.depth(2);
        let text = stats.table().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[1].starts_with("a.example -> b.example  presence/probe"),
            "{text}"
        );
        assert!(
            lines[1].ends_with("       3         138        0        0        0"),
            "{text}"
        );
        assert!(lines[2].starts_with("total"), "{text}");
        assert_eq!(lines[3], "max causal depth 2, round trips 1");
    }
}
