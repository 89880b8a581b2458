#!/usr/bin/env python3
"""Requirements index of xep/presence-sync.xml, and the requirement map of
xep/implementation-report.md.

Every normative statement of the XEP (a sentence containing MUST, SHOULD, MAY, SHALL, REQUIRED,
RECOMMENDED or OPTIONAL in capitals, in a <p> or <li>) must be followed by its identifier,
written <strong>[PS-n]</strong>. Two tables are generated from the text:

- in the XEP, the section "Requirements Index": one row per identifier (id, level, section,
  short text). A retired identifier keeps its row with the level "retired" and the reason in
  place of the text; retired rows are edited by hand and kept by --write.
- in the implementation report, the requirement map between the markers
  "<!-- BEGIN requirement map -->" and "<!-- END requirement map -->": one row per identifier
  (id, level, section, checked by). The "Checked by" cells are kept by --write: test
  citations ("file (test, test)") are written by hand, the "conformance: ..." part by
  `cargo run --release -- conformance --write-xep`.

Usage:
    python3 xep/tools/req-index.py --check   # exit 1 if an identifier is missing, duplicated,
                                             # neither defined nor retired, or a table is stale
    python3 xep/tools/req-index.py --write   # regenerate both tables in place
    python3 xep/tools/req-index.py --json    # print the requirements (with "checked_by") as
                                             # JSON, for the conformance suite

Identifiers are stable: never renumber. A new requirement takes the next unused number; a
removed one is retired (its row in the index says why) and its number is never used again.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from html import escape, unescape
from pathlib import Path

XEP = Path(__file__).resolve().parent.parent / "presence-sync.xml"
REPORT = Path(__file__).resolve().parent.parent / "implementation-report.md"
KEYWORD = re.compile(r"\b(MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED|MAY|OPTIONAL)\b")
MARK = re.compile(r"\[PS-(\d+)\]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
PENDING = "conformance: pending"
RETIRED = "retired"


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


# The XEP's index table: <tr><td>PS-n</td><td>level</td><td>section</td><td>text</td></tr>.
TABLE = re.compile(r"(<table caption='Requirements'>\n)(.*?)(\s*</table>)", re.S)
XEP_ROW = re.compile(r"<tr><td>PS-(\d+)</td><td>([^<]*)</td><td>([^<]*)</td><td>(.*?)</td></tr>")
# The report's requirement map: | PS-n | level | section | checked by |.
MAP = re.compile(r"(<!-- BEGIN requirement map -->\n)(.*?)(<!-- END requirement map -->)", re.S)
MAP_ROW = re.compile(r"^\| PS-(\d+) \| ([^|]*) \| ([^|]*) \| ([^|]*) \|$", re.M)


def retired_rows(index_text):
    """{n: (section cell, reason)} of the rows of the XEP's index whose level is 'retired'."""
    return {int(n): (sec, reason) for n, lvl, sec, reason in XEP_ROW.findall(index_text) if lvl == RETIRED}


def rows(reqs, retired):
    """Every identifier in numeric order: live requirements and retired ones."""
    out = [dict(r) for r in reqs]
    for n, (sec, reason) in retired.items():
        out.append({"id": f"PS-{n}", "n": n, "level": RETIRED, "section": unescape(sec), "text": unescape(reason)})
    return sorted(out, key=lambda r: r["n"])


def render_index(all_rows):
    lines = ["    <tr><th>Id</th><th>Level</th><th>Section</th><th>Requirement</th></tr>"]
    for r in all_rows:
        lines.append("    <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            r["id"], r["level"], escape(r["section"], quote=False), escape(r["text"], quote=False)))
    return "\n".join(lines)


def render_map(all_rows, checked):
    lines = ["| Id | Level | Section | Checked by |", "|---|---|---|---|"]
    for r in all_rows:
        default = "—" if r["level"] == RETIRED else PENDING
        lines.append(f"| {r['id']} | {r['level']} | {r['section']} | {checked.get(r['id'], default)} |")
    return "\n".join(lines) + "\n"


def accounting(reqs, retired):
    """Problems with the numbering: every number up to the highest is defined or retired."""
    problems = []
    defined = {r["n"] for r in reqs}
    for n in sorted(defined & set(retired)):
        problems.append(f"PS-{n} is retired in the index but still defined in the text")
    top = max(defined | set(retired), default=0)
    for n in range(1, top + 1):
        if n not in defined and n not in retired:
            problems.append(f"PS-{n} is neither defined in the text nor retired in the index "
                            f"(a removed requirement keeps a 'retired' row)")
    return problems


def main():
    text = XEP.read_text(encoding="utf-8")
    report = REPORT.read_text(encoding="utf-8") if REPORT.exists() else ""
    reqs, problems = scan()
    m = TABLE.search(text)
    if not m:
        problems.append("no <table caption='Requirements'> in the Requirements Index")
    retired = retired_rows(m.group(2)) if m else {}
    problems += accounting(reqs, retired)
    all_rows = rows(reqs, retired)
    mm = MAP.search(report)
    if not mm:
        problems.append(f"no requirement map (<!-- BEGIN requirement map --> ... <!-- END requirement map -->) in {REPORT.name}")
    checked = {f"PS-{n}": c for n, _, _, c in MAP_ROW.findall(mm.group(2))} if mm else {}
    wanted_index = render_index(all_rows)
    wanted_map = render_map(all_rows, checked)
    if "--json" in sys.argv:
        for r in reqs:
            r["checked_by"] = checked.get(r["id"], PENDING)
        json.dump(reqs, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if "--write" in sys.argv:
        if m:
            XEP.write_text(text[:m.start(2)] + wanted_index + text[m.end(2):], encoding="utf-8")
        if mm:
            REPORT.write_text(report[:mm.start(2)] + wanted_map + report[mm.end(2):], encoding="utf-8")
        for p in problems:
            print("problem:", p, file=sys.stderr)
        print(f"requirements: {len(reqs)} written, {len(retired)} retired")
        return 1 if problems else 0
    if m and m.group(2).strip() != wanted_index.strip():
        problems.append("the Requirements Index table is out of date (run req-index.py --write)")
    if mm and mm.group(2) != wanted_map:
        problems.append(f"the requirement map of {REPORT.name} is out of date (run req-index.py --write)")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    levels = {l: sum(r["level"] == l for r in reqs) for l in ("MUST", "SHOULD", "MAY")}
    print(f"requirements: {len(reqs)} ({levels['MUST']} MUST, {levels['SHOULD']} SHOULD, {levels['MAY']} MAY), "
          f"{len(retired)} retired, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
