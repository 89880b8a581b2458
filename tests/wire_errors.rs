//! Malformed and hostile inputs: each is rejected with an exact message and mapped to the
//! error XEP §Error Handling prescribes (defined condition, type, application condition).

use minidom::Element;
use presence_sync::model::Epoch;
use presence_sync::wire::{
    Batch, Condition, Domains, Hello, Limits, Reconcile, SyncElement, WireElement, WireError,
};
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

const NS: &str = "urn:xmpp:presence-sync:0";
const FP: &str = "AAECAwQFBgcICQoLDA0ODw==";
const ID1: &str = "AQIDBAUGBwg=";

fn hello(attrs: &str, roots: &str) -> String {
    format!("<hello xmlns='{NS}' epoch='0123456789abcdef' hash='blake3'{attrs}>{roots}</hello>")
}

fn roots() -> String {
    ["edges", "published", "cached"]
        .iter()
        // Cached is empty: these hellos have no peer-epoch (XEP §Hello [PS-18]).
        .map(|s| {
            format!(
                "<root set='{s}' count='{}' fp='{FP}'/>",
                u8::from(*s != "cached")
            )
        })
        .collect()
}

fn reconcile(set: &str, children: &str) -> String {
    format!("<reconcile xmlns='{NS}' set='{set}'>{children}</reconcile>")
}

fn item(jid: &str, children: &str) -> String {
    format!("<item xmlns='{NS}' jid='{jid}'>{children}</item>")
}

fn presence(attrs: &str) -> String {
    format!("<presence xmlns='jabber:server' {attrs}/>")
}

fn batch(items: &str) -> String {
    format!("<batch xmlns='{NS}' epoch='0123456789abcdef'>{items}</batch>")
}

/// (input, exact message, application condition) for inputs rejected by parsing alone.
fn parse_cases() -> Vec<(String, String, Condition)> {
    use Condition::*;
    let r = roots();
    let fps = "AAAA".repeat(85) + "AA==";
    let juliet = "juliet@a.example";
    let ok_presence = presence("from='juliet@a.example/balcony'");
    vec![
        // Strictness: unknown attributes and children of our namespace, and foreign ones.
        (hello(" colour='blue'", &r), "hello: Unknown attribute in Hello element.".into(), BadFormat),
        (hello("", &(r.clone() + "<extra/>")), "hello: Unknown child in Hello element.".into(), BadFormat),
        (hello("", &(r.clone() + "<x xmlns='urn:example'/>")), "hello: Unknown child in Hello element.".into(), BadFormat),
        (hello("", &r.replace("count='1' fp", "count='1' x='y' fp")), "hello: Unknown attribute in Root element.".into(), BadFormat),
        (hello("", &(r.clone() + "text")), "hello: Unexpected text content".into(), BadFormat),
        (reconcile("edges", &format!("<lack ids='{ID1}' prefix=''/>")), "reconcile: Unknown attribute in Lack element.".into(), BadFormat),
        (reconcile("edges", "<hello/>"), "reconcile: Unknown child in Reconcile element.".into(), BadFormat),
        (item(juliet, "<presence xmlns='jabber:client' from='juliet@a.example/r'/>"), "item: Unknown child in Item element.".into(), BadFormat),
        (format!("<shutdown xmlns='{NS}' epoch='0123456789abcdef' now='1'/>"), "shutdown: Unknown attribute in Shutdown element.".into(), BadFormat),
        (format!("<fanout xmlns='{NS}'><x/></fanout>"), "fanout: Unknown child in Fanout element.".into(), BadFormat),
        (format!("<bad-format xmlns='{NS}'><text/></bad-format>"), "error condition: Unknown child in Condition::BadFormat element.".into(), BadFormat),
        // Missing things.
        (hello("", &r.replace(&format!("<root set='cached' count='0' fp='{FP}'/>"), "")), "hello: missing root set='cached'".into(), BadFormat),
        (hello("", &(r.clone() + &format!("<root set='edges' count='2' fp='{FP}'/>"))), "hello: duplicate root set='edges'".into(), BadFormat),
        (format!("<hello xmlns='{NS}' hash='blake3'>{r}</hello>"), "hello: Required attribute field 'epoch' on Hello element missing.".into(), BadFormat),
        (format!("<presence-sync xmlns='{NS}'/>"), "presence-sync: no <hash/>".into(), BadFormat),
        (batch(""), "batch: no <item/>".into(), BadFormat),
        (reconcile("presence", "<gone ids=''/>"), "reconcile: no id in <gone/>".into(), BadFormat),
        // Numbers.
        (hello(" max-items='0'", &r), "hello: max-items 0 out of range 1..=4096".into(), BadFormat),
        (hello(" max-items='4097'", &r), "hello: max-items 4097 out of range 1..=4096".into(), BadFormat),
        (hello(" max-bytes='1048577'", &r), "hello: max-bytes 1048577 out of range 4096..=1048576".into(), BadFormat),
        (hello(" window='0'", &r), "hello: window 0 out of range 1..=64".into(), BadFormat),
        (hello(" leaf-items='300'", &r), "hello: leaf-items 300 out of range 1..=256".into(), BadFormat),
        (hello(" window='04'", &r), "hello: window \"04\" is not a canonical decimal number".into(), BadFormat),
        (hello(" window='+4'", &r), "hello: window \"+4\" is not a canonical decimal number".into(), BadFormat),
        (hello("", &r.replace("count='1'", "count='1.0'")), "hello: count \"1.0\" is not a canonical decimal number".into(), BadFormat),
        // Epochs, prefixes, enumerations.
        (hello(" peer-epoch='0123'", &r), "hello: epoch \"0123\" is not 16 lowercase hexadecimal digits".into(), BadFormat),
        (batch(&item(juliet, "")).replace("0123456789abcdef", "0123456789ABCDEF"), "batch: epoch \"0123456789ABCDEF\" is not 16 lowercase hexadecimal digits".into(), BadFormat),
        (reconcile("edges", "<ids prefix='3g' ids=''/>"), "reconcile: prefix character 'g' is not lowercase hex".into(), BadFormat),
        (reconcile("edges", "<ids prefix='123456789' ids=''/>"), "reconcile: prefix of 9 nibbles exceeds 8".into(), BadFormat),
        (reconcile("edges", &format!("<split prefix='12345678' fps='{fps}'/>")), "reconcile: split prefix '12345678' is at the maximum depth 8 and has no children".into(), BadFormat),
        (reconcile("roster", ""), "reconcile: set \"roster\" is not defined".into(), BadFormat),
        (hello("", &r.replace("set='edges'", "set='edge'")), "hello: set \"edge\" is not defined".into(), BadFormat),
        (reconcile("edges", "<edge publisher='a@a.example' subscriber='b@b.example' state='none'/>"), "reconcile: state \"none\" is not defined".into(), BadFormat),
        (format!("<shutdown xmlns='{NS}' epoch='0123456789abcdef' restart='yes'/>"), "shutdown: provided string was not `true` or `false`".into(), BadFormat),
        // Base64 and lengths.
        (hello("", &r.replace(FP, "AAECAwQFBgcICQoLDA0ODw")), "hello: fp: invalid base64: Invalid padding".into(), BadFormat),
        (hello("", &r.replace(FP, "AAECAwQFBgcICQoLDA0ODx==")), "hello: fp: invalid base64: Invalid last symbol 120, offset 21.".into(), BadFormat),
        (hello("", &r.replace(FP, "AAECAwQFBgcICQoLDA0O")), "hello: fp: 15 bytes, expected 16".into(), BadFormat),
        (reconcile("edges", &format!("<split prefix='' fps='{}'/>", "AAAA".repeat(86))), "reconcile: fps: 258 bytes, expected 256".into(), BadFormat),
        (reconcile("edges", "<split prefix='' fps='AAAA AAAA'/>"), "reconcile: fps: invalid base64: Invalid symbol 32, offset 4.".into(), BadFormat),
        (reconcile("edges", "<lack ids='AQIDBAUGBw=='/>"), "reconcile: ids: 7 bytes, expected a multiple of 8".into(), BadFormat),
        (reconcile("edges", "<lack ids='AQIDBAUGBwgBAgMEBQYHCA=='/>"), "reconcile: ids: duplicate id 0102030405060708".into(), BadFormat),
        // Duplicates and misplaced children.
        (reconcile("edges", "<ids prefix='a' ids=''/><ids prefix='a' ids=''/>"), "reconcile: duplicate prefix 'a'".into(), BadFormat),
        (reconcile("edges", &format!("<split prefix='a' fps='{fps}'/><ids prefix='a' ids=''/>")), "reconcile: duplicate prefix 'a'".into(), BadFormat),
        (reconcile("edges", "<edge publisher='a@a.example' subscriber='b@b.example'/><edge publisher='a@a.example' subscriber='b@b.example' state='pending'/>"), "reconcile: duplicate edge a@a.example -> b@b.example".into(), BadFormat),
        (reconcile("presence", &(item(juliet, "") + &item(juliet, ""))), "reconcile: duplicate item juliet@a.example".into(), BadFormat),
        (batch(&(item(juliet, "") + &item(juliet, ""))), "batch: duplicate item juliet@a.example".into(), BadFormat),
        (reconcile("edges", &item(juliet, "")), "reconcile: <item/> not allowed in set='edges'".into(), BadFormat),
        (reconcile("edges", &format!("<gone ids='{ID1}'/>")), "reconcile: <gone/> not allowed in set='edges'".into(), BadFormat),
        (reconcile("presence", "<edge publisher='a@a.example' subscriber='b@b.example'/>"), "reconcile: <edge/> not allowed in set='presence'".into(), BadFormat),
        (format!("<presence-sync xmlns='{NS}'><hash algo='blake3'/><hash algo='blake3'/></presence-sync>"), "presence-sync: duplicate hash blake3".into(), BadFormat),
        // JIDs and presence children of an item.
        (item("juliet@a.example/balcony", ""), "item: item jid \"juliet@a.example/balcony\" is invalid: resource found while parsing a bare JID".into(), BadFormat),
        (item(juliet, "<except jid='@b.example'/>"), "item: except jid \"@b.example\" is invalid: nodepart empty despite the presence of a @".into(), BadFormat),
        (item(juliet, "<except jid='t@b.example'/><except jid='t@b.example'/>"), "item: duplicate except t@b.example".into(), BadFormat),
        (item(juliet, &presence("")), "item: presence of juliet@a.example: no from".into(), BadFormat),
        (item(juliet, &presence("from='juliet@a.example'")), "item: presence of juliet@a.example: from juliet@a.example is not a full JID".into(), BadFormat),
        (item(juliet, &presence("from='nurse@a.example/r'")), "item: presence of juliet@a.example: from nurse@a.example/r is not a resource of the item jid".into(), BadFormat),
        (item(juliet, &presence("from='juliet@a.example/r' type='unavailable'")), "item: presence attribute type='unavailable' not allowed (only from)".into(), BadFormat),
        (item(juliet, &presence("from='juliet@a.example/r' type='probe'")), "item: presence attribute type='probe' not allowed (only from)".into(), BadFormat),
        (item(juliet, &presence("from='juliet@a.example/r' to='romeo@b.example'")), "item: presence attribute to='romeo@b.example' not allowed (only from)".into(), BadFormat),
        (item(juliet, &presence("from='juliet@a.example/r' id='p1'")), "item: presence attribute id='p1' not allowed (only from)".into(), BadFormat),
        (item(juliet, &(ok_presence.clone() + &ok_presence)), "item: duplicate resource juliet@a.example/balcony".into(), BadFormat),
        (item(juliet, "<presence xmlns='jabber:server' from='juliet@a.example/r'><priority>200</priority></presence>"), "item: number too large to fit in target type".into(), BadFormat),
        (item(juliet, &presence("from='juliet@a.example/r' xml:lang='en'")), "item: presence attribute xml:lang='en' not allowed (only from)".into(), BadFormat),
        (item(juliet, "<presence xmlns='jabber:server' from='juliet@a.example/r'><status>a</status><status>b</status></presence>"), "item: duplicate status xml:lang ''".into(), BadFormat),
        // JIDs must already be in normalised form (XEP [PS-63]): what is hashed and acted on
        // is exactly what was sent.
        (item("Juliet@a.example", ""), "item: item jid \"Juliet@a.example\" is not in normalized form (\"juliet@a.example\")".into(), BadFormat),
        (reconcile("edges", "<edge publisher='a@A.example' subscriber='b@b.example'/>"), "reconcile: publisher \"a@A.example\" is not in normalized form (\"a@a.example\")".into(), BadFormat),
        (item(juliet, &presence("from='juliet@a.example/R\u{2163}'")), format!("item: presence from {:?} is not in normalized form ({:?})", "juliet@a.example/R\u{2163}", "juliet@a.example/RIV"), BadFormat),
        // Rules of the XEP beyond the schema.
        (hello("", &r.replace("set='cached' count='0'", "set='cached' count='5'")), "hello: root set='cached' has count 5 without a peer-epoch (must be 0)".into(), BadFormat),
        (format!("<presence-sync xmlns='{NS}'><hash algo='blake3'/></presence-sync>"), "presence-sync: no 'sha-256' in <presence-sync/> (mandatory to implement)".into(), BadFormat),
        // Well-formedness and the wrong element.
        ("<hello xmlns='urn:xmpp:presence-sync:0'".into(), "hello: not well-formed XML: invalid eof in element".into(), BadFormat),
        (format!("<batch xmlns='{NS}' epoch='0123456789abcdef'>"), "batch: not well-formed XML: invalid eof in text node".into(), BadFormat),
        // Hash agility.
        (hello("", &r).replace("blake3", "md5"), "hello: unsupported hash algorithm \"md5\"".into(), UnsupportedHash),
        (hello("", &r).replace("blake3", "sha-1"), "hello: unsupported hash algorithm \"sha-1\"".into(), UnsupportedHash),
    ]
}

fn check_mapping(error: &WireError, condition: Condition) {
    assert_eq!(error.condition(), Some(condition), "{error}");
    let stanza = error.stanza_error().expect("a stanza error");
    assert_eq!(
        stanza.defined_condition,
        condition.defined_condition(),
        "{error}"
    );
    assert_eq!(stanza.type_, condition.error_type(), "{error}");
    assert_eq!(stanza.other, Some(Element::from(condition)));
    assert_eq!(
        stanza.texts.get("en").map(String::as_str),
        Some(error.to_string().as_str())
    );
}

#[test]
fn malformed_inputs_are_rejected_exactly() {
    let mut failures = Vec::new();
    for (input, message, condition) in parse_cases() {
        // Through the dispatcher, as a receiver sees a payload; as bytes if not well-formed.
        let by_bytes = match input.parse::<Element>() {
            Ok(element) => SyncElement::parse_element(&element).map(|parsed| {
                assert!(parsed.is_some(), "not a protocol element: {input}");
            }),
            Err(_) if input.starts_with("<hello") => {
                Hello::parse_bytes(input.as_bytes()).map(|_| ())
            }
            Err(_) => Batch::parse_bytes(input.as_bytes()).map(|_| ()),
        };
        match by_bytes {
            Ok(()) => failures.push(format!("accepted: {input}")),
            Err(e) if e.to_string() != message => {
                failures.push(format!("{input}\n  expected: {message}\n  got:      {e}"))
            }
            Err(e) => check_mapping(&e, condition),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn context_checks() {
    let domains = Domains::new("b.example", "a.example").expect("domains");
    let limits = Limits {
        max_items: 2,
        max_bytes: 4096,
        ..Limits::DEFAULT
    };
    let items = |jids: &[&str]| -> String { jids.iter().map(|j| item(j, "")).collect() };
    let cases: Vec<(String, &str, Condition)> = vec![
        (
            batch(&items(&["a@a.example", "b@a.example", "c@a.example"])),
            "batch: 3 items exceed max-items 2",
            Condition::TooManyItems,
        ),
        (
            batch(&items(&["a@c.example"])),
            "batch: item jid a@c.example is not in a.example",
            Condition::ForeignJid,
        ),
        (
            batch(&items(&["a@b.example"])),
            "batch: item jid a@b.example is not in a.example",
            Condition::ForeignJid,
        ),
        (
            batch(&item("a@a.example", "<except jid='t@a.example'/>")),
            "batch: except jid t@a.example is not in b.example",
            Condition::ForeignJid,
        ),
        (
            reconcile(
                "presence",
                &items(&["x@a.example", "y@a.example", "z@a.example"]),
            ),
            "reconcile: 3 items and edges exceed max-items 2",
            Condition::TooManyItems,
        ),
        (
            reconcile(
                "edges",
                "<ids prefix='1' ids=''/><ids prefix='2' ids=''/><ids prefix='3' ids=''/>",
            ),
            "reconcile: 3 split and ids exceed max-items 2",
            Condition::TooManyItems,
        ),
        (
            // XEP PS-82: one id list holds at most max-items ids.
            reconcile(
                "edges",
                "<ids prefix='1' ids='AQIDBAUGBwgREhMUFRYXGCEiIyQlJico'/>",
            ),
            "reconcile: 3 ids in one list exceed max-items 2",
            Condition::TooManyItems,
        ),
        (
            reconcile("edges", "<lack ids='AQIDBAUGBwgREhMUFRYXGCEiIyQlJico'/>"),
            "reconcile: 3 ids in one list exceed max-items 2",
            Condition::TooManyItems,
        ),
        (
            reconcile(
                "edges",
                "<edge publisher='p@a.example' subscriber='s@a.example'/>",
            ),
            "reconcile: edge p@a.example -> s@a.example is not in b.example and a.example",
            Condition::ForeignJid,
        ),
        (
            reconcile(
                "edges",
                "<edge publisher='p@c.example' subscriber='s@b.example'/>",
            ),
            "reconcile: edge p@c.example -> s@b.example is not in b.example and a.example",
            Condition::ForeignJid,
        ),
        (
            reconcile("presence", &item("x@b.example", "")),
            "reconcile: item jid x@b.example is not in a.example",
            Condition::ForeignJid,
        ),
    ];
    for (input, message, condition) in cases {
        let error = match input.starts_with("<batch") {
            true => Batch::receive(input.as_bytes(), &limits, &domains).map(|_| ()),
            false => Reconcile::receive(input.as_bytes(), &limits, &domains).map(|_| ()),
        }
        .expect_err(&input);
        assert_eq!(error.to_string(), message);
        check_mapping(&error, condition);
    }
    let big = batch(&item(
        "a@a.example",
        &"<except jid='someone-with-a-long-name@b.example'/>".repeat(100),
    ));
    let error = Batch::receive(big.as_bytes(), &limits, &domains).expect_err("too big");
    assert_eq!(
        error,
        WireError::TooLarge {
            element: "batch",
            bytes: big.len(),
            max: 4096
        }
    );
    assert_eq!(
        error.to_string(),
        format!("batch: {} bytes exceed max-bytes 4096", big.len())
    );
    check_mapping(&error, Condition::TooManyItems);
    let fine = batch(&items(&["a@a.example", "b@a.example"]));
    assert_eq!(
        Batch::receive(fine.as_bytes(), &limits, &domains)
            .expect("valid")
            .items
            .len(),
        2
    );
}

#[test]
fn session_errors_map_to_their_conditions() {
    let cases = [
        (
            WireError::OutOfOrder {
                element: "reconcile",
                reason: "no hello in this session".into(),
            },
            "reconcile: out of order: no hello in this session",
            Condition::OutOfOrder,
            DefinedCondition::UnexpectedRequest,
            ErrorType::Modify,
        ),
        (
            WireError::StaleEpoch {
                element: "batch",
                got: Epoch(1),
                current: Epoch(2),
            },
            "batch: epoch 0000000000000001 is not the sender's current epoch 0000000000000002",
            Condition::StaleEpoch,
            DefinedCondition::Conflict,
            ErrorType::Cancel,
        ),
        (
            Limits::DEFAULT
                .check_window(5)
                .expect_err("over the window"),
            "5 outstanding sync iqs exceed window 4",
            Condition::WindowExceeded,
            DefinedCondition::ResourceConstraint,
            ErrorType::Wait,
        ),
    ];
    for (error, message, condition, defined, type_) in cases {
        assert_eq!(error.to_string(), message);
        assert_eq!(
            (condition.defined_condition(), condition.error_type()),
            (defined, type_)
        );
        check_mapping(&error, condition);
    }
    let table = [
        (Condition::BadFormat, DefinedCondition::BadRequest),
        (
            Condition::UnsupportedHash,
            DefinedCondition::FeatureNotImplemented,
        ),
        (Condition::TooManyItems, DefinedCondition::PolicyViolation),
        (Condition::ForeignJid, DefinedCondition::Forbidden),
        (Condition::OutOfOrder, DefinedCondition::UnexpectedRequest),
        (Condition::StaleEpoch, DefinedCondition::Conflict),
        (
            Condition::WindowExceeded,
            DefinedCondition::ResourceConstraint,
        ),
    ];
    for (condition, defined) in table {
        assert_eq!(condition.defined_condition(), defined);
    }
    let spoof = Domains::new("b.example", "a.example")
        .expect("domains")
        .check_from(Some(&jid::Jid::new("mallory@c.example/x").expect("jid")))
        .expect_err("foreign from");
    assert_eq!(spoof.condition(), None);
    assert!(spoof.stanza_error().is_none());
    assert_eq!(
        spoof.stream_error().expect("stream error").condition,
        xmpp_parsers::stream_error::DefinedCondition::InvalidFrom
    );
}

#[test]
fn direction_rules() {
    use presence_sync::wire::Direction;
    let answer_only = reconcile("presence", &format!("<gone ids='{ID1}'/>"));
    let query_only = reconcile("presence", &format!("<lack ids='{ID1}'/>"));
    let with_item = reconcile("presence", &item("juliet@a.example", ""));
    let cases = [
        (
            &answer_only,
            Direction::Query,
            "reconcile: <gone/> not allowed in a presence query",
        ),
        (
            &with_item,
            Direction::Query,
            "reconcile: <item/> not allowed in a presence query",
        ),
        (
            &query_only,
            Direction::Answer,
            "reconcile: <lack/> not allowed in a presence answer",
        ),
    ];
    for (xml, direction, message) in cases {
        let r = Reconcile::parse_bytes(xml.as_bytes()).expect("well-formed reconcile");
        let error = r.check_direction(direction).expect_err(message);
        assert_eq!(error.to_string(), message);
        check_mapping(&error, Condition::BadFormat);
    }
    let edges = reconcile("edges", &format!("<lack ids='{ID1}'/>"));
    let r = Reconcile::parse_bytes(edges.as_bytes()).expect("edges");
    assert!(
        r.check_direction(Direction::Query).is_ok() && r.check_direction(Direction::Answer).is_ok()
    );
}
