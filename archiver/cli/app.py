"""The `archiver` command group and its entry point: every failure ends here as one line and an exit status."""
from __future__ import annotations

import os
import sys

import click

from archiver.errors import ArchiverError
from archiver.cli.common import Context


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
