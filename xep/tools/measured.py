#!/usr/bin/env python3
"""The measured figures of the XEP and of its implementation report, generated from the packet
benchmark's recorded results, so that no quoted number can drift from the run that produced it.

    python3 xep/tools/measured.py --check   # exit 1 if a generated part is stale
    python3 xep/tools/measured.py --write   # regenerate both parts in place

Sources: benches/results/packets.csv (scenario,edges,differences,scheme,stanzas,bytes,
round_trips,converged,sim_ms,active_ms, as `cargo bench --bench packets` writes it) and benches/results/packets.txt (the
full output of the same run). Only the largest size of the run is used.

Generated parts:
- xep/presence-sync.xml: the rows (and the edge count in the caption) of the table whose
  caption starts with "Measured cost at", in Implementation Notes. The XEP names no file or
  command; its text describes the workload in words.
- xep/implementation-report.md: the text between "<!-- BEGIN measured -->" and
  "<!-- END measured -->": every scenario at the largest size, then the targets the bench
  printed, verbatim.
"""
import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CSV = ROOT / "benches" / "results" / "packets.csv"
TXT = ROOT / "benches" / "results" / "packets.txt"
XEP = ROOT / "xep" / "presence-sync.xml"
REPORT = ROOT / "xep" / "implementation-report.md"

SCHEMES = [
    ("rfc6121", "RFC 6121 (Prosody-like)"),
    ("xep0033", "RFC 6121 with XEP-0033"),
    ("negentropy", "negentropy"),
    ("presence-sync", "this protocol"),
    ("floor", "floor"),
]
# Scenario names of the bench, and how the tables name them; the XEP shows the first group.
SCENARIOS = [
    ("cold-restart", "crash restart of one server and its login storm", True),
    ("graceful-restart", "graceful restart and login storm", True),
    ("both-restart", "both servers restart", False),
    ("link-loss-0", "link loss, nothing changed", True),
    ("link-loss-1", "link loss, 1 presence change", False),
    ("link-loss-10", "link loss, 10 presence changes", False),
    ("link-loss-100", "link loss, 100 presence changes", True),
    ("link-loss-1000", "link loss, 1000 presence changes", True),
    ("link-loss-mixed-100", "link loss, 100 changes of every kind", False),
    ("mismatch", "100 subscription mismatches", True),
]


def grouped(n):
    """1000484 -> '1 000 484' (the XEP's way of writing large numbers)."""
    return f"{n:,}".replace(",", " ")


def size(b):
    if b >= 1_000_000:
        return f"{b / 1_000_000:.1f} MB"
    if b >= 10_000:
        return f"{b / 1000:.0f} KB"
    return f"{grouped(b)} B"


def load():
    rows = list(csv.DictReader(CSV.open(encoding="utf-8")))
    top = max(int(r["edges"]) for r in rows)
    cells = {(r["scenario"], r["scheme"]): r for r in rows if int(r["edges"]) == top}
    return top, cells


def cell(r, scenario):
    stanzas, nbytes, rtt = int(r["stanzas"]), int(r["bytes"]), int(r["round_trips"])
    # A run that left stale or missing presence (the CSV's `converged` column): RFC 6121 does
    # nothing after a link loss or a mismatch. With nothing changed, nothing is stale.
    if stanzas == 0 and r.get("converged", "false") == "false":
        return "0 (not repaired)" if scenario == "mismatch" else "0 (stale)"
    return f"{grouped(stanzas)} / {size(nbytes)} / {rtt}"


def xep_table(top, cells):
    lines = [f"    <table caption='Measured cost at {grouped(top)} edges'>",
             "      <tr><th>Scenario</th><th>Differing entries</th>"
             + "".join(f"<th>{name}</th>" for _, name in SCHEMES) + "</tr>"]
    for key, name, in_xep in SCENARIOS:
        if not in_xep or (key, "presence-sync") not in cells:
            continue
        diffs = grouped(int(cells[(key, "presence-sync")]["differences"]))
        tds = "".join(f"<td>{cell(cells[(key, s)], key)}</td>" for s, _ in SCHEMES)
        lines.append(f"      <tr><td>{name}</td><td>{diffs}</td>{tds}</tr>")
    lines.append("    </table>")
    return "\n".join(lines)


def report_part(top, cells):
    out = [f"At {grouped(top)} cross-domain edges (the largest size of the recorded run):", "",
           "| scenario | differing | " + " | ".join(name for _, name in SCHEMES) + " |",
           "|---|---|" + "---|" * len(SCHEMES)]
    for key, name, _ in SCENARIOS:
        if (key, "presence-sync") not in cells:
            continue
        diffs = grouped(int(cells[(key, "presence-sync")]["differences"]))
        out.append(f"| {name} (`{key}`) | {diffs} | "
                   + " | ".join(cell(cells[(key, s)], key) for s, _ in SCHEMES) + " |")
    if any(r.get("sim_ms") for r in cells.values()):
        out += ["", "Simulated time until every view was right, in ms from the start of the phase "
                "(a graceful restart: from the restart), and for this extension until its active "
                "users' views were right. The bench's links: 20 ms one way, 100 Mbit/s each "
                "direction, 150 µs to handle a stanza (assumed, not yet calibrated):", "",
                "| scenario | RFC 6121 | XEP-0033 | this extension | its active users |",
                "|---|---|---|---|---|"]
        # The mismatch's repairs change rosters (and the truth), not what users are shown.
        for key, name, _ in SCENARIOS:
            if (key, "presence-sync") not in cells or key == "mismatch":
                continue
            row = [name + f" (`{key}`)"]
            for scheme, col in (("rfc6121", "sim_ms"), ("xep0033", "sim_ms"),
                                ("presence-sync", "sim_ms"), ("presence-sync", "active_ms")):
                r = cells.get((key, scheme), {})
                if r.get("converged") == "false":
                    row.append("stale")
                else:
                    row.append(grouped(int(r[col])) if r.get(col) else "-")
            out.append("| " + " | ".join(row) + " |")
    text = TXT.read_text(encoding="utf-8").splitlines()
    # What the byte columns assume, as the run stated it (one paragraph starting "Bytes:").
    first = next((i for i, l in enumerate(text) if l.startswith("Bytes:")), None)
    if first is not None:
        end = next((i for i in range(first, len(text)) if not text[i].strip()), len(text))
        out = [" ".join(text[first:end]), ""] + out
    start = next((i for i, l in enumerate(text)
                  if l.startswith(("Targets (measured figures)", "Targets of issue"))), None)
    if start is not None:
        targets = [l for l in text[start:] if l.strip()]
        out += ["", "The targets, as the same run printed them:", "", "```text", *targets, "```"]
    return "\n".join(out) + "\n"


XEP_TABLE = re.compile(r"    <table caption='Measured cost at [^']*'>.*?</table>", re.S)
REPORT_PART = re.compile(r"(<!-- BEGIN measured -->\n)(.*?)(<!-- END measured -->)", re.S)


def main():
    top, cells = load()
    xep, report = XEP.read_text(encoding="utf-8"), REPORT.read_text(encoding="utf-8")
    problems = []
    m, mm = XEP_TABLE.search(xep), REPORT_PART.search(report)
    if not m:
        problems.append(f"no <table caption='Measured cost at ...'> in {XEP.name}")
    if not mm:
        problems.append(f"no <!-- BEGIN measured --> ... <!-- END measured --> in {REPORT.name}")
    want_table, want_part = xep_table(top, cells), report_part(top, cells)
    if "--write" in sys.argv:
        if m:
            XEP.write_text(xep[:m.start()] + want_table + xep[m.end():], encoding="utf-8")
        if mm:
            REPORT.write_text(report[:mm.start(2)] + want_part + report[mm.end(2):], encoding="utf-8")
    else:
        if m and m.group(0) != want_table:
            problems.append(f"the measured table of {XEP.name} differs from {CSV.name} (run measured.py --write)")
        if mm and mm.group(2) != want_part:
            problems.append(f"the measured figures of {REPORT.name} differ from the results (run measured.py --write)")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    print(f"measured figures at {top} edges: {'written' if '--write' in sys.argv else 'checked'}, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
