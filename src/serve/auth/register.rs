//! XEP-0077 in-band registration, sans-IO: from the client's `jabber:iq:register` request to
//! the answer and the change to store.
//!
//! Before authentication a client may ask for the form (§3.1, `get`) and register a username
//! and password (§3.1, `set`); once authenticated it may change its password (§3.3) or
//! remove its account (§3.2). [`Registration::handle`] returns a [`Decision`]: either the
//! answer itself, or an account change for the storage with a [`Pending`] answer the c2s
//! layer completes with the storage's outcome (an existing user gives `<conflict/>`), so the
//! check for an existing account and its creation are one step of the storage.
//!
//! Errors (XEP-0077 §3.1 and §3.2): `<not-allowed/>` when registration is disabled,
//! `<not-acceptable/>` when the username or the password is missing or unusable,
//! `<conflict/>` for a taken username, `<bad-request/>` for a request that is not a
//! registration query, `<not-authorized/>` for removing an account before authentication.

use jid::{BareJid, DomainPart, Jid, NodePart};
use minidom::Element;
use xmpp_parsers::ibr::LegacyQuery;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::ns;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::credentials::{Credentials, CredentialsError, MIN_ITERATIONS};

/// The server's registration policy for one domain.
#[derive(Clone, Debug)]
pub struct Registration {
    domain: DomainPart,
    /// Pre-authentication registration is open (the server's configuration).
    pub allowed: bool,
    /// PBKDF2 iteration count of new credentials (at least [`MIN_ITERATIONS`]).
    pub iterations: u32,
    /// The `<instructions/>` of the form.
    pub instructions: String,
}

/// What to do with a registration request.
#[derive(Debug)]
pub enum Decision {
    /// Send this answer; nothing changes.
    Reply(Iq),
    /// Create `user` with `credentials` unless it exists, then answer with
    /// [`Pending::created`].
    Create {
        /// The account to create.
        user: BareJid,
        /// Its credentials (derived here; the password goes no further).
        credentials: Credentials,
        /// The answer, once the storage has spoken.
        reply: Pending,
    },
    /// Replace the credentials of the authenticated `user` (§3.3), then answer with
    /// [`Pending::done`].
    ChangePassword {
        /// The authenticated account.
        user: BareJid,
        /// Its new credentials.
        credentials: Credentials,
        /// The answer, once stored.
        reply: Pending,
    },
    /// Remove the authenticated `user` (§3.2), answer with [`Pending::done`], then close the
    /// stream (the account is gone).
    Remove {
        /// The authenticated account.
        user: BareJid,
        /// The answer, once removed.
        reply: Pending,
    },
}

/// The answer to a request whose outcome depends on the storage.
#[derive(Debug)]
pub struct Pending {
    id: String,
    from: Option<Jid>,
    to: Option<Jid>,
}

impl Pending {
    fn from_request(iq: &Iq) -> Pending {
        let (from, to, id) = header(iq);
        Pending {
            id: id.to_owned(),
            from: to.cloned(),
            to: from.cloned(),
        }
    }

    fn result(self, payload: Option<Element>) -> Iq {
        Iq::Result {
            from: self.from,
            to: self.to,
            id: self.id,
            payload,
        }
    }

    fn error(self, type_: ErrorType, condition: DefinedCondition, text: &str) -> Iq {
        Iq::Error {
            from: self.from,
            to: self.to,
            id: self.id,
            error: StanzaError::new(type_, condition, "en", text),
            payload: None,
        }
    }

    /// The answer to [`Decision::Create`]: an empty result if the account was created,
    /// `<conflict/>` if the username was taken (XEP-0077 §3.1).
    pub fn created(self, created: bool) -> Iq {
        if created {
            self.result(None)
        } else {
            self.error(
                ErrorType::Cancel,
                DefinedCondition::Conflict,
                "The requested username already exists.",
            )
        }
    }

    /// The answer to [`Decision::ChangePassword`] and [`Decision::Remove`] once done.
    pub fn done(self) -> Iq {
        self.result(None)
    }

    /// The answer when the storage failed: `<internal-server-error/>`, type `wait`.
    pub fn failed(self) -> Iq {
        self.error(
            ErrorType::Wait,
            DefinedCondition::InternalServerError,
            "The account could not be stored.",
        )
    }
}

fn header(iq: &Iq) -> (Option<&Jid>, Option<&Jid>, &str) {
    match iq {
        Iq::Get { from, to, id, .. }
        | Iq::Set { from, to, id, .. }
        | Iq::Result { from, to, id, .. }
        | Iq::Error { from, to, id, .. } => (from.as_ref(), to.as_ref(), id),
    }
}

impl Registration {
    /// The policy for `domain`: registration `allowed` or not, [`MIN_ITERATIONS`], default
    /// instructions. `None` if `domain` is not a valid domain part.
    pub fn new(domain: &str, allowed: bool) -> Option<Registration> {
        Some(Registration {
            domain: DomainPart::from(DomainPart::new(domain).ok()?),
            allowed,
            iterations: MIN_ITERATIONS,
            instructions: "Choose a username and password for use with this service.".into(),
        })
    }

    /// Decides on a `jabber:iq:register` request; `authenticated` is the stream's account,
    /// if SASL succeeded. `None` for `result` and `error` iqs, which are never answered
    /// (RFC 6120 §8.2.3).
    pub fn handle(&self, iq: &Iq, authenticated: Option<&BareJid>) -> Option<Decision> {
        let reply = Pending::from_request(iq);
        let (payload, set) = match iq {
            Iq::Get { payload, .. } => (payload, false),
            Iq::Set { payload, .. } => (payload, true),
            Iq::Result { .. } | Iq::Error { .. } => return None,
        };
        if !payload.is("query", ns::REGISTER) {
            let e = reply.error(
                ErrorType::Modify,
                DefinedCondition::BadRequest,
                "Not a registration query.",
            );
            return Some(Decision::Reply(e));
        }
        if authenticated.is_none() && !self.allowed {
            let e = reply.error(
                ErrorType::Cancel,
                DefinedCondition::NotAllowed,
                "In-band registration is disabled.",
            );
            return Some(Decision::Reply(e));
        }
        Some(match (set, authenticated) {
            (false, None) => Decision::Reply(reply.result(Some(self.form().into()))),
            (false, Some(user)) => {
                let query = LegacyQuery {
                    registered: true,
                    username: user.node().map(|n| n.to_string()),
                    ..LegacyQuery::default()
                };
                Decision::Reply(reply.result(Some(query.into())))
            }
            (true, _) if payload.has_child("remove", ns::REGISTER) => match authenticated {
                Some(user) => Decision::Remove {
                    user: user.clone(),
                    reply,
                },
                None => Decision::Reply(reply.error(
                    ErrorType::Auth,
                    DefinedCondition::NotAuthorized,
                    "Only an authenticated account can be removed.",
                )),
            },
            (true, _) => self.set(payload, authenticated, reply),
        })
    }

    /// The empty form (XEP-0077 §3.1, Example 2): instructions, username, password.
    fn form(&self) -> LegacyQuery {
        LegacyQuery {
            instructions: Some(self.instructions.clone()),
            username: Some(String::new()),
            password: Some(String::new()),
            ..LegacyQuery::default()
        }
    }

    fn set(&self, payload: &Element, authenticated: Option<&BareJid>, reply: Pending) -> Decision {
        let not_acceptable = |reply: Pending, text: &str| {
            Decision::Reply(reply.error(ErrorType::Modify, DefinedCondition::NotAcceptable, text))
        };
        let Ok(query) = LegacyQuery::try_from(payload.clone()) else {
            let e = reply.error(
                ErrorType::Modify,
                DefinedCondition::BadRequest,
                "Unreadable registration query.",
            );
            return Decision::Reply(e);
        };
        let (Some(username), Some(password)) = (query.username, query.password) else {
            return not_acceptable(reply, "A username and a password are required.");
        };
        if username.is_empty() || password.is_empty() {
            return not_acceptable(reply, "A username and a password are required.");
        }
        let Ok(node) = NodePart::new(&username) else {
            return not_acceptable(reply, "The username is not a valid JID localpart.");
        };
        let user = BareJid::from_parts(Some(&node), &self.domain);
        if authenticated.is_some_and(|a| a != &user) {
            let e = reply.error(
                ErrorType::Modify,
                DefinedCondition::BadRequest,
                "The username is not the authenticated account's.",
            );
            return Decision::Reply(e);
        }
        let credentials = match Credentials::new(&password, self.iterations) {
            Ok(c) => c,
            Err(CredentialsError::Password(_)) => {
                return not_acceptable(reply, "The password has characters that are not allowed.");
            }
            Err(_) => return Decision::Reply(reply.failed()),
        };
        match authenticated {
            None => Decision::Create {
                user,
                credentials,
                reply,
            },
            Some(_) => Decision::ChangePassword {
                user,
                credentials,
                reply,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iq(xml: &str) -> Iq {
        let e: Element = xml.parse().unwrap();
        Iq::try_from(e).unwrap()
    }

    fn error_of(d: Option<Decision>) -> (ErrorType, DefinedCondition) {
        match d {
            Some(Decision::Reply(Iq::Error { error, id, .. })) => {
                assert_eq!(id, "r1");
                (error.type_, error.defined_condition)
            }
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    const GET: &str =
        "<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>";

    fn set(inner: &str) -> Iq {
        iq(&format!(
            "<iq xmlns='jabber:client' type='set' id='r1' to='shakespeare.lit'>\
             <query xmlns='jabber:iq:register'>{inner}</query></iq>"
        ))
    }

    fn reg(allowed: bool) -> Registration {
        Registration::new("shakespeare.lit", allowed).unwrap()
    }

    #[test]
    fn form_and_registration() {
        // §3.1 Example 1 and 2: the form names username and password.
        let Some(Decision::Reply(Iq::Result {
            payload: Some(p),
            id,
            ..
        })) = reg(true).handle(&iq(GET), None)
        else {
            panic!("no form");
        };
        assert_eq!(id, "r1");
        assert!(p.has_child("username", ns::REGISTER) && p.has_child("password", ns::REGISTER));
        assert!(p.has_child("instructions", ns::REGISTER));
        // §3.1 Example 4: the account to create, and the answer once created.
        let d = reg(true).handle(
            &set("<username>bill</username><password>Calliope</password>"),
            None,
        );
        let Some(Decision::Create {
            user,
            credentials,
            reply,
        }) = d
        else {
            panic!("no creation: {d:?}");
        };
        assert_eq!(user, BareJid::new("bill@shakespeare.lit").unwrap());
        assert!(credentials.verify_password("Calliope") && credentials.is_valid());
        let Iq::Result {
            id,
            from,
            payload: None,
            ..
        } = reply.created(true)
        else {
            panic!("no result");
        };
        assert_eq!(id, "r1");
        assert_eq!(
            from,
            Some(Jid::new("shakespeare.lit").unwrap()),
            "answered from the server"
        );
    }

    #[test]
    fn conflict_not_acceptable_not_allowed() {
        // §3.1 Example 5: the username is taken.
        let d = reg(true).handle(
            &set("<username>bill</username><password>x</password>"),
            None,
        );
        let Some(Decision::Create { reply, .. }) = d else {
            panic!()
        };
        let Iq::Error { error, .. } = reply.created(false) else {
            panic!()
        };
        assert_eq!(
            (error.type_, error.defined_condition),
            (ErrorType::Cancel, DefinedCondition::Conflict)
        );
        // §3.1 Example 6: a required field is missing or empty.
        for inner in [
            "<username>bill</username>",
            "<password>x</password>",
            "<username/><password>x</password>",
            "<username>bill</username><password/>",
            "<username>bi ll@x</username><password>x</password>",
            "<username>bill</username><password>\u{E000}</password>", // private use: SASLprep prohibits it
        ] {
            assert_eq!(
                error_of(reg(true).handle(&set(inner), None)),
                (ErrorType::Modify, DefinedCondition::NotAcceptable),
                "{inner}"
            );
        }
        // Registration disabled: not-allowed, for the form as for a submission.
        for request in [
            iq(GET),
            set("<username>bill</username><password>x</password>"),
        ] {
            assert_eq!(
                error_of(reg(false).handle(&request, None)),
                (ErrorType::Cancel, DefinedCondition::NotAllowed)
            );
        }
        let other = iq(
            "<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        );
        assert_eq!(
            error_of(reg(true).handle(&other, None)).1,
            DefinedCondition::BadRequest
        );
        let result = iq("<iq xmlns='jabber:client' type='result' id='r1'/>");
        assert!(reg(true).handle(&result, None).is_none());
    }

    #[test]
    fn authenticated_requests() {
        let bill = BareJid::new("bill@shakespeare.lit").unwrap();
        // §3.1 Example 3: already registered. Allowed or not, the account may manage itself.
        let Some(Decision::Reply(Iq::Result {
            payload: Some(p), ..
        })) = reg(false).handle(&iq(GET), Some(&bill))
        else {
            panic!()
        };
        assert!(p.has_child("registered", ns::REGISTER));
        assert_eq!(
            p.get_child("username", ns::REGISTER).unwrap().text(),
            "bill"
        );
        // §3.3: password change.
        let d = reg(false).handle(
            &set("<username>bill</username><password>newpass</password>"),
            Some(&bill),
        );
        let Some(Decision::ChangePassword {
            user,
            credentials,
            reply,
        }) = d
        else {
            panic!()
        };
        assert_eq!(user, bill);
        assert!(credentials.verify_password("newpass"));
        assert!(matches!(reply.done(), Iq::Result { .. }));
        let d = reg(true).handle(
            &set("<username>juliet</username><password>x</password>"),
            Some(&bill),
        );
        assert_eq!(error_of(d).1, DefinedCondition::BadRequest);
        // §3.2: removal, only once authenticated.
        let Some(Decision::Remove { user, reply }) =
            reg(true).handle(&set("<remove/>"), Some(&bill))
        else {
            panic!()
        };
        assert_eq!(user, bill);
        assert!(matches!(reply.failed(), Iq::Error { .. }));
        assert_eq!(
            error_of(reg(true).handle(&set("<remove/>"), None)),
            (ErrorType::Auth, DefinedCondition::NotAuthorized)
        );
    }
}
