//! The XEP's test vectors (§Implementation Notes, "Test Vectors") recomputed by the crate: the
//! canonical encodings and every hash of the protocol, for BLAKE3 and SHA-256. The vectors are
//! read from `xep/presence-sync.xml`, so the document and the code cannot drift apart.

use std::collections::BTreeMap;

use jid::BareJid;
use presence_sync::digest::hash::pair_material;
use presence_sync::digest::sketch::Sketch;
use presence_sync::digest::{EdgeHasher, EdgeRef, HashAlgo, NodeValue, PairHasher};
use presence_sync::model::presence::{encode_key, encode_leaf};
use presence_sync::model::{EdgeState, PublisherPresence, ResourcePresence, Show};

/// `name: hex` lines of the vectors block, continuation lines appended.
fn vectors() -> BTreeMap<String, String> {
    let xep = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/xep/presence-sync.xml"
    ))
    .expect("the XEP is in xep/");
    let start = xep
        .find("<code caption='Test vectors'><![CDATA[")
        .expect("a test-vector block");
    let block = &xep[start..];
    let block = &block[block.find("[CDATA[").unwrap() + 7..block.find("]]>").unwrap()];
    let mut out = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in block.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some((name, value)) = line.split_once(": ") {
            out.insert(name.to_string(), value.trim().to_string());
            last = Some(name.to_string());
        } else {
            let name = last.as_ref().expect("a continuation follows a vector");
            out.get_mut(name).unwrap().push_str(line.trim());
        }
    }
    assert!(
        out.len() >= 28,
        "expected the full set of vectors, found {}",
        out.len()
    );
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn juliet_presence() -> PublisherPresence {
    let mut p = PublisherPresence::default();
    let mut balcony = ResourcePresence {
        show: Show::Away,
        priority: 5,
        ..Default::default()
    };
    balcony.statuses.insert("en".into(), "Gone fishing".into());
    balcony.extensions.push(
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://client.example/app' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
            .parse()
            .unwrap(),
    );
    p.resources.insert("balcony".into(), balcony);
    p.resources.insert(
        "phone".into(),
        ResourcePresence {
            priority: -1,
            ..Default::default()
        },
    );
    p.except.insert(jid("abram@montague.lit"));
    p
}

#[test]
fn every_vector_is_reproduced() {
    let v = vectors();
    let mut checked = 0;
    let mut check = |name: String, got: String| {
        let want = v
            .get(&name)
            .unwrap_or_else(|| panic!("the XEP has no vector {name:?}"));
        assert_eq!(&got, want, "{name}");
        checked += 1;
    };
    for algo in HashAlgo::ALL {
        let a = algo.name();
        let pair = PairHasher::new(algo, "montague.lit", "capulet.lit");
        check(
            format!("{a} pair material"),
            hex(&pair_material("capulet.lit", "montague.lit")),
        );
        let [ke, kk, kl] = pair.derived_keys();
        check(format!("{a} K_edge_leaf"), hex(&ke));
        check(format!("{a} K_presence_key"), hex(&kk));
        check(format!("{a} K_presence_leaf"), hex(&kl));

        let edges = [
            EdgeRef {
                publisher: "juliet@capulet.lit",
                subscriber: "romeo@montague.lit",
                state: EdgeState::Subscribed,
            },
            EdgeRef {
                publisher: "nurse@capulet.lit",
                subscriber: "romeo@montague.lit",
                state: EdgeState::Pending,
            },
        ];
        let mut eh = EdgeHasher::new(pair.clone());
        let mut both = NodeValue::EMPTY;
        let ids: Vec<_> = edges.iter().map(|e| eh.leaf(*e).short_id()).collect();
        check(
            format!("{a} sketch of the ids of edges 1 and 2, 8 cells"),
            hex(&Sketch::of(8, &ids).to_bytes()),
        );
        for (i, e) in edges.iter().enumerate() {
            let mut enc = Vec::new();
            presence_sync::model::edge::encode_edge(e.publisher, e.subscriber, e.state, &mut enc);
            check(format!("{a} edge {} encoding", i + 1), hex(&enc));
            let leaf = eh.leaf(*e);
            check(format!("{a} edge {} leaf", i + 1), hex(&leaf.0));
            both.add(&leaf);
        }
        check(
            format!("{a} fingerprint of the empty set"),
            hex(&NodeValue::EMPTY.fingerprint(algo).0),
        );
        check(
            format!("{a} fingerprint of {{edge 1, edge 2}}"),
            hex(&both.fingerprint(algo).0),
        );

        let juliet = jid("juliet@capulet.lit");
        let mut key = Vec::new();
        encode_key(&juliet, &mut key);
        check(format!("{a} presence key encoding"), hex(&key));
        check(
            format!("{a} presence key hash"),
            hex(&pair.presence_key_hash(&key)),
        );
        let mut leaf = Vec::new();
        encode_leaf(&juliet, &juliet_presence(), &mut leaf);
        check(format!("{a} presence leaf encoding"), hex(&leaf));
        check(
            format!("{a} presence leaf"),
            hex(&pair.presence_leaf(&leaf).0),
        );
    }
    assert_eq!(checked, v.len(), "every vector of the XEP is checked");
}
