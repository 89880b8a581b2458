//! Replays the committed corpora of the fuzz targets (`fuzz/corpus/`) on the stable
//! toolchain, so that CI keeps every input the fuzzers found interesting, and every crash
//! they found once (fixed, its input kept in the corpus), passing.
//!
//! `cargo test --release --test fuzz_corpus -- --ignored write_seeds` writes the seed corpora
//! from the XEP's examples (see `fuzz/README.md`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{example_tree, extract_examples, our_elements, stanzas, xep_path};
use presence_sync::conformance::hostile::fuzz;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

/// Runs `body` on every file of `target`'s corpus; returns how many.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    for file in &files {
        let data = fs::read(file).expect("a corpus file");
        let result = std::panic::catch_unwind(|| body(&data));
        assert!(result.is_ok(), "{} fails its target", file.display());
    }
    files.len()
}

#[test]
fn the_wire_corpus_passes() {
    let n = replay("wire", fuzz::wire);
    assert!(n >= 30, "only {n} inputs");
}

#[test]
fn the_session_corpus_passes() {
    let n = replay("session", fuzz::session);
    assert!(n >= 20, "only {n} inputs");
}

#[test]
fn the_stream_corpus_passes() {
    let n = replay("stream", fuzz::stream);
    assert!(n >= 5, "only {n} inputs");
}

/// The selector byte of the `wire` target for an element name.
fn selector(name: &str) -> Option<u8> {
    Some(match name {
        "hello" => 0,
        "reconcile" => 1,
        "batch" => 2,
        "item" => 3,
        "presence-sync" => 4,
        "fanout" => 5,
        "repair" => 6,
        "shutdown" => 7,
        "bad-format" | "unsupported-hash" | "too-many-items" | "foreign-jid" | "out-of-order"
        | "stale-epoch" | "window-exceeded" => 8,
        _ => return None,
    })
}

/// An example stanza as the probe's peer would send it: `from` the peer, placeholders for
/// what only the running session knows (see `fuzz::session`).
fn as_peer(xml: &str, peer: &str, local: &str) -> String {
    let mut s = xml.replace(peer, "$P").replace(local, "$L");
    for attr in ["epoch", "peer-epoch"] {
        let key = format!("{attr}='");
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find(&key) {
            let value_start = i + key.len();
            out.push_str(&rest[..value_start]);
            out.push_str(if attr == "epoch" { "$E" } else { "$S" });
            rest = &rest[value_start + 16..];
        }
        out.push_str(rest);
        s = out;
    }
    if s.contains("type='result'") || s.contains("type='error'") {
        if let Some(i) = s.find(" id='") {
            let end = s[i + 5..].find('\'').expect("a closed id") + i + 5;
            s.replace_range(i + 5..end, "$I");
        }
    }
    s
}

#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn write_seeds() {
    let xep = fs::read_to_string(xep_path()).unwrap();
    let examples = extract_examples(&xep);
    for target in ["wire", "session", "stream"] {
        fs::create_dir_all(corpus(target)).unwrap();
    }
    let mut session_lines: Vec<String> = Vec::new();
    for example in &examples {
        let Ok(root) = example_tree(example) else {
            continue;
        };
        for (i, (element, _)) in our_elements(&root).into_iter().enumerate() {
            let Some(sel) = selector(element.name()) else {
                continue;
            };
            let mut data = vec![sel];
            data.extend(String::from(element).into_bytes());
            let name = format!("seed-{:02}-{i}-{}", example.index, element.name());
            fs::write(corpus("wire").join(name), data).unwrap();
        }
        for (i, stanza) in stanzas(&root).into_iter().enumerate() {
            let xml = String::from(stanza);
            let mut data = vec![0x20];
            data.extend(xml.as_bytes());
            let name = format!("seed-{:02}-{i}-{}", example.index, stanza.name());
            fs::write(corpus("wire").join(name), data).unwrap();
            for (peer, local) in [
                ("montague.lit", "capulet.lit"),
                ("capulet.lit", "montague.lit"),
            ] {
                if stanza.attr("from").is_some_and(|f| f.ends_with(peer)) {
                    session_lines.push(as_peer(&xml, peer, local));
                }
            }
        }
    }
    // Session seeds: each stanza alone, for each setup, and all of them in a row.
    for (i, line) in session_lines.iter().enumerate() {
        for flags in [0u8, 1, 8, 16, 2] {
            let mut data = vec![flags, 1];
            data.extend(line.as_bytes());
            fs::write(corpus("session").join(format!("seed-{i:03}-{flags}")), data).unwrap();
        }
    }
    let mut all = vec![0u8];
    for line in &session_lines {
        all.push(1);
        all.extend(line.as_bytes());
        all.push(0);
    }
    fs::write(corpus("session").join("seed-all"), all).unwrap();
    // Stream seeds: a stream of every example stanza, in chunks of several sizes.
    let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        from='montague.lit' to='capulet.lit' version='1.0'>";
    let mut body = header.to_owned();
    for example in &examples {
        if let Ok(root) = example_tree(example) {
            for stanza in stanzas(&root) {
                body.push_str(&String::from(stanza));
            }
        }
    }
    body.push_str("</stream:stream>");
    for (chunk, small) in [(1u8, 1u8), (7, 1), (64, 1), (255, 1), (13, 0)] {
        let mut data = vec![chunk, small];
        data.extend(body.as_bytes());
        fs::write(corpus("stream").join(format!("seed-{chunk}-{small}")), data).unwrap();
    }
}
