//! The server side of SASL for c2s streams (RFC 6120 §6): PLAIN (RFC 4616), SCRAM-SHA-1
//! (RFC 5802) and SCRAM-SHA-256 (RFC 7677), without channel binding (no `-PLUS` variants are
//! offered, so a client's `y` flag is accepted and `p=` is refused, RFC 5802 §6).
//!
//! Sans-IO, in the quinn-proto manner: the c2s layer decodes the base64 of `<auth/>` and
//! `<response/>` and feeds the bytes in; every input returns one [`Step`] to act on. Looking up
//! the account is one of those steps ([`Step::Lookup`]), so the credentials may come from a
//! storage owned by another task:
//!
//! ```text
//!  <auth mechanism=M>data   ──► Sasl::start(M, data)        ──► Step
//!  <response>data           ──► Exchange::respond(data)     ──► Step
//!  Step::Lookup(user)       ──► Exchange::provide(creds)    ──► Step
//!  <abort/>                 ──► Exchange::abort()           ──► Step::Failure(aborted)
//!
//!  Step::Challenge(d) ──► <challenge>d      Step::Success{..} ──► <success>data (§6.3.10)
//!  Step::Failure(f)   ──► <failure><f.condition/></failure> (§6.5)
//! ```
//!
//! An unknown user is not revealed: PLAIN spends the same PBKDF2 work and fails with
//! `not-authorized`; SCRAM answers with a salt derived from the user name and a per-server
//! secret (the same on every attempt, with the iteration count real accounts get) and fails at
//! the proof, so that the answers do not tell which accounts exist.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jid::{BareJid, DomainPart, NodePart};
use xmpp_parsers::sasl::DefinedCondition;

use super::credentials::{
    Credentials, MIN_ITERATIONS, SALT_LEN, ScramHash, ScramKeys, ct_eq, prepare_password,
};

/// The mechanisms offered, in the server's order of preference (RFC 6120 §6.4.1: the client
/// picks; the order is a hint).
pub const MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];

/// Length of the random part of a SCRAM server nonce, in bytes before base64.
const NONCE_LEN: usize = 18;

/// What the c2s layer does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Send `<challenge/>` with these bytes (RFC 6120 §6.4.3) and wait for a `<response/>`.
    Challenge(Vec<u8>),
    /// Look up the credentials of this account and call [`Exchange::provide`] (with `None`
    /// if there is no such account, or [`Exchange::lookup_failed`] if the storage failed).
    Lookup(BareJid),
    /// Send `<success/>` with `additional_data` (RFC 6120 §6.3.10; empty for PLAIN, the
    /// server-final-message for SCRAM); the stream is authenticated as `user`.
    Success {
        /// The authenticated account.
        user: BareJid,
        /// Additional data with success.
        additional_data: Vec<u8>,
    },
    /// Send `<failure/>` (RFC 6120 §6.5); the client may try again with a new `<auth/>`.
    Failure(Failure),
}

/// A SASL failure: the RFC 6120 §6.5 condition and a short reason for logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The defined condition sent to the client.
    pub condition: DefinedCondition,
    /// Why, in a few words (for the server's log; not sent, so that `not-authorized` does not
    /// tell an unknown user from a wrong password).
    pub reason: &'static str,
}

impl Failure {
    fn new(condition: DefinedCondition, reason: &'static str) -> Failure {
        Failure { condition, reason }
    }

    fn malformed(reason: &'static str) -> Failure {
        Failure::new(DefinedCondition::MalformedRequest, reason)
    }

    fn not_authorized(reason: &'static str) -> Failure {
        Failure::new(DefinedCondition::NotAuthorized, reason)
    }

    /// The `<failure/>` element (without text).
    pub fn to_xml(&self) -> xmpp_parsers::sasl::Failure {
        xmpp_parsers::sasl::Failure {
            defined_condition: self.condition.clone(),
            texts: Default::default(),
        }
    }

    /// `incorrect-encoding` (RFC 6120 §6.5.2), for the c2s layer when the base64 of an
    /// `<auth/>` or `<response/>` does not decode.
    pub fn incorrect_encoding() -> Failure {
        Failure::new(DefinedCondition::IncorrectEncoding, "invalid base64")
    }
}

/// The server's SASL configuration: its domain and the secret that makes the SCRAM answers
/// for unknown users stable. One per server; [`Sasl::start`] begins an exchange.
#[derive(Clone)]
pub struct Sasl {
    domain: DomainPart,
    secret: [u8; 32],
    iterations: u32,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// The SASL configuration could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslError {
    /// The domain is not a valid JID domain part.
    Domain,
    /// The operating system's random source failed.
    Random,
}

impl std::fmt::Display for SaslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SaslError::Domain => "invalid domain",
            SaslError::Random => "the operating system's random source failed",
        })
    }
}

impl std::error::Error for SaslError {}

impl Sasl {
    /// The configuration for `domain`, with a fresh random secret.
    pub fn new(domain: &str) -> Result<Sasl, SaslError> {
        let domain = DomainPart::from(DomainPart::new(domain).map_err(|_| SaslError::Domain)?);
        let mut secret = [0; 32];
        getrandom::fill(&mut secret).map_err(|_| SaslError::Random)?;
        Ok(Sasl {
            domain,
            secret,
            iterations: MIN_ITERATIONS,
        })
    }

    /// The PBKDF2 iteration count new accounts get (the registration's): unknown accounts
    /// are answered with it, so that it does not tell them apart. [`MIN_ITERATIONS`] unless
    /// set; smaller values are raised to it.
    pub fn set_iterations(&mut self, iterations: u32) {
        self.iterations = iterations.max(MIN_ITERATIONS);
    }

    /// Begins an exchange for the client's `<auth mechanism='mechanism'/>` with its initial
    /// response (`None` or empty when the client sent none: the server then sends an empty
    /// challenge, RFC 6120 §6.4.2). An unknown mechanism fails with `invalid-mechanism`.
    pub fn start(&self, mechanism: &str, initial: Option<&[u8]>) -> (Exchange, Step) {
        let mut nonce = [0u8; NONCE_LEN];
        if getrandom::fill(&mut nonce).is_err() {
            let mut ex = self.exchange(Mechanism::Plain, String::new());
            let step = ex.fail(Failure::new(
                DefinedCondition::TemporaryAuthFailure,
                "no random nonce",
            ));
            return (ex, step);
        }
        self.start_with_nonce(mechanism, initial, &STANDARD.encode(nonce))
    }

    /// [`Sasl::start`] with a given SCRAM server nonce (printable ASCII without commas), for
    /// the RFC test vectors; a server uses [`Sasl::start`].
    pub fn start_with_nonce(
        &self,
        mechanism: &str,
        initial: Option<&[u8]>,
        server_nonce: &str,
    ) -> (Exchange, Step) {
        let mech = match mechanism {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-1" => Some(Mechanism::Scram(ScramHash::Sha1)),
            "SCRAM-SHA-256" => Some(Mechanism::Scram(ScramHash::Sha256)),
            _ => None,
        };
        let mut ex = self.exchange(mech.unwrap_or(Mechanism::Plain), server_nonce.to_owned());
        let Some(_) = mech else {
            let step = ex.fail(Failure::new(
                DefinedCondition::InvalidMechanism,
                "mechanism not offered",
            ));
            return (ex, step);
        };
        let step = match initial {
            Some(data) if !data.is_empty() => ex.first(data),
            _ => {
                ex.state = State::AwaitInitial;
                Step::Challenge(Vec::new())
            }
        };
        (ex, step)
    }

    fn exchange(&self, mechanism: Mechanism, server_nonce: String) -> Exchange {
        Exchange {
            domain: self.domain.clone(),
            secret: self.secret,
            iterations: self.iterations,
            mechanism,
            server_nonce,
            state: State::Done,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Scram(ScramHash),
}

enum State {
    /// An empty challenge was sent; the next response is the initial one.
    AwaitInitial,
    /// PLAIN: waiting for the credentials of `user`.
    PlainLookup { user: BareJid, password: String },
    /// SCRAM: client-first-message parsed, waiting for the credentials of `user`.
    ScramLookup {
        hash: ScramHash,
        user: BareJid,
        gs2_header: String,
        client_first_bare: String,
        client_nonce: String,
    },
    /// SCRAM: server-first-message sent, waiting for client-final-message.
    ScramChallenged(Box<Challenged>),
    /// Success or failure was returned; nothing more is accepted.
    Done,
}

/// What SCRAM remembers between server-first-message and client-final-message.
struct Challenged {
    user: BareJid,
    /// The account's record, or a fake one for an unknown account (`known` false).
    keys: ScramKeys,
    known: bool,
    gs2_header: String,
    /// The combined nonce (client's, then server's).
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

impl Challenged {
    /// RFC 5802 §3: checks the client's proof; the server-final-message if it holds.
    fn finish(self, data: &[u8]) -> Result<Step, Failure> {
        let keys = &self.keys;
        let (without_proof, proof) =
            client_final(data, &self.gs2_header, &self.nonce, keys.hash.output_len())?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = keys.hash.hmac(&keys.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let proven = ct_eq(&keys.hash.hash(&client_key), &keys.stored_key);
        if !(proven && self.known) {
            return Err(Failure::not_authorized("invalid proof"));
        }
        let server_signature = keys.hash.hmac(&keys.server_key, auth_message.as_bytes());
        Ok(Step::Success {
            user: self.user,
            additional_data: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        })
    }
}

/// One SASL exchange (one `<auth/>` and what follows it, RFC 6120 §6.4).
pub struct Exchange {
    domain: DomainPart,
    secret: [u8; 32],
    iterations: u32,
    mechanism: Mechanism,
    server_nonce: String,
    state: State,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// The client's `<response/>` data.
    pub fn respond(&mut self, data: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitInitial => self.first(data),
            State::ScramChallenged(challenged) => match challenged.finish(data) {
                Ok(step) => step,
                Err(f) => self.fail(f),
            },
            State::PlainLookup { .. } | State::ScramLookup { .. } => self.fail(Failure::malformed(
                "response while the server looks up the account",
            )),
            State::Done => self.fail(Failure::malformed("the exchange is over")),
        }
    }

    /// The credentials asked for by [`Step::Lookup`]: `None` if the account does not exist.
    pub fn provide(&mut self, credentials: Option<&Credentials>) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainLookup { user, password } => {
                let ok = match credentials {
                    Some(c) => c.verify_password(&password),
                    None => {
                        // Spend the same work as for a real account.
                        let fake = self.fake_keys(ScramHash::Sha256, &user);
                        let _ = prepare_password(&password).map(|p| fake.matches(&p));
                        false
                    }
                };
                if ok {
                    Step::Success {
                        user,
                        additional_data: Vec::new(),
                    }
                } else {
                    self.fail(Failure::not_authorized("wrong password or no such account"))
                }
            }
            State::ScramLookup {
                hash,
                user,
                gs2_header,
                client_first_bare,
                client_nonce,
            } => {
                let (keys, known) = match credentials {
                    Some(c) if c.keys(hash).is_valid() => (c.keys(hash).clone(), true),
                    _ => (self.fake_keys(hash, &user), false),
                };
                let nonce = format!("{client_nonce}{}", self.server_nonce);
                let server_first = format!(
                    "r={nonce},s={},i={}",
                    STANDARD.encode(&keys.salt),
                    keys.iterations
                );
                let challenge = server_first.clone().into_bytes();
                self.state = State::ScramChallenged(Box::new(Challenged {
                    user,
                    keys,
                    known,
                    gs2_header,
                    nonce,
                    client_first_bare,
                    server_first,
                }));
                Step::Challenge(challenge)
            }
            _ => self.fail(Failure::malformed("no lookup was asked for")),
        }
    }

    /// The lookup asked for by [`Step::Lookup`] failed (storage error):
    /// `temporary-auth-failure` (RFC 6120 §6.5.11).
    pub fn lookup_failed(&mut self) -> Step {
        self.fail(Failure::new(
            DefinedCondition::TemporaryAuthFailure,
            "the account could not be read",
        ))
    }

    /// The client sent `<abort/>` (RFC 6120 §6.4.4): `aborted`.
    pub fn abort(&mut self) -> Step {
        self.fail(Failure::new(
            DefinedCondition::Aborted,
            "aborted by the client",
        ))
    }

    fn fail(&mut self, failure: Failure) -> Step {
        self.state = State::Done;
        Step::Failure(failure)
    }

    /// The client's initial response.
    fn first(&mut self, data: &[u8]) -> Step {
        let parsed = match self.mechanism {
            Mechanism::Plain => self.plain(data),
            Mechanism::Scram(hash) => self.scram_first(hash, data),
        };
        match parsed {
            Ok((state, user)) => {
                self.state = state;
                Step::Lookup(user)
            }
            Err(f) => self.fail(f),
        }
    }

    /// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`.
    fn plain(&self, data: &[u8]) -> Result<(State, BareJid), Failure> {
        let text = std::str::from_utf8(data).map_err(|_| Failure::malformed("not UTF-8"))?;
        let parts: Vec<&str> = text.split('\0').collect();
        let [authzid, authcid, password] = parts[..] else {
            return Err(Failure::malformed("PLAIN needs exactly two NUL separators"));
        };
        if authcid.is_empty() || password.is_empty() {
            return Err(Failure::malformed("empty authcid or password"));
        }
        let user = self.user(authcid)?;
        self.check_authzid(authzid, &user)?;
        let password = password.to_owned();
        Ok((
            State::PlainLookup {
                user: user.clone(),
                password,
            },
            user,
        ))
    }

    /// RFC 5802 §7: `gs2-header client-first-message-bare`.
    fn scram_first(&self, hash: ScramHash, data: &[u8]) -> Result<(State, BareJid), Failure> {
        let text = std::str::from_utf8(data).map_err(|_| Failure::malformed("not UTF-8"))?;
        // gs2-cbind-flag: "n" (client does not do channel binding) or "y" (it does, but
        // believes the server does not: true, no -PLUS is offered); "p=" asks for binding.
        let rest = match text.as_bytes().first() {
            Some(b'n' | b'y') if text.as_bytes().get(1) == Some(&b',') => &text[2..],
            Some(b'p') => return Err(Failure::not_authorized("channel binding not supported")),
            _ => return Err(Failure::malformed("bad gs2 channel binding flag")),
        };
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(Failure::malformed("gs2 header not terminated"))?;
        let authzid = match authzid {
            "" => String::new(),
            a => saslname(
                a.strip_prefix("a=")
                    .ok_or(Failure::malformed("bad authzid"))?,
            )?,
        };
        let gs2_header = text[..text.len() - bare.len()].to_owned();
        let mut attrs = bare.split(',');
        let username = match attrs.next() {
            Some(a) if a.starts_with("m=") => {
                return Err(Failure::malformed("mandatory extension not supported"));
            }
            Some(a) => a
                .strip_prefix("n=")
                .ok_or(Failure::malformed("no username"))?,
            None => return Err(Failure::malformed("no username")),
        };
        let username = saslname(username)?;
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or(Failure::malformed("no valid client nonce"))?;
        for ext in attrs {
            check_extension(ext)?;
        }
        if username.is_empty() {
            return Err(Failure::malformed("empty username"));
        }
        let user = self.user(&username)?;
        self.check_authzid(&authzid, &user)?;
        let state = State::ScramLookup {
            hash,
            user: user.clone(),
            gs2_header,
            client_first_bare: bare.to_owned(),
            client_nonce: client_nonce.to_owned(),
        };
        Ok((state, user))
    }

    /// The account named by a simple user name (RFC 6120 §6.3.7: the localpart).
    fn user(&self, username: &str) -> Result<BareJid, Failure> {
        let node = NodePart::new(username).map_err(|_| Failure::not_authorized("bad username"))?;
        Ok(BareJid::from_parts(Some(&node), &self.domain))
    }

    /// RFC 6120 §6.3.8: an authorization identity, if given, must be the account itself (no
    /// account may act for another here).
    fn check_authzid(&self, authzid: &str, user: &BareJid) -> Result<(), Failure> {
        if authzid.is_empty() {
            return Ok(());
        }
        match BareJid::new(authzid) {
            Ok(j) if &j == user => Ok(()),
            _ => Err(Failure::new(
                DefinedCondition::InvalidAuthzid,
                "authzid is not the account",
            )),
        }
    }

    /// A record for an account that does not exist, stable per user and server.
    fn fake_keys(&self, hash: ScramHash, user: &BareJid) -> ScramKeys {
        let label = format!("{}\0{}", hash.mechanism(), user);
        let salt = &ScramHash::Sha256.hmac(&self.secret, label.as_bytes())[..SALT_LEN];
        let salted = ScramHash::Sha256.hmac(&self.secret, salt);
        ScramKeys::from_salted_password(hash, &salted[..hash.output_len()], salt, self.iterations)
    }
}

/// RFC 5802 §7 `saslname`: "=2C" is ',', "=3D" is '=', any other '=' is an error.
fn saslname(s: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(Failure::malformed("bad '=' escape in a name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 5802 §7 `attr-val`: one ASCII letter, '=', a value (unknown extensions are ignored).
fn check_extension(ext: &str) -> Result<(), Failure> {
    let b = ext.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'=' {
        Ok(())
    } else {
        Err(Failure::malformed("bad attribute"))
    }
}

/// RFC 5802 §7 `client-final-message`: `c=… ,r=… [,ext…] ,p=…`; returns the message without
/// the proof and the decoded proof, after checking the channel binding and the nonce.
fn client_final<'a>(
    data: &'a [u8],
    gs2_header: &str,
    nonce: &str,
    proof_len: usize,
) -> Result<(&'a str, Vec<u8>), Failure> {
    let text = std::str::from_utf8(data).map_err(|_| Failure::malformed("not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(Failure::malformed("no proof"))?;
    let proof = STANDARD
        .decode(proof)
        .map_err(|_| Failure::malformed("proof is not base64"))?;
    if proof.len() != proof_len {
        return Err(Failure::malformed("proof of the wrong length"));
    }
    let mut attrs = without_proof.split(',');
    let binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(Failure::malformed("no channel binding"))?;
    let their_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(Failure::malformed("no nonce"))?;
    for ext in attrs {
        check_extension(ext)?;
    }
    // Without channel binding, c= carries the gs2 header alone (RFC 5802 §7).
    if STANDARD.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
        return Err(Failure::not_authorized("channel binding does not match"));
    }
    if their_nonce != nonce {
        return Err(Failure::not_authorized("nonce does not match"));
    }
    Ok((without_proof, proof))
}

#[cfg(test)]
#[path = "sasl_tests.rs"]
mod tests;
