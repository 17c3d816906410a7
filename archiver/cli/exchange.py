"""Commands for evidence leaving and entering the archive: export, import, report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from archiver.errors import NotFound, UserError
from archiver.cli.app import cli
from archiver.cli.common import _emit_json, _size, _parse_since, _table, Context, pass_ctx


@cli.command(name="import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path),
                metavar="FILE.wacz|FILE.warc.gz...")
@click.option("--expect-key", metavar="sha256:HEX", help="Import only what the archive with this key fingerprint "
              "(as its `archiver key` prints it) signed: a package it did not sign is refused whole.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def import_(ctx: Context, sources: tuple[Path, ...], expect_key: str | None, as_json: bool) -> None:
    """Bring captures sealed elsewhere (a WACZ export, or archiver WARC files) into this archive, each checked
    against its package hash, its record digests and its signature first, with the RFC 3161 timestamp tokens
    the package holds for it. Exit 1 if anything was refused."""
    from archiver.custody.keys import parse_fingerprint
    from archiver.exchange.ingest import IngestError, ingest
    expected = parse_fingerprint(expect_key) if expect_key is not None else None
    for source in sources:
        if not source.is_file():
            raise UserError(f"{source}: no such file (give a .wacz export or a .warc.gz written by archiver)")
    index = ctx.index()
    reports = []
    try:
        for source in sources:
            try:
                reports.append(ingest(ctx.archive, index, source, expected))
            except IngestError as exc:
                raise UserError(str(exc)) from None
    finally:
        index.close()
    if as_json:
        _emit_json([r.as_dict() for r in reports])
    else:
        for report in reports:
            _echo_ingest(report, expected)
    if not all(r.ok for r in reports):
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path),
                metavar="FILE.warc|FILE.warc.gz|FILE.wacz...")
@click.option("--from", "received_from", required=True, metavar="WHO",
              help="Who handed the files over (a person, an organisation), as the receipt should say it.")
@click.option("--by", "received_by", metavar="NAME", help="Who takes them in (default: the archive's operator).")
@click.option("--note", help="Why, or under what terms (kept in the receipt).")
@click.option("--tag", "tags", multiple=True, metavar="T", help="A tag for what they hold (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def receive(ctx: Context, sources: tuple[Path, ...], received_from: str, received_by: str | None, note: str | None,
            tags: tuple[str, ...], as_json: bool) -> None:
    """Take WARC and WACZ files made by others into custody, byte for byte and read-only, each with a receipt (from
    whom, by whom, when, its name, size and SHA-256) and a `received` ledger entry; every record's digests, the WARC
    versions, the producing software and a WACZ's hashes and signature are checked and recorded, never fixed. The
    same file received again is recognised, not kept twice."""
    from archiver.exchange.receive import check_sources, receive as take
    check_sources(list(sources))   # every file checked before any is taken: a bad one names itself, nothing is kept
    index = ctx.index()
    try:
        outcomes = [take(ctx.archive, index, source, received_from=received_from, received_by=received_by,
                         note=note, tags=list(tags)) for source in sources]
    finally:
        index.close()
    if as_json:
        _emit_json([o.as_dict() for o in outcomes])
        return
    for o in outcomes:
        verb = "received" if o.outcome == "received" else "already"
        click.echo(f"{verb:<9} {o.receipt_id}  {Path(o.source).name}  {_size(o.size)}  sha256:{o.sha256}")
        _echo_checks(o.checks, " " * 10)
        for t in o.timestamps:
            if t["state"] == "done":
                click.echo(f"          timestamped by {t['tsa_url']} at {t['gen_time']}: {t['token_path']}")
            else:
                why = f" (given up after {t['attempts']} attempt(s))" if t["state"] == "failed" else \
                    " (retried by `archiver run` and `archiver timestamp`)"
                click.echo(f"          timestamp {t['state']} from {t['tsa_url']}{why}: {t['last_error'] or '-'}")


def _echo_checks(checks: dict[str, Any], indent: str, most: int = 20) -> None:
    """What was found in a received file on receipt: records and digests, versions, software, a WACZ's package and
    signature, and the first ``most`` records whose digests did not hold, by WARC and offset."""
    problems = checks.get("problems") or []
    wacz = checks.get("wacz") or {}
    found = (f"{checks.get('records', 0)} records, {checks.get('checked', 0)} with digests checked, "
             f"{len(problems) or 'no'} altered or unreadable; {', '.join(checks.get('warc_versions') or []) or '-'}"
             f"; {', '.join(checks.get('software') or []) or 'software not named'}")
    if wacz:
        found += (f"; datapackage {'holds' if not wacz.get('datapackage') else 'DOES NOT HOLD'}"
                  f", signature {wacz.get('signature')}"
                  + (f" ({wacz.get('signature_kind')}, {wacz.get('signer')})" if wacz.get("signer") else ""))
    click.echo(f"{indent}{found}")
    for p in problems[:most]:
        click.echo(f"{indent}{p['problem']}: {p['warc']} @{p['offset']} {p.get('uri') or '-'}: {p['detail']}")
    if len(problems) > most:
        click.echo(f"{indent}... and {len(problems) - most} more (--json lists them all)")
    for p in wacz.get("datapackage") or []:
        click.echo(f"{indent}datapackage: {p}")
    for q in (checks.get("quirks") or [])[:most]:
        click.echo(f"{indent}writer quirk: {q['warc']} @{q['offset']} {q.get('uri') or '-'}: {q['detail']}")


def show_received(ctx: Context, index: Any, ident: str, as_json: bool) -> bool:
    """``archiver show`` for a receipt's ID, a received page's ID, or a URL only received pages hold: the page, and
    the receipt that says it was received, from whom and when (never presented as a capture of ours). False when
    ``ident`` is none of those."""
    from archiver.exchange.received_file import details, shown
    try:
        what, held, page, pages, stamps = details(ctx.archive, index, ident, receipt_pages=None if as_json else 50)
    except NotFound:
        return False
    if as_json:
        _emit_json(shown(what, held, page, pages, stamps))
        return True
    if page is not None:
        lines = [("received page", page["id"]), ("url", page["url"]),
                 ("captured", f"{page['captured_at'] or '-'} (by the tool that made the file, as the file says)"),
                 ("http status", page["http_status"]), ("content type", page["content_type"]),
                 ("title", page["title"]),
                 ("text", {"package": "the package's own text", "html": "extracted from the HTML here",
                           "none": "none"}.get(page["text_source"], page["text_source"])),
                 ("record", f"{page['warc']} @{page['offset']}" if page["offset"] >= 0 else
                  f"{page['warc']}: listed by the package, no record of it"),
                 ("page", f"{page['seq']} of {len(pages)} in the file")]
        _echo_lines(lines)
        click.echo("\nRECEIVED from others, not captured by this archive:")
    _echo_lines([("receipt", held["id"]), ("from", held["received_from"]), ("received by", held["received_by"]),
                 ("received at", held["received_at"]), ("file", f"{held['original_name']} ({held['format']}, "
                                                                  f"{held['size']} bytes, {_size(held['size'])})"),
                 ("sha256", held["sha256"]), ("kept at", held["location"]),
                 ("tags", ", ".join(held["tags"]) or "-"), ("note", held["note"]),
                 ("pages", held["checks"].get("pages"))])
    click.echo("checks on receipt:")
    _echo_checks(held["checks"], "  ")
    if stamps:
        click.echo(f"timestamps of the receipt ({len(stamps)}):")
        for t in stamps:
            click.echo(f"  {t['state']:<8} {t['gen_time'] or '-'}  {t['tsa_name'] or '-'}  {t['tsa_url']}  "
                       f"{t['token_path'] or t['last_error'] or ''}".rstrip())
    if page is None and pages:
        click.echo(f"\npages ({held['checks'].get('pages')}):")
        _table(pages, [("id", "ID", 26), ("captured_at", "CAPTURED", 20), ("http_status", "HTTP", 4),
                       ("url", "URL", 60), ("title", "TITLE", 40)])
    return True


def _echo_lines(lines: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value if value not in (None, '') else '-'}")


def _echo_ingest(report: Any, expected: str | None) -> None:
    name = Path(report.source).name
    if report.refused:
        click.echo(f"{'refused':<9} {'-':<26}  {name}  {report.refused}; nothing imported")
        return
    for item in report.items:
        tokens = f" ({item.tokens} timestamp token(s))" if item.tokens else ""
        click.echo(f"{item.outcome:<9} {item.capture_id or '-':<26}  {item.name}  {item.detail}{tokens}".rstrip())
        for token in item.refused_tokens:
            click.echo(f"{'refused':<9} {item.capture_id or '-':<26}  {token.path}  {token.reason}; not kept")
    if report.package_signature is None:
        return
    if report.package_signature != "holds":
        click.echo(f"{name}: the package signature does not hold ({report.package_signature}); each capture above "
                   "was checked on its own")
    elif expected is None:
        click.echo(f"{name}: signed by archive key {report.archive_key} -- compare it with the fingerprint that "
                   "archive publishes, or import with --expect-key")


@cli.command()
@click.argument("ident", metavar="ID|URL")
@click.option("-o", "--output", "html_path", type=click.Path(path_type=Path), metavar="FILE.html",
              help="Write the report as one self-contained HTML file (no scripts, nothing loaded).")
@click.option("--pdf", "pdf_path", type=click.Path(path_type=Path), metavar="FILE.pdf",
              help="Also (or only) print it to PDF, A4, with Chromium.")
@pass_ctx
def report(ctx: Context, ident: str, html_path: Path | None, pdf_path: Path | None) -> None:
    """A capture report for an editor or a court: screenshot, URLs, times, hashes, TLS, tweet or video,
    signature, timestamps, ledger entries, and the commands that check them. For a receipt's or a received page's
    ID, the report on a file received from others, headed as such: the receipt, what was found on receipt, the
    page as the file says, the ledger entries of its receiving, and how to check it."""
    from archiver.exchange.report import make_report
    data = make_report(ctx.archive, ident, html_path, pdf_path)
    for path in (html_path, pdf_path):
        if path:
            click.echo(f"wrote {path} ({data.subject})", err=True)


@cli.command()
@click.argument("ids", nargs=-1, metavar="[ID...]")
@click.option("--tag", help="Also every capture, and every file received from others, with this tag.")
@click.option("--since", help="Also every capture started (and every file received) since a date (2026-11-01) or an "
              "age (6h, 2d, 1w); with --tag, those with the tag since then.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.wacz", help="The package to write (never an existing file).")
@click.option("--title", help="Title of the package (datapackage.json); default: \"archiver export of N captures\".")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def export(ctx: Context, ids: tuple[str, ...], tag: str | None, since: str | None, output: Path,
           title: str | None, as_json: bool) -> None:
    """Write captures as one signed WACZ: WARCs as sealed, CDXJ index, pages, and the provenance a third party
    needs to check them with standard tools (ledger excerpt, timestamps, keys, VERIFY.txt). IDs may also be
    receipts or received pages (a page takes its whole file): files received from others travel as received, with
    their receipts, marked as not captured by this archive."""
    from archiver.exchange.wacz import export_wacz
    since_iso = _parse_since(since)
    index = ctx.index()
    try:
        result = export_wacz(ctx.archive.path, ctx.archive.settings, index, output, ids=list(ids), tag=tag,
                             since=since_iso, title=title)
    finally:
        index.close()
    for warning in result.warnings:
        click.echo(f"archiver: warning: {warning}", err=True)
    if as_json:
        _emit_json(result.as_dict())
    else:
        received = f"{len(result.receipts)} received file(s) with their receipts, " if result.receipts else ""
        click.echo(f"exported {len(result.captures)} capture(s), {received}{result.timestamps} timestamp token(s) to "
                   f"{output} ({_size(result.bytes)}, sha256 {result.sha256}; ledger entry {result.ledger_seq})")
