"""Commands that queue and capture: add, capture, run, watch, unwatch, check."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import click

from archiver.pipeline import queue, schedule
from archiver import urls
from archiver.pipeline import submit
from archiver.store import overview, timeline
from archiver.errors import NotFound, UserError
from archiver.cli.app import cli
from archiver.cli.common import (_run_async, _emit_json, _emit_json_rows, _table, _cell, _size, Context, pass_ctx,
                                 _read_index)

if TYPE_CHECKING:
    from archiver.pipeline import checks
    from archiver.pipeline.worker import Outcome


def run_pool(*args: Any, **kwargs: Any) -> Any:
    from archiver.pipeline.worker import run_pool as run
    return run(*args, **kwargs)


def _read_url_args(urls_given: Iterable[str], file: str | None) -> list[str]:
    items = list(urls_given)
    if file:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"-f {file}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"-f {file}: cannot read it ({exc})") from None
        items.extend(submit.clean_lines([text]))
    if not items:
        raise UserError(submit.NO_URLS)
    return items


def _url_lines(urls_given: Iterable[str], file: str | None) -> Iterator[str]:
    """The URLs of the arguments, then of ``file`` (``-``: stdin) read a line at a time, as ``_read_url_args``
    reads them. The file is opened now, so that a missing one is named before anything is done."""
    if not urls_given and not file:
        raise UserError(submit.NO_URLS)
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
        # splitlines() as on the whole text: it also ends lines at \v, \f, \x1c-\x1e, \x85, \u2028, \u2029.
        yield from submit.clean_lines(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"-f {file}: cannot read it ({exc})") from None
    finally:
        if handle is not sys.stdin:
            handle.close()


def _parse_all(items: list[str]) -> list[urls.ParsedURL]:
    try:
        return submit.checked_list(items)
    except submit.BadList as exc:
        _refuse(exc.errors)
        raise


def _refuse(errors: list[dict[str, str]]) -> None:
    """Each bad URL of a list, one line each (the line that ends the command says nothing was done)."""
    for e in errors:
        click.echo(f"archiver: error: {e['error']}", err=True)


def _request(tags, note, by, priority, no_browser, follow=False, depth=1) -> submit.Request:
    return submit.Request(requested_by=by, tags=list(tags), note=note, priority=priority, no_browser=no_browser,
                          follow=follow, depth=depth)


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
    items = _read_url_args(urls_given, file)
    try:
        return submit.enqueue(ctx.archive, items, _request(tags, note, by, priority, no_browser, follow, depth))
    except submit.BadList as exc:
        _refuse(exc.errors)
        raise


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
        batch = submit.queue_stream(archive, index, lines, _request(tags, note, by, priority, no_browser, follow, depth),
                                    on_error=lambda exc: click.echo(f"archiver: error: {exc}", err=True))
        if not len(batch):
            raise UserError("no URLs given (the file holds no URL: only blank lines and # comments)")
        results = queue.batch_results(index, batch)
        if as_json:
            _emit_json_rows(submit.job_summary(e) for e in results)
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
    _check_keys(archive)  # creates and migrates the index once, before workers race to do it
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


def _check_keys(archive: Any) -> None:
    """Open (create, migrate) the index; in team mode, refuse a host without the archive's signing key
    (keys.KeyNotHeld: one line, exit 2) before any worker starts and fails on it."""
    from archiver.custody import keys
    index = archive.index()
    try:
        if index.shared:
            keys.load_or_create(archive.path, archive.settings, index)
    finally:
        index.close()


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
    if ctx.archive.index_url:
        _check_keys(ctx.archive)   # team mode: refuse before queueing, not in the worker
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
    archive = ctx.archive
    when = submit.watch_schedule(every, cron, check_every, archive.settings["watch"]["check_every"])
    result = submit.watch(archive, _read_url_args(urls_given, file), when,
                          _request(tags, note, by, priority, no_browser, follow, depth))
    if not result.ok:
        _refuse(result.errors)
        raise UserError(result.message)
    if as_json:
        _emit_json(result.done)
        return
    for w in result.done:
        sched = timeline.watch_schedule(w)
        verb = "watching" if w["created"] else "updated"
        click.echo(f"{verb:<9} {w['canonical_url']}  {sched}, checks every "
                   f"{schedule.format_interval(w['check_every_seconds'])}; next capture {w['next_capture_at'][:19]}")


def _list_watches(ctx: Context, include_removed: bool, as_json: bool) -> None:
    rows = _read_index(ctx, lambda index: overview.watches(index, include_removed))
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
    result = submit.unwatch(ctx.archive, _read_url_args(urls_given, file), by)
    if result.errors:
        _refuse(result.errors)
        raise UserError(result.message)
    for removed in result.done:
        click.echo(f"unwatched {removed['canonical_url']} (watch {removed['id']})")
    if result.missing:
        raise NotFound(result.message)


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
