//! Two servers end to end, stanzas shuttled by hand: subscription flows (RFC 6121 §3),
//! blocking (XEP-0191), local contacts, and the flavours' differences on the way.
//!
//! Stanza counts are written out per step in comments; `a→b` is what a.example sent.

use std::collections::BTreeSet;

use jid::BareJid;
use minidom::Element;

use super::{Flavour, Server};
use crate::model::truth::{View, differences, entitled};
use crate::model::{NamedState, ResourcePresence, Show, Subscription};
use crate::sim::{Host, SimTime};

const PROSODY: Flavour = Flavour::Prosody;
const EJABBERD: Flavour = Flavour::Ejabberd { multicast: false };

/// The RFC 6121 state of `user`'s roster item for `contact` on `server`.
fn state(server: &Server, user: &BareJid, contact: &BareJid) -> NamedState {
    server.accounts()[user]
        .roster
        .get(contact)
        .expect("the item exists")
        .name()
}

fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn juliet() -> BareJid {
    jid("juliet@a.example")
}

fn romeo() -> BareJid {
    jid("romeo@b.example")
}

fn nurse() -> BareJid {
    jid("nurse@a.example")
}

fn away() -> ResourcePresence {
    ResourcePresence {
        show: Show::Away,
        ..Default::default()
    }
}

/// Two servers and a hand shuttle between them.
struct Pair {
    a: Server,
    b: Server,
    /// Stanzas moved since the last [`Pair::take`]: (sent by a.example, stanza).
    sent: Vec<(bool, Element)>,
}

impl Pair {
    /// a.example with juliet and nurse, b.example with romeo; empty rosters.
    fn new(fa: Flavour, fb: Flavour) -> Pair {
        let mut a = Server::new("a.example", fa);
        let mut b = Server::new("b.example", fb);
        a.add_user(&juliet());
        a.add_user(&nurse());
        b.add_user(&romeo());
        Pair {
            a,
            b,
            sent: Vec::new(),
        }
    }

    fn relate(&mut self, ua: &BareJid, ub: &BareJid, at_a: NamedState, at_b: NamedState) {
        let (sa, sb) = (Subscription::named(at_a), Subscription::named(at_b));
        if ua.domain().as_str() == "a.example" && ub.domain().as_str() == "a.example" {
            self.a.set_roster_item(ua, ub, sa);
            self.a.set_roster_item(ub, ua, sb);
        } else {
            self.a.set_roster_item(ua, ub, sa);
            self.b.set_roster_item(ub, ua, sb);
        }
    }

    /// Shuttles until both sides are idle.
    fn run(&mut self) {
        let now = SimTime::ZERO;
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                assert_eq!(t.peer, "b.example");
                self.sent.push((true, t.stanza.clone()));
                self.b.handle_stanza(now, "a.example", t.stanza);
                moved = true;
            }
            while let Some(t) = self.b.poll_transmit() {
                assert_eq!(t.peer, "a.example");
                self.sent.push((false, t.stanza.clone()));
                self.a.handle_stanza(now, "b.example", t.stanza);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs, then returns and forgets the stanza types sent (a→b, b→a); `available` for
    /// available presence.
    fn take(&mut self) -> (Vec<String>, Vec<String>) {
        self.run();
        let ty = |e: &Element| e.attr("type").unwrap_or("available").to_owned();
        let a_b = self.sent.iter().filter(|s| s.0).map(|s| ty(&s.1)).collect();
        let b_a = self
            .sent
            .iter()
            .filter(|s| !s.0)
            .map(|s| ty(&s.1))
            .collect();
        self.sent.clear();
        (a_b, b_a)
    }

    /// Every online user's view equals what RFC 6121 entitles it to.
    fn check_truth(&self) {
        let online: BTreeSet<&BareJid> = self
            .a
            .online()
            .keys()
            .chain(self.b.online().keys())
            .collect();
        let truth: View = entitled(&[self.a.domain_state(), self.b.domain_state()])
            .into_iter()
            .filter(|(viewer, _)| online.contains(viewer))
            .collect();
        let mut shown = self.a.views();
        shown.extend(self.b.views());
        let diff = differences(&truth, &shown);
        assert!(diff.is_empty(), "{diff:#?}");
    }

    fn login_both(&mut self) {
        self.a
            .login(&juliet(), "balcony", ResourcePresence::default());
        self.b
            .login(&romeo(), "orchard", ResourcePresence::default());
        self.run();
        self.sent.clear();
    }
}

fn v(types: &[&str]) -> Vec<String> {
    types.iter().map(|s| s.to_string()).collect()
}

#[test]
fn subscribe_approve_and_mutual_prosody() {
    let mut p = Pair::new(PROSODY, PROSODY);
    p.login_both();
    // juliet asks: subscribe; romeo's server acknowledges with unavailable (not shown: juliet
    // has no `to` yet).
    p.a.subscribe(&juliet(), &romeo());
    assert_eq!(p.take(), (v(&["subscribe"]), v(&["unavailable"])));
    assert_eq!(state(&p.b, &romeo(), &juliet()), NamedState::NonePendingIn);
    assert_eq!(p.b.stats().subscriptions_delivered, 1);
    // romeo approves: subscribed, then his presence (RFC 6121 §3.1.5).
    p.b.approve(&romeo(), &juliet());
    assert_eq!(p.take(), (v(&[]), v(&["subscribed", "available"])));
    assert_eq!(p.a.view(&juliet()).len(), 1);
    p.check_truth();
    // romeo asks back: subscribe + ack; juliet approves: subscribed + her presence + a probe,
    // because she is subscribed to romeo ("re-probe after outgoing subscribed"), answered by
    // romeo's presence.
    p.b.subscribe(&romeo(), &juliet());
    assert_eq!(p.take(), (v(&["unavailable"]), v(&["subscribe"])));
    p.a.approve(&juliet(), &romeo());
    assert_eq!(
        p.take(),
        (v(&["subscribed", "available", "probe"]), v(&["available"]))
    );
    assert_eq!(p.b.view(&romeo()).len(), 1);
    p.check_truth();
    // Roster pushes, one resource each: juliet: pending out, to, to + pending in, both (4);
    // romeo: pending in, from, from + pending out, both (4).
    assert_eq!(p.a.stats().roster_pushes, 4);
    assert_eq!(p.b.stats().roster_pushes, 4);
}

#[test]
fn subscribe_approve_and_mutual_ejabberd() {
    let mut p = Pair::new(EJABBERD, EJABBERD);
    p.login_both();
    p.a.subscribe(&juliet(), &romeo());
    assert_eq!(p.take(), (v(&["subscribe"]), v(&[])));
    p.b.approve(&romeo(), &juliet());
    assert_eq!(p.take(), (v(&[]), v(&["subscribed", "available"])));
    p.check_truth();
    p.b.subscribe(&romeo(), &juliet());
    assert_eq!(p.take(), (v(&[]), v(&["subscribe"])));
    p.a.approve(&juliet(), &romeo());
    assert_eq!(p.take(), (v(&["subscribed", "available"]), v(&[])));
    p.check_truth();
    assert_eq!(p.a.view(&juliet()).len(), 1);
    assert_eq!(p.b.view(&romeo()).len(), 1);
}

#[test]
fn unsubscribe_and_cancel() {
    for (flavour, unavailable_from_b) in [(PROSODY, 0), (EJABBERD, 1)] {
        let mut p = Pair::new(flavour, flavour);
        p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
        p.login_both();
        // juliet unsubscribes: her clients stop showing romeo at once. ejabberd answers with
        // romeo's unavailable (RFC 6121 §3.3.3), not shown since juliet has no `to` any more.
        p.a.unsubscribe(&juliet(), &romeo());
        assert!(p.a.view(&juliet()).is_empty());
        let (a_b, b_a) = p.take();
        assert_eq!(a_b, v(&["unsubscribe"]));
        assert_eq!(b_a.len(), unavailable_from_b, "{flavour:?}");
        // juliet cancels romeo's subscription: unsubscribed, then her unavailable (§3.2.2).
        p.a.deny(&juliet(), &romeo());
        assert_eq!(p.take(), (v(&["unsubscribed", "unavailable"]), v(&[])));
        assert!(p.b.view(&romeo()).is_empty());
        assert_eq!(state(&p.b, &romeo(), &juliet()), NamedState::None);
        p.check_truth();
    }
}

#[test]
fn pre_approval_is_honoured_with_presence() {
    for flavour in [PROSODY, EJABBERD] {
        let mut p = Pair::new(flavour, flavour);
        p.login_both();
        // Pre-approval: a roster change only (RFC 6121 §3.4).
        p.a.approve(&juliet(), &romeo());
        assert_eq!(p.take(), (v(&[]), v(&[])));
        assert!(
            p.a.accounts()[&juliet()]
                .roster
                .get(&romeo())
                .unwrap()
                .approved()
        );
        // romeo's request is approved by juliet's server: subscribed, then her presence.
        p.b.subscribe(&romeo(), &juliet());
        assert_eq!(
            p.take(),
            (v(&["subscribed", "available"]), v(&["subscribe"]))
        );
        assert_eq!(p.b.view(&romeo()).len(), 1);
        p.check_truth();
    }
}

#[test]
fn redundant_subscribe() {
    // Already subscribed: both auto-reply `subscribed` (§3.1.3); Prosody adds the presence.
    for (flavour, want) in [
        (PROSODY, v(&["subscribed", "available"])),
        (EJABBERD, v(&["subscribed"])),
    ] {
        let mut p = Pair::new(flavour, flavour);
        p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
        p.login_both();
        p.b.subscribe(&romeo(), &juliet());
        assert_eq!(p.take(), (want, v(&["subscribe"])), "{flavour:?}");
        p.check_truth();
    }
}

#[test]
fn blocking_and_unblocking() {
    for flavour in [PROSODY, EJABBERD] {
        let mut p = Pair::new(flavour, flavour);
        p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
        p.login_both();
        assert_eq!(p.a.view(&juliet()).len(), 1);
        // Blocking sends unavailable to romeo (XEP-0191 §3.3); juliet stops seeing him.
        p.a.block(&juliet(), &romeo());
        assert_eq!(p.take(), (v(&["unavailable"]), v(&[])));
        assert!(p.a.view(&juliet()).is_empty() && p.b.view(&romeo()).is_empty());
        p.check_truth();
        // romeo's presence still goes out, and is dropped at a.example.
        p.b.set_presence(&romeo(), "orchard", away());
        assert_eq!(p.take(), (v(&[]), v(&["available"])));
        assert!(p.a.view(&juliet()).is_empty());
        // juliet's outbound subscription stanzas to a blocked contact go nowhere.
        p.a.unsubscribe(&juliet(), &romeo());
        assert_eq!(p.take(), (v(&[]), v(&[])));
        // Unblocking: her presence, as an answer to a probe, and a probe of romeo.
        p.a.unblock(&juliet(), &romeo());
        assert_eq!(p.take(), (v(&["available", "probe"]), v(&["available"])));
        assert_eq!(p.a.view(&juliet())[&romeo()]["orchard"], away());
        p.check_truth();
    }
}

#[test]
fn blocking_a_domain() {
    let mut p = Pair::new(PROSODY, PROSODY);
    p.b.add_user(&jid("tybalt@b.example"));
    p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
    p.relate(
        &juliet(),
        &jid("tybalt@b.example"),
        NamedState::From,
        NamedState::To,
    );
    p.login_both();
    p.b.login(&jid("tybalt@b.example"), "r", ResourcePresence::default());
    p.run();
    p.sent.clear();
    // Both subscribers of b.example get juliet's unavailable.
    p.a.block(&juliet(), &jid("b.example"));
    assert_eq!(p.take(), (v(&["unavailable", "unavailable"]), v(&[])));
    p.check_truth();
    assert!(p.b.views().is_empty());
}

#[test]
fn local_contacts_need_no_stanzas() {
    for flavour in [PROSODY, EJABBERD] {
        let mut p = Pair::new(flavour, flavour);
        p.relate(&juliet(), &nurse(), NamedState::Both, NamedState::Both);
        p.a.login(&juliet(), "balcony", ResourcePresence::default());
        p.a.login(&nurse(), "kitchen", away());
        assert_eq!(p.take(), (v(&[]), v(&[])));
        assert_eq!(p.a.view(&juliet())[&nurse()]["kitchen"], away());
        assert_eq!(p.a.view(&nurse())[&juliet()].len(), 1);
        p.check_truth();
        // Deliveries: juliet's probe of the offline nurse is answered with unavailable by
        // Prosody (1); nurse's broadcast reaches juliet (1) and juliet's answer to nurse's
        // probe reaches nurse (1).
        let want = if flavour == PROSODY { 3 } else { 2 };
        assert_eq!(p.a.stats().presence_delivered, want, "{flavour:?}");
        assert_eq!(p.a.stats().probes_received, 2);
        p.a.logout(&nurse(), "kitchen");
        assert!(p.a.view(&juliet()).is_empty());
        assert!(p.a.view(&nurse()).is_empty());
        p.check_truth();
    }
}

#[test]
fn local_subscription_flow() {
    let mut p = Pair::new(EJABBERD, EJABBERD);
    p.a.login(&juliet(), "balcony", ResourcePresence::default());
    p.a.login(&nurse(), "kitchen", ResourcePresence::default());
    p.a.subscribe(&nurse(), &juliet());
    p.a.approve(&juliet(), &nurse());
    assert_eq!(p.take(), (v(&[]), v(&[])));
    assert_eq!(p.a.view(&nurse())[&juliet()].len(), 1);
    assert!(p.a.view(&juliet()).is_empty());
    p.check_truth();
}

#[test]
fn mixed_flavours_interoperate_through_multicast() {
    // b.example groups with XEP-0033; a.example (Prosody) expands.
    let mut p = Pair::new(PROSODY, Flavour::Ejabberd { multicast: true });
    p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
    p.relate(&nurse(), &romeo(), NamedState::Both, NamedState::Both);
    p.a.login(&juliet(), "balcony", ResourcePresence::default());
    p.a.login(&nurse(), "kitchen", ResourcePresence::default());
    // Each logs in: broadcast + probe to offline romeo; ejabberd does not answer.
    assert_eq!(
        p.take(),
        (v(&["available", "probe", "available", "probe"]), v(&[]))
    );
    // romeo: one grouped probe and one grouped presence for his two contacts on a.example,
    // each answered by one presence per contact.
    p.b.login(&romeo(), "orchard", away());
    let (a_b, b_a) = p.take();
    assert_eq!(b_a, v(&["probe", "available"]));
    assert_eq!(a_b, v(&["available", "available"]));
    p.check_truth();
    assert_eq!(p.a.view(&nurse())[&romeo()]["orchard"], away());
}

#[test]
fn crash_forgets_sessions_and_restart_boots_empty() {
    let mut p = Pair::new(PROSODY, PROSODY);
    p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
    p.login_both();
    p.b.set_presence(&romeo(), "orchard", away());
    p.b.crash(SimTime::ZERO);
    assert!(p.b.poll_transmit().is_none(), "a crash sends nothing");
    assert!(p.b.online().is_empty() && p.b.views().is_empty());
    assert_eq!(p.b.accounts()[&romeo()].roster.len(), 1, "rosters persist");
    // A down server ignores its clients.
    p.b.login(&romeo(), "orchard", away());
    assert!(p.b.poll_transmit().is_none());
    p.b.restart(SimTime::ZERO);
    assert!(p.b.is_up() && p.b.online().is_empty());
}

#[test]
fn second_resource_probes_again_and_answers_go_to_it() {
    let mut p = Pair::new(PROSODY, PROSODY);
    p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
    p.login_both();
    let delivered = p.a.stats().presence_delivered;
    // A second session's initial presence: 1 broadcast + 1 probe (both servers probe per
    // session), answered to that session's full JID only.
    p.a.login(&juliet(), "phone", away());
    assert_eq!(p.take(), (v(&["available", "probe"]), v(&["available"])));
    assert_eq!(p.a.stats().presence_delivered, delivered + 1);
    assert_eq!(p.b.view(&romeo())[&juliet()].len(), 2);
    // Presence to the bare JID reaches both sessions.
    p.b.set_presence(&romeo(), "orchard", away());
    assert_eq!(p.take(), (v(&[]), v(&["available"])));
    assert_eq!(p.a.stats().presence_delivered, delivered + 3);
    // One session ends: the other keeps what it was shown.
    p.a.logout(&juliet(), "balcony");
    assert_eq!(p.take(), (v(&["unavailable"]), v(&[])));
    assert_eq!(p.a.view(&juliet())[&romeo()]["orchard"], away());
    assert_eq!(
        p.b.view(&romeo())[&juliet()].keys().collect::<Vec<_>>(),
        ["phone"]
    );
    p.check_truth();
}

#[test]
fn probe_answers_and_shutdown_carry_what_each_flavour_adds() {
    for (flavour, delay_from) in [
        (PROSODY, "a.example"),
        (EJABBERD, "juliet@a.example/balcony"),
    ] {
        let mut p = Pair::new(flavour, PROSODY);
        p.relate(&juliet(), &romeo(), NamedState::Both, NamedState::Both);
        p.a.login(&juliet(), "balcony", away());
        p.run();
        p.sent.clear();
        // romeo's probe is answered with juliet's stored presence, delay-tagged.
        p.b.login(&romeo(), "orchard", ResourcePresence::default());
        p.run();
        let answers: Vec<&Element> = p
            .sent
            .iter()
            .filter(|(by_a, e)| *by_a && e.attr("type").is_none())
            .map(|(_, e)| e)
            .collect();
        assert_eq!(answers.len(), 1, "{flavour:?}");
        let delay = answers[0]
            .get_child("delay", super::DELAY)
            .unwrap_or_else(|| panic!("{flavour:?}: no delay on {:?}", answers[0]));
        assert_eq!(delay.attr("from"), Some(delay_from));
        // What romeo is shown is juliet's presence, without the server's note.
        assert_eq!(p.b.view(&romeo())[&juliet()]["balcony"], away());
        p.check_truth();
        p.sent.clear();
        // A clean shutdown: Prosody's sessions end with a reason, ejabberd says nothing.
        p.a.shutdown(SimTime::ZERO);
        p.run();
        let statuses: Vec<String> = p
            .sent
            .iter()
            .filter(|(by_a, e)| *by_a && e.attr("type") == Some("unavailable"))
            .filter_map(|(_, e)| e.get_child("status", crate::wire::ns::JABBER_SERVER))
            .map(|s| s.text())
            .collect();
        let want: &[&str] = if flavour == PROSODY {
            &[super::SHUTDOWN_STATUS]
        } else {
            &[]
        };
        assert_eq!(statuses, want, "{flavour:?}");
    }
}
