#!/usr/bin/env python3
"""Requirements index of xep/presence-sync.xml.

Every normative statement of the XEP (a sentence containing MUST, SHOULD, MAY, SHALL, REQUIRED,
RECOMMENDED or OPTIONAL in capitals, in a <p> or <li>) must be followed by its identifier,
written <strong>[PS-n]</strong>. The section "Requirements Index" holds a table with one row
per identifier: id, level, section, short text, checked by.

Usage:
    python3 xep/tools/req-index.py --check   # exit 1 if an identifier is missing, duplicated,
                                             # or the index table is out of date
    python3 xep/tools/req-index.py --write   # regenerate the index table in place, keeping the
                                             # "Checked by" column of existing rows
    python3 xep/tools/req-index.py --json    # print the requirements as JSON (for the
                                             # conformance suite)

Identifiers are stable: never renumber. A new requirement takes the next unused number, and a
removed one leaves its number unused.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

XEP = Path(__file__).resolve().parent.parent / "presence-sync.xml"
KEYWORD = re.compile(r"\b(MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED|MAY|OPTIONAL)\b")
MARK = re.compile(r"\[PS-(\d+)\]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
PENDING = "conformance: pending"


def level(text):
    words = set(KEYWORD.findall(text))
    if words & {"MUST", "SHALL", "REQUIRED"}:
        return "MUST"
    if words & {"SHOULD", "RECOMMENDED"}:
        return "SHOULD"
    return "MAY"


def flat(el):
    """Text of an element with the requirement markers kept as [PS-n] and notes dropped."""
    out = [el.text or ""]
    for child in el:
        if child.tag != "note":
            out.append(flat(child))
        out.append(child.tail or "")
    return re.sub(r"\s+", " ", "".join(out))


def sections(root):
    """(element, number, title) for every section, numbered as the rendering does."""
    found = []

    def walk(el, prefix, depth):
        n = 0
        for child in el:
            if child.tag == f"section{depth}":
                n += 1
                num = f"{prefix}{n}"
                found.append((child, num, child.get("topic", "")))
                walk(child, num + ".", depth + 1)

    walk(root, "", 1)
    return found


def scan(path=XEP):
    root = ET.parse(path).getroot()
    reqs, problems = [], []
    for sec, num, title in sections(root):
        for block in sec:
            if block.tag not in ("p", "ul", "ol", "div"):
                continue
            units = [block] if block.tag == "p" else list(block.iter("li")) + list(block.iter("p"))
            for unit in units:
                text = flat(unit).strip()
                pieces = MARK.split(text)  # text, id, text, id, ..., tail
                for i in range(0, len(pieces), 2):
                    segment = pieces[i]
                    ident = pieces[i + 1] if i + 1 < len(pieces) else None
                    sentences = [s for s in SENTENCE_END.split(segment.strip()) if s]
                    keyed = [k for k, s in enumerate(sentences) if KEYWORD.search(s)]
                    if ident is None:
                        for k in keyed:
                            problems.append(f"§{num} {title}: normative sentence without identifier: {sentences[k][:120]!r}")
                        continue
                    if not keyed:
                        problems.append(f"§{num} {title}: [PS-{ident}] follows no normative sentence")
                        continue
                    if keyed[-1] != len(sentences) - 1:
                        problems.append(f"§{num} {title}: [PS-{ident}] does not follow its sentence directly")
                    for k in keyed[:-1]:
                        problems.append(f"§{num} {title}: normative sentence without identifier: {sentences[k][:120]!r}")
                    short = sentences[keyed[-1]].strip()
                    if len(short) > 220:
                        short = short[:217].rsplit(" ", 1)[0] + " …"
                    reqs.append({"id": f"PS-{ident}", "n": int(ident), "level": level(sentences[keyed[-1]]),
                                 "section": f"{num} {title}", "text": short})
    seen = {}
    for r in reqs:
        if r["id"] in seen:
            problems.append(f"{r['id']} defined twice ({seen[r['id']]} and {r['section']})")
        seen[r["id"]] = r["section"]
    reqs.sort(key=lambda r: r["n"])
    return reqs, problems


TABLE = re.compile(r"(<table caption='Requirements'>\n)(.*?)(\s*</table>)", re.S)
ROW = re.compile(r"<tr><td>(PS-\d+)</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td></tr>")


def render(reqs, checked):
    rows = ["    <tr><th>Id</th><th>Level</th><th>Section</th><th>Requirement</th><th>Checked by</th></tr>"]
    for r in reqs:
        rows.append("    <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            r["id"], r["level"], escape(r["section"], quote=False), escape(r["text"], quote=False),
            escape(checked.get(r["id"], PENDING), quote=False)))
    return "\n".join(rows)


def main():
    text = XEP.read_text(encoding="utf-8")
    reqs, problems = scan()
    m = TABLE.search(text)
    if not m:
        problems.append("no <table caption='Requirements'> in the Requirements Index")
        current, checked = "", {}
    else:
        current = m.group(2)
        checked = {i: c for i, c in ROW.findall(current)}
    from html import unescape
    checked = {k: unescape(v) for k, v in checked.items()}
    wanted = render(reqs, checked)
    if "--json" in sys.argv:
        for r in reqs:
            r["checked_by"] = checked.get(r["id"], PENDING)
        json.dump(reqs, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if "--write" in sys.argv:
        if m:
            text = text[:m.start(2)] + wanted + text[m.end(2):]
            XEP.write_text(text, encoding="utf-8")
        for p in problems:
            print("problem:", p, file=sys.stderr)
        print(f"requirements: {len(reqs)} written")
        return 1 if problems else 0
    if m and current.strip() != wanted.strip():
        problems.append("the Requirements Index table is out of date (run req-index.py --write)")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    levels = {l: sum(r["level"] == l for r in reqs) for l in ("MUST", "SHOULD", "MAY")}
    print(f"requirements: {len(reqs)} ({levels['MUST']} MUST, {levels['SHOULD']} SHOULD, {levels['MAY']} MAY), "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
