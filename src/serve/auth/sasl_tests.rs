//! The SASL exchanges against RFC 5802's and RFC 7677's test vectors and every failure
//! condition the server produces (RFC 6120 §6.5).

use super::*;

const DOMAIN: &str = "example.com";

fn user() -> BareJid {
    BareJid::new("user@example.com").unwrap()
}

/// The account of both RFCs' examples: user "user", password "pencil", with RFC 5802's
/// SHA-1 salt and RFC 7677's SHA-256 salt, 4096 iterations.
fn pencil() -> Credentials {
    let s1 = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
    let s256 = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    Credentials::with_salts("pencil", &s1, &s256, 4096).unwrap()
}

fn sasl() -> Sasl {
    Sasl::new(DOMAIN).unwrap()
}

fn condition(step: Step) -> DefinedCondition {
    match step {
        Step::Failure(f) => f.condition,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Runs a SCRAM exchange up to the server-first-message and returns it with the exchange.
fn scram_challenge(
    mech: &str,
    first: &str,
    nonce: &str,
    creds: Option<&Credentials>,
) -> (Exchange, String) {
    let (mut ex, step) = sasl().start_with_nonce(mech, Some(first.as_bytes()), nonce);
    assert_eq!(step, Step::Lookup(user()));
    match ex.provide(creds) {
        Step::Challenge(c) => (ex, String::from_utf8(c).unwrap()),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn success_data(step: Step) -> String {
    match step {
        Step::Success {
            user: u,
            additional_data,
        } => {
            assert_eq!(u, user());
            String::from_utf8(additional_data).unwrap()
        }
        other => panic!("expected success, got {other:?}"),
    }
}

#[test]
fn rfc5802_section5_scram_sha1() {
    let creds = pencil();
    let (mut ex, challenge) = scram_challenge(
        "SCRAM-SHA-1",
        "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        Some(&creds),
    );
    assert_eq!(
        challenge,
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    );
    let step = ex.respond(
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    );
    assert_eq!(success_data(step), "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    // Nothing is accepted after success.
    assert_eq!(
        condition(ex.respond(b"x")),
        DefinedCondition::MalformedRequest
    );
}

#[test]
fn rfc7677_section3_scram_sha256() {
    let creds = pencil();
    let (mut ex, challenge) = scram_challenge(
        "SCRAM-SHA-256",
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        Some(&creds),
    );
    assert_eq!(
        challenge,
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let step = ex.respond(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
          p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    assert_eq!(
        success_data(step),
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

#[test]
fn scram_wrong_proof_nonce_or_binding_is_not_authorized() {
    let creds = pencil();
    let nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
    let finals = [
        // One bit of the proof flipped (v0X8… → v1X8…).
        format!("c=biws,r={nonce},p=v1X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
        // The client's nonce alone, not the combined one.
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=".to_owned(),
        // c= for the "y" flag while the client sent "n".
        format!("c=eSws,r={nonce},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
    ];
    for last in finals {
        let (mut ex, _) = scram_challenge(
            "SCRAM-SHA-1",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            Some(&creds),
        );
        assert_eq!(
            condition(ex.respond(last.as_bytes())),
            DefinedCondition::NotAuthorized,
            "{last}"
        );
    }
}

#[test]
fn scram_malformed_messages() {
    let firsts = [
        "x,,n=user,r=abc",       // unknown gs2 flag
        "n,n=user,r=abc",        // gs2 header without the authzid field
        "n,,m=ext,n=user,r=abc", // mandatory extension
        "n,,r=abc",              // no username
        "n,,n=us=2Xer,r=abc",    // bad escape
        "n,,n=user",             // no nonce
        "n,,n=user,r=a,bc",      // an attribute that is not attr=value
        "n,,n=user,r=",          // empty nonce
        "n,,n=,r=abc",           // empty username
    ];
    for first in firsts {
        let (_, step) = sasl().start_with_nonce("SCRAM-SHA-1", Some(first.as_bytes()), "n");
        assert_eq!(
            condition(step),
            DefinedCondition::MalformedRequest,
            "{first}"
        );
    }
    let (_, step) = sasl().start("SCRAM-SHA-1", Some(b"n,,n=user,r=\xff"));
    assert_eq!(condition(step), DefinedCondition::MalformedRequest);
    // Channel binding required by the client: not offered here.
    let (_, step) = sasl().start("SCRAM-SHA-1", Some(b"p=tls-unique,,n=user,r=abc"));
    assert_eq!(condition(step), DefinedCondition::NotAuthorized);

    let creds = pencil();
    for last in [
        "c=biws,r=x",
        "c=biws,r=x,p=notbase64!",
        "c=biws,r=x,p=AAAA",
        "r=x,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    ] {
        let (mut ex, _) = scram_challenge("SCRAM-SHA-1", "n,,n=user,r=abc", "def", Some(&creds));
        assert_eq!(
            condition(ex.respond(last.as_bytes())),
            DefinedCondition::MalformedRequest,
            "{last}"
        );
    }
}

#[test]
fn scram_y_flag_authzid_and_extensions() {
    // "y": the client could bind but believes the server cannot (true: no -PLUS offered).
    let creds = pencil();
    let (mut ex, challenge) = scram_challenge(
        "SCRAM-SHA-256",
        "y,a=user@example.com,n=user,r=abc,x=ext",
        "def",
        Some(&creds),
    );
    let gs2 = "y,a=user@example.com,";
    let without_proof = format!("c={},r=abcdef", STANDARD.encode(gs2));
    let auth = format!("n=user,r=abc,x=ext,{challenge},{without_proof}");
    let proof = client_proof(ScramHash::Sha256, "pencil", &challenge, &auth);
    let last = format!("{without_proof},p={}", STANDARD.encode(proof));
    assert!(success_data(ex.respond(last.as_bytes())).starts_with("v="));
    // An authzid naming another account.
    let (_, step) = sasl().start("SCRAM-SHA-1", Some(b"n,a=admin@example.com,n=user,r=abc"));
    assert_eq!(condition(step), DefinedCondition::InvalidAuthzid);
}

/// The client's side of RFC 5802 §3, for exchanges the RFCs give no vector for.
fn client_proof(hash: ScramHash, password: &str, server_first: &str, auth: &str) -> Vec<u8> {
    let salt = server_first
        .split(',')
        .find_map(|a| a.strip_prefix("s="))
        .unwrap();
    let iterations: u32 = server_first
        .split(',')
        .find_map(|a| a.strip_prefix("i="))
        .unwrap()
        .parse()
        .unwrap();
    let salted = hash.salted_password(
        password.as_bytes(),
        &STANDARD.decode(salt).unwrap(),
        iterations,
    );
    let client_key = hash.hmac(&salted, b"Client Key");
    let signature = hash.hmac(&hash.hash(&client_key), auth.as_bytes());
    client_key
        .iter()
        .zip(signature)
        .map(|(k, s)| k ^ s)
        .collect()
}

#[test]
fn scram_unknown_user_is_not_revealed() {
    let server = sasl();
    let challenge_for = |name: &str| {
        let first = format!("n,,n={name},r=abc");
        let (mut ex, step) = server.start_with_nonce("SCRAM-SHA-1", Some(first.as_bytes()), "def");
        assert!(matches!(step, Step::Lookup(_)));
        let Step::Challenge(c) = ex.provide(None) else {
            panic!("no challenge")
        };
        (ex, String::from_utf8(c).unwrap())
    };
    let (mut ex, c1) = challenge_for("ghost");
    let (_, c2) = challenge_for("ghost");
    let (_, c3) = challenge_for("phantom");
    assert_eq!(c1, c2, "the same salt on every attempt");
    assert_ne!(c1, c3, "a salt per user");
    assert!(c1.ends_with(",i=4096"));
    // Even a proof made from the fake record's own derivation fails.
    let auth = format!("n=ghost,r=abc,{c1},c=biws,r=abcdef");
    let proof = client_proof(ScramHash::Sha1, "anything", &c1, &auth);
    let last = format!("c=biws,r=abcdef,p={}", STANDARD.encode(proof));
    assert_eq!(
        condition(ex.respond(last.as_bytes())),
        DefinedCondition::NotAuthorized
    );
    // With accounts registered at 10000 iterations, unknown ones are answered with 10000.
    let mut server = sasl();
    server.set_iterations(10_000);
    let (mut ex, _) = server.start_with_nonce("SCRAM-SHA-1", Some(b"n,,n=ghost,r=abc"), "def");
    let Step::Challenge(c) = ex.provide(None) else {
        panic!("no challenge")
    };
    assert!(String::from_utf8(c).unwrap().ends_with(",i=10000"));
}

#[test]
fn plain() {
    let creds = pencil();
    let run = |data: &[u8], creds: Option<&Credentials>| {
        let (mut ex, step) = sasl().start("PLAIN", Some(data));
        match step {
            Step::Lookup(u) => {
                assert_eq!(u, user());
                ex.provide(creds)
            }
            other => other,
        }
    };
    assert_eq!(success_data(run(b"\0user\0pencil", Some(&creds))), "");
    assert_eq!(
        success_data(run(b"user@example.com\0user\0pencil", Some(&creds))),
        ""
    );
    assert_eq!(
        condition(run(b"\0user\0pencil!", Some(&creds))),
        DefinedCondition::NotAuthorized
    );
    assert_eq!(
        condition(run(b"\0user\0pencil", None)),
        DefinedCondition::NotAuthorized
    );
    assert_eq!(
        condition(run(b"admin@example.com\0user\0pencil", Some(&creds))),
        DefinedCondition::InvalidAuthzid
    );
    for bad in [
        &b"user\0pencil"[..],
        b"\0\0pencil",
        b"\0user\0",
        b"\0user\0pen\0cil",
        b"\0us\xffer\0pencil",
    ] {
        assert_eq!(
            condition(run(bad, Some(&creds))),
            DefinedCondition::MalformedRequest
        );
    }
    // A user name that is no valid localpart.
    assert_eq!(
        condition(run(b"\0us er@x\0pencil", Some(&creds))),
        DefinedCondition::NotAuthorized
    );
}

#[test]
fn no_initial_response_gets_an_empty_challenge() {
    let creds = pencil();
    for mech in MECHANISMS {
        let (mut ex, step) = sasl().start(mech, None);
        assert_eq!(step, Step::Challenge(Vec::new()), "{mech}");
        let first: &[u8] = if mech == "PLAIN" {
            b"\0user\0pencil"
        } else {
            b"n,,n=user,r=abc"
        };
        assert_eq!(ex.respond(first), Step::Lookup(user()), "{mech}");
        // A response while the lookup is pending is a protocol error.
        assert_eq!(
            condition(ex.respond(b"x")),
            DefinedCondition::MalformedRequest
        );
        assert_eq!(
            condition(ex.provide(Some(&creds))),
            DefinedCondition::MalformedRequest
        );
    }
}

#[test]
fn mechanism_abort_and_storage_failures() {
    let (_, step) = sasl().start("DIGEST-MD5", Some(b"x"));
    assert_eq!(condition(step), DefinedCondition::InvalidMechanism);
    let (_, step) = sasl().start("SCRAM-SHA-1-PLUS", Some(b"p=tls-unique,,n=user,r=abc"));
    assert_eq!(condition(step), DefinedCondition::InvalidMechanism);
    let (mut ex, _) = sasl().start("SCRAM-SHA-1", None);
    assert_eq!(condition(ex.abort()), DefinedCondition::Aborted);
    let (mut ex, _) = sasl().start("PLAIN", Some(b"\0user\0pencil"));
    let step = ex.lookup_failed();
    assert_eq!(
        condition(step.clone()),
        DefinedCondition::TemporaryAuthFailure
    );
    let Step::Failure(f) = step else {
        unreachable!()
    };
    let xml: minidom::Element = f.to_xml().into();
    assert!(xml.has_child("temporary-auth-failure", "urn:ietf:params:xml:ns:xmpp-sasl"));
    assert_eq!(
        condition(Step::Failure(Failure::incorrect_encoding())),
        DefinedCondition::IncorrectEncoding
    );
}
