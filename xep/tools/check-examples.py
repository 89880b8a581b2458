#!/usr/bin/env python3
"""Checks the examples and the schema of the presence-sync XEP.

    python3 xep/tools/check-examples.py [path/to/presence-sync.xml]
    python3 xep/tools/check-examples.py --sync-schema   # copy xep/presence-sync.xsd into the
                                                        # XEP's "XML Schema" section, then check

What it checks (exit status 1 on any failure):

1. The XEP is well-formed (it is parsed here; `xmllint --noout --nonet` is the canonical check).
2. The schema printed in the section "XML Schema" is identical to xep/presence-sync.xsd.
3. Every <example/> is well-formed once wrapped in a root that declares 'jabber:server' as the
   default namespace and the 'stream' prefix (the way a stanza appears on an s2s stream).
4. Every element qualified by urn:xmpp:presence-sync:0 that is not nested in another one of
   ours is extracted and validated with `xmllint --noout --nonet --schema xep/presence-sync.xsd`
   (one xmllint run for all of them).
5. Rules the schema cannot express: no 8-byte id twice in one ids/lack/gone list; <presence/>
   children of <item/> carry xmlns='jabber:server' explicitly (examples are also read
   standalone); every iq has an id and a type, and every iq request of an example is answered
   in the same example by a result or error with the same id.

Needs python3 and xmllint (Debian: apt-get install -y libxml2-utils). Used by CI; the Rust
tests (tests/xep_examples.rs, tests/schema.rs) additionally round-trip every extracted element
through the crate.
"""
import base64
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

NS = "urn:xmpp:presence-sync:0"
SERVER = "jabber:server"
STREAM = "http://etherx.jabber.org/streams"
HERE = Path(__file__).resolve().parent
XEP = HERE.parent / "presence-sync.xml"
XSD = HERE.parent / "presence-sync.xsd"

EXAMPLE = re.compile(r"<example(?:\s+caption=(?:'([^']*)'|\"([^\"]*)\"))?\s*>\s*<!\[CDATA\[(.*?)\]\]>\s*</example>", re.S)


def q(ns, name):
    return f"{{{ns}}}{name}"


def unescape(s):
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


def sync_schema(xep):
    text = xep.read_text(encoding="utf-8")
    pattern = re.compile(r"(<section1 topic='XML Schema'.*?<code><!\[CDATA\[\n)(.*?)(\n\]\]></code>)", re.S)
    schema = XSD.read_text(encoding="utf-8").strip("\n")
    new, n = pattern.subn(lambda m: m.group(1) + schema + m.group(3), text, count=1)
    if n != 1:
        raise SystemExit("no <code><![CDATA[...]]></code> in the section 'XML Schema'")
    xep.write_text(new, encoding="utf-8")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    xep = Path(args[0]) if args else XEP
    if "--sync-schema" in sys.argv:
        sync_schema(xep)
    text = xep.read_text(encoding="utf-8")
    failures = []
    ET.fromstring(text.encode("utf-8"))  # 1. well-formed (raises otherwise)

    # 2. inline schema == file
    m = re.search(r"<section1 topic='XML Schema'.*?<code><!\[CDATA\[(.*?)\]\]></code>", text, re.S)
    if not m:
        failures.append("no schema in the section 'XML Schema'")
    elif m.group(1).strip() != XSD.read_text(encoding="utf-8").strip():
        failures.append("the schema in the XEP differs from xep/presence-sync.xsd")

    examples = [(unescape(a or b or ""), body) for a, b, body in EXAMPLE.findall(text)]
    if text.count("<example") != len(examples):
        failures.append(f"{text.count('<example')} <example> tags but {len(examples)} parsed as <example caption='...'><![CDATA[...]]></example>")
    documents = []  # (label, xml)
    for index, (caption, body) in enumerate(examples, 1):
        label = f"example {index} ({caption!r})"
        # 3. well-formed in jabber:server
        try:
            root = ET.fromstring(f"<examples xmlns='{SERVER}' xmlns:stream='{STREAM}'>{body}</examples>")
            bare = ET.fromstring(f"<examples xmlns:stream='{STREAM}'>{body}</examples>")
        except ET.ParseError as e:
            failures.append(f"{label}: not well-formed: {e}")
            continue
        # 4. our top-level elements
        def walk(parent):
            for child in parent:
                if child.tag.startswith(f"{{{NS}}}"):
                    yield child
                else:
                    yield from walk(child)
        ours = list(walk(root))
        for element in ours:
            documents.append((f"{label}: <{element.tag.split('}')[1]}/>", ET.tostring(element, encoding="unicode")))
            # 5a. duplicate ids
            for el in element.iter():
                if el.tag in (q(NS, "ids"), q(NS, "lack"), q(NS, "gone")):
                    try:
                        raw = base64.b64decode(el.get("ids", ""), validate=True)
                    except Exception as e:  # the schema reports the details
                        continue
                    chunks = [raw[i:i + 8] for i in range(0, len(raw), 8)]
                    if len(set(chunks)) != len(chunks):
                        failures.append(f"{label}: duplicate id in <{el.tag.split('}')[1]} ids='{el.get('ids')}'/>")
        # 5b. presence in item carries its namespace explicitly
        for item in bare.iter(q(NS, "item")):
            for child in item:
                if child.tag.split("}")[-1] == "presence" and child.tag != q(SERVER, "presence"):
                    failures.append(f"{label}: <presence/> in <item jid='{item.get('jid')}'/> lacks xmlns='jabber:server'")
        # 5c. iq ids and pairing
        requests, answers = {}, set()
        for stanza in root:
            if stanza.tag != q(SERVER, "iq"):
                continue
            sid, typ = stanza.get("id"), stanza.get("type")
            if not sid or typ not in ("get", "set", "result", "error"):
                failures.append(f"{label}: <iq/> without id or with bad type")
                continue
            if typ in ("get", "set"):
                requests[sid] = stanza
            else:
                answers.add(sid)
        for sid in requests:
            if sid not in answers:
                failures.append(f"{label}: iq request '{sid}' is not answered in the example")

    # 4. run xmllint once on all extracted elements
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (_, xml) in enumerate(documents):
            p = Path(tmp) / f"{i:04d}.xml"
            p.write_text(xml, encoding="utf-8")
            paths.append(p)
        if paths:
            out = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", str(XSD), *map(str, paths)],
                                 capture_output=True, text=True)
            for (label, xml), p in zip(documents, paths):
                if f"{p} validates" not in out.stderr.splitlines():
                    errors = [l for l in out.stderr.splitlines() if l.startswith(str(p))]
                    failures.append(f"{label}: does not validate:\n    " + "\n    ".join(errors) + f"\n    element: {xml[:300]}")

    for f in failures:
        print("FAIL", f, file=sys.stderr)
    print(f"{len(examples)} examples, {len(documents)} elements of {NS} validated against {XSD.name}, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
