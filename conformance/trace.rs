//! Stanza traces (`conformance --trace DIR`): per scenario, one readable log of every stanza
//! each server of its worlds sent and received, with the simulated time, the link events,
//! crashes, shutdowns and restarts, in time order.
//!
//! The implementation under test is always recorded (the audit reads its records). While
//! tracing ([`set_recording_peers`]), the worlds of two domains also record the reference
//! peer, so that the log shows both ends of the link; the hub's thousand small peers are not
//! recorded (the hub's own records show everything that crossed its links).
//!
//! A line is `time  host  what  peer  stanza`, time in simulated milliseconds since the world
//! was built:
//!
//! ```text
//!     20.000  a.example  sent      b.example  <iq xmlns="jabber:server" …>…</iq>
//!     40.000  b.example  received  a.example  <iq xmlns="jabber:server" …>…</iq>
//! ```

use std::cell::Cell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use minidom::Element;

use super::record::{Record, RecordKind};
use super::world::World;

thread_local! {
    static RECORD_PEERS: Cell<bool> = const { Cell::new(false) };
}

/// Whether worlds built on this thread from now on record their reference peers too (two-domain
/// worlds only).
pub fn set_recording_peers(on: bool) {
    RECORD_PEERS.with(|r| r.set(on));
}

/// True while tracing ([`set_recording_peers`]).
pub fn recording_peers() -> bool {
    RECORD_PEERS.with(Cell::get)
}

/// One line per record of `records` of `host`, tagged with the record's time for sorting.
fn lines(host: &str, records: &[Record]) -> Vec<(u64, String)> {
    let xml = |e: &Element| String::from(e);
    records
        .iter()
        .map(|r| {
            let (what, peer, detail) = match &r.kind {
                RecordKind::Out { peer, stanza } => ("sent", peer.as_str(), xml(stanza)),
                RecordKind::In { peer, stanza } => ("received", peer.as_str(), xml(stanza)),
                RecordKind::Undeliverable { peer, stanza } => {
                    ("bounced", peer.as_str(), xml(stanza))
                }
                RecordKind::LinkUp { peer, features, .. } => (
                    "link-up",
                    peer.as_str(),
                    format!(
                        "peer features: {}",
                        features.iter().map(xml).collect::<Vec<_>>().join(" ")
                    ),
                ),
                RecordKind::LinkDown { peer } => ("link-down", peer.as_str(), String::new()),
                RecordKind::Crash => ("crash", "-", String::new()),
                RecordKind::Shutdown => ("shutdown", "-", String::new()),
                RecordKind::Restart => ("restart", "-", String::new()),
            };
            let micros = r.time.0;
            let line = format!(
                "{:>10}.{:03}  {host}  {what:<9} {peer}  {detail}",
                micros / 1000,
                micros % 1000
            );
            (micros, line.trim_end().to_owned())
        })
        .collect()
}

/// The trace of `worlds` as text: a header, then per world its records in time order.
pub fn render(scenario: &str, about: &str, worlds: &[World]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# scenario {scenario}: {about}");
    let _ = writeln!(
        out,
        "# simulated time in ms since the world was built; host, what, peer, stanza"
    );
    for (i, w) in worlds.iter().enumerate() {
        let subjects: Vec<&str> = w.subjects.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "\n# world {} of {}: implementation under test {}",
            i + 1,
            worlds.len(),
            subjects.join(", ")
        );
        let mut all: Vec<(u64, String)> = Vec::new();
        for d in w.domains() {
            let node = w.net.host(&d);
            if node.is_recording() || !node.records().is_empty() {
                all.extend(lines(&d, node.records()));
            }
        }
        // Stable: records of one host keep their order at equal times.
        all.sort_by_key(|(t, _)| *t);
        for (_, l) in all {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// Writes the trace of `worlds` to `dir/<scenario>.log` and returns its path.
///
/// # Errors
/// The directory cannot be created or the file written.
pub fn write(dir: &Path, scenario: &str, about: &str, worlds: &[World]) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{scenario}.log"));
    std::fs::write(&path, render(scenario, about, worlds))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
