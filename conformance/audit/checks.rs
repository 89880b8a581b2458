//! The per-stanza checks of the audit: everything the host sends goes through
//! `Auditor::outbound`, which runs each check that applies and then updates the state.

use super::*;

impl Auditor<'_> {
    /// A stanza the host sent: every check that applies, then the state.
    pub(super) fn outbound(&mut self, t: SimTime, peer: &str, st: &Element) {
        let p = self.peer(peer);
        if p.known && !p.sync {
            self.saw(CheckId::LegacySilence);
            if contains_ours(st) {
                self.flag(
                    CheckId::LegacySilence,
                    "PS-5",
                    t,
                    peer,
                    st,
                    "the namespace, to a legacy peer",
                );
            }
        }
        let ours = our_elements(st);
        if !ours.is_empty() {
            self.syntax(t, peer, st, &ours);
            self.limits(t, peer, st, &ours);
            self.items(t, peer, st, &ours);
        }
        match st.name() {
            "iq" => self.out_iq(t, peer, st),
            "presence" => self.out_presence(t, peer, st),
            "message" => {
                if let Some(s) = child(st, "shutdown") {
                    self.out_shutdown(t, peer, st, s);
                }
            }
            _ => {}
        }
    }

    /// PS-21, PS-72, PS-73: the strict parsers, and the direction rules of reconcile.
    fn syntax(&mut self, t: SimTime, peer: &str, st: &Element, ours: &[&Element]) {
        self.saw(CheckId::StrictSyntax);
        for el in ours {
            let (req, why) = match SyncElement::parse_element(el) {
                Err(e) => (syntax_requirement(&e), e.to_string()),
                Ok(None) => (
                    "PS-72",
                    format!("<{}/> is not an element of the XEP", el.name()),
                ),
                Ok(Some(SyncElement::Reconcile(r))) => {
                    let query = st.attr("type") == Some("set");
                    let dir = if query {
                        Direction::Query
                    } else {
                        Direction::Answer
                    };
                    match r.check_direction(dir) {
                        Ok(()) => continue,
                        Err(e) => ("PS-21", e.to_string()),
                    }
                }
                Ok(Some(_)) => continue,
            };
            self.flag(CheckId::StrictSyntax, req, t, peer, st, why);
        }
    }

    /// PS-30, PS-82 (reconcile), PS-42 (batch), PS-30 and PS-41 (max-bytes).
    fn limits(&mut self, t: SimTime, peer: &str, st: &Element, ours: &[&Element]) {
        self.saw(CheckId::Limits);
        let ctx = self.ctx;
        let lim = self.peer(peer).limits(ctx);
        let max = lim.max_items as usize;
        let mut bad = Vec::new();
        let mut query_bad = Vec::new();
        // Items (batch) and live presence (fanout) carry published state: PS-41.
        let mut size_req = "PS-30";
        for el in ours {
            let count = |names: &[&str]| {
                let ours = el.children().filter(|c| c.ns() == PRESENCE_SYNC);
                ours.filter(|c| names.contains(&c.name())).count()
            };
            match el.name() {
                "reconcile" => {
                    // PS-31: room in the answer for a hand-back of every node of a query.
                    if st.attr("type") == Some("set") {
                        self.saw(CheckId::QueryNodes);
                        let (n, weight) = query_weight(el);
                        if n > 1 && weight > lim.max_bytes as usize {
                            let why = format!(
                                "{n} nodes in a query, {weight} bytes of hand-backs (512 a \
                                 node, 64 an 8-nibble <ids/>), more than max-bytes {}",
                                lim.max_bytes
                            );
                            query_bad.push(why);
                        }
                    }
                    for (names, what) in [
                        (["split", "ids"], "split and ids"),
                        (["edge", "item"], "edges and items"),
                    ] {
                        let n = count(&names);
                        if n > max {
                            bad.push(("PS-30", format!("{n} {what} exceed max-items {max}")));
                        }
                    }
                    for c in el.children().filter(|c| c.ns() == PRESENCE_SYNC) {
                        let n = c.attr("ids").map_or(0, id_count);
                        if n > max {
                            bad.push((
                                "PS-82",
                                format!("<{}/> lists {n} ids, max-items {max}", c.name()),
                            ));
                        }
                    }
                }
                "batch" => {
                    size_req = "PS-41";
                    let n = count(&["item"]);
                    if n > max {
                        bad.push(("PS-42", format!("{n} items exceed max-items {max}")));
                    }
                }
                "fanout" => size_req = "PS-41",
                _ => {}
            }
        }
        let bytes = wire_len(st);
        if bytes > u64::from(lim.max_bytes) {
            bad.push((
                size_req,
                format!("{bytes} bytes exceed max-bytes {}", lim.max_bytes),
            ));
        }
        for (req, why) in bad {
            self.flag(CheckId::Limits, req, t, peer, st, why);
        }
        for why in query_bad {
            self.flag(CheckId::QueryNodes, "PS-31", t, peer, st, why);
        }
    }

    /// PS-42 (publishers once per batch), PS-39 and PS-74 (domains), PS-8 (content).
    fn items(&mut self, t: SimTime, peer: &str, st: &Element, ours: &[&Element]) {
        let host = self.domain;
        let (mut domains, mut content, mut examined) = (Vec::new(), Vec::new(), false);
        for el in ours
            .iter()
            .filter(|e| ["batch", "reconcile"].contains(&e.name()))
        {
            let mut publishers = BTreeSet::new();
            for c in el.children().filter(|c| c.ns() == PRESENCE_SYNC) {
                examined |= matches!(c.name(), "item" | "edge");
                if c.name() == "item" {
                    let jid = c.attr("jid").unwrap_or_default();
                    let key = bare(Some(jid)).map_or(jid.to_owned(), |j| j.to_string());
                    if el.name() == "batch" && !publishers.insert(key) {
                        self.flag(
                            CheckId::BatchPublishers,
                            "PS-42",
                            t,
                            peer,
                            st,
                            format!("two items for {jid}"),
                        );
                    }
                    check_item(c, host, peer, &mut domains, &mut content);
                } else if c.name() == "edge" {
                    let (p, s) = (c.attr("publisher"), c.attr("subscriber"));
                    let ends = [p, s].map(|j| bare(j).map(|j| j.domain().to_string()));
                    let ok = matches!(&ends, [Some(a), Some(b)]
                        if (a == host && b == peer) || (a == peer && b == host));
                    if !ok {
                        let (p, s) = (p.unwrap_or_default(), s.unwrap_or_default());
                        let why = format!("edge {p} -> {s} is not between {host} and {peer}");
                        domains.push(("PS-74", why));
                    }
                }
            }
            if el.name() == "batch" {
                self.saw(CheckId::BatchPublishers);
            }
        }
        if !examined {
            return;
        }
        self.saw(CheckId::ItemEdgeDomains);
        self.saw(CheckId::ItemContent);
        for (req, why) in domains {
            self.flag(CheckId::ItemEdgeDomains, req, t, peer, st, why);
        }
        for why in content {
            self.flag(CheckId::ItemContent, "PS-8", t, peer, st, why);
        }
    }

    fn out_iq(&mut self, t: SimTime, peer: &str, st: &Element) {
        let id = st.attr("id").unwrap_or_default().to_owned();
        let hello = child(st, "hello");
        if let Some(h) = hello {
            self.own_hello(t, peer, st, h);
        }
        match st.attr("type") {
            Some("set") if hello.is_some() => {
                self.saw(CheckId::HelloPacing);
                let p = self.peer(peer);
                // A request unanswered for 60 s has failed (PS-51): it no longer holds the
                // next hello back.
                p.hellos_out
                    .retain(|_, sent| t.0.saturating_sub(sent.0) < REQUEST_TIMEOUT_US);
                let pending = p.hellos_out.iter().next().map(|(i, s)| (i.clone(), *s));
                p.hellos_out.insert(id, t);
                if let Some((other, sent)) = pending {
                    let why = format!("hello '{other}' sent at {sent} is unanswered");
                    self.flag(CheckId::HelloPacing, "PS-20", t, peer, st, why);
                }
            }
            Some("set") if child(st, "reconcile").is_some() || child(st, "batch").is_some() => {
                self.saw(CheckId::Window);
                let ctx = self.ctx;
                let p = self.peer(peer);
                p.requests_out.insert(id, t);
                let (n, window) = (p.requests_out.len(), p.limits(ctx).window);
                if n > window as usize {
                    let ids: Vec<&str> = p.requests_out.keys().map(String::as_str).collect();
                    let why = format!(
                        "{n} requests outstanding ({}) exceed window {window}",
                        ids.join(", ")
                    );
                    self.flag(CheckId::Window, "PS-50", t, peer, st, why);
                }
                if let Some(b) = child(st, "batch") {
                    let epoch = b.attr("epoch").and_then(|e| e.parse().ok());
                    self.own_epoch(t, peer, st, epoch);
                }
                if let Some(r) = child(st, "reconcile") {
                    self.re_asks(t, peer, st, r);
                }
            }
            Some(ty @ ("result" | "error")) => {
                if let Some((check, req, why)) = self.answer(t, peer, st, ty, hello) {
                    self.flag(check, req, t, peer, st, why);
                }
            }
            _ => {}
        }
    }

    /// PS-32, PS-84: the ids a query of the host lacks that it lacked before in this
    /// descent go in a query of their own, and no edge id is asked for a third time.
    fn re_asks(&mut self, t: SimTime, peer: &str, st: &Element, r: &Element) {
        let Ok(query) = Reconcile::parse_element(r) else {
            return; // strict-syntax reports it
        };
        let p = self.peer(peer);
        let (mut again, mut third) = (0, 0);
        let mut nodes = false;
        for entry in &query.entries {
            match entry {
                ReconcileEntry::Split(_) | ReconcileEntry::Ids(_) => nodes = true,
                ReconcileEntry::Lack(l) => {
                    for id in &l.ids.0 {
                        let n = p.lacked.entry((query.set, *id)).or_default();
                        *n += 1;
                        again += usize::from(*n >= 2);
                        third += usize::from(*n > 2 && query.set == ReconcileSet::Edges);
                    }
                }
                _ => {}
            }
        }
        if again == 0 {
            return;
        }
        self.saw(CheckId::ReAsks);
        if nodes {
            let why = format!(
                "asks again for {again} ids in a query that also carries <split/> or <ids/>"
            );
            self.flag(CheckId::ReAsks, "PS-84", t, peer, st, why);
        }
        if third > 0 {
            let why = format!("asks a third time for {third} ids of the edge set in one descent");
            self.flag(CheckId::ReAsks, "PS-32", t, peer, st, why);
        }
    }

    /// An iq result or error of the host: which request of the peer it answers (PS-17,
    /// PS-23), and whether it ends the session (an error answering a request of the
    /// protocol). Returns what is wrong with it, if anything.
    fn answer(
        &mut self,
        t: SimTime,
        peer: &str,
        st: &Element,
        ty: &str,
        hello: Option<&Element>,
    ) -> Option<(CheckId, &'static str, String)> {
        let id = st.attr("id").unwrap_or_default();
        let p = self.peer(peer);
        let (hash, set) = (p.hellos_in.remove(id), p.queries_in.remove(id));
        let twice = p.answered.contains(id);
        let batch = p.batches_in.remove(id).is_some();
        if hash.is_none() && set.is_none() && !twice && !batch {
            return None; // not an answer to a request of the protocol
        }
        if ty == "error" {
            p.session = None;
        }
        if batch {
            return (ty == "result" && st.children().next().is_some()).then(|| {
                let why = "answers a batch with a result that is not empty".to_owned();
                (CheckId::BatchAnswered, "PS-43", why)
            });
        }
        if let Some((_, hash)) = hash {
            return match hello.map(|h| h.attr("hash").unwrap_or_default()) {
                Some(h) if h == hash => {
                    p.establish(t, t);
                    None
                }
                Some(h) => Some((
                    CheckId::HelloAnswered,
                    "PS-17",
                    format!("answers a {hash} hello with a {h} hello"),
                )),
                None if ty == "result" => Some((
                    CheckId::HelloAnswered,
                    "PS-17",
                    "result without a hello".to_owned(),
                )),
                None => None,
            };
        }
        if twice {
            return Some((
                CheckId::ReconcileAnswered,
                "PS-23",
                "second answer to one reconcile query".to_owned(),
            ));
        }
        let (_, set) = set?;
        p.answered.insert(id.to_owned());
        let queried = p.query_nodes.remove(id).unwrap_or_default();
        let reconcile = child(st, "reconcile");
        let answer = reconcile.and_then(|r| r.attr("set"));
        if ty == "result" && answer != Some(set.as_str()) {
            let why = format!("answers a {set} query without a <reconcile set='{set}'/>");
            return Some((CheckId::ReconcileAnswered, "PS-23", why));
        }
        let nodes = reconcile
            .into_iter()
            .flat_map(|r| r.children())
            .filter(|c| matches!(c.name(), "split" | "ids"))
            .filter_map(|c| c.attr("prefix"));
        self.saw(CheckId::AnswerNodes);
        for node in nodes {
            let related = queried
                .iter()
                .any(|q| q == node || (node.len() == q.len() + 1 && node.starts_with(q.as_str())));
            if !related {
                let why = format!(
                    "answer names prefix '{node}', not a node of its query ({}) nor a child",
                    queried.join(", ")
                );
                return Some((CheckId::AnswerNodes, "PS-90", why));
            }
        }
        None
    }

    /// A hello the host sent (request or answer): PS-18 (read from the attributes, since
    /// the strict parser rejects such a hello), PS-12, and its limits.
    fn own_hello(&mut self, t: SimTime, peer: &str, st: &Element, h: &Element) {
        self.saw(CheckId::HelloCachedRoot);
        let cached = h
            .children()
            .find(|r| r.is("root", PRESENCE_SYNC) && r.attr("set") == Some("cached"));
        let count = cached.and_then(|r| r.attr("count")).unwrap_or("0");
        if h.attr("peer-epoch").is_none() && count != "0" {
            let why = format!("no peer-epoch but a cached root of count {count}");
            self.flag(CheckId::HelloCachedRoot, "PS-18", t, peer, st, why);
        }
        if let Ok(hello) = Hello::parse_element(h) {
            self.peer(peer).host_limits = Some(hello.limits());
        }
        // A hello ends a descent (PS-32).
        self.peer(peer).lacked.clear();
        let epoch = h.attr("epoch").and_then(|e| e.parse().ok());
        self.own_epoch(t, peer, st, epoch);
    }

    /// An epoch the host wrote in a hello or batch (PS-12).
    fn own_epoch(&mut self, t: SimTime, peer: &str, st: &Element, epoch: Option<Epoch>) {
        let Some(epoch) = epoch else { return };
        self.saw(CheckId::Epochs);
        let why = match self.boot_epoch {
            Some(e) if e != epoch => format!("epoch {epoch}, but this boot's is {e}"),
            Some(_) => return,
            None => {
                self.boot_epoch = Some(epoch);
                if !self.earlier_epochs.contains(&epoch) {
                    return;
                }
                format!("epoch {epoch} of an earlier boot, after a restart")
            }
        };
        self.flag(CheckId::Epochs, "PS-12", t, peer, st, why);
    }

    /// PS-46 (domain-level presence), repairs, PS-66 (no per-user presence in a session).
    fn out_presence(&mut self, t: SimTime, peer: &str, st: &Element) {
        let ty = st.attr("type");
        let fanout = child(st, "fanout").is_some();
        if fanout {
            self.saw(CheckId::DomainPresence);
            let mut bad = Vec::new();
            if !matches!(ty, None | Some("unavailable")) {
                bad.push(format!("type '{}'", ty.unwrap_or_default()));
            }
            if self.peer(peer).session.is_none() {
                bad.push("no session is established".to_owned());
            }
            let from = st.attr("from").and_then(|f| Jid::new(f).ok());
            if !from.is_some_and(|f| f.is_full() && f.domain().as_str() == self.domain) {
                bad.push(format!("from is not a full JID of {}", self.domain));
            }
            if st.attr("to") != Some(peer) {
                bad.push(format!("to is not the domain {peer}"));
            }
            for why in bad {
                self.flag(CheckId::DomainPresence, "PS-46", t, peer, st, why);
            }
        }
        if let Some(r) = child(st, "repair") {
            self.repair(t, peer, st, r);
        }
        let p = self.peer(peer);
        // On the wire, presence the host sent before it read the answer that established
        // the session may be recorded after that answer; a host whose request lapsed may
        // have ended the session (PS-51) and, after three, treat the peer as legacy (PS-58).
        if fanout || !p.sync || p.session.is_none() || t < p.aware || p.lapsed(t) {
            return;
        }
        self.saw(CheckId::NoPerUserPresence);
        let p = self.peer(peer);
        let why = match ty {
            Some("probe") => "a presence probe",
            None | Some("unavailable") => {
                let to = st.attr("to").and_then(|j| Jid::new(j).ok());
                let multicast = st.has_child("addresses", "http://jabber.org/protocol/address");
                if !(multicast || to.is_some_and(|j| j.node().is_some())) {
                    return;
                }
                // Answers to a probe of the peer: every one sent when the first one is.
                if let (Some(prober), Some(probed)) = (bare_of(st, "to"), bare_of(st, "from")) {
                    match p.probes.get_mut(&(prober, probed)) {
                        Some(first @ None) => return *first = Some(t),
                        Some(Some(at)) if *at == t => return,
                        _ => {}
                    }
                }
                "per-user presence that answers no probe"
            }
            _ => return,
        };
        self.flag(
            CheckId::NoPerUserPresence,
            "PS-66",
            t,
            peer,
            st,
            format!("in a session, {why}"),
        );
    }

    /// PS-60, PS-61, PS-83.
    fn repair(&mut self, t: SimTime, peer: &str, st: &Element, r: &Element) {
        self.saw(CheckId::Repairs);
        let mut bad = Vec::new();
        if let Err(e) = Repair::parse_element(r) {
            bad.push(("PS-60", format!("<repair/> is not empty: {e}")));
        }
        let ty = st.attr("type").unwrap_or_default();
        let (from, to) = (
            user_of(st.attr("from"), self.domain),
            user_of(st.attr("to"), peer),
        );
        if from.is_none() {
            bad.push((
                "PS-61",
                format!("from is not a bare JID of a user of {}", self.domain),
            ));
        }
        if to.is_none() {
            bad.push(("PS-61", format!("to is not a bare JID of a user of {peer}")));
        }
        // The pair (publisher, subscriber) of PS-83, not (from, to).
        let pair = match ty {
            "subscribe" | "unsubscribe" => to.zip(from),
            "subscribed" | "unsubscribed" => from.zip(to),
            _ => {
                bad.push(("PS-60", format!("<repair/> in a presence of type '{ty}'")));
                None
            }
        };
        let p = self.peer(peer);
        if let Some((publisher, subscriber)) = pair {
            let since = p
                .session
                .map_or("no session".to_owned(), |s| format!("session since {s}"));
            if !p.repairs.insert((publisher.clone(), subscriber.clone())) {
                let why = format!(
                    "second repair of pair ({publisher}, {subscriber}) in one session ({since})"
                );
                bad.push(("PS-83", why));
            }
        }
        for (req, why) in bad {
            self.flag(CheckId::Repairs, req, t, peer, st, why);
        }
    }

    /// PS-54: one message per peer, the boot's epoch, only when stopping.
    fn out_shutdown(&mut self, t: SimTime, peer: &str, st: &Element, s: &Element) {
        self.saw(CheckId::Shutdown);
        self.peer(peer).session = None;
        let mut bad = Vec::new();
        if st.attr("from") != Some(self.domain) || st.attr("to") != Some(peer) {
            bad.push(format!("not from {} to {peer}", self.domain));
        }
        match &mut self.stop {
            None => bad.push("shutdown announced while the host is running".to_owned()),
            Some(stop) => {
                let n = stop.sent.entry(peer.to_owned()).or_default();
                *n += 1;
                if *n > 1 {
                    bad.push(format!("shutdown message number {n} to this peer"));
                }
            }
        }
        let epoch = Shutdown::parse_element(s).ok().map(|s| s.epoch);
        if let (Some(e), Some(boot)) = (epoch, self.boot_epoch) {
            if e != boot {
                bad.push(format!(
                    "epoch {e}, but the hellos of this boot carry {boot}"
                ));
            }
        }
        for why in bad {
            self.flag(CheckId::Shutdown, "PS-54", t, peer, st, why);
        }
    }
}

/// PS-39 (domains and JIDs of an item) and PS-8 (what its presence carries).
fn check_item(
    item: &Element,
    host: &str,
    peer: &str,
    domains: &mut Vec<(&'static str, String)>,
    content: &mut Vec<String>,
) {
    let raw = item.attr("jid").unwrap_or_default();
    let jid = user_of(Some(raw), host);
    if jid.is_none() {
        domains.push(("PS-39", format!("item jid '{raw}' is not a user of {host}")));
    }
    for c in item.children() {
        if c.name() == "presence" {
            let from = c.attr("from").and_then(|f| Jid::new(f).ok());
            if !from.is_some_and(|f| f.is_full() && Some(f.to_bare()) == jid) {
                let f = c.attr("from").unwrap_or_default();
                domains.push((
                    "PS-39",
                    format!("presence from '{f}' is not a resource of item '{raw}'"),
                ));
            }
            for x in c.children() {
                let what = match x.ns().as_str() {
                    "urn:xmpp:delay" | "jabber:x:delay" => "a delay stamp",
                    PRESENCE_SYNC => "the marker",
                    _ => continue,
                };
                content.push(format!(
                    "item '{raw}': presence carries {what} <{}/>",
                    x.name()
                ));
            }
        } else if c.name() == "except" && user_of(c.attr("jid"), peer).is_none() {
            let e = c.attr("jid").unwrap_or_default();
            domains.push((
                "PS-39",
                format!("item '{raw}': except '{e}' is not a user of {peer}"),
            ));
        }
    }
}

/// The `<split/>` and `<ids/>` children of a query, and the room their hand-backs claim in
/// the answer (PS-31): 512 bytes each, 64 for an `<ids/>` of 8 nibbles; a query should claim
/// at most max-bytes.
fn query_weight(reconcile: &Element) -> (usize, usize) {
    let nodes = reconcile
        .children()
        .filter(|c| c.ns() == PRESENCE_SYNC && matches!(c.name(), "split" | "ids"));
    nodes.fold((0, 0), |(n, w), c| {
        let deep = c.name() == "ids" && c.attr("prefix").is_some_and(|p| p.len() == 8);
        (n + 1, w + if deep { 64 } else { 512 })
    })
}
