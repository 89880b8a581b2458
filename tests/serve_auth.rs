//! The server's authentication (src/serve/auth) against a real client library: the `sasl`
//! crate's client mechanisms, which tokio-xmpp authenticates with. An account is registered
//! in band (XEP-0077), stored (src/serve/storage), then the client logs in with each
//! mechanism; the client checks the server's signature (SCRAM server-final-message).

use jid::BareJid;
use presence_sync::serve::auth::register::{Decision, Registration};
use presence_sync::serve::auth::{MECHANISMS, Sasl, Step};
use presence_sync::serve::storage::Storage;
use sasl::client::Mechanism;
use sasl::client::mechanisms::{Plain, Scram};
use sasl::common::ChannelBinding;
use sasl::common::scram::{Sha1, Sha256};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::sasl::DefinedCondition;

const DOMAIN: &str = "a.test";

/// Registers `name` with `password` in band and stores the account.
fn register(storage: &mut Storage, name: &str, password: &str) -> Iq {
    let request: minidom::Element = format!(
        "<iq xmlns='jabber:client' type='set' id='reg'><query xmlns='jabber:iq:register'>\
         <username>{name}</username><password>{password}</password></query></iq>"
    )
    .parse()
    .unwrap();
    let registration = Registration::new(DOMAIN, true).unwrap();
    match registration.handle(&Iq::try_from(request).unwrap(), None) {
        Some(Decision::Create {
            user,
            credentials,
            reply,
        }) => reply.created(storage.create_account(&user, &credentials).unwrap()),
        other => panic!("no account to create: {other:?}"),
    }
}

/// Runs one exchange: the client's messages in, the server's steps out, the storage answering
/// lookups. Returns the final step and the additional data of success for the client.
fn login(sasl: &Sasl, storage: &Storage, client: &mut dyn Mechanism) -> Step {
    let initial = client.initial();
    let (mut exchange, mut step) = sasl.start(client.name(), Some(&initial));
    loop {
        step = match step {
            Step::Lookup(user) => exchange.provide(storage.credentials(&user).unwrap().as_ref()),
            Step::Challenge(data) => match client.response(&data) {
                Ok(response) => exchange.respond(&response),
                Err(e) => panic!("the client refused the challenge: {e}"),
            },
            done => return done,
        };
    }
}

fn clients(password: &str) -> Vec<Box<dyn Mechanism>> {
    vec![
        Box::new(
            Scram::<Sha256>::new("juliet", password.to_owned(), ChannelBinding::None).unwrap(),
        ),
        Box::new(Scram::<Sha1>::new("juliet", password.to_owned(), ChannelBinding::None).unwrap()),
        Box::new(Plain::new("juliet", password)),
    ]
}

#[test]
fn sasl_crate_clients_log_in_after_in_band_registration() {
    let mut storage = Storage::open_in_memory().unwrap();
    assert!(matches!(
        register(&mut storage, "juliet", "R0m30!"),
        Iq::Result { .. }
    ));
    // §3.1: the same username again is a conflict, and the first password stands.
    assert!(matches!(
        register(&mut storage, "juliet", "other"),
        Iq::Error { .. }
    ));
    let sasl = Sasl::new(DOMAIN).unwrap();
    let juliet = BareJid::new("juliet@a.test").unwrap();
    let mut names = Vec::new();
    for mut client in clients("R0m30!") {
        names.push(client.name().to_owned());
        match login(&sasl, &storage, client.as_mut()) {
            Step::Success {
                user,
                additional_data,
            } => {
                assert_eq!(user, juliet);
                if client.name().starts_with("SCRAM") {
                    // The client verifies the server's signature: the server knew the record.
                    client.success(&additional_data).unwrap();
                } else {
                    assert!(additional_data.is_empty());
                }
            }
            other => panic!("{}: {other:?}", client.name()),
        }
    }
    assert_eq!(names, MECHANISMS, "every offered mechanism was used");
}

#[test]
fn sasl_crate_clients_with_a_wrong_password_or_unknown_user_fail() {
    let mut storage = Storage::open_in_memory().unwrap();
    register(&mut storage, "juliet", "R0m30!");
    let sasl = Sasl::new(DOMAIN).unwrap();
    for mut client in clients("wrong") {
        match login(&sasl, &storage, client.as_mut()) {
            Step::Failure(f) => assert_eq!(f.condition, DefinedCondition::NotAuthorized),
            other => panic!("{}: {other:?}", client.name()),
        }
    }
    let empty = Storage::open_in_memory().unwrap();
    for mut client in clients("R0m30!") {
        match login(&sasl, &empty, client.as_mut()) {
            Step::Failure(f) => assert_eq!(f.condition, DefinedCondition::NotAuthorized),
            other => panic!("{}: {other:?}", client.name()),
        }
    }
}
