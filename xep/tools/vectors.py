#!/usr/bin/env python3
"""Reference implementation of the presence-sync hashing rules (XEP "Hashing and Canonical
Encodings", "Bucket Tree and Fingerprints", "Sketches") used to produce and check the XEP's test vectors.

Usage:
    python3 xep/tools/vectors.py            # print the vectors
    python3 xep/tools/vectors.py --check    # compare with the values printed in xep/presence-sync.xml

SHA-256 vectors are computed with hashlib. BLAKE3 vectors are computed only when the `blake3`
Python module is installed; otherwise they are skipped (they were produced with the Rust
`blake3` crate and are checked by the crate's own tests).

This file is an independent second implementation of the encodings: it deliberately shares no
code with the Rust crate, so that agreement between the two is evidence that the XEP text is
unambiguous.
"""
import hashlib
import re
import sys
from pathlib import Path

try:  # optional
    import blake3 as _blake3  # type: ignore
except ImportError:  # pragma: no cover
    _blake3 = None

NS = "urn:xmpp:presence-sync:0"
CTX_EDGE_LEAF = NS + " edge leaf"
CTX_PRESENCE_KEY = NS + " presence key"
CTX_PRESENCE_LEAF = NS + " presence leaf"
CTX_FINGERPRINT = NS + " fingerprint"
SHOW = {None: 0, "away": 1, "chat": 2, "dnd": 3, "xa": 4}


def lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def pair_material(a: str, b: str) -> bytes:
    lo, hi = sorted([a.encode(), b.encode()])
    return lp(lo) + lp(hi)


def derive_key(algo: str, ctx: str, material: bytes) -> bytes:
    if algo == "sha-256":
        return hashlib.sha256(ctx.encode() + b"\x00" + material).digest()
    return _blake3.blake3(material, derive_key_context=ctx).digest()


def keyed(algo: str, key: bytes, msg: bytes) -> bytes:
    if algo == "sha-256":
        return hashlib.sha256(key + msg).digest()
    return _blake3.blake3(msg, key=key).digest()


def edge_encoding(publisher: str, subscriber: str, state: str) -> bytes:
    return b"\x00\x01" + lp(publisher.encode()) + lp(subscriber.encode()) + (
        b"\x00" if state == "subscribed" else b"\x01")


def key_encoding(publisher: str) -> bytes:
    return b"\x00\x02" + lp(publisher.encode())


def element(ns: str, name: str, attrs: dict, children=()) -> bytes:
    out = b"E" + lp(ns.encode()) + lp(name.encode()) + u32(len(attrs))
    for k in sorted(attrs, key=lambda s: s.encode()):
        out += lp(k.encode()) + lp(attrs[k].encode())
    out += u32(len(children))
    for c in children:
        out += c if isinstance(c, bytes) else b"T" + lp(c.encode())
    return out


def leaf_encoding(publisher: str, resources: list, except_jids: list) -> bytes:
    """resources: list of dicts {name, show, priority, statuses: {lang: text}, ext: [bytes]}"""
    out = b"\x00\x03" + lp(publisher.encode()) + u32(len(resources))
    for r in sorted(resources, key=lambda r: r["name"].encode()):
        out += lp(r["name"].encode()) + bytes([SHOW[r.get("show")]])
        out += (r.get("priority", 0) & 0xFF).to_bytes(1, "big")
        st = r.get("statuses", {})
        out += u32(len(st))
        for lang in sorted(st, key=lambda s: s.encode()):
            out += lp(lang.encode()) + lp(st[lang].encode())
        ext = sorted(r.get("ext", []))
        out += u32(len(ext)) + b"".join(ext)
    out += u32(len(except_jids))
    for j in sorted(except_jids, key=lambda s: s.encode()):
        out += lp(j.encode())
    return out


def fingerprint(algo: str, leaves: list) -> bytes:
    total = sum(int.from_bytes(l, "little") for l in leaves) % (1 << 256)
    material = total.to_bytes(32, "little") + len(leaves).to_bytes(8, "little")
    return derive_key(algo, CTX_FINGERPRINT, material)[:16]


CAPS = element("http://jabber.org/protocol/caps", "c", {
    "hash": "sha-1", "node": "https://client.example/app", "ver": "QgayPKawpkPSDYmwT/WM94uAlu0="})
JULIET = ("juliet@capulet.lit", [
    {"name": "balcony", "show": "away", "priority": 5, "statuses": {"en": "Gone fishing"}, "ext": [CAPS]},
    {"name": "phone", "priority": -1},
], ["abram@montague.lit"])


M64 = (1 << 64) - 1


def mix(v: int) -> int:
    """MurmurHash3's 64-bit finalizer (XEP "Sketches")."""
    v ^= v >> 33
    v = (v * 0xFF51AFD7ED558CCD) & M64
    v ^= v >> 33
    v = (v * 0xC4CEB9FE1A85EC53) & M64
    return v ^ (v >> 33)


def sketch(ids: list, m: int) -> bytes:
    """The cells of a sketch of m cells (a multiple of 4) of 8-byte ids (XEP "Sketches")."""
    cells = [[0, 0, 0] for _ in range(m)]
    part = m // 4
    for x in ids:
        v = int.from_bytes(x, "big")
        for j in range(4):
            h = mix((v + j + 1) & M64) >> 32
            c = cells[j * part + ((h * part) >> 32)]
            c[0] = (c[0] + 1) % 256
            c[1] ^= v
            c[2] ^= mix(v) & 0xFFFFFFFF
    return b"".join(bytes([n]) + i.to_bytes(8, "big") + k.to_bytes(4, "big") for n, i, k in cells)


def vectors(algo: str) -> list:
    pm = pair_material("montague.lit", "capulet.lit")
    ke = derive_key(algo, CTX_EDGE_LEAF, pm)
    kk = derive_key(algo, CTX_PRESENCE_KEY, pm)
    kl = derive_key(algo, CTX_PRESENCE_LEAF, pm)
    e1 = edge_encoding("juliet@capulet.lit", "romeo@montague.lit", "subscribed")
    e2 = edge_encoding("nurse@capulet.lit", "romeo@montague.lit", "pending")
    l1, l2 = keyed(algo, ke, e1), keyed(algo, ke, e2)
    pk = key_encoding(JULIET[0])
    le = leaf_encoding(*JULIET)
    ph, pl = keyed(algo, kk, pk), keyed(algo, kl, le)
    return [
        ("pair material", pm),
        ("K_edge_leaf", ke), ("K_presence_key", kk), ("K_presence_leaf", kl),
        ("edge 1 encoding", e1), ("edge 1 leaf", l1),
        ("edge 2 encoding", e2), ("edge 2 leaf", l2),
        ("fingerprint of the empty set", fingerprint(algo, [])),
        ("fingerprint of {edge 1, edge 2}", fingerprint(algo, [l1, l2])),
        ("presence key encoding", pk), ("presence key hash", ph),
        ("presence leaf encoding", le), ("presence leaf", pl),
        ("sketch of the ids of edges 1 and 2, 8 cells", sketch([l1[24:], l2[24:]], 8)),
    ]


def main() -> int:
    algos = ["sha-256"] + (["blake3"] if _blake3 else [])
    computed = {(a, n): v.hex() for a in algos for n, v in vectors(a)}
    if "--check" not in sys.argv:
        for (a, n), v in computed.items():
            print(f"{a:8} {n:34} {v}")
        if not _blake3:
            print("(blake3 module not installed: BLAKE3 vectors skipped)")
        return 0
    xep = Path(__file__).resolve().parent.parent / "presence-sync.xml"
    text = xep.read_text(encoding="utf-8")
    # The XEP prints vectors as "<algo> <name>: <hex>" lines inside one <code> block, hex
    # possibly wrapped over several lines.
    block = re.search(r"<code caption='Test vectors'><!\[CDATA\[(.*?)\]\]></code>", text, re.S)
    if not block:
        print("no test vector block found", file=sys.stderr)
        return 1
    printed, cur = {}, None
    for line in block.group(1).splitlines():
        m = re.match(r"^(sha-256|blake3)\s+(.+?):\s*([0-9a-f]*)\s*$", line)
        if m:
            cur = (m.group(1), m.group(2))
            printed[cur] = m.group(3)
        elif cur and re.fullmatch(r"\s+[0-9a-f]+\s*", line):
            printed[cur] += line.strip()
        else:
            cur = None
    bad = 0
    for key, value in computed.items():
        if printed.get(key) != value:
            print(f"MISMATCH {key}: xep={printed.get(key)} computed={value}", file=sys.stderr)
            bad += 1
    print(f"vectors: {len(computed)} checked, {bad} mismatches"
          + ("" if _blake3 else " (blake3 skipped: module not installed)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
