"""The report on a file received from others (``archiver report`` of a receipt's ID or a received page's ID): one
self-contained page, HTML and PDF, that nobody can take for a report on a capture of ours.

It is headed "Received from others — not captured by this archive" and says, before anything the file shows, who
handed the file over, when and to whom, and that what it shows is the word of whoever made it. Then: the page as the
file says it (URL, time, status, title, a text excerpt), the receipt (from, by, when, original name, size, SHA-256),
the file as kept now (re-hashed against the receipt), what was found in it on receipt (record digests, the records
whose digests did not hold by WARC and offset, WARC versions, software, a WACZ's datapackage and signature with its
signer), the ledger entries of its receiving, and the commands that check it without archiver.

The same rules as the capture report (report.py): every string from the file escaped, no script, nothing loaded (the
same Content-Security-Policy), URLs as text, never links.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from archiver.custody import ledger
from archiver.exchange.report import (CSP, CSS, _archiver_version, _code, _e, _grid, _kv, _size, _verdict,
                                      howto_box, utc)
from archiver.exchange.wacz_received import PY_RECEIPT, receiving_entries, store_of
from archiver.store import received
from archiver.store.archive import Archive
from archiver.store.blobs import Stores, StorageError
from archiver.store.index import Index, now_iso

HEADING = "Received from others — not captured by this archive"
TEXT_EXCERPT = 2000        # characters of a page's text shown
MOST_PROBLEMS = 200        # records whose digests did not hold, listed (the count is always given)
MOST_PAGES = 50            # pages of a receipt listed in a report on the receipt
EXTRA_CSS = """
.received { border: 3px solid #a00; background: #fff3f0; padding: .5rem .8rem; margin: .6rem 0 1rem;
            break-inside: avoid; page-break-inside: avoid; }
.received strong { color: #a00; }
.excerpt { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 9pt; border-left: 3px solid #ccc;
           padding-left: .6rem; margin: .3rem 0; }
"""


@dataclass
class ReceivedReportData:
    """Everything the report on a received file shows, gathered once; ``render_html`` only formats it."""
    archive_dir: Path
    receipt: dict[str, Any]
    page: dict[str, Any] | None          # the received page asked for; None for a report on the receipt
    pages: list[dict[str, Any]]          # the receipt's first pages (a report on the receipt)
    location: str                        # where the file is kept (a path, or s3://...)
    fetch: list[str]                     # commands that copy it and its receipt out of a store (none for a path)
    kept_sha256: str | None              # the file as kept now, re-hashed
    kept_size: int | None
    kept_problem: str | None             # why it could not be re-hashed
    ledger_entries: list[dict[str, Any]]
    ledger_broken: Any                   # ledger.Broken where those entries stand, or None
    made_at: str = field(default_factory=now_iso)

    @property
    def subject(self) -> str:
        if self.page is not None:
            return f"received page {self.page['id']} of receipt {self.receipt['id']}, NOT a capture of this archive"
        return f"receipt {self.receipt['id']}, a file received from others, NOT a capture of this archive"

    @property
    def footer(self) -> str:
        return (f"archiver report on a file RECEIVED from others (not captured by this archive), receipt "
                f"{self.receipt['id']}, made {utc(self.made_at)}")

    @property
    def local_file(self) -> str:
        """The file a reader checks: its path, or the name a fetch command copies it to."""
        return self.location if not self.fetch else f"{self.receipt['id']}.{self.receipt['format']}"


def gather(archive: Archive, index: Index, ident: str) -> ReceivedReportData:
    """The report of the receipt or received page ``ident`` (an ID, unique ID prefix, or a URL only received pages
    hold). Raises NotFound when it is none of those."""
    from archiver.exchange.receive import RECEIPT_SUFFIX, location
    what, held, page = received.find(index, ident)
    store = store_of(archive.path, Stores(archive.path, archive.settings), held)
    kept_sha256 = kept_size = kept_problem = None
    try:
        kept_sha256, kept_size = store.sha256_of(held["path"], held.get("version"))
    except (StorageError, OSError) as exc:   # NotStored too
        kept_problem = f"cannot be read: {exc}"
    fetch = []
    if held.get("store"):
        copy = store.fetch_command(held["path"], held.get("version"), f"{held['id']}.{held['format']}")
        receipt = store.fetch_command(held["path"] + RECEIPT_SUFFIX, None, f"{held['id']}{RECEIPT_SUFFIX}")
        fetch = [c for c in (copy, receipt) if c]
    entries = receiving_entries(index.conn, [held["id"]])
    return ReceivedReportData(
        archive_dir=archive.path, receipt=held, page=page,
        pages=received.pages_of(index, held["id"], limit=MOST_PAGES) if page is None else [],
        location=location(archive, held), fetch=fetch, kept_sha256=kept_sha256, kept_size=kept_size,
        kept_problem=kept_problem, ledger_entries=entries,
        ledger_broken=ledger.check_entries(index.conn, entries) if entries else None)


# ---- rendering -----------------------------------------------------------------------------------------------------

def _banner(d: ReceivedReportData) -> str:
    r = d.receipt
    software = ", ".join(r["checks"].get("software") or []) or "a tool the file does not name"
    return (f'<div class="received"><p><strong>This archive did not capture this.</strong> '
            f"{_e(r['received_from'])} handed over the file {_code(r['original_name'])} on "
            f"{_e(utc(r['received_at']))}; {_e(r['received_by'])} took it in. The archive keeps it exactly as it was "
            f"received (SHA-256 {_code(r['sha256'])}).</p>"
            f"<p>Everything this report says the file shows — URLs, times, status, titles, text — is what the file "
            f"says, as written by {_e(software)}: the word of whoever made the file, not a finding of this "
            f"archive.</p></div>")


def _section_page(d: ReceivedReportData) -> str:
    p = d.page
    assert p is not None
    where = (f"{_code(p['warc'])} at offset {_e(p['offset'])}" if p["offset"] >= 0 else
             f"{_code(p['warc'])}: the package lists the page, it holds no record of it")
    source = {"package": "the package's own text (its pages.jsonl)", "html": "extracted here from the HTML in the file",
              "none": "none"}.get(p["text_source"], p["text_source"])
    out = "<h2>The page, as the file says</h2>" + _kv([
        ("Received page ID", _code(p["id"])), ("URL", _code(p["url"])),
        ("Time", _e(f"{utc(p['captured_at'])}, as the file states it (the clock of the tool that made it)"
                    if p["captured_at"] else "the file states none")),
        ("HTTP status", _e(p["http_status"])), ("Content type", _e(p["content_type"])),
        ("Title", _e(p["title"])), ("Text", _e(source)), ("Record", where),
        ("Page", _e(f"{p['seq']} of {d.receipt['checks'].get('pages', '?')} in the file")),
    ])
    text = (p.get("text") or "").strip()
    if text:
        cut = text[:TEXT_EXCERPT] + (" …" if len(text) > TEXT_EXCERPT else "")
        out += (f'<h3>Text (the first {min(len(text), TEXT_EXCERPT):,} of {len(text):,} characters)</h3>'
                f'<div class="excerpt">{_e(cut)}</div>')
    return out


def _section_receipt(d: ReceivedReportData) -> str:
    r = d.receipt
    return "<h2>Receipt</h2>" + _kv([
        ("Receipt ID", _code(r["id"])), ("Received from", _e(r["received_from"])),
        ("Received by", _e(r["received_by"])), ("Received at", _e(utc(r["received_at"]))),
        ("Original file name", _code(r["original_name"])), ("Format", _e(r["format"])),
        ("Size", _e(_size(r["size"]))), ("SHA-256 on receipt", _code(r["sha256"])),
        ("Tags", _e(r["tags"])), ("Note", _e(r["note"])), ("Pages indexed", _e(r["checks"].get("pages"))),
    ])


def _section_kept(d: ReceivedReportData) -> str:
    r = d.receipt
    if d.kept_problem:
        verdict = _verdict(False, "", f"the kept file {d.kept_problem}")
    else:
        same = d.kept_sha256 == r["sha256"] and d.kept_size == r["size"]
        verdict = _verdict(same, "re-hashed now: the same bytes as received",
                           f"re-hashed now to {d.kept_sha256} ({d.kept_size} bytes): NOT the bytes received")
    return "<h2>The file as kept</h2>" + _kv([
        ("Kept at", _code(d.location)), ("Receipt file", _code(d.location + ".receipt.json")),
        ("Integrity", verdict)])


def _section_found(d: ReceivedReportData) -> str:
    checks = d.receipt["checks"]
    problems = checks.get("problems") or []
    rows = [("Records read", _e(checks.get("records"))),
            ("Digests checked", _e(f"{checks.get('checked', 0)} record(s) whose digests could be checked")),
            ("Altered or unreadable", _verdict(not problems, "none: every digest checked holds",
                                               f"{len(problems)} record(s) whose digests do not hold or that cannot "
                                               f"be read (listed below)")),
            ("WARC versions", _e(checks.get("warc_versions"))),
            ("Software", _e(checks.get("software") or "not named in the file")),
            ("WARCs read", _code(checks.get("warcs")))]
    wacz = checks.get("wacz")
    if wacz:
        rows += [("WACZ version", _e(wacz.get("wacz_version"))),
                 ("datapackage.json", _verdict(not wacz.get("datapackage"), "every file it lists is there with the "
                                               "hash it lists", "; ".join(map(str, wacz["datapackage"]))
                                               if wacz.get("datapackage") else ""))]
        state = wacz.get("signature")
        shown = {"valid": "ok", "absent": "warn", "unsupported": "warn"}.get(state, "bad")
        rows += [("Package signature", f'<span class="{shown}">{_e(state)}</span>'
                  + (f" ({_e(wacz.get('signature_kind'))})" if wacz.get("signature_kind") else "")),
                 ("Signed by", _code(wacz.get("signer"))), ("Signed at", _e(wacz.get("signed_at"))),
                 ("Signature detail", _e(wacz.get("signature_detail"))),
                 ("Certificate trust", _e(wacz.get("trust")))]
    out = ("<h2>What was found in it on receipt</h2><p class=\"note\">Checked when it was received and recorded, "
           "never fixed: a record whose digests do not hold is kept as it came.</p>" + _kv(rows))
    if problems:
        listed = [[_e(p.get("problem")), _code(p.get("warc")), _e(p.get("offset")), _code(p.get("uri")),
                   _e(p.get("detail"))] for p in problems[:MOST_PROBLEMS]]
        more = (f'<p class="note">… and {len(problems) - MOST_PROBLEMS} more (`archiver show '
                f'{_e(d.receipt["id"])} --json` lists them all).</p>' if len(problems) > MOST_PROBLEMS else "")
        out += ("<h3>Records altered or unreadable, by WARC and offset</h3>"
                + _grid(["Problem", "WARC", "Offset", "URI", "Detail"], listed, nowrap=1) + more)
    quirks = checks.get("quirks") or []
    if quirks:
        out += ("<h3>Writer quirks (the bytes intact)</h3>"
                + _grid(["WARC", "Offset", "URI", "Detail"],
                        [[_code(q.get("warc")), _e(q.get("offset")), _code(q.get("uri")), _e(q.get("detail"))]
                         for q in quirks[:MOST_PROBLEMS]], nowrap=0))
    return out


def _section_ledger(d: ReceivedReportData) -> str:
    if not d.ledger_entries:
        return "<h2>Custody ledger</h2><p class=\"bad\">The ledger holds no entry of this file's receiving.</p>"
    rows = []
    for e in d.ledger_entries:
        detail = e["detail"] if isinstance(e["detail"], dict) else json.loads(e["detail"])
        who = f"from {detail.get('from')}, by {detail.get('by')}" + (" (the same bytes again)" if detail.get("again")
                                                                     else "")
        rows.append([_e(e["seq"]), _e(utc(e["at"])), _e(e["event"]), _e(who), _code(detail.get("sha256")),
                     _code(e["hash"])])
    broken = d.ledger_broken
    chain = _verdict(broken is None, "these entries agree with their hashes and link to their neighbours",
                     f"broken at entry {broken.seq}: {broken.reason}" if broken is not None else "")
    return ("<h2>Custody ledger</h2><p class=\"note\">Each handing-over of these bytes. Each hash covers the entry "
            "and the hash of the entry before it.</p>" + _kv([("Ledger chain", chain)])
            + _grid(["Seq", "Time", "Event", "Handed over", "SHA-256 received", "Entry hash"], rows, nowrap=3))


def _section_pages(d: ReceivedReportData) -> str:
    if d.page is not None or not d.pages:
        return ""
    total = d.receipt["checks"].get("pages", len(d.pages))
    rows = [[_code(p["id"]), _e(utc(p["captured_at"]) if p["captured_at"] else None), _e(p["http_status"]),
             _code(p["url"]), _e(p["title"])] for p in d.pages]
    return (f"<h2>Pages in the file ({_e(total)}{', the first ' + str(len(d.pages)) if total != len(d.pages) else ''})"
            "</h2><p class=\"note\">Times as the file states them.</p>"
            + _grid(["Received page ID", "Time", "HTTP", "URL", "Title"], rows, nowrap=0))


def check_commands(d: ReceivedReportData) -> list[str]:
    """The shell commands that check the received file against its receipt without trusting archiver."""
    r = d.receipt
    kept = shlex.quote(d.local_file)
    receipt_file = shlex.quote(f"{r['id']}.receipt.json" if d.fetch else d.location + ".receipt.json")
    archiver = f"archiver --archive {shlex.quote(str(d.archive_dir))}"
    lines = list(d.fetch) + [
        f"sha256sum {kept}",
        f"#   expect {r['sha256']} (as received, receipt {r['id']})",
        f"{PY_RECEIPT} {receipt_file}",
        "#   the receipt kept beside it: the same SHA-256, who handed it over and when",
        f"{archiver} verify   # re-hashes every received file against its receipt, and walks the ledger"]
    page = d.page
    if page is not None and page["offset"] >= 0:
        if r["format"] == "wacz":
            copy = "page.warc.gz" if page["warc"].endswith(".gz") else "page.warc"
            lines += [f"unzip -p {kept} {shlex.quote(page['warc'])} > {copy}",
                      f"warcio extract --payload {copy} {page['offset']} > page.html"]
        else:
            lines.append(f"warcio extract --payload {kept} {page['offset']} > page.html")
    return lines


def _section_howto(d: ReceivedReportData) -> str:
    return howto_box("The received file is kept as it was handed over: it must hash to the SHA-256 of its receipt. "
                     "The receipt is kept beside it as JSON, and its receiving is in the archive's hash-chained "
                     "ledger. Anyone holding the file can check it with sha256sum alone; its content is the word of "
                     "whoever made it:", check_commands(d))


def render_html(d: ReceivedReportData) -> str:
    """The report as one HTML document: inline CSS, no script, nothing loaded from anywhere."""
    r = d.receipt
    what = (d.page["title"] or d.page["url"]) if d.page is not None else r["original_name"]
    sub = (f"Report on received page {_code(d.page['id'])} of the file {_code(r['original_name'])}: {_e(what)}"
           if d.page is not None else f"Report on the received file {_code(r['original_name'])}, "
                                      f"{_e(r['checks'].get('pages', 0))} page(s)")
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(HEADING)}: {_e(what)} (receipt {_e(r['id'])})</title>",
        f"<style>{CSS}{EXTRA_CSS}</style></head><body>",
        f"<h1>{_e(HEADING)}</h1>",
        f'<p class="sub">{sub}. Receipt <span class="mono">{_e(r["id"])}</span>.</p>',
        _banner(d),
        _section_page(d) if d.page is not None else "",
        _section_receipt(d),
        _section_kept(d),
        _section_howto(d),
        _section_found(d),
        _section_ledger(d),
        _section_pages(d),
        f"<footer>Report made {_e(utc(d.made_at))} by archiver {_e(_archiver_version())} from the archive at "
        f"{_code(d.archive_dir)}. All times UTC. This archive did not capture what this report describes: it "
        f"received it.</footer>",
        "</body></html>\n",
    ]
    return "".join(parts)
