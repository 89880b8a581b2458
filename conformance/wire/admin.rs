//! Test accounts made by an administrator: XEP-0133 "Add User"
//! (`http://jabber.org/protocol/admin#add-user`) executed through XEP-0050 ad-hoc commands, as
//! XMPP Interop Testing provisions its accounts (`[accounts] method = "admin"`,
//! [`super::target`]).
//!
//! The suite logs in once as the admin ([`Client::login`]) and, over that one session, for each
//! account: executes the command at the domain under test, gets a data form (XEP-0004) and a
//! session id back, submits the form with `accountjid`, `password` and `password-verify`, and
//! expects `status='completed'`. An IQ error, a `<note type='error'/>` (how Prosody answers
//! "Account already exists"), a cancelled or unfinished command, or an answer that does not
//! parse is an error that names the account. An account that exists already is an error, as
//! it is for XEP-0077 registration ([`Client::register`]): the suite's localparts carry the
//! run's tag, so a clash means the accounts are not the ones this run would make. Every
//! round trip is bounded ([`Client::iq`], [`super::client::STEP_TIMEOUT`]).
//!
//! xmpp-parsers 0.23 has no XEP-0050 module, so `<command/>` is declared here with xso (the
//! derive the rest of the crate uses); the form inside it is xmpp-parsers' [`DataForm`].

use std::net::SocketAddr;

use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, StanzaError};
use xso::{AsXml, FromXml};

use super::Result;
use super::client::Client;
use super::control::Account;

/// The XEP-0050 namespace.
pub const COMMANDS: &str = "http://jabber.org/protocol/commands";

/// The XEP-0133 "Add User" command node.
pub const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";

/// The `FORM_TYPE` of XEP-0133's forms.
pub const ADMIN_FORM_TYPE: &str = "http://jabber.org/protocol/admin";

/// The resource the admin session binds.
const RESOURCE: &str = "presence-sync-admin";

/// XEP-0050 `<command/>`, request and answer. Children this module does not use
/// (`<actions/>`, payloads of other namespaces) are ignored.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(
    namespace = COMMANDS,
    name = "command",
    on_unknown_attribute = Discard,
    on_unknown_child = Discard
)]
pub struct Command {
    /// The command's node.
    #[xml(attribute)]
    pub node: String,
    /// `execute`, `cancel`, `prev`, `next`, `complete` (requests; absent is `execute`).
    #[xml(attribute(default))]
    pub action: Option<String>,
    /// The session the responder opened.
    #[xml(attribute(default))]
    pub sessionid: Option<String>,
    /// `executing`, `completed`, `canceled` (answers).
    #[xml(attribute(default))]
    pub status: Option<String>,
    /// The answer's notes.
    #[xml(child(n = ..))]
    pub notes: Vec<Note>,
    /// The form: asked for (`type='form'`), submitted, or a result.
    #[xml(child(default))]
    pub form: Option<DataForm>,
}

/// XEP-0050 `<note/>`.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(namespace = COMMANDS, name = "note", on_unknown_attribute = Discard)]
pub struct Note {
    /// `info` (the default), `warn` or `error`.
    #[xml(attribute(name = "type", default))]
    pub type_: Option<String>,
    /// The text.
    #[xml(text)]
    pub text: String,
}

impl Command {
    fn request(node: &str) -> Command {
        Command {
            node: node.to_owned(),
            action: None,
            sessionid: None,
            status: None,
            notes: Vec::new(),
            form: None,
        }
    }
}

/// Makes `accounts` on the server at `c2s` as `admin` (password `password`): one login, then
/// XEP-0133 "Add User" at `domain` for each account in turn. The session is closed at the end,
/// also after an error.
///
/// # Errors
/// The admin cannot log in, or an account was not made (the error names it).
pub async fn add_users(
    c2s: SocketAddr,
    domain: &str,
    admin: &BareJid,
    password: &str,
    accounts: &[Account],
) -> Result<()> {
    let to = Jid::new(domain).map_err(|e| format!("domain {domain:?}: {e}"))?;
    let mut client = Client::login(c2s, admin, password, RESOURCE)
        .await
        .map_err(|e| format!("XEP-0133 admin {admin}: {e}"))?;
    let mut outcome = Ok(());
    for account in accounts {
        if let Err(e) = add_user(&mut client, &to, account).await {
            outcome = Err(format!("XEP-0133 add-user of {} as {admin}: {e}", account.jid).into());
            break;
        }
    }
    client.close().await?;
    outcome
}

/// One account: execute, then submit the form.
async fn add_user(client: &mut Client, to: &Jid, account: &Account) -> Result<()> {
    let mut execute = Command::request(ADD_USER);
    execute.action = Some("execute".to_owned());
    let answer = client.iq(set(to, &execute)?).await?;
    let (sessionid, form) = form_of(answer)?;
    let mut submit = Command::request(ADD_USER);
    submit.sessionid = Some(sessionid);
    submit.form = Some(submission(&form, &account.jid, &account.password)?);
    let answer = client.iq(set(to, &submit)?).await?;
    completion(answer)
}

/// An `<iq type='set'/>` to `to` carrying `command` (the client sets the id).
fn set(to: &Jid, command: &Command) -> Result<Iq> {
    let payload = xso::transform(command).map_err(|e| format!("serialising <command/>: {e}"))?;
    Ok(Iq::Set {
        from: None,
        to: Some(to.clone()),
        id: String::new(),
        payload,
    })
}

/// The `<command/>` of an answer, or why there is none.
fn command_of(answer: Iq, step: &str) -> Result<Command> {
    match answer {
        Iq::Result {
            payload: Some(payload),
            ..
        } => Command::try_from(payload)
            .map_err(|e| format!("{step}: the answer is not an XEP-0050 <command/>: {e}").into()),
        Iq::Result { payload: None, .. } => {
            Err(format!("{step}: an empty result, no <command/>").into())
        }
        Iq::Error { error, .. } => Err(format!("{step}: refused: {}", refusal(&error)).into()),
        Iq::Get { .. } | Iq::Set { .. } => Err(format!("{step}: a request, not an answer").into()),
    }
}

/// The condition and text of an IQ error, with `conflict` read as XEP-0077 reads it.
fn refusal(error: &StanzaError) -> String {
    let mut out = format!("{:?}", error.defined_condition);
    if error.defined_condition == DefinedCondition::Conflict {
        out += " (the account exists already)";
    }
    if let Some(text) = error.texts.values().next() {
        out += &format!(": {text:?}");
    }
    out
}

/// The errors among `notes`, if any.
fn error_notes(notes: &[Note]) -> Option<String> {
    let errors: Vec<String> = notes
        .iter()
        .filter(|n| n.type_.as_deref() == Some("error"))
        .map(|n| format!("{:?}", n.text.trim()))
        .collect();
    (!errors.is_empty()).then(|| errors.join(", "))
}

/// The answer to `execute`: the session id and the form to fill.
fn form_of(answer: Iq) -> Result<(String, DataForm)> {
    let step = "execute";
    let command = command_of(answer, step)?;
    if let Some(errors) = error_notes(&command.notes) {
        return Err(format!("{step}: error note {errors}").into());
    }
    if command.status.as_deref() != Some("executing") {
        return Err(format!(
            "{step}: status {:?}, expected \"executing\" with a form",
            command.status
        )
        .into());
    }
    let sessionid = command
        .sessionid
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{step}: no sessionid"))?;
    let form = command
        .form
        .ok_or_else(|| format!("{step}: no data form to fill"))?;
    Ok((sessionid, form))
}

/// The answer to the submitted form: `completed`, without an error note.
fn completion(answer: Iq) -> Result<()> {
    let step = "submit";
    let command = command_of(answer, step)?;
    if let Some(errors) = error_notes(&command.notes) {
        return Err(format!("{step}: error note {errors}").into());
    }
    match command.status.as_deref() {
        Some("completed") => Ok(()),
        other => Err(format!("{step}: status {other:?}, expected \"completed\"").into()),
    }
}

/// The form to submit for the server's `form`: its `FORM_TYPE`, `accountjid`, `password`
/// and (if the server asks for it) `password-verify`; any other field keeps the server's
/// default value, and a required one without a default is an error.
///
/// # Errors
/// `form` is not a form, is another command's form, lacks `accountjid` or `password`, or
/// requires a field the suite cannot fill.
pub fn submission(form: &DataForm, account: &BareJid, password: &str) -> Result<DataForm> {
    if form.type_ != DataFormType::Form {
        return Err(format!("the server sent a data form of type {:?}", form.type_).into());
    }
    if let Some(ty) = form.form_type()
        && ty != ADMIN_FORM_TYPE
    {
        return Err(format!("the form's FORM_TYPE is {ty:?}, not {ADMIN_FORM_TYPE:?}").into());
    }
    let mut fields = Vec::new();
    let (mut has_jid, mut has_password) = (false, false);
    for field in &form.fields {
        let Some(var) = field.var.as_deref() else {
            continue; // a fixed field: text for a person
        };
        if field.type_ == FieldType::Fixed {
            continue;
        }
        let value = match var {
            "FORM_TYPE" => Some(ADMIN_FORM_TYPE.to_owned()),
            "accountjid" => {
                has_jid = true;
                Some(account.to_string())
            }
            "password" | "password-verify" => {
                has_password |= var == "password";
                Some(password.to_owned())
            }
            _ => None,
        };
        let submitted = match value {
            Some(value) => Field::new(var, field.type_.clone()).with_value(&value),
            None if field.required && field.values.is_empty() => {
                return Err(format!(
                    "the form requires field {var:?}, which the suite cannot fill"
                )
                .into());
            }
            None => {
                let mut kept = Field::new(var, field.type_.clone());
                kept.values = field.values.clone();
                kept
            }
        };
        fields.push(submitted);
    }
    if !has_jid || !has_password {
        return Err("the form has no accountjid or no password field".into());
    }
    Ok(DataForm {
        type_: DataFormType::Submit,
        title: None,
        instructions: None,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minidom::Element;

    /// Prosody 0.12's answer to `execute` (mod_admin_adhoc, util/dataforms): the form in
    /// `<command status='executing'/>` with a session id and the actions.
    const PROSODY_FORM: &str = "<iq xmlns='jabber:client' type='result' id='t1' from='a.test'>\
        <command xmlns='http://jabber.org/protocol/commands' status='executing' \
          node='http://jabber.org/protocol/admin#add-user' sessionid='8f3e'>\
        <actions execute='complete'><next/><complete/></actions>\
        <x xmlns='jabber:x:data' type='form'><title>Adding a User</title>\
          <instructions>Fill out this form to add a user.</instructions>\
          <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field>\
          <field var='accountjid' type='jid-single' label='The Jabber ID for the account to be added'><required/></field>\
          <field var='password' type='text-private' label='The password for this account'/>\
          <field var='password-verify' type='text-private' label='Retype password'/>\
        </x></command></iq>";

    fn iq(xml: &str) -> Iq {
        Iq::try_from(xml.parse::<Element>().expect("XML")).expect("an IQ")
    }

    fn values(form: &DataForm, var: &str) -> Vec<String> {
        form.fields
            .iter()
            .find(|f| f.var.as_deref() == Some(var))
            .map(|f| f.values.clone())
            .unwrap_or_default()
    }

    fn jid() -> BareJid {
        BareJid::new("ps-1f-1@a.test").expect("JID")
    }

    #[test]
    fn prosodys_form_is_filled_and_submitted_in_its_session() {
        let (sessionid, form) = form_of(iq(PROSODY_FORM)).expect("a form");
        assert_eq!(sessionid, "8f3e");
        let submitted = submission(&form, &jid(), "pw-1f-1").expect("filled");
        assert_eq!(submitted.type_, DataFormType::Submit);
        assert_eq!(submitted.form_type(), Some(ADMIN_FORM_TYPE));
        assert_eq!(values(&submitted, "accountjid"), ["ps-1f-1@a.test"]);
        assert_eq!(values(&submitted, "password"), ["pw-1f-1"]);
        assert_eq!(values(&submitted, "password-verify"), ["pw-1f-1"]);
        assert_eq!(submitted.fields.len(), 4);

        // The request on the wire: the node, the session, the submitted form.
        let mut command = Command::request(ADD_USER);
        command.sessionid = Some(sessionid);
        command.form = Some(submitted);
        let to = Jid::new("a.test").expect("JID");
        let Iq::Set { payload, to, .. } = set(&to, &command).expect("serialises") else {
            panic!("not a set");
        };
        assert_eq!(to.map(|j| j.to_string()).as_deref(), Some("a.test"));
        assert!(payload.is("command", COMMANDS));
        assert_eq!(payload.attr("node"), Some(ADD_USER));
        assert_eq!(payload.attr("sessionid"), Some("8f3e"));
        let x = payload
            .get_child("x", "jabber:x:data")
            .expect("a form child");
        assert_eq!(x.attr("type"), Some("submit"));
        // And it reads back as the same command.
        assert_eq!(Command::try_from(payload).expect("parses"), command);
    }

    #[test]
    fn unknown_fields_keep_their_defaults_and_required_ones_without_are_refused() {
        let with = |extra: &str| {
            let xml = PROSODY_FORM.replace("</x>", &format!("{extra}</x>"));
            form_of(iq(&xml)).expect("a form").1
        };
        let form = with("<field var='email' type='text-single'><value>x@y</value></field>");
        let submitted = submission(&form, &jid(), "pw").expect("filled");
        assert_eq!(values(&submitted, "email"), ["x@y"]);
        let form = with("<field var='given_name' type='text-single'><required/></field>");
        let e = submission(&form, &jid(), "pw").expect_err("cannot fill");
        assert!(e.to_string().contains("given_name"), "{e}");
    }

    #[test]
    fn forms_of_another_kind_are_refused() {
        let (_, form) = form_of(iq(PROSODY_FORM)).expect("a form");
        let mut other = form.clone();
        other.set_form_type("urn:example:other".to_owned());
        assert!(submission(&other, &jid(), "pw").is_err());
        let mut result = form.clone();
        result.type_ = DataFormType::Result_;
        assert!(submission(&result, &jid(), "pw").is_err());
        let mut no_jid = form;
        no_jid
            .fields
            .retain(|f| f.var.as_deref() != Some("accountjid"));
        assert!(submission(&no_jid, &jid(), "pw").is_err());
    }

    #[test]
    fn completed_is_success_and_an_error_note_is_not() {
        let done = "<iq xmlns='jabber:client' type='result' id='t2'>\
            <command xmlns='http://jabber.org/protocol/commands' status='completed' \
              node='http://jabber.org/protocol/admin#add-user' sessionid='8f3e'>\
            <note type='info'>Account successfully created</note></command></iq>";
        completion(iq(done)).expect("completed");
        // Prosody's answer for an account that exists already.
        let exists = done
            .replace("type='info'", "type='error'")
            .replace("Account successfully created", "Account already exists");
        let e = completion(iq(&exists)).expect_err("an error note");
        assert!(e.to_string().contains("Account already exists"), "{e}");
        let canceled = done.replace("'completed'", "'canceled'");
        assert!(completion(iq(&canceled)).is_err());
    }

    #[test]
    fn iq_errors_and_junk_are_errors_not_panics() {
        let forbidden = "<iq xmlns='jabber:client' type='error' id='t1'>\
            <error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>";
        let e = form_of(iq(forbidden)).expect_err("refused");
        assert!(e.to_string().contains("Forbidden"), "{e}");
        let conflict = forbidden.replace("forbidden", "conflict");
        let e = completion(iq(&conflict)).expect_err("refused");
        assert!(e.to_string().contains("exists already"), "{e}");
        let empty = "<iq xmlns='jabber:client' type='result' id='t1'/>";
        assert!(form_of(iq(empty)).is_err());
        let other = "<iq xmlns='jabber:client' type='result' id='t1'><query xmlns='urn:x'/></iq>";
        assert!(form_of(iq(other)).is_err());
        let no_session = PROSODY_FORM.replace(" sessionid='8f3e'", "");
        assert!(form_of(iq(&no_session)).is_err());
        let bad_form = PROSODY_FORM.replace("type='form'", "type='nonsense'");
        assert!(form_of(iq(&bad_form)).is_err());
    }
}
