//! What the byte columns assume, stated in the bench output (the sizes are measured on the
//! elements the workload and the servers write, not typed in here), and the one cost the
//! simulated links do not see: opening a new s2s link.

use jid::Jid;
use presence_sync::conformance::workload::{Federation, Preset, Spec};
use presence_sync::model::ResourcePresence;
use presence_sync::server::{Extra, Kind, Stanza};

/// The real-wire bench's results (`cargo bench --bench wire`), stored in the repository.
const WIRE_CSV: &str = include_str!("../results/wire.csv");

/// The bytes a new s2s link costs before its first stanza, both directions: stream headers,
/// stream features and XEP-0220 dialback, as two unmodified Prosody 0.12 servers exchanged them
/// on loopback in the real-wire bench (its `other_bytes` of a cold restart: everything that
/// crossed the relays and was not a stanza). Every scheme that sends anything after the event
/// needs the link, so each pays this once per measured phase; the floor does not.
pub fn reconnect_bytes() -> u64 {
    let mut lines = WIRE_CSV.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("wire.csv has a header")
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("wire.csv has no column {name}"))
    };
    let (scheme, phase, other) = (col("scheme"), col("phase"), col("other_bytes"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[scheme].starts_with("Prosody") && f[phase] == "cold restart")
        .map(|f| f[other].parse::<u64>().expect("other_bytes is a number"))
        .min()
        .expect("wire.csv has a Prosody cold restart")
}

fn size(stanza: &Stanza) -> usize {
    String::from(&stanza.to_element()).len()
}

/// The assumptions behind the byte columns, with the sizes measured on a small generated
/// federation of the workload every row uses.
pub fn assumptions() -> String {
    let fed: Federation = Spec::preset(Preset::Small).generate(&["a.example", "b.example"]);
    let sessions = fed.sessions("a.example");
    let ext = |p: &ResourcePresence, ns: &str| {
        p.extensions
            .iter()
            .find(|e| e.ns() == ns)
            .map(|e| String::from(e).len())
    };
    let photo = |p: &ResourcePresence| {
        p.extensions
            .iter()
            .filter(|e| e.ns() == "vcard-temp:x:update")
            .any(|e| e.children().any(|c| !c.text().is_empty()))
    };
    let with = sessions
        .iter()
        .find(|s| photo(&s.presence))
        .expect("a user with an avatar");
    let without = sessions
        .iter()
        .find(|s| !photo(&s.presence))
        .expect("a user without an avatar");
    let caps = ext(&with.presence, "http://jabber.org/protocol/caps").unwrap_or(0);
    let avatar = ext(&with.presence, "vcard-temp:x:update").unwrap_or(0);
    let no_avatar = ext(&without.presence, "vcard-temp:x:update").unwrap_or(0);
    let from: Jid = with
        .user
        .with_resource_str(&with.resource)
        .expect("a generated resource")
        .into();
    let to: Jid = without.user.clone().into();
    let answer = Stanza::new(
        from.clone(),
        to.clone(),
        Kind::Available(with.presence.clone()),
    );
    let plain = size(&answer);
    let prosody = size(&answer.clone().with_extra(Extra::ProsodyDelay)) - plain;
    let ejabberd = size(&answer.with_extra(Extra::EjabberdDelay)) - plain;
    let gone = Stanza::new(from, to, Kind::Unavailable);
    let status = size(&gone.clone().with_extra(Extra::ShutdownStatus)) - size(&gone);
    format!(
        "Bytes: presence is what clients send: a XEP-0115 caps <c/> ({caps} B), a XEP-0153\n\
         vcard-temp <x/> ({avatar} B with a photo hash, 70% of users; {no_avatar} B without) and, on\n\
         30% of resources, a <status xml:lang='en'>. Probe answers carry a XEP-0203 <delay/>\n\
         (Prosody +{prosody} B, ejabberd +{ejabberd} B), Prosody's unavailable at shutdown a\n\
         <status/> (+{status} B). Each scheme that sends anything after the event pays for a new\n\
         s2s link once: {} B (stream headers, features and dialback of two Prosody 0.12\n\
         servers, measured by the wire bench); the floor does not.\n",
        reconnect_bytes()
    )
}
