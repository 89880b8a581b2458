//! The core's side of the s2s links: what goes to a peer's task (session stanzas tagged with
//! their link, PS-46), what a peer's stanza is for, and the reopening of our stream after a
//! stream error on the peer's.

use super::*;

impl Core {
    /// Hands `stanza` to the s2s task of `peer`. The extension's stanzas are addressed to the
    /// peer's domain itself, from ours (requests, answers, batches, the shutdown
    /// announcement) or from a user's full JID with `<fanout/>` (domain-level presence);
    /// RFC 6121's go to the peer's users. The former are tagged with the link they were made
    /// on ([`ToPeer::Session`]).
    pub(super) fn send_peer(&mut self, peer: &str, stanza: Element) {
        let session = stanza.attr("to") == Some(peer)
            && (stanza.attr("from") == Some(self.domain.as_str())
                || stanza.has_child("fanout", PRESENCE_SYNC));
        let message = if session {
            let link = self.link_count.get(peer).copied().unwrap_or(0);
            ToPeer::Session(stanza.clone(), link)
        } else {
            ToPeer::Stanza(stanza.clone())
        };
        let sent = self
            .peers
            .get(peer)
            .is_some_and(|tx| tx.try_send(message).is_ok());
        if !sent {
            tracing::debug!(%peer, "undeliverable");
            let now = self.now();
            self.server.handle_undeliverable(now, peer, stanza);
        }
    }

    // ---- peer stanzas ----

    pub(super) fn peer_stanza(&mut self, now: Time, peer: &str, stanza: Element) {
        let to = stanza.attr("to").and_then(|t| Jid::new(t).ok());
        let for_client = to.as_ref().is_some_and(|t| {
            t.domain().as_str() == self.domain && (t.node().is_some() || t.resource().is_some())
        });
        let ours = stanza
            .children()
            .any(|c| c.ns() == crate::wire::ns::PRESENCE_SYNC);
        match stanza.name() {
            "presence" => self.server.handle_stanza(now, peer, stanza),
            "message" if !ours && for_client => {
                if let Some(to) = to {
                    self.deliver_local(&to, stanza);
                }
            }
            "iq" if !ours && for_client && to.as_ref().is_some_and(|t| t.resource().is_some()) => {
                if let Some(to) = to {
                    self.deliver_local(&to, stanza);
                }
            }
            _ => self.server.handle_stanza(now, peer, stanza),
        }
    }

    /// The model closed the link to `peer` with the stream error `error`. Its only one is
    /// `<invalid-from/>` (RFC 6120 §4.9.3.9, XEP PS-71), for a stanza that arrived on the
    /// peer's stream to us ([`Input::InvalidFrom`]): that stream, not ours, is the one
    /// closed with the error (§4.9.1.1: the stream on which the error occurred), and its task
    /// has done it. The error is not sent on our stream, which did nothing wrong.
    ///
    /// Our stream is closed cleanly and opened again (a new dialback, then
    /// [`Input::LinkDown`] and [`Input::LinkUp`]) rather than kept:
    /// - the model treats the link as lost at once (the session ends as on a link loss, the
    ///   peer is suspended, PS-56) and reads nothing more from the peer until the link comes
    ///   up again (`crate::server::s2s`); here the link comes up only when our stream
    ///   authenticates, so a kept stream would leave the peer unheard for good;
    /// - a session runs on the pair of streams and ends when they are lost (XEP §Sessions;
    ///   PS-58 "until the s2s streams are re-established"): the next one starts, with a hello
    ///   exchange, on a new pair, as in the simulator, where a stream error partitions the
    ///   link in both directions (`crate::sim::Transmit`).
    ///
    /// What was sent before leaves first (the same queue); what follows waits for the new
    /// stream.
    pub(super) fn reopen(&mut self, peer: &str, error: &Element) {
        tracing::warn!(
            %peer,
            condition = ?xml::stream_error_condition(error),
            "the peer's stream was closed with a stream error; ours is reopened"
        );
        let queued = self
            .peers
            .get(peer)
            .is_some_and(|tx| tx.try_send(ToPeer::Reopen).is_ok());
        if !queued {
            tracing::warn!(%peer, "cannot reopen the stream to the peer (queue full or no task)");
        }
    }
}
