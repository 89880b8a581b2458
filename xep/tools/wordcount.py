#!/usr/bin/env python3
"""Length of xep/presence-sync.xml for its readers, and nothing in it that only this repository
understands.

    python3 xep/tools/wordcount.py           # words per section, normative part, whole document
    python3 xep/tools/wordcount.py --check   # exit 1 if the normative part exceeds its budget,
                                             # or if the document names a path of this
                                             # repository or a command

A word is a whitespace-separated token of the document's text: prose, tables, examples,
figures, the schema and footnotes all count, markup does not (so "<hello" in an example is one
word, a 344-character base64 value is one word). The normative part is every top-level section
except the informative ones listed in INFORMATIVE (Implementation Notes, Design Rationale,
Accessibility Considerations, the Requirements Index and the Acknowledgements), that is
sections 1 to 8 and 12 to 17 of the current document. Its budget is BUDGET words: the length
at which a reader who knows RFC 6120/6121 reads the normative part in about an hour (12 000
until version 0.0.6; sketches, in 0.0.7, added about 560 words of rules, encoding and example).

The second check keeps the specification readable outside this repository: no path into the
repository (src/, tests/, xep/, ..., *.rs, *.py), no command (cargo, python3, xsltproc, ...).
Link targets (http and https URLs) are not checked.
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

XEP = Path(__file__).resolve().parent.parent / "presence-sync.xml"
BUDGET = 12_600
INFORMATIVE = {
    "Implementation Notes",
    "Design Rationale",
    "Accessibility Considerations",
    "Requirements Index",
    "Acknowledgements",
}
REPOSITORY = [
    (re.compile(r"(?<![\w.:/-])(?:src|tests|benches|conformance|xep|target|\.ci)/"), "a path into the repository"),
    (re.compile(r"\b(?!xep\.xsl\b)[\w-]+\.(?:rs|py|toml|csv|md|sh|xsl)\b"), "a file of the repository"),
    (re.compile(r"\b(?:cargo|rustc|python3?|xsltproc|xmllint|xep\.py)\b"), "a command"),
    (re.compile(r"(?<![\w-])--[a-z][a-z-]+"), "a command-line option"),
    (re.compile(r"\bpresence-sync (?:digest|conformance)\b"), "a command"),
    (re.compile(r"\bREADME\b"), "the repository's README"),
]
URL = re.compile(r"https?://[^\s'\"<>]+")


def words(text):
    return len(text.split())


def count(path=XEP):
    """[(number, title, words, normative)] for the top-level sections, and the whole document."""
    root = ET.parse(path).getroot()
    rows = []
    for n, sec in enumerate(root.findall("section1"), 1):
        title = sec.get("topic", "")
        rows.append((n, title, words("".join(sec.itertext())), title not in INFORMATIVE))
    return rows, words("".join(root.itertext()))


def repository_mentions(path=XEP):
    """(line number, what, line) for every mention of a repository path or a command."""
    found = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        bare = URL.sub(" ", line)
        for pattern, what in REPOSITORY:
            if pattern.search(bare):
                found.append((lineno, what, line.strip()))
                break
    return found


def main():
    rows, whole = count()
    normative = sum(w for _, _, w, norm in rows if norm)
    for n, title, w, norm in rows:
        print(f"{n:>3} {title:<40} {w:>6} {'normative' if norm else 'informative'}")
    numbers = ", ".join(str(n) for n, _, _, norm in rows if norm)
    print(f"normative part (sections {numbers}): {normative} words (budget {BUDGET})")
    print(f"whole document: {whole} words")
    if "--check" not in sys.argv:
        return 0
    problems = []
    if normative > BUDGET:
        problems.append(f"the normative part has {normative} words, more than its budget of {BUDGET}")
    for lineno, what, line in repository_mentions():
        problems.append(f"line {lineno}: {what}: {line[:140]}")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
