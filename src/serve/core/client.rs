//! The core's client side (RFC 6120 §7, RFC 6121, XEP-0077, XEP-0191): accounts and bound
//! resources, what a bound client sends (presence, roster and blocking iqs, messages) and
//! the replies it gets. Routing, delivery, the peers and persistence stay in the parent
//! module.

use super::*;

impl Core {
    // ---- accounts and bound resources ----

    pub(super) fn register(
        &mut self,
        user: &BareJid,
        credentials: &Credentials,
    ) -> Result<bool, ()> {
        if user.domain().as_str() != self.domain || user.node().is_none() {
            return Ok(false);
        }
        match self.store.create_account(user, credentials) {
            Ok(true) => {
                self.server.add_user(user);
                tracing::info!(%user, "account registered");
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                tracing::error!("storage: {e}");
                Err(())
            }
        }
    }

    /// Whether `jid` is bound on the connection `conn`.
    pub(super) fn bound_on(&self, jid: &FullJid, conn: ConnId) -> bool {
        self.clients.get(jid).is_some_and(|c| c.conn == conn)
    }

    pub(super) fn bind(
        &mut self,
        user: BareJid,
        resource: Option<String>,
        tx: mpsc::Sender<ToClient>,
    ) -> Result<(FullJid, ConnId), String> {
        if !self.server.accounts().contains_key(&user) {
            return Err("no such account".into());
        }
        let resource = resource
            .filter(|r| !r.is_empty())
            .unwrap_or_else(xml::random_id);
        let jid = user
            .with_resource_str(&resource)
            .map_err(|e| format!("bad resource: {e}"))?;
        // RFC 6120 §7.7.2.2: the new session wins; the old one is closed with <conflict/>
        // (§4.9.3.3). It ends here: its presence, if it was available, goes unavailable now,
        // before the new session can send any. What its connection still sends, its final
        // Unbind included, carries the old ConnId and is ignored.
        if let Some(old) = self.clients.get(&jid) {
            let _ = old.tx.try_send(ToClient::Close("conflict"));
            self.unbind(&jid);
        }
        self.last_conn += 1;
        let conn = ConnId(self.last_conn);
        self.by_user
            .entry(user.clone())
            .or_default()
            .insert(jid.clone());
        self.clients.insert(
            jid.clone(),
            Client {
                tx,
                conn,
                roster: false,
                blocklist: false,
                available: false,
                presence: None,
            },
        );
        tracing::debug!(%jid, "bound");
        Ok((jid, conn))
    }

    pub(super) fn unbind(&mut self, jid: &FullJid) {
        let Some(client) = self.clients.remove(jid) else {
            return;
        };
        self.forget(jid);
        if client.available {
            let user = jid.to_bare();
            self.server.logout(&user, jid.resource().as_str());
            self.own_broadcast(jid, None);
        }
    }

    // ---- client stanzas ----

    pub(super) fn client_stanza(&mut self, jid: &FullJid, mut stanza: Element) {
        if !self.clients.contains_key(jid) {
            return;
        }
        // PS-94: the extension's elements are the server's to send; a user's stanza loses
        // them before it is handled or routed.
        let removed = strip_extension(&mut stanza, 0);
        if removed > 0 {
            tracing::info!(%jid, removed, "extension elements removed from a client's stanza");
        }
        match stanza.name() {
            "presence" => self.client_presence(jid, stanza),
            "iq" => self.client_iq(jid, stanza),
            "message" => self.client_message(jid, stanza),
            _ => {}
        }
    }

    fn client_presence(&mut self, jid: &FullJid, stanza: Element) {
        let user = jid.to_bare();
        let to = stanza.attr("to").and_then(|t| Jid::new(t).ok());
        let kind = stanza.attr("type").unwrap_or("available");
        let subscription = match kind {
            "subscribe" => Some(SubscriptionStanza::Subscribe),
            "subscribed" => Some(SubscriptionStanza::Subscribed),
            "unsubscribe" => Some(SubscriptionStanza::Unsubscribe),
            "unsubscribed" => Some(SubscriptionStanza::Unsubscribed),
            _ => None,
        };
        match (to, subscription, kind) {
            (Some(to), Some(sub), _) => {
                let contact = to.to_bare();
                if contact == user || !self.server.accounts().contains_key(&user) {
                    return;
                }
                match sub {
                    SubscriptionStanza::Subscribe => self.server.subscribe(&user, &contact),
                    SubscriptionStanza::Subscribed => self.server.approve(&user, &contact),
                    SubscriptionStanza::Unsubscribe => self.server.unsubscribe(&user, &contact),
                    SubscriptionStanza::Unsubscribed => self.server.deny(&user, &contact),
                }
            }
            (None, None, "available") => {
                let presence = resource_presence(&stanza);
                let initial = self.clients.get(jid).is_some_and(|c| !c.available);
                if let Some(c) = self.clients.get_mut(jid) {
                    c.available = true;
                    c.presence = Some(presence.clone());
                }
                self.server
                    .set_presence(&user, jid.resource().as_str(), presence.clone());
                self.own_broadcast(jid, Some(presence));
                if initial {
                    self.initial_presence(jid);
                }
            }
            (None, None, "unavailable") => {
                let was = self.clients.get(jid).is_some_and(|c| c.available);
                if let Some(c) = self.clients.get_mut(jid) {
                    c.available = false;
                    c.presence = None;
                }
                if was {
                    self.server.logout(&user, jid.resource().as_str());
                    self.own_broadcast(jid, None);
                }
            }
            // Directed presence (RFC 6121 §4.6) is routed as it is, and kept nowhere (out of
            // the extension's scope).
            (Some(to), None, "available" | "unavailable") => {
                let mut p = stanza;
                set(&mut p, "from", jid.to_string());
                self.route(&to, p);
            }
            _ => {}
        }
    }

    /// What a resource that just became available is owed (RFC 6121 §4.2.2, §3.1.3): the
    /// presence of the user's other available resources, and the subscription requests that
    /// wait for the user's approval.
    fn initial_presence(&mut self, jid: &FullJid) {
        let user = jid.to_bare();
        let others: Vec<(FullJid, ResourcePresence)> = self
            .sessions_of(&user)
            .filter(|(j, c)| *j != jid && c.available)
            .filter_map(|(j, c)| Some((j.clone(), c.presence.clone()?)))
            .collect();
        for (other, p) in others {
            let stanza = presence_element(&Jid::from(other), &Jid::from(jid.clone()), Some(&p));
            self.outbox.push((Jid::from(jid.clone()), stanza));
        }
        let pending: Vec<BareJid> = self
            .server
            .accounts()
            .get(&user)
            .map(|a| {
                a.roster
                    .iter()
                    .filter(|(_, s)| s.pending_in())
                    .map(|(c, _)| c.clone())
                    .collect()
            })
            .unwrap_or_default();
        for contact in pending {
            let stanza = subscription_element(&contact, &Jid::from(jid.clone()), "subscribe");
            self.outbox.push((Jid::from(jid.clone()), stanza));
        }
    }

    /// The presence of `jid` to every available resource of its user, itself included (RFC
    /// 6121 §4.2.2, §4.4.2, §4.5.2).
    pub(super) fn own_broadcast(&mut self, jid: &FullJid, presence: Option<ResourcePresence>) {
        let user = jid.to_bare();
        let targets: Vec<FullJid> = self
            .sessions_of(&user)
            .filter(|(j, c)| c.available || *j == jid)
            .map(|(j, _)| j.clone())
            .collect();
        for t in targets {
            let stanza = presence_element(
                &Jid::from(jid.clone()),
                &Jid::from(t.clone()),
                presence.as_ref(),
            );
            self.outbox.push((Jid::from(t), stanza));
        }
    }

    fn client_iq(&mut self, jid: &FullJid, stanza: Element) {
        let user = jid.to_bare();
        let to = stanza.attr("to").and_then(|t| Jid::new(t).ok());
        let for_account = to
            .as_ref()
            .is_none_or(|t| t.as_str() == user.as_str() || t.as_str() == self.domain);
        if !for_account {
            let mut s = stanza;
            set(&mut s, "from", jid.to_string());
            if let Some(to) = to {
                self.route(&to, s);
            }
            return;
        }
        let id = stanza.attr("id").unwrap_or_default().to_owned();
        let ty = stanza.attr("type").unwrap_or_default().to_owned();
        let Some(payload) = stanza.children().next().cloned() else {
            if ty == "get" || ty == "set" {
                self.reply_error(jid, &id, "bad-request", "modify");
            }
            return;
        };
        match (ty.as_str(), payload.name(), payload.ns().as_str()) {
            ("get", "query", ROSTER) => {
                if let Some(c) = self.clients.get_mut(jid) {
                    c.roster = true;
                }
                let items = self.roster_items(&user);
                let query = el("query", ROSTER).append_all(items).build();
                self.reply(jid, &id, Some(query));
            }
            ("set", "query", ROSTER) => self.roster_set(jid, &id, &payload),
            ("get", "blocklist", BLOCKING) => {
                if let Some(c) = self.clients.get_mut(jid) {
                    c.blocklist = true;
                }
                let items: Vec<Element> = self
                    .server
                    .accounts()
                    .get(&user)
                    .map(|a| a.blocked.iter().map(block_item).collect())
                    .unwrap_or_default();
                let list = el("blocklist", BLOCKING).append_all(items).build();
                self.reply(jid, &id, Some(list));
            }
            ("set", name @ ("block" | "unblock"), BLOCKING) => {
                self.block_set(jid, &id, name == "block", &payload)
            }
            ("get", "ping", PING) | ("set", "session", SESSION) => self.reply(jid, &id, None),
            ("get", "query", DISCO_INFO) => {
                let query = disco_info(&self.server.disco_features());
                self.reply(jid, &id, Some(query));
            }
            ("get" | "set", _, _) => self.reply_error(jid, &id, "service-unavailable", "cancel"),
            _ => {}
        }
    }

    fn roster_items(&self, user: &BareJid) -> Vec<Element> {
        let Some(account) = self.server.accounts().get(user) else {
            return Vec::new();
        };
        account
            .roster
            .iter()
            .map(|(c, s)| roster_item(c, Some(s), self.meta_of(user, c)))
            .collect()
    }

    pub(super) fn meta_of(&self, user: &BareJid, contact: &BareJid) -> Option<&ItemMeta> {
        self.meta.get(user).and_then(|m| m.get(contact))
    }

    /// A roster set (RFC 6121 §2.3 to §2.5): one item, added or updated, or removed.
    fn roster_set(&mut self, jid: &FullJid, id: &str, query: &Element) {
        let user = jid.to_bare();
        let items: Vec<&Element> = query.children().filter(|c| c.is("item", ROSTER)).collect();
        let [item] = items.as_slice() else {
            return self.reply_error(jid, id, "bad-request", "modify");
        };
        let Some(contact) = item.attr("jid").and_then(|j| BareJid::new(j).ok()) else {
            return self.reply_error(jid, id, "jid-malformed", "modify");
        };
        if contact == user {
            return self.reply_error(jid, id, "not-allowed", "cancel");
        }
        if item.attr("subscription") == Some("remove") {
            if self
                .server
                .accounts()
                .get(&user)
                .is_none_or(|a| a.roster.get(&contact).is_none())
            {
                return self.reply_error(jid, id, "item-not-found", "cancel");
            }
            self.server.roster_remove(&user, &contact);
            if let Some(m) = self.meta.get_mut(&user) {
                m.remove(&contact);
            }
            // The item's row, with its name and groups, goes with the account's next save.
            return self.reply(jid, id, None);
        }
        let meta = ItemMeta {
            name: item
                .attr("name")
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            groups: item
                .children()
                .filter(|g| g.is("group", ROSTER))
                .map(|g| g.text())
                .collect(),
        };
        let changed = self.meta_of(&user, &contact) != Some(&meta);
        if changed {
            if let Err(e) = self.store.set_item_meta(&user, &contact, &meta) {
                tracing::error!("storage: {e}");
                return self.reply_error(jid, id, "internal-server-error", "wait");
            }
            self.meta
                .entry(user.clone())
                .or_default()
                .insert(contact.clone(), meta);
        }
        let exists = self
            .server
            .accounts()
            .get(&user)
            .is_some_and(|a| a.roster.get(&contact).is_some());
        if exists {
            if changed {
                self.push_roster(&user, &contact);
            }
        } else {
            self.server.roster_add(&user, &contact);
        }
        self.reply(jid, id, None);
    }

    /// XEP-0191 §3.3, §3.4: block or unblock the listed JIDs (unblock without items: all).
    fn block_set(&mut self, jid: &FullJid, id: &str, block: bool, payload: &Element) {
        let user = jid.to_bare();
        let mut jids = Vec::new();
        for item in payload.children().filter(|c| c.is("item", BLOCKING)) {
            match item.attr("jid").and_then(|j| BareJid::new(j).ok()) {
                Some(j) => jids.push(j),
                None => return self.reply_error(jid, id, "jid-malformed", "modify"),
            }
        }
        if block && jids.is_empty() {
            return self.reply_error(jid, id, "bad-request", "modify");
        }
        if !block && jids.is_empty() {
            jids = self
                .server
                .accounts()
                .get(&user)
                .map(|a| a.blocked.iter().cloned().collect())
                .unwrap_or_default();
        }
        for j in &jids {
            if block {
                self.server.block(&user, j);
            } else {
                self.server.unblock(&user, j);
            }
        }
        self.reply(jid, id, None);
        // XEP-0191 §3.3: a push to every resource that asked for the block list.
        let name = if block { "block" } else { "unblock" };
        let push = el(name, BLOCKING)
            .append_all(jids.iter().map(block_item))
            .build();
        let targets: Vec<FullJid> = self
            .sessions_of(&user)
            .filter(|(_, c)| c.blocklist)
            .map(|(j, _)| j.clone())
            .collect();
        for t in targets {
            let iq_id = self.id();
            let iq = iq_element(
                "set",
                &iq_id,
                None,
                &Jid::from(t.clone()),
                Some(push.clone()),
            );
            self.outbox.push((Jid::from(t), iq));
        }
    }

    fn client_message(&mut self, jid: &FullJid, stanza: Element) {
        let Some(to) = stanza.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        let mut m = stanza;
        set(&mut m, "from", jid.to_string());
        self.route(&to, m);
    }

    fn reply(&mut self, jid: &FullJid, id: &str, payload: Option<Element>) {
        let iq = iq_element("result", id, None, &Jid::from(jid.clone()), payload);
        self.outbox.push((Jid::from(jid.clone()), iq));
    }

    fn reply_error(&mut self, jid: &FullJid, id: &str, condition: &str, kind: &str) {
        let error = el("error", CLIENT)
            .attr("type", kind)
            .append(el(condition, STANZAS).build())
            .build();
        let iq = iq_element("error", id, None, &Jid::from(jid.clone()), Some(error));
        self.outbox.push((Jid::from(jid.clone()), iq));
    }
}

/// The model's presence of a client's available presence stanza (RFC 6121 §4.7).
fn resource_presence(stanza: &Element) -> ResourcePresence {
    let mut p = ResourcePresence::default();
    for c in stanza.children() {
        match (c.name(), c.ns().as_str()) {
            ("show", CLIENT) => {
                p.show = match c.text().trim() {
                    "away" => Show::Away,
                    "chat" => Show::Chat,
                    "dnd" => Show::Dnd,
                    "xa" => Show::Xa,
                    _ => Show::Available,
                }
            }
            ("status", CLIENT) => {
                let lang = c
                    .attr_ns(rxml::Namespace::xml(), "lang")
                    .unwrap_or_default()
                    .to_owned();
                p.statuses.insert(lang, c.text());
            }
            ("priority", CLIENT) => p.priority = c.text().trim().parse().unwrap_or(0),
            (_, ns) if ns != CLIENT => p.extensions.push(renamespace(c, CLIENT, SERVER)),
            _ => {}
        }
    }
    p
}

fn block_item(jid: &BareJid) -> Element {
    el("item", BLOCKING).attr("jid", jid.to_string()).build()
}

fn disco_info(features: &[String]) -> Element {
    let mut b = el("query", DISCO_INFO).append(
        el("identity", DISCO_INFO)
            .attr("category", "server")
            .attr("type", "im")
            .build(),
    );
    let extra = [BLOCKING, PING, "jabber:iq:roster", "jabber:iq:register"];
    for f in features.iter().map(String::as_str).chain(extra) {
        b = b.append(el("feature", DISCO_INFO).attr("var", f).build());
    }
    b.build()
}

/// Removes every element qualified by the extension's namespace from `element`'s subtree
/// (XEP PS-94); the number removed. The stream layer bounds a client stanza's depth, and the
/// walk stops at [`STRIP_DEPTH`] in any case.
fn strip_extension(element: &mut Element, depth: usize) -> usize {
    if depth >= STRIP_DEPTH {
        return 0;
    }
    let before = element.children().count();
    let kept: Vec<Node> = element
        .take_nodes()
        .into_iter()
        .filter(|n| !matches!(n, Node::Element(e) if e.ns() == PRESENCE_SYNC))
        .collect();
    let mut removed = before
        - kept
            .iter()
            .filter(|n| matches!(n, Node::Element(_)))
            .count();
    for node in kept {
        match node {
            Node::Element(mut e) => {
                removed += strip_extension(&mut e, depth + 1);
                element.append_child(e);
            }
            Node::Text(t) => element.append_text_node(t),
        }
    }
    removed
}

/// How deep [`strip_extension`] looks: deeper than any stanza the stream layer lets through.
const STRIP_DEPTH: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_elements_are_stripped_at_any_depth() {
        let xml = format!(
            "<presence xmlns='jabber:client' to='b.test' id='x'><show>away</show>\
             <fanout xmlns='{PRESENCE_SYNC}'/><c xmlns='caps'><repair xmlns='{PRESENCE_SYNC}'/>\
             <k>text</k></c><shutdown xmlns='{PRESENCE_SYNC}' epoch='1'/></presence>"
        );
        let mut el: Element = xml.parse().expect("well-formed");
        assert_eq!(strip_extension(&mut el, 0), 3);
        let out = String::from(&el);
        assert!(!out.contains(PRESENCE_SYNC), "{out}");
        assert!(
            out.contains("<show>away</show>") && out.contains("<k>text</k>"),
            "{out}"
        );
        let mut clean: Element = "<message xmlns='jabber:client'><body>hi</body></message>"
            .parse()
            .expect("well-formed");
        assert_eq!(strip_extension(&mut clean, 0), 0);
    }
}
