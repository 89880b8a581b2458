//! What a server does with a received stanza before any protocol sees it: the stream-level
//! check of its `from` (RFC 6120 §4.9.3.9, XEP PS-71), service discovery of the domain (XEP
//! §Service Discovery, PS-1), and the refusal of a malformed repair marker (PS-70).
//!
//! A stanza whose `from` is missing or not a JID of the authenticated peer domain closes the
//! stream with the stream error `<invalid-from/>`: the server transmits it (the driver
//! partitions the link when it arrives, see [`crate::sim::Transmit`]), treats the link as
//! lost at once (the session with the peer ends, PS-56), and ignores whatever else arrives on
//! the closed stream until the link comes up again.

use jid::Jid;
use minidom::Element;
use xmpp_parsers::disco::{DiscoInfoQuery, DiscoInfoResult, Identity};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::ns::DISCO_INFO;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::stream_error::{DefinedCondition as StreamCondition, StreamError};

use super::Server;
use crate::sim::{Host, SimTime};
use crate::wire::{Repair, ServerNs, WireElement, ns};

impl Server {
    /// Stream-level processing of a stanza from `peer`; true if it was consumed here (the
    /// stream is closed, the `from` is foreign, a disco#info query, an unusable repair
    /// marker), false if it goes on to RFC 6121 or the extension.
    pub(super) fn s2s_receive(&mut self, now: SimTime, peer: &str, stanza: &Element) -> bool {
        if self.volatile.peer(peer).stream_closed {
            // After our stream error, nothing more is read from that stream.
            self.stats.rejected += 1;
            return true;
        }
        let from = stanza.attr("from").and_then(|f| Jid::new(f).ok());
        if from.as_ref().is_none_or(|j| j.domain().as_str() != peer) {
            // RFC 6120 §4.9.3.9, XEP PS-71: not an error of any protocol on the stream.
            let text = format!(
                "stanza from {:?} is not from the authenticated domain {peer}",
                stanza.attr("from").unwrap_or_default()
            );
            self.stats.rejected += 1;
            self.close_stream(now, peer, StreamCondition::InvalidFrom, text);
            return true;
        }
        if self.disco_info(peer, stanza) {
            return true;
        }
        // PS-70: a repair marker that cannot be processed (e.g. an unknown attribute) makes
        // the stanza unusable: it is discarded, not processed as a user's subscription stanza.
        let bad_repair = stanza
            .get_child("repair", ns::PRESENCE_SYNC)
            .is_some_and(|r| Repair::parse_element(r).is_err());
        if bad_repair {
            self.stats.rejected += 1;
            return true;
        }
        false
    }

    /// Closes the s2s stream to `peer` with a stream error: it is transmitted, and the link
    /// is treated as lost from now on.
    pub(super) fn close_stream(
        &mut self,
        now: SimTime,
        peer: &str,
        condition: StreamCondition,
        text: String,
    ) {
        let error = StreamError::new(condition, "en", text);
        let element: Element = xso::transform(&error).expect("a stream error serialises");
        self.transmit(peer, element);
        self.volatile.peer(peer).stream_closed = true;
        Host::handle_link_down(self, now, peer);
    }

    /// The disco#info features of this domain (XEP-0030): disco#info itself and, if the
    /// extension is enabled, its namespace and one XEP-0300 hash feature per supported
    /// algorithm (PS-1).
    pub fn disco_features(&self) -> Vec<String> {
        let mut features = vec![DISCO_INFO.to_owned()];
        if let Some(setup) = &self.sync {
            features.push(ns::PRESENCE_SYNC.to_owned());
            features.extend(
                setup
                    .config
                    .algos
                    .iter()
                    .map(|a| ns::hash_feature(*a).to_owned()),
            );
        }
        features
    }

    /// Answers a disco#info query to the domain (XEP-0030 §3.1, XEP PS-1): identity
    /// server/im and [`Server::disco_features`]; a query about a node is answered
    /// `<item-not-found/>`. False if `stanza` is no such query.
    fn disco_info(&mut self, peer: &str, stanza: &Element) -> bool {
        if stanza.name() != "iq" || stanza.attr("type") != Some("get") {
            return false;
        }
        let Some(query) = stanza.get_child("query", DISCO_INFO) else {
            return false;
        };
        if stanza.attr("to") != Some(self.domain.as_str()) {
            return false;
        }
        let id = stanza.attr("id").unwrap_or_default().to_owned();
        let from = Some(Jid::new(&self.domain).expect("a domain"));
        let to = stanza.attr("from").and_then(|f| Jid::new(f).ok());
        let iq = match xso::transform::<DiscoInfoQuery, _>(query) {
            Ok(DiscoInfoQuery { node: None }) => Iq::Result {
                from,
                to,
                id,
                payload: Some(
                    xso::transform(&DiscoInfoResult {
                        node: None,
                        identities: vec![Identity {
                            category: "server".into(),
                            type_: "im".into(),
                            lang: None,
                            name: None,
                        }],
                        features: self.disco_features().into_iter().collect(),
                        extensions: Vec::new(),
                    })
                    .expect("a disco#info result serialises"),
                ),
            },
            other => {
                let (type_, condition, text) = match other {
                    Ok(_) => (
                        ErrorType::Cancel,
                        DefinedCondition::ItemNotFound,
                        "no such node",
                    ),
                    Err(_) => (ErrorType::Modify, DefinedCondition::BadRequest, "bad query"),
                };
                Iq::Error {
                    from,
                    to,
                    id,
                    error: StanzaError::new(type_, condition, "en", text),
                    payload: None,
                }
            }
        };
        let element = xso::transform(&ServerNs(iq)).expect("an iq serialises");
        self.transmit(peer, element);
        true
    }
}
