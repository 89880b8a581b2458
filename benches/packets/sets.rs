//! The sets a resync must reconcile, read from the extension's world, and what negentropy and
//! the floor cost on them (see the module documentation of `main.rs`).

use std::collections::{BTreeMap, BTreeSet};

use jid::BareJid;
use presence_sync::conformance::subject::Subject;
use presence_sync::conformance::workload::Federation;
use presence_sync::conformance::world::World;
use presence_sync::model::Edge;
use presence_sync::model::edge::project;
use presence_sync::model::presence::encode_leaf;

use crate::negentropy::{self, Direction, Framing};
use crate::{A, B, floor};

/// A publishing side's presence entries towards the peer: publisher → canonical leaf bytes
/// (what the extension publishes: available resources and except list, if the publisher has an
/// entitled subscriber at the peer).
pub(crate) type Entries = BTreeMap<BareJid, Vec<u8>>;

pub(crate) fn published(s: &dyn Subject, peer: &str) -> Entries {
    let mut out = Entries::new();
    for (user, resources) in s.online() {
        let published = s
            .accounts()
            .get(user)
            .and_then(|a| a.published_to(peer, resources));
        if let Some(p) = published {
            let mut bytes = Vec::new();
            encode_leaf(user, &p, &mut bytes);
            out.insert(user.clone(), bytes);
        }
    }
    out
}

/// Both directions' entries: (A's towards B, B's towards A).
pub(crate) fn both_published(w: &World) -> (Entries, Entries) {
    (published(w.server(A), B), published(w.server(B), A))
}

/// The share of the published entries (both directions) that active users are waiting for:
/// (entries their contacts publish, all entries), after a cold restart. Whatever the order,
/// those must move before every active user is right.
pub(crate) fn active_share(w: &World, fed: &Federation) -> (usize, usize) {
    let (ab, ba) = both_published(w);
    let mut wanted = 0;
    for (local, peer, theirs) in [(A, B, &ba), (B, A, &ab)] {
        let s = w.server(local);
        let accounts = s.accounts();
        let contacts: BTreeSet<&BareJid> = fed
            .active_users(local)
            .filter_map(|u| accounts.get(u))
            .flat_map(|a| {
                a.roster
                    .iter()
                    .filter(move |(c, _)| c.domain().as_str() == peer && a.sees(c))
                    .map(|(c, _)| c)
            })
            .collect();
        wanted += contacts.iter().filter(|c| theirs.contains_key(**c)).count();
    }
    (wanted, ab.len() + ba.len())
}

pub(crate) fn edge_bytes(w: &World, domain: &str, peer: &str) -> BTreeSet<Vec<u8>> {
    let s = w.server(domain);
    project(s.accounts().iter().map(|(u, a)| (u, &a.roster)), peer)
        .map(|e: Edge| {
            let mut v = Vec::new();
            e.encode(&mut v);
            v
        })
        .collect()
}

/// The sets a resync must reconcile, per scenario (read from the extension's world).
pub(crate) enum Sets {
    /// Per direction: (cached by the peer, actual at the publisher).
    Presence(Vec<(Entries, Entries)>),
    /// The two servers' edge encodings.
    Edges(BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>),
    /// A presence reconciliation and an edge reconciliation at the same time.
    Both(Box<Sets>, Box<Sets>),
}

pub(crate) fn id(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Cost of one negentropy run from `local` (initiator: knows the truth) to `remote`, plus the
/// push of what moves. `item` maps an id back to its canonical bytes.
pub(crate) fn negentropy_run(
    local: &[(Vec<u8>, [u8; 32])],
    remote: &[[u8; 32]],
) -> (u64, u64, u64) {
    let frame = Framing::new(A, B);
    let local_ids: Vec<[u8; 32]> = local.iter().map(|(_, i)| *i).collect();
    let out = negentropy::reconcile(&local_ids, remote, &frame);
    let by_id: BTreeMap<[u8; 32], &Vec<u8>> = local.iter().map(|(b, i)| (*i, b)).collect();
    let mut push: Vec<u8> = Vec::new();
    for h in &out.have {
        push.extend_from_slice(by_id[h]);
    }
    for n in &out.need {
        push.extend_from_slice(n);
    }
    let (mut stanzas, mut bytes, mut rt) = (out.cost.stanzas, out.cost.bytes, out.cost.round_trips);
    if !push.is_empty() {
        let limit = negentropy::frame_size_limit(&frame).expect("a frame fits");
        for (k, chunk) in push.chunks(limit).enumerate() {
            let s = negentropy::stanza(&frame, Direction::ToResponder, &format!("push{k}"), chunk);
            assert!(s.len() <= frame.max_bytes);
            stanzas += 1;
            bytes += s.len() as u64;
        }
        rt += 1;
    }
    (stanzas, bytes, rt)
}

/// (differences, negentropy (stanzas, bytes, rt), floor (stanzas, bytes, rt)).
pub(crate) fn computed(sets: &Sets) -> (u64, (u64, u64, u64), (u64, u64, u64)) {
    match sets {
        Sets::Presence(dirs) => {
            let mut d_total = 0;
            let (mut ns, mut nb, mut nr) = (0, 0, 0);
            let (mut fs, mut fb, mut fr) = (0, 0, 0);
            for (cached, actual) in dirs {
                let local: Vec<(Vec<u8>, [u8; 32])> =
                    actual.values().map(|b| (b.clone(), id(b))).collect();
                let remote: Vec<[u8; 32]> = cached.values().map(|b| id(b)).collect();
                let (s, b, r) = negentropy_run(&local, &remote);
                ns += s;
                nb += b;
                nr = nr.max(r);
                // Publishers whose entry differs, and the payload of their new entries.
                let keys: BTreeSet<&BareJid> = cached.keys().chain(actual.keys()).collect();
                let (mut d, mut payload) = (0u64, 0u64);
                for k in keys {
                    let (c, a) = (cached.get(k), actual.get(k));
                    if c != a {
                        d += 1;
                        payload += a.map_or(0, |v| v.len() as u64);
                    }
                }
                d_total += d;
                let f = floor::floor(d, 64, payload);
                fs += f.stanzas;
                fb += f.bytes;
                fr = fr.max(f.round_trips);
            }
            (d_total, (ns, nb, nr), (fs, fb, fr))
        }
        Sets::Both(presence, edges) => {
            // Two reconciliations at the same time: stanzas and bytes add up, round trips
            // are the larger.
            let (dp, np, fp) = computed(presence);
            let (de, ne, fe) = computed(edges);
            let add = |x: (u64, u64, u64), y: (u64, u64, u64)| (x.0 + y.0, x.1 + y.1, x.2.max(y.2));
            (dp + de, add(np, ne), add(fp, fe))
        }
        Sets::Edges(ea, eb) => {
            let local: Vec<(Vec<u8>, [u8; 32])> = ea.iter().map(|b| (b.clone(), id(b))).collect();
            let remote: Vec<[u8; 32]> = eb.iter().map(|b| id(b)).collect();
            let n = negentropy_run(&local, &remote);
            let diff: Vec<&Vec<u8>> = ea.symmetric_difference(eb).collect();
            let payload: u64 = diff.iter().map(|b| b.len() as u64).sum();
            let f = floor::floor(diff.len() as u64, 64, payload);
            (diff.len() as u64, n, (f.stanzas, f.bytes, f.round_trips))
        }
    }
}
