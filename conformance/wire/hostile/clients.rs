//! PS-94 from the subject's side: the extension's elements in its users' stanzas never reach
//! the peer. A user of the subject, logged in through c2s, sends stanzas that would speak for
//! its server if routed as they are: a directed presence to the peer's domain carrying
//! `<fanout/>` (a domain-level presence), a message to it carrying `<shutdown/>`, an iq to it
//! carrying a `<batch/>`, and a chat message to a peer user carrying `<repair/>`. What the
//! subject then sends the peer, read where the relay `outgoing` captured it, must carry none
//! of the extension's elements in those stanzas (recognised by their ids): removed, or the
//! stanza refused.

use std::time::Duration;

use minidom::Element;

use super::super::relay::Direction;
use super::super::world::Wire;
use super::Result;
use crate::conformance::check::{Check, Outcome};
use crate::wire::ns::PRESENCE_SYNC;

/// The ids of the stanzas the user sends.
const PREFIX: &str = "ps94-";

/// How long the subject has to route them.
const ROUTED: Duration = Duration::from_secs(2);

/// Whether `el` or an element below it is qualified by the extension's namespace (an
/// explicit stack: the captured element's depth is the relay reader's bound).
fn carries_extension(el: &Element) -> bool {
    let mut stack = vec![el];
    while let Some(e) = stack.pop() {
        if e.ns() == PRESENCE_SYNC {
            return true;
        }
        stack.extend(e.children());
    }
    false
}

/// The check (see the [module documentation](self)).
pub(super) async fn extensions_stripped(w: &mut Wire) -> Result<Check> {
    let name = "a user's stanzas routed to the peer carry none of the extension's elements";
    let (Some(user), Some(contact)) = (w.ours.first(), w.theirs.first()) else {
        return Ok(Check::with(
            name,
            &["PS-94"],
            Outcome::NotExercised("no users".into()),
        ));
    };
    let peer = w.target.peer.domain.clone();
    let contact = contact.bare();
    let mark = w.mark();
    let ns = PRESENCE_SYNC;
    let stanzas = [
        format!(
            "<presence xmlns='jabber:client' to='{peer}' id='{PREFIX}presence'>\
             <fanout xmlns='{ns}'/></presence>"
        ),
        format!(
            "<message xmlns='jabber:client' to='{peer}' id='{PREFIX}shutdown'>\
             <shutdown xmlns='{ns}' epoch='0000000000000001'/></message>"
        ),
        format!(
            "<iq xmlns='jabber:client' type='set' to='{peer}' id='{PREFIX}batch'>\
             <batch xmlns='{ns}' epoch='0000000000000001'/></iq>"
        ),
        format!(
            "<message xmlns='jabber:client' type='chat' to='{contact}' id='{PREFIX}repair'>\
             <body>marked</body><repair xmlns='{ns}'/></message>"
        ),
    ];
    for s in &stanzas {
        let el: Element = s.parse().map_err(|e| format!("{s}: {e}"))?;
        user.client.send(el)?;
    }
    tokio::time::sleep(ROUTED).await;
    let stats = w.outgoing.stats();
    let crossed: Vec<&Element> = stats
        .captured
        .iter()
        .skip(mark.outgoing_index())
        .filter(|c| c.dir == Direction::Forward)
        .map(|c| &c.element)
        .filter(|e| e.attr("id").is_some_and(|id| id.starts_with(PREFIX)))
        .collect();
    let carrying: Vec<String> = crossed
        .iter()
        .filter(|e| carries_extension(e))
        .map(|e| String::from(*e))
        .collect();
    let outcome = match carrying.first() {
        None => Outcome::Pass,
        Some(first) => Outcome::Fail(format!(
            "{} of the user's {} stanzas crossed with them, first: {first}",
            carrying.len(),
            stanzas.len()
        )),
    };
    Ok(Check::with(
        format!(
            "{name} ({} of its {} stanzas crossed)",
            crossed.len(),
            stanzas.len()
        ),
        &["PS-94"],
        outcome,
    ))
}
