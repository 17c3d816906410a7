"""Commands of the chain of custody: verify, timestamp, key, reindex, migrate."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from archiver.custody import timestamps
from archiver.errors import UserError
from archiver.cli.app import cli
from archiver.cli.common import _run_async, _emit_json, _table, _size, Context, pass_ctx


def verify_archive(*args: Any, **kwargs: Any) -> Any:
    from archiver.custody.verify import verify
    return verify(*args, **kwargs)


def record_verification(*args: Any, **kwargs: Any) -> Any:
    from archiver.custody.verify import record_verification as record
    return record(*args, **kwargs)


@cli.command()
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="The new database (default: <archive>/index.reindexed-<UTC time>.db). Never an existing file.")
@click.option("--into", "into", metavar="URL",
              help="Team mode: rebuild into this empty PostgreSQL database instead of a file: "
                   "postgresql://[user@]host[:port]/dbname, no password (libpq finds it).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def reindex(ctx: Context, output: Path | None, into: str | None, as_json: bool) -> None:
    """Rebuild the index from the WARCs alone, into a new database (the current index is not touched)."""
    from datetime import datetime, timezone
    from archiver.custody.reindex import reindex as rebuild
    archive = ctx.archive
    if into is not None and output is not None:
        raise UserError("give -o FILE (a SQLite file) or --into URL (a PostgreSQL database), not both")
    if into is not None and not archive.index_url:
        raise UserError(f"--into: {archive.path} keeps its index in index.db; to move it to PostgreSQL (and its WARCs "
                        f"to a bucket) use `archiver migrate`, or rebuild into a file with -o FILE")
    if not any((archive.path / d).is_dir() for d in ("warcs", "received")) and not archive.seals_to_store:
        raise UserError(f"{archive.path} has no warcs/ or received/ directory: nothing to reindex (is --archive "
                        f"right?)")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target: Path | str = into if into is not None else output or archive.path / f"index.reindexed-{stamp}.db"
    # In team mode, from the bucket as well (listed), besides what warcs/ still holds from before.
    report = rebuild(archive.path, target, archive.unreachable_gone,
                     progress=None if as_json else lambda line: click.echo(line, err=True),
                     store=archive.store(read_only=True) if archive.seals_to_store else None,
                     on_open=_record_keys(archive) if into is not None else None)
    if as_json:
        _emit_json(report.as_dict())
    else:
        for s in report.skipped:
            click.echo(f"SKIPPED  {s.path}: {s.reason}")
        received = (f", {report.receipts} received file(s) with {report.received_pages} page(s)"
                    if report.receipts else "")
        click.echo(f"reindexed {report.captures} capture(s), {report.records} record(s), {_size(report.bytes)}, "
                   f"{report.timestamps} timestamp token(s){received} into {report.target}")
        click.echo(_switch_hint(archive.index_url, report.target))
    if not report.ok:
        raise click.exceptions.Exit(1)


def _switch_hint(index_url: str, target: Path | str) -> str:
    """How to switch to the rebuilt index, in the archive's mode."""
    if isinstance(target, str):
        from archiver.config import toml_string
        return (f"to use it: stop every runner and cron job, keep the old database, then set [index] url = "
                f"{toml_string(target)} in archiver.toml on every host (or ARCHIVER_INDEX_URL where it is set)")
    if index_url:
        return (f"{target.name} is an offline check: the archive's index stays the PostgreSQL database [index] url "
                f"names; compare the two, or rebuild into an empty database with --into URL to replace it")
    return f"to use it: stop every runner, keep the old index.db, then move {target.name} to index.db"


def _record_keys(archive: Any) -> Any:
    """Team mode: the new index records this host's keys (keys.record_existing), as the one it replaces did."""
    from archiver.custody import keys

    def record(index: Any) -> None:
        keys.record_existing(archive.path, archive.settings, index)
    return record


@cli.command()
@click.option("--index", "index_url", required=True, metavar="URL",
              help="The PostgreSQL database to move the index into: postgresql://[user@]host[:port]/dbname, no "
                   "password (libpq finds it: PGPASSWORD, ~/.pgpass). Empty, or holding this archive's part-copy.")
@click.option("--storage", "storage_url", required=True, metavar="URL",
              help="The bucket (with Object Lock) to move the WARCs and timestamp tokens into: s3://bucket[/prefix]. "
                   "Endpoint, region and retention come from [storage]; credentials from boto3's chain.")
@click.option("--by", "by", metavar="NAME", help="Who moves it, for the ledger (default: archive.operator or "
                                                 "the login name).")
@click.option("--dry-run", is_flag=True, help="Check everything and say what would be done; write nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def migrate(ctx: Context, index_url: str, storage_url: str, by: str | None, dry_run: bool, as_json: bool) -> None:
    """Move this archive (index.db and warcs/) to team backends: PostgreSQL and an S3 bucket, verified. Safe to
    run again after an interruption; index.db and warcs/ are left as they are."""
    from archiver.custody.migrate import migrate as move
    report = move(ctx.archive, index_url, storage_url, by=by, dry_run=dry_run,
                  progress=lambda line: click.echo(f"migrate: {line}", err=True))
    if as_json:
        _emit_json(report.as_dict())
        return
    arrow = f"  index    {report.source_index}  ->  {report.target_index}\n" \
            f"  storage  {report.source_storage}  ->  {report.target_storage}"
    if report.already:
        click.echo(f"already migrated (ledger entry {report.ledger['migrated_entry']}): {report.archive} opens in "
                   f"team mode with\n  index    {report.target_index}\n  storage  {report.target_storage}\n"
                   f"nothing to do")
        return
    rows = ", ".join(f"{name} {n['source']:,}" for name, n in report.tables.items())
    if report.dry_run:
        state = {"empty": "an empty database", "partial": f"this archive's part-copy ({report.ledger['target_entries']:,} "
                 f"ledger entries: the run would go on from there)", "recorded": "this archive's verified copy "
                 "(the run would only write the settings)"}[report.ledger["target_state"]]
        click.echo(f"would migrate {report.archive} (nothing was written):\n{arrow}\n"
                   f"  target   {state}\n"
                   f"  objects  {report.warcs:,} WARC(s), {report.tokens:,} timestamp token(s) and "
                   f"{report.received:,} received file(s) with their receipts, "
                   f"{_size(report.bytes)}, each put create-only with its SHA-256 and re-hashed from the store\n"
                   f"  rows     {rows}\n"
                   f"  then     verify counts, ledger chain (head {(report.ledger['source_head'] or '-')[:16]}…) and "
                   f"every object; append one `migrated` ledger entry; set [index] url and [storage] url in "
                   f"{report.settings_file}")
        return
    ledger_line = (f"{report.ledger['entries']:,} entries copied verbatim, chain intact, head "
                   f"{(report.ledger['head'] or '-')[:16]}… equal to the source's; entry {report.ledger['migrated_entry']}"
                   f": migrated")
    click.echo(f"migrated {report.archive} to team backends{' (resumed)' if report.resumed else ''}:\n{arrow}\n"
               f"  objects  {report.warcs:,} WARC(s) and {report.tokens:,} timestamp token(s) with their sidecars, "
               f"{report.received:,} received file(s) with their receipts: "
               f"{report.stored:,} object(s) stored, {report.already_stored:,} there already ({_size(report.bytes)}), "
               f"each re-hashed from the store\n"
               f"  rows     {rows}: equal on both sides\n"
               f"  ledger   {ledger_line}\n"
               f"  settings {report.settings_file}: [index] url and [storage] url set; the archive opens in team mode")
    for note in report.notes:
        click.echo(f"  note     {note}")
    # warcs/, and received/ when the archive holds files received from others.
    folders = [report.source_storage] + [p for p in report.left_untouched if Path(p).name == "received"]
    click.echo(f"left untouched: {', '.join(report.left_untouched)} -- the evidence as it was before, never deleted "
               f"by archiver. Once `archiver verify` is clean and you hold a copy elsewhere, you may remove them:\n"
               f"  rm -f {' '.join(p for p in report.left_untouched if p not in folders)} && "
               + " && ".join(f"find {folder} -mindepth 1 -delete" for folder in folders))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--pem", "pem_only", is_flag=True, help="Print only the public key (PEM), e.g. to a file for openssl.")
@pass_ctx
def key(ctx: Context, as_json: bool, pem_only: bool) -> None:
    """The archive's public signing key and its fingerprint (the key is created at first use)."""
    from archiver.custody import keys
    if not ctx.archive.exists():
        # Run from the wrong directory, this would quietly make a new archive with a new key, and the key printed
        # would fail to verify anything.
        raise UserError(f"no archive at {ctx.archive.path}; give --archive DIR (or ARCHIVER_HOME) "
                        f"(`archiver status --archive DIR` starts an empty archive)")
    # Team mode: the keys the shared index records (a host without them is told where to copy them from).
    index = ctx.index() if ctx.archive.index_url else None
    try:
        archive_key = keys.load_or_create(ctx.archive.path, ctx.archive.settings, index)
        wacz_key = keys.load_or_create_wacz_key(ctx.archive.path, ctx.archive.settings, index)
    finally:
        if index is not None:
            index.close()
    if pem_only:
        click.echo(archive_key.public_pem, nl=False)
    elif as_json:
        _emit_json({"algorithm": keys.ALGORITHM, "fingerprint": archive_key.fingerprint,
                    "public_key": archive_key.public_b64, "public_key_pem": archive_key.public_pem,
                    "private_key_file": str(archive_key.path),
                    "wacz_key": {"algorithm": keys.WACZ_ALGORITHM, "fingerprint": wacz_key.fingerprint,
                                 "public_key": wacz_key.public_b64, "public_key_pem": wacz_key.public_pem,
                                 "private_key_file": str(wacz_key.path)}})
    else:
        click.echo(f"algorithm     {keys.ALGORITHM}")
        click.echo(f"fingerprint   {archive_key.fingerprint}")
        click.echo(f"public key    {archive_key.public_b64}")
        click.echo(f"private key   {archive_key.path} (keep it private, and a copy somewhere safe)")
        click.echo(f"wacz key      {keys.WACZ_ALGORITHM}, {wacz_key.fingerprint} (signs WACZ exports; "
                   f"{wacz_key.path})")
        click.echo(archive_key.public_pem, nl=False)


@cli.command()
@click.argument("ids", nargs=-1, metavar="[ID...]")
@click.option("--wacz", "wacz_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.wacz",
              help="Check an exported WACZ instead, offline: needs nothing but the file (no archive).")
@click.option("--expect-key", metavar="sha256:HEX", help="With --wacz: the package must be signed by the archive "
              "with this key fingerprint (as its `archiver key` prints it), else exit 1 (unexpected-key).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def verify(ctx: Context, ids: tuple[str, ...], wacz_file: Path | None, expect_key: str | None, as_json: bool) -> None:
    """Re-hash sealed WARCs and every record against the index. Exit 1 on any problem."""
    if wacz_file is not None:
        _verify_wacz(wacz_file, ids, expect_key, as_json)
        return
    if expect_key is not None:
        raise UserError("--expect-key checks who signed a package: use it with --wacz FILE (this archive's own "
                        "captures are checked against its own key)")
    from archiver.custody.verify import Report, record_verification, verify as verify_archive
    # Problems are printed as they are found and only the first 100 kept (for the ledger's `verified` entry): a
    # damaged archive of any size is reported whole in constant memory. With --json the object is streamed, its
    # "problems" array first.
    printer = _JsonProblems() if as_json else (lambda p: click.echo(f"{p.kind.upper():<15} {p.path}: {p.detail}"))
    report = Report(keep=100, on_problem=printer)
    index = ctx.index()
    try:
        verify_archive(ctx.archive.path, index, list(ids), settings=ctx.archive.settings, report=report)
        record_verification(index, report, list(ids))
    finally:
        index.close()
    if as_json:
        printer.close(report.as_dict(problems=False))
    else:
        verdict = f"{report.problem_count} problem(s)" if not report.ok else "all intact"
        stamps = report.timestamps
        tokens = (f"{stamps['verified']} timestamp token(s)" + (f" ({stamps['pending']} pending)"
                  if stamps["pending"] else "") + ", ") if any(stamps.values()) else ""
        if ids:
            checked = report.ledger
            click.echo(f"verified {report.captures} capture(s), {report.records} record(s), {_size(report.bytes)}, "
                       f"{tokens}their {checked['capture_entries']} ledger entries (each against its hash and "
                       f"linked to the entries before and after it): {verdict}")
            click.echo(_ledger_scope(checked))
        else:
            received = f"{report.received} received file(s), " if report.received else ""
            click.echo(f"verified {report.captures} capture(s), {report.records} record(s), {received}"
                       f"{_size(report.bytes)}, {tokens}ledger of {report.ledger_entries} entries: {verdict}")
    if not report.ok:
        raise click.exceptions.Exit(1)


def _ledger_scope(checked: dict[str, Any]) -> str:
    """What a verify of named captures checked of the ledger, and what it did not: for the person, on stderr."""
    walked = checked.get("walked")
    now = ""
    if walked and walked.get("to"):
        span = f"entry {walked['to']}" if walked["from"] == walked["to"] else f"entries {walked['from']}-{walked['to']}"
        now = f"{span} (appended since) walked now: intact; "
    return f"ledger of {checked['entries']} entries: {now}{checked['not_walked']}"


class _JsonProblems:
    """``verify --json`` as one JSON object streamed: each problem printed as it is found, then the summary."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, problem: Any) -> None:
        text = json.dumps(problem.as_dict(), indent=2, ensure_ascii=False).replace("\n", "\n    ")
        click.echo(('{\n  "problems": [\n    ' if not self.count else ",\n    ") + text, nl=False)
        self.count += 1

    def close(self, summary: dict[str, Any]) -> None:
        rest = json.dumps(summary, indent=2, ensure_ascii=False, default=str)
        click.echo(('{\n  "problems": [],\n' if not self.count else "\n  ],\n") + rest[2:])


@cli.command(name="timestamp")
@click.argument("ids", nargs=-1, metavar="[ID...]")
@click.option("--missing", is_flag=True,
              help="Every capture and receipt that has no timestamp (done or pending) from one of the configured "
                   "TSAs.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def timestamp_(ctx: Context, ids: tuple[str, ...], missing: bool, as_json: bool) -> None:
    """Timestamp captures sealed (and receipts of received files recorded) before a TSA was configured, or retry
    their pending timestamps: queue the TSAs they have no timestamp from, and ask them now. IDs are capture or
    receipt IDs. Exit 1 unless every timestamp of these is done."""
    archive = ctx.archive
    tsa_urls = timestamps.TimestampSettings.from_settings(archive.settings).tsa_urls
    if not tsa_urls:
        raise UserError("no time-stamping authority is configured: set timestamp.tsa_urls (in the config file, "
                        "or ARCHIVER_TIMESTAMP_TSA_URLS) first")
    if bool(ids) == missing:
        raise UserError("give capture or receipt IDs, or --missing for every capture and receipt without a "
                        "timestamp from each configured TSA (not both)")
    index = archive.index()
    try:
        # Every ID is resolved before anything is queued: an unknown one changes nothing.
        receipt_ids = [i for i in dict.fromkeys(ids) if timestamps.is_receipt(index.conn, i)] if ids else \
            timestamps.missing_receipts(index.conn, tsa_urls)
        capture_ids = list(dict.fromkeys(index.find_capture(i)["id"] for i in ids if i not in receipt_ids)) \
            if ids else timestamps.missing_captures(index.conn, tsa_urls)
        results = _run_async(timestamps.backfill(index, archive.path, archive.settings, capture_ids, receipt_ids))
        # Where each token is, for people: beside its WARC, in the bucket for a capture sealed there; beside the
        # receipt, in its store.
        caps = {} if as_json else {r.capture_id: index.find_capture(r.capture_id) for r in results if r.capture_id}
    finally:
        index.close()
    if as_json:
        _emit_json([r.as_dict() for r in results])
    elif not results:
        click.echo("every capture and receipt has a timestamp, done or pending, from each configured TSA", err=True)
    else:
        def where(r: Any, t: dict[str, Any]) -> str:
            return archive.token_at(caps[r.capture_id], t["token_path"]) if r.capture_id else t["token_path"]
        rows = [{"id": r.capture_id or r.receipt_id, **t,
                 "detail": f"{t['gen_time']}  {where(r, t)}" if t["state"] == "done" else t["last_error"]}
                for r in results for t in r.rows]
        _table(rows, [("id", "CAPTURE OR RECEIPT", 26), ("state", "STATE", 7), ("tsa_url", "TSA", 50),
                      ("detail", "TIME AND TOKEN, OR ERROR", 120)])
        states = [row["state"] for row in rows]
        receipts = sum(1 for r in results if r.receipt_id)
        click.echo(f"{len(results) - receipts} capture(s)" + (f", {receipts} receipt(s)" if receipts else "")
                   + f": {sum(r.queued for r in results)} timestamp(s) queued, "
                   f"{sum(r.granted for r in results)} granted now; {states.count('done')} done, "
                   f"{states.count('pending')} pending, {states.count('failed')} failed")
    if not all(r.complete for r in results):
        raise click.exceptions.Exit(1)


def _echo_problems(problems: list[Any], width: int) -> str:
    """One line per problem found by a verification; the verdict for its summary line."""
    for p in problems:
        click.echo(f"{p.kind.upper():<{width}} {p.path}: {p.detail}")
    return f"{len(problems)} problem(s)" if problems else "all intact"


def _verify_wacz(path: Path, ids: tuple[str, ...], expect_key: str | None, as_json: bool) -> None:
    from archiver.custody.keys import parse_fingerprint
    from archiver.exchange.wacz import verify_wacz
    if ids:
        raise UserError("give capture IDs or --wacz FILE, not both")
    expected = parse_fingerprint(expect_key) if expect_key is not None else None
    if not path.is_file():
        raise UserError(f"--wacz {path}: no such file")
    report = verify_wacz(path, expected)
    if as_json:
        _emit_json(report.as_dict())
    else:
        verdict = _echo_problems(report.problems, 17)
        click.echo(f"verified {path.name}: {report.files} file(s), {report.captures} capture(s) "
                   f"({report.signed_captures} signed by archive key {report.archive_key or '?'}), "
                   + (f"{report.received} file(s) received from others, checked against their receipts, "
                      if report.received else "")
                   + f"{report.records} record(s), {_size(report.bytes)}, {report.timestamps} timestamp token(s), "
                   f"ledger excerpt of {report.ledger_entries} entries; package signed by WACZ key "
                   f"{report.wacz_key or '?'} on {report.created or '?'}: {verdict}")
        if report.archive_key and expected is None:
            # Whoever could change the package could put their own key in it: the check above says only that
            # the package is as that key made it.
            click.echo(f"who made it: compare {report.archive_key} with the fingerprint that archive publishes "
                       "elsewhere (`archiver key` there), or give it as --expect-key")
        elif report.archive_key == expected:
            click.echo(f"who made it: the archive key is the one expected ({expected})")
    if not report.ok:
        raise click.exceptions.Exit(1)
