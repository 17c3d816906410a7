"""Command line: parse, call the services, print (tables for people, --json for scripts).

Bad input ends with one line on stderr per problem and exit status 2; an unknown ID or URL with exit 1.
No traceback is ever shown for a user error.
"""
from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import click

# What every command may need, and light. The capture stack (worker -> capture -> Playwright, httpx, yt-dlp),
# liveness checks, the verifier and asyncio are imported by the commands that use them, not by `status`,
# `list`, `show` or `search` (tests/test_imports.py holds them to it).
from archiver.pipeline import queue, schedule
from archiver.store import readback
from archiver.custody import timestamps
from archiver import urls
from archiver.store.archive import DEFAULT_ARCHIVE, Archive
from archiver.errors import ArchiverError, BadURL, NotFound, UserError
from archiver.store.index import Index

if TYPE_CHECKING:
    from archiver.pipeline import checks
    from archiver.pipeline.worker import Outcome


def run_pool(*args: Any, **kwargs: Any) -> Any:
    from archiver.pipeline.worker import run_pool as run
    return run(*args, **kwargs)


def verify_archive(*args: Any, **kwargs: Any) -> Any:
    from archiver.custody.verify import verify
    return verify(*args, **kwargs)


def record_verification(*args: Any, **kwargs: Any) -> Any:
    from archiver.custody.verify import record_verification as record
    return record(*args, **kwargs)


def _run_async(coroutine: Any) -> Any:
    import asyncio
    return asyncio.run(coroutine)


# ---- helpers ------------------------------------------------------------------------------------------

def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _emit_json_rows(rows: Iterable[dict[str, Any]]) -> None:
    """A JSON array written as it is read, one object per line: constant memory for any number of rows, and
    still one JSON document (``json.load``, ``jq '.[]'``)."""
    out = sys.stdout
    out.write("[")
    first = True
    for row in rows:
        out.write(("\n" if first else ",\n") + json.dumps(row, ensure_ascii=False, default=str))
        first = False
    out.write("]\n" if first else "\n]\n")
    out.flush()


# Rows a table measures its columns on; later rows are fitted to those widths, so a table of any length is
# printed as it is read.
TABLE_MEASURE = 1000


def _table(rows: Iterable[dict[str, Any]], columns: list[tuple[str, str, int]]) -> None:
    """Print rows as aligned columns; (key, heading, max width)."""
    iterator = iter(rows)
    cells = [[_cell(row.get(key), width) for key, _, width in columns] for row in _take(iterator, TABLE_MEASURE)]
    if not cells:
        return
    widths = [max(len(heading), *(len(c[i]) for c in cells)) for i, (_, heading, _) in enumerate(columns)]
    click.echo("  ".join(h.ljust(w) for (_, h, _), w in zip(columns, widths)).rstrip())
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())
    for row in iterator:
        c = [_cell(row.get(key), width) for (key, _, _), width in zip(columns, widths)]
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def _take(iterator: Iterator[Any], n: int) -> list[Any]:
    taken = []
    for item in iterator:
        taken.append(item)
        if len(taken) >= n:
            break
    return taken


# What list and search show unless told otherwise: one page, newest first.
PAGE_SIZE = 50

page_options = [
    click.option("--limit", type=click.IntRange(min=1), metavar="N",
                 help=f"Show N, newest first (default {PAGE_SIZE}: one page)."),
    click.option("--all", "all_", is_flag=True, help="Show all (JSON is streamed: constant memory)."),
    click.option("--before", metavar="ID", help="Only those older than this capture ID: the next page after a page "
                 "that ended with it."),
]


def _page_options(func):
    for option in reversed(page_options):
        func = option(func)
    return func


def _page_limit(limit: int | None, all_: bool) -> int | None:
    """How many rows to show: None for all."""
    if all_ and limit is not None:
        raise UserError("give --limit N or --all, not both")
    return None if all_ else (limit or PAGE_SIZE)


class _Page:
    """Rows up to a limit, read one by one; after reading, whether there were more, and the last one shown (a
    page asks its query for one row more than it shows)."""

    def __init__(self, rows: Iterable[dict[str, Any]], limit: int | None):
        self.rows, self.limit = rows, limit
        self.shown, self.more, self.last = 0, False, None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            if self.limit is not None and self.shown >= self.limit:
                self.more = True
                return
            self.shown += 1
            self.last = row
            yield row

    def hint(self, noun: str, cursor: bool = True) -> None:
        """Tell the reader, on stderr (stdout may be JSON), that there is more and how to see it."""
        if not self.more:
            return
        if cursor and self.last is not None:
            how = f"--before {self.last['id']} for the next {self.limit}, or --all for all"
        else:
            how = "--limit N for more, or --all for all"
        click.echo(f"archiver: {self.shown} {noun} shown, newest first; there are more: add {how}", err=True)


def _cell(value: Any, width: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        value = ",".join(map(str, value))
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _parse_since(value: str | None) -> str | None:
    """`2026-11-01`, an ISO date-time, or a relative age such as `6h`, `2d`, `1w`."""
    if not value:
        return None
    match = re.fullmatch(r"(\d+)\s*([mhdw])", value.strip())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        delta = {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        when = datetime.now(timezone.utc) - delta
    else:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--since {value!r}: expected a date (2026-11-01), a date-time, or an age (6h, 2d)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_url_args(urls_given: Iterable[str], file: str | None) -> list[str]:
    items = list(urls_given)
    if file:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"-f {file}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"-f {file}: cannot read it ({exc})") from None
        items.extend(line.strip() for line in text.splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))
    if not items:
        raise UserError("no URLs given (pass URLs as arguments, or -f FILE with one URL per line, or -f - for stdin)")
    return items


def _url_lines(urls_given: Iterable[str], file: str | None) -> Iterator[str]:
    """The URLs of the arguments, then of ``file`` (``-``: stdin) read a line at a time, as ``_read_url_args``
    reads them. The file is opened now, so that a missing one is named before anything is done."""
    if not urls_given and not file:
        raise UserError("no URLs given (pass URLs as arguments, or -f FILE with one URL per line, or -f - for stdin)")
    handle = None
    if file:
        try:
            handle = sys.stdin if file == "-" else open(file, encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"-f {file}: no such file") from None
        except OSError as exc:
            raise UserError(f"-f {file}: cannot read it ({exc})") from None
    return _stream_lines(list(urls_given), file, handle)


def _stream_lines(given: list[str], file: str | None, handle: Any) -> Iterator[str]:
    yield from given
    if handle is None:
        return
    try:
        for physical in handle:
            # splitlines() as on the whole text: it also ends lines at \v, \f, \x1c-\x1e, \x85, \u2028, \u2029.
            for line in physical.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    yield line.strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"-f {file}: cannot read it ({exc})") from None
    finally:
        if handle is not sys.stdin:
            handle.close()


def _parse_all(items: list[str]) -> list[urls.ParsedURL]:
    parsed, errors = [], []
    for item in items:
        try:
            parsed.append(urls.parse(item))
        except BadURL as exc:
            errors.append(str(exc))
    if errors:
        for line in errors:
            click.echo(f"archiver: error: {line}", err=True)
        noun = "URL is" if len(errors) == 1 else "URLs are"
        raise UserError(f"{len(errors)} {noun} not valid; nothing was queued")
    return parsed


class Context:
    # The context of the command running in this process, for the log of a failure that ends it (main).
    _current: "Context | None" = None

    def __init__(self, archive_dir: str | None, config_file: str | None):
        self.archive_dir = archive_dir
        self.config_file = config_file
        self._archive: Archive | None = None
        Context._current = self

    @classmethod
    def last_archive_dir(cls) -> Path | None:
        """The archive directory of the command that ran, if it exists (a failure is logged there)."""
        ctx = cls._current
        if ctx is None:
            return None
        if ctx._archive is not None:
            return ctx._archive.path
        chosen = Path(ctx.archive_dir or os.environ.get("ARCHIVER_HOME") or DEFAULT_ARCHIVE).expanduser().absolute()
        return chosen if chosen.is_dir() else None

    @property
    def archive(self) -> Archive:
        if self._archive is None:
            self._archive = Archive.open(self.archive_dir, self.config_file)
        return self._archive

    def index(self):
        return self.archive.index()


pass_ctx = click.make_pass_decorator(Context)

queue_options = [
    click.option("-f", "--file", "file", metavar="FILE", help="Read URLs from FILE, one per line (- for stdin)."),
    click.option("--tag", "tags", multiple=True, metavar="TAG", help="Tag the captures (repeatable)."),
    click.option("--note", metavar="TEXT", help="A note kept with the request."),
    click.option("--by", "by", metavar="NAME", help="Who asks for the capture (default: archive.operator or login)."),
    click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first."),
    click.option("--no-browser", is_flag=True, help="Fetch HTML directly, without rendering it in Chromium."),
    click.option("--follow", is_flag=True,
                 help="Also capture the evidence each page references (embedded tweets, broadcasts, videos, t.co)."),
    click.option("--depth", type=click.IntRange(1, 5), default=1, show_default=True,
                 help="With --follow: how many levels of references to follow."),
    click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
]


def _add_options(func):
    for option in reversed(queue_options):
        func = option(func)
    return func


def _enqueue(ctx: Context, urls_given, file, tags, note, by, priority, no_browser, follow=False,
             depth=1) -> list[queue.Enqueued]:
    parsed = _parse_all(_read_url_args(urls_given, file))
    archive = ctx.archive
    index = archive.index()
    try:
        return queue.enqueue(index, parsed, requested_by=archive.operator(by), tags=list(tags), note=note,
                             priority=priority, max_attempts=archive.settings["queue"]["max_attempts"],
                             options=_options(no_browser, follow, depth))
    finally:
        index.close()


def _options(no_browser: bool, follow: bool, depth: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if no_browser:
        options["no_browser"] = True
    if follow:
        options["follow"] = depth
    return options


def _job_summary(e: queue.Enqueued) -> dict[str, Any]:
    j = e.job
    return {"job_id": j["id"], "url": j["url"], "canonical_url": j["canonical_url"], "kind": j["kind"],
            "key": j["key"], "state": j["state"], "created": e.created}


# ---- commands -----------------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--archive", "archive_dir", envvar="ARCHIVER_HOME", metavar="DIR",
              help="Archive directory [env ARCHIVER_HOME; default ./archive].")
@click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Extra settings file (TOML), applied over <archive>/archiver.toml.")
@click.version_option(package_name="archiver")
@click.pass_context
def cli(click_ctx: click.Context, archive_dir: str | None, config_file: str | None) -> None:
    """Capture what URLs show into sealed, hashed WARC files, with an SQLite index of provenance."""
    click_ctx.obj = Context(archive_dir, config_file)


@cli.command()
@click.argument("urls_given", nargs=-1, metavar="URL...")
@_add_options
@click.option("--dry-run", is_flag=True, help="Validate and normalise only; queue nothing.")
@pass_ctx
def add(ctx: Context, urls_given, file, tags, note, by, priority, no_browser, follow, depth, as_json,
        dry_run) -> None:
    """Queue URLs for capture (run them with `archiver run`)."""
    if dry_run:
        parsed = _parse_all(_read_url_args(urls_given, file))
        if as_json:
            _emit_json([p.as_dict() for p in parsed])
        else:
            _table([p.as_dict() for p in parsed], [("kind", "KIND", 6), ("canonical_url", "CANONICAL URL", 90)])
        return
    # A list of any length is read, checked and queued a chunk at a time in one transaction (all or nothing),
    # and the outcomes are printed after the commit, read back from the index: memory does not grow with it.
    lines = _url_lines(urls_given, file)
    archive = ctx.archive
    index = archive.index()
    try:
        batch = queue.enqueue_all(index, urls.parse_each(lines), requested_by=archive.operator(by), tags=list(tags),
                                  note=note, priority=priority, max_attempts=archive.settings["queue"]["max_attempts"],
                                  options=_options(no_browser, follow, depth),
                                  on_error=lambda exc: click.echo(f"archiver: error: {exc}", err=True))
        if not len(batch):
            raise UserError("no URLs given (the file holds no URL: only blank lines and # comments)")
        results = queue.batch_results(index, batch)
        if as_json:
            _emit_json_rows(_job_summary(e) for e in results)
            return
        lines = []
        for e in results:
            verb = "queued" if e.created else f"already {e.job['state']}"
            lines.append(f"{verb:<16} job {e.job['id']:<5} {e.job['canonical_url']}")
            if len(lines) >= 1000:   # one write per 1 000 lines, not one (and a flush) per line
                click.echo("\n".join(lines))
                lines = []
        if lines:
            click.echo("\n".join(lines))
    finally:
        index.close()


@cli.command()
@click.option("--once", is_flag=True, help="Capture everything due, then exit (for cron).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes, each with its own Chromium.")
@pass_ctx
def run(ctx: Context, once: bool, workers: int) -> None:
    """Capture queued jobs: until the queue is empty (--once) or until SIGINT/SIGTERM."""
    from archiver import logs
    archive = ctx.archive
    archive.ensure()
    archive.index().close()  # create and migrate once, before workers race to do it
    logs.setup(archive.path, archive.settings, worker="supervisor")
    # Workers run under a supervisor (any --workers N) that kills a capture stuck past its hard limit.
    result = run_pool(archive, ctx.config_file, workers, once,
                      on_event=_progress_printer(None) if workers == 1 else None)
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing due"
    click.echo(f"run finished: {summary}", err=True)
    if result.exit_code:
        raise click.exceptions.Exit(1)


def _progress_printer(total: int | None):
    state = {"n": 0, "total": total or 0}

    def hook(kind: str, data: dict[str, Any]) -> None:
        if kind == "check":
            c = data["outcome"]
            moved = f"  {c.state_before or 'new'} -> {c.state_after}" if c.transition else ""
            click.echo(f"[check] {c.result}{' (' + c.result_class + ')' if c.result_class else ''}{moved}  {c.url}"
                       + (f"  (capture queued: job {c.job_id})" if c.job_id else ""), err=True)
            return
        job = data["job"]
        if kind == "start":
            state["n"] += 1
            prefix = f"[{state['n']}/{state['total']}]" if total else f"[job {job['id']}]"
            click.echo(f"{prefix} capturing {job['url']} …", err=True)
            return
        if data["outcome"].children:
            # Followed evidence is captured in this same run (`capture --follow`) or queued (`run`).
            state["total"] += len(data["outcome"].children)
        o: Outcome = data["outcome"]
        if o.capture_id:
            line = f"  {o.status:<8} {o.capture_id}  {o.records} records, {_size(o.size)}, {o.seconds:.1f}s"
            if o.title:
                line += f"  “{_cell(o.title, 60)}”"
            if o.failure_class:
                line += f"  [{o.failure_class}: {_cell(o.message, 100)}]"
            if o.children:
                line += f"\n           → {len(o.children)} referenced item(s) queued"
        else:
            line = f"  {o.status:<8} {o.failure_class or ''}: {o.message}"
            if o.job_state == "queued":
                line += " (will retry)"
        click.echo(line, err=True)
    return hook


@cli.command()
@click.argument("urls_given", nargs=-1, metavar="URL...")
@_add_options
@pass_ctx
def capture(ctx: Context, urls_given, file, tags, note, by, priority, no_browser, follow, depth, as_json) -> None:
    """Queue URLs and capture them now, in the foreground (with --follow, the evidence they reference too).
    Exit 0 only if every capture is ok."""
    results = _enqueue(ctx, urls_given, file, tags, note, by, priority, no_browser, follow, depth)
    job_ids = [e.job["id"] for e in results]
    busy = [e for e in results if e.job["state"] == "running"]
    for e in busy:
        click.echo(f"job {e.job['id']} ({e.job['url']}) is being captured by another runner "
                   f"({e.job['lease_owner']}); not waiting for it", err=True)
    todo = [j for j in job_ids if j not in {e.job["id"] for e in busy}]
    outcomes: list[Outcome] = []
    if todo:
        from archiver import logs
        logs.setup(ctx.archive.path, ctx.archive.settings, worker="supervisor")
        # The same supervised worker as `run`: the hard timeout and process-tree kill hold here too.
        result = run_pool(ctx.archive, ctx.config_file, 1, True, on_event=_progress_printer(len(todo)),
                          job_ids=todo)
        outcomes = result.outcomes
    if as_json:
        _emit_json([{"job_id": o.job_id, "url": o.url, "status": o.status, "capture_id": o.capture_id,
                     "failure_class": o.failure_class, "message": o.message, "job_state": o.job_state,
                     "records": o.records, "size": o.size, "seconds": round(o.seconds, 3)} for o in outcomes])
    ok = bool(outcomes) and not busy and all(o.status == "ok" for o in outcomes) and len(outcomes) >= len(todo)
    if not ok:
        raise click.exceptions.Exit(1)


@cli.command()
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="The new database (default: <archive>/index.reindexed-<UTC time>.db). Never an existing file.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def reindex(ctx: Context, output: Path | None, as_json: bool) -> None:
    """Rebuild the index from the WARCs alone, into a new database (the current index is not touched)."""
    from datetime import datetime, timezone
    from archiver.custody.reindex import reindex as rebuild
    archive = ctx.archive
    if not (archive.path / "warcs").is_dir():
        raise UserError(f"{archive.path} has no warcs/ directory: nothing to reindex (is --archive right?)")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = output or archive.path / f"index.reindexed-{stamp}.db"
    report = rebuild(archive.path, target, archive.unreachable_gone,
                     progress=None if as_json else lambda line: click.echo(line, err=True))
    if as_json:
        _emit_json(report.as_dict())
    else:
        for s in report.skipped:
            click.echo(f"SKIPPED  {s.path}: {s.reason}")
        click.echo(f"reindexed {report.captures} capture(s), {report.records} record(s), {_size(report.bytes)}, "
                   f"{report.timestamps} timestamp token(s) into {target}")
        click.echo(f"to use it: stop every runner, keep the old index.db, then move {target.name} to index.db")
    if not report.ok:
        raise click.exceptions.Exit(1)


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
                reports.append(ingest(ctx.archive.path, index, source, expected))
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
    archive_key = keys.load_or_create(ctx.archive.path, ctx.archive.settings)
    wacz_key = keys.load_or_create_wacz_key(ctx.archive.path, ctx.archive.settings)
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
@click.option("--json", "as_json", is_flag=True)
@click.option("--markdown", is_flag=True, help="The support matrix as the README's table (without versions).")
def platforms(as_json: bool, markdown: bool) -> None:
    """The platform paths: what each captures, when an item counts as gone, how liveness is checked, and what
    it relies on (extractor and version). A capture made by any other extractor is partial, never ok."""
    from archiver.capture import platforms as paths
    if markdown:
        click.echo(paths.markdown_table(), nl=False)
        return
    rows = [p.as_dict() for p in paths.PATHS]
    if as_json:
        _emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']:<13}{row['label']}")
        for heading, value in (("URLs", "; ".join(row["examples"])), ("captures", "; ".join(row["captures"])),
                               ("gone when", ", ".join(row["tombstones"])), ("liveness", row["liveness"]),
                               ("relies on", row["relies_on"]), ("note", row["note"])):
            if value:
                click.echo(f"  {heading:<11}{value}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Jobs by state, the oldest queued job, and recent failures."""
    tsa_urls = timestamps.TimestampSettings.from_settings(ctx.archive.settings).tsa_urls
    index = ctx.index()
    try:
        info = {**queue.status(index), "timestamps": timestamps.summary(index.conn, tsa_urls)}
    finally:
        index.close()
    if as_json:
        _emit_json(info)
        return
    click.echo(f"queued {info['queued']}   running {info['running']}   done {info['done']}   "
               f"failed {info['failed']}   captures {info['captures']}")
    if info["oldest_queued"]:
        o = info["oldest_queued"]
        click.echo(f"oldest queued: job {o['id']} since {o['requested_at']}  {o['url']}")
    for r in info["running_jobs"]:
        click.echo(f"running: job {r['id']} by {r['lease_owner']} (lease until {r['lease_expires']})  {r['url']}")
    if info["recent_failures"]:
        click.echo("recent failures:")
        _table(info["recent_failures"], [("finished_at", "WHEN", 24), ("job_id", "JOB", 6),
                                         ("failure_class", "CLASS", 12), ("state", "NOW", 7),
                                         ("url", "URL", 60), ("message", "MESSAGE", 70)])
    stamps = info["timestamps"]
    if stamps["done"] or stamps["pending"] or stamps["failed"]:
        click.echo(f"timestamps: {stamps['done']} done, {stamps['pending']} pending, {stamps['failed']} failed")
    for url, n in stamps["pending_unconfigured"].items():
        click.echo(f"  {n} pending for {url}, a TSA no longer in timestamp.tsa_urls: waiting, not retried, until "
                   f"it is listed again")


@cli.command(name="list")
@click.option("--gone", "state", flag_value="gone",
              help="Items the web no longer shows (deleted, suspended, 404, removed...), with the evidence held.")
@click.option("--changed", "state", flag_value="changed", help="Items whose content changed after a capture.")
@click.option("--unreachable", "state", flag_value="unreachable", help="Items that do not answer at the moment.")
@click.option("--live", "state", flag_value="live", help="Items that were live at their last check or capture.")
@click.option("--tag", help="Only captures with this tag.")
@click.option("--kind", help="Only this kind (page, file).")
@click.option("--status", "status_", type=click.Choice(["ok", "partial", "failed"]), help="Only this outcome.")
@click.option("--since", help="Only captures started since a date (2026-11-01) or an age (6h, 2d, 1w).")
@_page_options
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one capture per line, streamed.")
@pass_ctx
def list_(ctx: Context, state, tag, kind, status_, since, limit, all_, before, as_json) -> None:
    """Captures, newest first, one page at a time (--limit N, --all, --before ID); or, with
    --gone/--changed/--unreachable/--live, items by their state (--since then means: entered that state, or
    changed, since)."""
    since_iso = _parse_since(since)
    limit = _page_limit(limit, all_)
    if state:
        if before:
            raise UserError(f"--before takes a capture ID: it pages captures and search hits, not --{state} items "
                            f"(use --limit N or --all)")
        _list_items(ctx, state, since_iso, limit, as_json)
        return
    index = ctx.index()
    try:
        before = index.check_cursor(before) if before else None
        page = _Page(index.iter_captures(tag=tag, kind=kind, status=status_, since=since_iso, before=before,
                                         limit=None if limit is None else limit + 1), limit)
        if as_json:
            _emit_json_rows(page)
        else:
            _table(page, [("id", "ID", 26), ("started_at", "CAPTURED", 20), ("status", "STATUS", 7),
                          ("http_status", "HTTP", 4), ("record_count", "RECS", 5), ("url", "URL", 60),
                          ("title", "TITLE", 40)])
            if not page.shown:
                click.echo("no captures", err=True)
    finally:
        index.close()
    page.hint("captures")


def _read_index(ctx: Context, query: Callable[[Index], Any]) -> Any:
    """Open the index, run one read, close it."""
    index = ctx.index()
    try:
        return query(index)
    finally:
        index.close()


def _list_items(ctx: Context, state: str, since_iso: str | None, limit: int | None, as_json: bool) -> None:
    page = _Page(_read_index(ctx, lambda index: index.list_items(
        state=state, since=since_iso, limit=None if limit is None else limit + 1)), limit)
    rows = list(page)
    if as_json:
        _emit_json_rows(rows)
        page.hint(f"{state} items", cursor=False)
        return
    if not rows:
        click.echo(f"no {state} items" + (" in that period" if since_iso else ""), err=True)
        return
    for r in rows:
        r["held"] = (f"{r['ok_captures']} ok" + (f", newest {r['last_ok_capture_id']}" if r["last_ok_capture_id"]
                                                 else "")) if r["ok_captures"] else "NONE"
    when = ("changed_at", "CHANGED", 20) if state == "changed" else ("state_since", "SINCE", 20)
    _table(rows, [("state", "STATE", 11), ("state_class", "CLASS", 14), when,
                  ("last_seen_live", "LAST SEEN LIVE", 20), ("held", "EVIDENCE HELD", 40), ("url", "URL", 70)])
    page.hint(f"{state} items", cursor=False)


def _print_timeline(index, key: str) -> None:
    """The item's state, its watch and its history: captures, checks (runs of equal answers folded into one
    line) and state changes."""
    item = index.item(key)
    watch = schedule.watch_of(index, key)
    events = index.timeline(key)
    if not item and not watch and not events:
        return
    click.echo("")
    if item:
        state = item["state"] + (f" ({item['state_class']})" if item["state_class"] else "")
        click.echo(f"state: {state} since {item['state_since']}; last seen live {item['last_seen_live'] or '-'}")
    if watch:
        sched = f"every {schedule.format_interval(watch['every_seconds'])}" if watch["every_seconds"] else \
            f"cron \"{watch['cron']}\""
        if watch["active"]:
            click.echo(f"watched: {sched}, checks every {schedule.format_interval(watch['check_every_seconds'])}; "
                       f"next capture {watch['next_capture_at']}, next check {watch['next_check_at'] or '-'}")
        else:
            click.echo(f"was watched ({sched}) until {watch['removed_at']}")
    if not events:
        return
    click.echo("timeline:")
    for line in _fold_timeline(events):
        click.echo(f"  {line}")


def _fold_timeline(events: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    run: list[dict[str, Any]] = []

    def flush() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        what = f"check     {first['result']}" + (f" ({first['class']})" if first["class"] else "") + \
            (f" HTTP {first['http_status']}" if first["http_status"] else "")
        if len(run) == 1:
            lines.append(f"{first['at'][:19]}  {what}" + (f" -> capture queued (job {first['job_id']})"
                                                         if first["job_id"] else ""))
        else:
            lines.append(f"{first['at'][:19]}  {what}  x{len(run)} until {last['at'][:19]}")
        run.clear()

    for e in events:
        if e["event"] == "check":
            same = run and (run[-1]["result"], run[-1]["class"], run[-1]["http_status"], run[-1]["state"]) == \
                (e["result"], e["class"], e["http_status"], e["state"]) and not run[-1]["job_id"] and not e["job_id"]
            if not same:
                flush()
            run.append(e)
            continue
        flush()
        if e["event"] == "capture":
            lines.append(f"{e['at'][:19]}  capture   {e['result']}" + (f" ({e['class']})" if e["class"] else "")
                         + f"  {e['capture_id']}")
        else:
            to = e["to"] + (f" ({e['class']})" if e["class"] else "")
            lines.append(f"{e['at'][:19]}  STATE     {e['from'] or 'new'} -> {to}  (by {e['source']})")
    flush()
    return lines


@cli.command()
@click.argument("ident", metavar="ID|URL")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, ident: str, as_json: bool) -> None:
    """Everything known about a capture: provenance, file, hashes, records."""
    index = ctx.index()
    try:
        try:
            cap = index.find_capture(ident)
        except NotFound:
            if _show_jobs_only(index, ident, as_json):
                return
            raise
        records = index.capture_records(cap["id"])
        # The provenance and the text are read back from the sealed WARC (the index keeps their places only).
        cap["provenance"], unreadable = readback.provenance(ctx.archive.path, cap, records)
        if unreadable:
            click.echo(f"archiver: warning: capture {cap['id']}: its provenance record cannot be read back "
                       f"({unreadable}); run `archiver verify {cap['id']}`", err=True)
        outlinks = index.capture_outlinks(cap["id"])
        others = index.captures_of_key(cap["key"])
        job = queue.get_job(index, cap["job_id"]) if cap.get("job_id") else None
        children = index.children(cap["id"])
        found_in = index.referenced_by(cap["key"])
        tweet, video = index.tweet_of(cap["id"]), index.video_of(cap["id"])
        tsa_urls = timestamps.TimestampSettings.from_settings(ctx.archive.settings).tsa_urls
        stamps = [{**{k: t[k] for k in timestamps.SHOWN_FIELDS}, "tsa_configured": t["tsa_url"] in tsa_urls}
                  for t in timestamps.of_capture(index.conn, cap["id"])]
        item, timeline = index.item(cap["key"]), index.timeline(cap["key"])
        watch = schedule.watch_of(index, cap["key"])
        if not as_json:
            _print_capture(ctx, cap, records, outlinks, others, job, children, found_in, tweet, video)
            _print_timestamps(stamps)
            _print_timeline(index, cap["key"])
            return
    finally:
        index.close()
    prov = cap.pop("provenance") or {}
    text_record = next((r for r in reversed(records) if r["type"] == "resource"
                        and (r["uri"] or "").startswith("urn:text:")), None)
    cap["text"], text_unreadable = readback.text(ctx.archive.path, cap["warc_path"], text_record)
    if text_unreadable:
        cap["text_error"] = text_unreadable
    if unreadable:
        cap["provenance_error"] = unreadable
    data = {**cap, "captured_at": cap["started_at"], "records": [
        {"type": r["type"], "uri": r["uri"], "offset": r["offset"], "length": r["length"],
         "http_status": r["http_status"], "content_type": r["content_type"], "payload_digest": r["payload_digest"],
         "record_id": r["record_id"]} for r in records],
        "outlinks": outlinks, "provenance": prov,
        "job": {k: job[k] for k in ("id", "state", "attempts", "max_attempts", "last_failure_class",
                                    "last_failure", "parent_capture_id")} if job else None,
        "parent": _parent(job, found_in),
        "found_in": found_in,
        "children": children,
        "tweet": tweet,
        "video": video,
        "timestamps": stamps,
        "other_captures": [o for o in others if o["id"] != cap["id"]],
        "item": item, "watch": watch, "timeline": timeline}
    _emit_json(data)


def _print_capture(ctx: Context, cap: dict[str, Any], records: list[dict[str, Any]], outlinks: list[dict[str, Any]],
                   others: list[dict[str, Any]], job: dict[str, Any] | None, children: list[dict[str, Any]],
                   found_in: list[dict[str, Any]], tweet: dict[str, Any] | None, video: dict[str, Any] | None) -> None:
    prov = cap.get("provenance") or {}
    data = {"records": records, "parent": _parent(job, found_in),
            "other_captures": [o for o in others if o["id"] != cap["id"]]}
    archive_path = ctx.archive.path
    main = prov.get("main") or {}
    lines = [
        ("capture", cap["id"]), ("url", cap["url"]), ("final url", cap["final_url"]),
        ("status", cap["status"] + (f" ({cap['failure_class']}: {cap['failure_message']})" if cap["failure_class"] else "")),
        ("http status", cap["http_status"]), ("content type", cap["content_type"]), ("title", cap["title"]),
        ("captured", f"{cap['started_at']} -> {cap['finished_at']}"), ("method", cap["method"]),
        ("requested by", f"{cap['requested_by']} at {cap['requested_at']}"),
        ("tags", ", ".join(cap["tags"]) or "-"), ("note", cap["note"]),
        ("server ip", main.get("ip")), ("protocol", main.get("protocol")),
        ("tls", (main.get("tls") or {}).get("protocol")),
        ("redirects", " -> ".join(f"{r['status']} {r['url']}" for r in prov.get("redirects", [])) or "-"),
        ("warc", str(archive_path / cap["warc_path"])), ("warc sha256", cap["warc_sha256"]),
        ("warc size", f"{cap['warc_size']} bytes ({_size(cap['warc_size'])}), {cap['record_count']} records"),
        ("software", ", ".join(f"{k} {v}" for k, v in sorted((prov.get("software") or {}).items()))),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value if value not in (None, '') else '-'}")
    if prov.get("unrecorded"):
        click.echo(f"\nnot recorded ({len(prov['unrecorded'])}):")
        for u in prov["unrecorded"][:20]:
            click.echo(f"  {u['url']}  ({u['reason']})")
    click.echo(f"\nrecords ({len(records)}):")
    _table(data["records"], [("offset", "OFFSET", 10), ("type", "TYPE", 9), ("http_status", "HTTP", 4),
                             ("content_type", "CONTENT-TYPE", 28), ("uri", "URI", 70),
                             ("payload_digest", "PAYLOAD SHA-256", 71)])
    if tweet:
        click.echo(f"\ntweet {tweet['tweet_id']}: {tweet['availability']}")
        if tweet["availability"] == "available":
            click.echo(f"  @{tweet['screen_name']} ({tweet['name']}), {tweet['created_at']} "
                       f"[id time {tweet['snowflake_time']}: {tweet['time_check']}], lang {tweet['lang']}, "
                       f"{tweet['media_count']} media")
            click.echo(f"  {tweet['text']}")
    if video:
        click.echo(f"\nvideo {video['extractor']}:{video['video_id']}  {video['title'] or ''}  "
                   f"{video['duration'] or '?'}s  {_size(video['media_bytes'])}"
                   + (f"  [cut: {video['cut']}]" if video["cut"] else ""))
    platform = prov.get("platform")
    if platform:
        verdict = "its own path" if platform["match"] else f"NOT its own path: {platform['message']}"
        click.echo(f"platform {platform['path']}: {platform['extractor']} ({platform['engine']} "
                   f"{platform['engine_version']}), {verdict}")
    if data["parent"]:
        p = data["parent"]
        click.echo(f"\nfound in capture {p['capture_id']} ({p.get('found_in') or 'followed'})")
    if children:
        click.echo(f"\nreferenced evidence ({len(children)}):")
        _table(children, [("kind", "KIND", 6), ("key", "KEY", 40), ("found_in", "FOUND IN", 34),
                          ("job_state", "JOB", 7), ("capture_id", "CAPTURE", 26), ("capture_status", "STATUS", 7)])
    if outlinks:
        click.echo(f"\noutlinks: {len(outlinks)}")
    if data["other_captures"]:
        click.echo("\nother captures of this URL:")
        _table(data["other_captures"], [("id", "ID", 26), ("started_at", "CAPTURED", 27), ("status", "STATUS", 7)])


def _print_timestamps(stamps: list[dict[str, Any]]) -> None:
    if not stamps:
        return
    click.echo(f"\ntimestamps ({len(stamps)}):")
    for t in stamps:
        if t["state"] == "done":
            click.echo(f"  done     {t['gen_time']}  {t['tsa_name'] or '-'}  {t['tsa_url']}  {t['token_path']}")
        elif t["state"] == "pending" and not t["tsa_configured"]:
            click.echo(f"  waiting  {t['tsa_url']}  {t['attempts']} attempt(s): this TSA is no longer in "
                       f"timestamp.tsa_urls, so it is not asked until it is listed again"
                       + (f" (last error: {t['last_error']})" if t["last_error"] else ""))
        else:
            when = f", next try {t['next_attempt_at']}" if t["next_attempt_at"] else ""
            click.echo(f"  {t['state']:<8} {t['tsa_url']}  {t['attempts']} attempt(s){when}"
                       + (f": {t['last_error']}" if t["last_error"] else ""))


def _parent(job: dict[str, Any] | None, found_in: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The capture this one was followed from (or, failing that, the first that references it)."""
    if job and job.get("parent_capture_id"):
        where = json.loads(job["found_in"]) if job.get("found_in") else {}
        return {"capture_id": job["parent_capture_id"], **where}
    if found_in:
        return {"capture_id": found_in[0]["capture_id"], "found_in": found_in[0]["found_in"]}
    return None


def _show_jobs_only(index, ident: str, as_json: bool) -> bool:
    """A URL that was requested but never sealed (failed, or still queued): its jobs are the findings."""
    try:
        key = urls.parse(ident).dedup_key
    except BadURL:
        return False
    jobs = queue.jobs_for_url(index, key)
    if not jobs and not index.timeline(key) and not schedule.watch_of(index, key):
        return False
    fields = ("id", "url", "state", "attempts", "max_attempts", "requested_by", "requested_at",
              "next_attempt_at", "last_failure_class", "last_failure")
    rows = [{k: j[k] for k in fields} for j in jobs]
    if as_json:
        _emit_json({"url": ident, "captures": [], "jobs": rows, "item": index.item(key),
                    "watch": schedule.watch_of(index, key), "timeline": index.timeline(key)})
    else:
        click.echo(f"no capture of {ident} yet" + ("; its jobs:" if rows else ""))
        _table(rows, [("id", "JOB", 6), ("state", "STATE", 7), ("attempts", "TRIES", 5),
                      ("requested_at", "REQUESTED", 27), ("last_failure_class", "CLASS", 12),
                      ("last_failure", "LAST FAILURE", 80)])
        _print_timeline(index, key)
    return True


@cli.command()
@click.argument("ident", metavar="ID|URL")
@click.option("-o", "--output", "html_path", type=click.Path(path_type=Path), metavar="FILE.html",
              help="Write the report as one self-contained HTML file (no scripts, nothing loaded).")
@click.option("--pdf", "pdf_path", type=click.Path(path_type=Path), metavar="FILE.pdf",
              help="Also (or only) print it to PDF, A4, with Chromium.")
@pass_ctx
def report(ctx: Context, ident: str, html_path: Path | None, pdf_path: Path | None) -> None:
    """A capture report for an editor or a court: screenshot, URLs, times, hashes, TLS, tweet or video,
    signature, timestamps, ledger entries, and the commands that check them."""
    from archiver.exchange.report import make_report
    data = make_report(ctx.archive, ident, html_path, pdf_path)
    for path in (html_path, pdf_path):
        if path:
            click.echo(f"wrote {path} (capture {data.capture['id']})", err=True)


@cli.command()
@click.argument("query")
@_page_options
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one hit per line, streamed.")
@pass_ctx
def search(ctx: Context, query: str, limit: int | None, all_: bool, before: str | None, as_json: bool) -> None:
    """Full-text search over captured titles and visible text, newest first, one page at a time (--limit N,
    --all, --before ID). Snippets are read back from the sealed WARCs."""
    limit = _page_limit(limit, all_)
    index = ctx.index()
    try:
        page = _Page(readback.search(index, ctx.archive.path, query, before=before,
                                     limit=None if limit is None else limit + 1), limit)
        if as_json:
            _emit_json_rows(page)
        else:
            for r in page:
                click.echo(f"{r['id']}  {r['started_at'][:19]}  {r['status']:<7} {r['url']}")
                if r["title"]:
                    click.echo(f"    {r['title']}")
                if r["snippet"] is not None:
                    click.echo(f"    {_cell(r['snippet'], 200)}")
                if r.get("snippet_error"):
                    click.echo(f"    (text not readable: {r['snippet_error']})")
            if not page.shown:
                click.echo(f"no captures match {query!r}", err=True)
    finally:
        index.close()
    page.hint("hits")


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
            click.echo(f"verified {report.captures} capture(s), {report.records} record(s), {_size(report.bytes)}, "
                       f"{tokens}ledger of {report.ledger_entries} entries: {verdict}")
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
              help="Every capture that has no timestamp (done or pending) from one of the configured TSAs.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def timestamp_(ctx: Context, ids: tuple[str, ...], missing: bool, as_json: bool) -> None:
    """Timestamp captures sealed before a TSA was configured: queue the TSAs they have no timestamp from, and
    ask them now. Exit 1 unless every timestamp of these captures is done."""
    archive = ctx.archive
    tsa_urls = timestamps.TimestampSettings.from_settings(archive.settings).tsa_urls
    if not tsa_urls:
        raise UserError("no time-stamping authority is configured: set timestamp.tsa_urls (in the config file, "
                        "or ARCHIVER_TIMESTAMP_TSA_URLS) first")
    if bool(ids) == missing:
        raise UserError("give capture IDs, or --missing for every capture without a timestamp from each "
                        "configured TSA (not both)")
    index = archive.index()
    try:
        # Every ID is resolved before anything is queued: an unknown one changes nothing.
        capture_ids = list(dict.fromkeys(index.find_capture(i)["id"] for i in ids)) if ids else \
            timestamps.missing_captures(index.conn, tsa_urls)
        results = _run_async(timestamps.backfill(index, archive.path, archive.settings, capture_ids))
    finally:
        index.close()
    if as_json:
        _emit_json([r.as_dict() for r in results])
    elif not results:
        click.echo("every capture has a timestamp, done or pending, from each configured TSA", err=True)
    else:
        rows = [{"capture_id": r.capture_id, **t,
                 "detail": f"{t['gen_time']}  {t['token_path']}" if t["state"] == "done" else t["last_error"]}
                for r in results for t in r.rows]
        _table(rows, [("capture_id", "CAPTURE", 26), ("state", "STATE", 7), ("tsa_url", "TSA", 50),
                      ("detail", "TIME AND TOKEN, OR ERROR", 120)])
        states = [row["state"] for row in rows]
        click.echo(f"{len(results)} capture(s): {sum(r.queued for r in results)} timestamp(s) queued, "
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
                   f"{report.records} record(s), {_size(report.bytes)}, {report.timestamps} timestamp token(s), "
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


@cli.command()
@click.argument("ids", nargs=-1, metavar="[ID...]")
@click.option("--tag", help="Also every capture with this tag.")
@click.option("--since", help="Also every capture started since a date (2026-11-01) or an age (6h, 2d, 1w); with "
              "--tag, those with the tag started since then.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.wacz", help="The package to write (never an existing file).")
@click.option("--title", help="Title of the package (datapackage.json); default: \"archiver export of N captures\".")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def export(ctx: Context, ids: tuple[str, ...], tag: str | None, since: str | None, output: Path,
           title: str | None, as_json: bool) -> None:
    """Write captures as one signed WACZ: WARCs as sealed, CDXJ index, pages, and the provenance a third party
    needs to check them with standard tools (ledger excerpt, timestamps, keys, VERIFY.txt)."""
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
        click.echo(f"exported {len(result.captures)} capture(s), {result.timestamps} timestamp token(s) to "
                   f"{output} ({_size(result.bytes)}, sha256 {result.sha256}; ledger entry {result.ledger_seq})")


@cli.command()
@click.argument("urls_given", nargs=-1, metavar="[URL...]")
@click.option("--every", metavar="INTERVAL", help="Re-capture this often: 30m, 6h, 1d, 1w, 1h30m.")
@click.option("--cron", metavar="EXPR", help='Re-capture on a cron schedule in UTC, e.g. "0 */6 * * *".')
@click.option("--check-every", metavar="INTERVAL",
              help="Liveness checks in between (default: watch.check_every; 'none' for no checks).")
@click.option("--list", "list_only", is_flag=True, help="List the active watches.")
@click.option("--all", "include_removed", is_flag=True, help="With --list: also the removed watches.")
@_add_options
@pass_ctx
def watch(ctx: Context, urls_given, every, cron, check_every, list_only, include_removed, file, tags, note, by,
          priority, no_browser, follow, depth, as_json) -> None:
    """Re-capture URLs on a schedule, with cheap liveness checks in between. `archiver run` (or
    `archiver run --once` from cron) queues what is due."""
    if list_only:
        if urls_given or file or every or cron:
            raise UserError("--list takes no URLs or schedule (watch URLs, or list the watches, not both)")
        _list_watches(ctx, include_removed, as_json)
        return
    if not every and not cron:
        raise UserError("say how often: --every 6h, or --cron \"0 */6 * * *\" (or --list to see the watches)")
    if every and cron:
        raise UserError("give one of --every or --cron, not both")
    every_seconds = schedule.parse_interval(every) if every else None
    cron_expr = schedule.check_cron(cron) if cron else None
    archive = ctx.archive
    check_text = check_every if check_every is not None else archive.settings["watch"]["check_every"]
    check_seconds = None if check_text.strip().lower() in ("", "none", "0", "off") else \
        schedule.parse_interval(check_text, "--check-every")
    parsed = _parse_all(_read_url_args(urls_given, file))
    index = archive.index()
    try:
        results = [schedule.add(index, p, every_seconds=every_seconds, cron=cron_expr,
                                check_every_seconds=check_seconds, created_by=archive.operator(by), tags=list(tags),
                                note=note, options=_options(no_browser, follow, depth)) for p in parsed]
    finally:
        index.close()
    if as_json:
        _emit_json([{**r.watch, "created": r.created} for r in results])
        return
    for r in results:
        w = r.watch
        sched = f"every {schedule.format_interval(w['every_seconds'])}" if w["every_seconds"] else f"cron \"{w['cron']}\""
        verb = "watching" if r.created else "updated"
        click.echo(f"{verb:<9} {w['canonical_url']}  {sched}, checks every "
                   f"{schedule.format_interval(w['check_every_seconds'])}; next capture {w['next_capture_at'][:19]}")


def _list_watches(ctx: Context, include_removed: bool, as_json: bool) -> None:
    rows = _read_index(ctx, lambda index: schedule.list_watches(index, include_removed))
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo("no watches (add one with `archiver watch URL --every 6h`)", err=True)
        return
    for r in rows:
        r["schedule"] = schedule.format_interval(r["every_seconds"]) if r["every_seconds"] else r["cron"]
        r["checks"] = schedule.format_interval(r["check_every_seconds"])
        r["state_shown"] = (r["state"] or "new") + (f" ({r['state_class']})" if r["state_class"] else "")
        if not r["active"]:
            r["state_shown"] = f"removed {r['removed_at'][:10]}"
    _table(rows, [("id", "ID", 5), ("kind", "KIND", 6), ("schedule", "EVERY", 14), ("checks", "CHECKS", 7),
                  ("next_capture_at", "NEXT CAPTURE", 20), ("next_check_at", "NEXT CHECK", 20),
                  ("state_shown", "STATE", 22), ("url", "URL", 70)])


@cli.command()
@click.argument("urls_given", nargs=-1, metavar="URL...")
@click.option("-f", "--file", "file", metavar="FILE", help="Read URLs from FILE, one per line (- for stdin).")
@click.option("--by", "by", metavar="NAME", help="Who stops the watch (default: archive.operator or login).")
@pass_ctx
def unwatch(ctx: Context, urls_given, file, by) -> None:
    """Stop watching URLs. Captures and checks already made are kept; the watch stays listed with --list --all."""
    parsed = _parse_all(_read_url_args(urls_given, file))
    archive = ctx.archive
    index = archive.index()
    missing = []
    try:
        for p in parsed:
            removed = schedule.remove(index, p.dedup_key, archive.operator(by))
            if removed:
                click.echo(f"unwatched {removed['canonical_url']} (watch {removed['id']})")
            else:
                missing.append(p.url)
    finally:
        index.close()
    if missing:
        raise NotFound(f"not watched: {', '.join(missing)} (see `archiver watch --list`)")


@cli.command()
@click.argument("urls_given", nargs=-1, metavar="[URL...]")
@click.option("--all-watched", is_flag=True, help="Check every watched item.")
@click.option("--gone", is_flag=True, help="Re-check every item now gone (did any come back?).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def check(ctx: Context, urls_given, all_watched, gone, as_json) -> None:
    """Liveness check now: is each item still there, and has it changed since our newest capture?
    Stored in the checks history; a change, a disappearance or a return queues a capture."""
    if urls_given:
        _parse_all(list(urls_given))  # one line per bad URL, and nothing checked
    if not (urls_given or all_watched or gone):
        raise UserError("nothing to check: give URLs, --all-watched or --gone")
    archive = ctx.archive
    index = archive.index()
    try:
        from archiver.pipeline import checks
        found = checks.targets(index, list(urls_given), all_watched, gone)
        outcomes = _run_async(_run_checks(index, found, archive.settings))
    finally:
        index.close()
    if as_json:
        _emit_json([o.as_dict() for o in outcomes])
        return
    if not outcomes:
        click.echo("nothing to check", err=True)
        return
    for o in outcomes:
        moved = f"{o.state_before or 'new'} -> {o.state_after}" if o.transition else (o.state_after or "-")
        line = (f"{o.result:<11} {o.result_class or '':<15} {o.http_status or '-':<4} {moved:<22} {o.url}")
        if o.job_id:
            line += f"  (capture queued: job {o.job_id})"
        click.echo(line)


async def _run_checks(index, targets: list[dict[str, str]], settings) -> list[checks.CheckOutcome]:
    from archiver.pipeline import checks
    worker = queue.make_owner()
    return [await checks.run_check(index, t, settings, worker=worker) for t in targets]


# ---- entry point ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from archiver import logs
    logs.setup_terminal()  # human lines on stderr; `run` adds the JSON file under the archive
    try:
        # Without standalone mode click returns the code of a `click.exceptions.Exit` instead of exiting.
        code = cli.main(args=argv, prog_name="archiver", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # pragma: no cover - click >= 8.2
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 2
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "archiver"
        click.echo(f"archiver: error: {exc.format_message()} (see `{command} --help`)", err=True)
        return 2
    except click.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):   # click turns ^C in a command into Abort
            return _report_failure(exc.__context__, [])
        click.echo("archiver: aborted", err=True)
        return 130
    except ArchiverError as exc:
        click.echo(f"archiver: error: {exc}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except (Exception, KeyboardInterrupt, MemoryError) as exc:  # noqa: BLE001 - the one place all failures end
        # No size of archive and no failure of the machine ends in a traceback on the terminal: one line says what
        # happened (exit 1, or 130 for ^C), and the details go to the archive's log file.
        if os.environ.get("ARCHIVER_TRACEBACK"):
            raise
        return _report_failure(exc, list(sys.argv[1:] if argv is None else argv))


def _report_failure(exc: BaseException, argv: list[str]) -> int:
    from archiver import logs
    from archiver.errors import describe_failure
    message, code = describe_failure(exc)
    where = None
    archive_dir = Context.last_archive_dir()
    if archive_dir is not None and not isinstance(exc, KeyboardInterrupt):
        where = logs.log_failure(archive_dir, message, exc, argv)
    try:
        click.echo(f"archiver: error: {message}" + (f" (details: {where})" if where else ""), err=True)
    except (OSError, ValueError):
        pass   # stderr itself is gone: the exit status still says it
    return code


if __name__ == "__main__":
    sys.exit(main())
