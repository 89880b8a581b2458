//! Ground truth: what RFC 6121 and XEP-0191 entitle each user to see, computed from the
//! persistent state (rosters, block lists) and the live sessions of every domain involved,
//! independently of any protocol that moves presence around.
//!
//! A viewer `v` is entitled to the presence of a contact `c` exactly when
//!
//! - `v`'s roster item for `c` has a subscription `to` `c` (RFC 6121 §3),
//! - `c`'s roster item for `v` has a subscription `from` `v`: both servers agree on the edge (a
//!   one-sided "ghost" edge entitles nobody; the protocol repairs it away),
//! - neither blocks the other (XEP-0191 §3.3: a blocked contact neither receives the user's
//!   presence nor has its presence delivered to the user), and
//! - `c` has at least one available resource; `v` then sees exactly those resources.
//!
//! Viewers are all users of all domains given, online or not (what a user would be shown on
//! logging in); the check of a scenario compares this with what each server shows its users.

use std::collections::{BTreeMap, HashMap};

use jid::BareJid;

use super::presence::ResourcePresence;
use super::roster::Account;

/// Available resources of one user, by resource.
pub type Resources = BTreeMap<String, ResourcePresence>;

/// viewer → contact → the contact's available resources.
pub type View = BTreeMap<BareJid, BTreeMap<BareJid, Resources>>;

/// One domain's state as the oracle sees it.
#[derive(Clone, Copy, Debug)]
pub struct DomainState<'a> {
    /// The domain.
    pub domain: &'a str,
    /// Rosters and block lists of its users.
    pub accounts: &'a BTreeMap<BareJid, Account>,
    /// Available resources of each online user (an absent or empty entry: offline).
    pub online: &'a BTreeMap<BareJid, Resources>,
}

/// What every user of `domains` is entitled to see of every contact in `domains`. Contacts in
/// domains not given are ignored. Only non-empty entries appear.
pub fn entitled(domains: &[DomainState<'_>]) -> View {
    entitled_viewers(domains, |_| true)
}

/// [`entitled`] for the viewers `wanted` selects only (the checks of a scenario compare the
/// online users: computing the others' views would clone the resources of every contact once
/// per subscriber for nothing).
pub fn entitled_viewers(domains: &[DomainState<'_>], wanted: impl Fn(&BareJid) -> bool) -> View {
    // The online contacts of the given domains, with their accounts, by JID: one hash lookup
    // per roster item instead of three ordered-map searches (this runs over every roster item
    // of a federation of 10^6 edges after each measured phase).
    let mut online: HashMap<&str, (&Account, &Resources)> = HashMap::new();
    for d in domains {
        for (jid, resources) in d.online {
            if resources.is_empty() || jid.domain().as_str() != d.domain {
                continue;
            }
            if let Some(account) = d.accounts.get(jid) {
                online.insert(jid.as_str(), (account, resources));
            }
        }
    }
    let mut view = View::new();
    for d in domains {
        for (viewer, acc) in d.accounts.iter().filter(|(v, _)| wanted(v)) {
            let mut seen = BTreeMap::new();
            for (c, sub) in acc.roster.iter() {
                if !sub.to() {
                    continue;
                }
                let Some((contact_acc, resources)) = online.get(c.as_str()) else {
                    continue;
                };
                if acc.blocked.blocks(c) || !contact_acc.publishes_to(viewer) {
                    continue;
                }
                seen.insert(c.clone(), (*resources).clone());
            }
            if !seen.is_empty() {
                view.entry(viewer.clone()).or_default().extend(seen);
            }
        }
    }
    view
}

/// The differences between what a system shows (`shown`) and the truth, one line each, for
/// test failure messages: missing, stale (shown but not entitled: a ghost or a leak) and wrong
/// entries. Empty when they agree.
pub fn differences(truth: &View, shown: &View) -> Vec<String> {
    differences_borrowed(truth, &shown.iter().collect())
}

/// [`differences`] against views borrowed from the servers that show them (cloning every
/// online user's view for one comparison costs as much as computing the truth).
pub fn differences_borrowed(
    truth: &View,
    shown: &BTreeMap<&BareJid, &BTreeMap<BareJid, Resources>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    let viewers: std::collections::BTreeSet<&BareJid> =
        truth.keys().chain(shown.keys().copied()).collect();
    for v in viewers {
        let t = truth.get(v).unwrap_or(&empty);
        let s = shown.get(v).copied().unwrap_or(&empty);
        if t == s {
            continue;
        }
        for (c, res) in t {
            match s.get(c) {
                None => out.push(format!("{v} misses {c} ({} resources)", res.len())),
                Some(r) if r != res => {
                    out.push(format!("{v} sees {c} wrongly: {r:?}, truth {res:?}"))
                }
                Some(_) => {}
            }
        }
        for c in s.keys().filter(|c| !t.contains_key(*c)) {
            out.push(format!(
                "{v} sees {c} but is not entitled to (stale or leaked)"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::subscription::{NamedState, Subscription};

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    fn online(resources: &[&str]) -> Resources {
        resources
            .iter()
            .map(|r| (r.to_string(), ResourcePresence::default()))
            .collect()
    }

    struct World {
        a: BTreeMap<BareJid, Account>,
        b: BTreeMap<BareJid, Account>,
        on_a: BTreeMap<BareJid, Resources>,
        on_b: BTreeMap<BareJid, Resources>,
    }

    impl World {
        fn new() -> World {
            World {
                a: BTreeMap::new(),
                b: BTreeMap::new(),
                on_a: BTreeMap::new(),
                on_b: BTreeMap::new(),
            }
        }
        fn relate(&mut self, ua: &str, ub: &str, from_a: NamedState, from_b: NamedState) {
            self.a
                .entry(jid(ua))
                .or_default()
                .roster
                .set(jid(ub), Subscription::named(from_a));
            self.b
                .entry(jid(ub))
                .or_default()
                .roster
                .set(jid(ua), Subscription::named(from_b));
        }
        fn view(&self) -> View {
            entitled(&[
                DomainState {
                    domain: "a.example",
                    accounts: &self.a,
                    online: &self.on_a,
                },
                DomainState {
                    domain: "b.example",
                    accounts: &self.b,
                    online: &self.on_b,
                },
            ])
        }
    }

    #[test]
    fn mutual_subscription_shows_online_resources_only() {
        let mut w = World::new();
        w.relate(
            "juliet@a.example",
            "romeo@b.example",
            NamedState::Both,
            NamedState::Both,
        );
        assert!(w.view().is_empty(), "nobody online");
        w.on_b
            .insert(jid("romeo@b.example"), online(&["orchard", "phone"]));
        let v = w.view();
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[&jid("juliet@a.example")][&jid("romeo@b.example")].len(),
            2
        );
    }

    #[test]
    fn one_way_pending_ghost_and_blocked_entitle_nothing() {
        let mut w = World::new();
        // One way: juliet sees romeo, romeo does not see juliet.
        w.relate(
            "juliet@a.example",
            "romeo@b.example",
            NamedState::To,
            NamedState::From,
        );
        // Pending: nurse asked, no answer yet.
        w.relate(
            "nurse@a.example",
            "romeo@b.example",
            NamedState::NonePendingOut,
            NamedState::NonePendingIn,
        );
        // Ghost: tybalt's server believes he sees benvolio; benvolio's server disagrees.
        w.relate(
            "tybalt@a.example",
            "benvolio@b.example",
            NamedState::To,
            NamedState::None,
        );
        // Blocked: mercutio and paris are mutual, but paris blocks mercutio.
        w.relate(
            "mercutio@a.example",
            "paris@b.example",
            NamedState::Both,
            NamedState::Both,
        );
        w.b.get_mut(&jid("paris@b.example"))
            .unwrap()
            .blocked
            .block(jid("mercutio@a.example"));
        for u in ["juliet", "nurse", "tybalt", "mercutio"] {
            w.on_a
                .insert(jid(&format!("{u}@a.example")), online(&["r"]));
        }
        for u in ["romeo", "benvolio", "paris"] {
            w.on_b
                .insert(jid(&format!("{u}@b.example")), online(&["r"]));
        }
        let v = w.view();
        let pairs: Vec<(String, String)> = v
            .iter()
            .flat_map(|(viewer, cs)| cs.keys().map(move |c| (viewer.to_string(), c.to_string())))
            .collect();
        assert_eq!(
            pairs,
            vec![(
                "juliet@a.example".to_string(),
                "romeo@b.example".to_string()
            )]
        );
    }

    #[test]
    fn differences_name_missing_stale_and_wrong() {
        let truth: View = [(jid("a@x"), [(jid("b@y"), online(&["r"]))].into())].into();
        assert!(differences(&truth, &truth).is_empty());
        let shown: View = [(jid("a@x"), [(jid("c@y"), online(&["r"]))].into())].into();
        let d = differences(&truth, &shown);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("misses b@y") && d[1].contains("not entitled"));
    }
}
