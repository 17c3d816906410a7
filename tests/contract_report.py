"""A pytest plugin: one row per platform path for the contract tests, after the run.

    PYTHONPATH=tests .venv/bin/python -m pytest -m contract -p contract_report

A contract test is marked ``@pytest.mark.contract("periscope")`` with the platform path it pins (what archiver
relies on yt-dlp and the platform doing). The table says, per path, ``pass``, the first failure (the line of
the test file where it failed and the error's first line), ``skipped``, or that the path has no contract test
at all. The paths are archiver.capture.platforms.PATHS where that module exists, any given with --contract-paths, and
every path a marker names. Works under pytest-xdist: the path travels with each report (user_properties).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata

import pytest

PROPERTY = "contract"  # (PROPERTY, path) in a report's user_properties
FAILURE = "contract-failure"  # (FAILURE, "file:line message")
MESSAGE_WIDTH = 160


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--contract-paths", default="", metavar="PATH,PATH",
                     help="platform paths to report on besides archiver.capture.platforms.PATHS and the markers' own")


@dataclass
class Row:
    passed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def known_paths() -> list[str]:
    """The names of archiver.capture.platforms.PATHS, the registry of platform paths."""
    from archiver.capture import platforms
    return [p.name for p in platforms.PATHS]


class ContractReport:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: dict[str, Row] = {}
        given = [p.strip() for p in config.getoption("contract_paths").split(",") if p.strip()]
        for path in [*known_paths(), *given]:
            self.rows.setdefault(path, Row())

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("contract")
            if marker is None:
                continue
            if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0]:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.contract takes one platform path, "
                                        f'e.g. @pytest.mark.contract("periscope")')
            item.user_properties.append((PROPERTY, marker.args[0]))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if report.failed and call.excinfo is not None and dict(item.user_properties).get(PROPERTY):
            report.user_properties = [*report.user_properties, (FAILURE, first_failure(item, call.excinfo))]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        path = properties.get(PROPERTY)
        if path is None:
            return
        row = self.rows.setdefault(path, Row())
        if report.failed:
            where = "" if report.when == "call" else f"(in {report.when}) "
            row.failures.append(where + properties.get(FAILURE, report.nodeid))
        elif report.skipped and report.when in ("setup", "call"):
            row.skipped += 1
        elif report.passed and report.when == "call":
            row.passed += 1

    def pytest_terminal_summary(self, terminalreporter) -> None:
        try:
            version = metadata.version("yt-dlp")
        except metadata.PackageNotFoundError:
            version = "not installed"
        terminalreporter.write_sep("=", f"platform contracts (yt-dlp {version})")
        width = max([len(p) for p in self.rows] + [len("path")])
        for path in sorted(self.rows):
            terminalreporter.write_line(f"{path:<{width}}  {describe(self.rows[path])}")
        if not self.rows:
            terminalreporter.write_line("no platform paths: no test is marked @pytest.mark.contract(PATH)")


def describe(row: Row) -> str:
    if row.failures:
        more = f" (+{len(row.failures) - 1} more failing)" if len(row.failures) > 1 else ""
        return f"FAIL {row.failures[0]}{more}"
    if row.passed:
        return f"pass ({row.passed} test{'s' if row.passed != 1 else ''})"
    if row.skipped:
        return f"skipped ({row.skipped} test{'s' if row.skipped != 1 else ''})"
    return "no contract test"


def first_failure(item: pytest.Item, excinfo: pytest.ExceptionInfo) -> str:
    """`file:line message`: the deepest line of the test's own file on the way to the error (which contract
    broke), and the error's first line, on one line."""
    where = None
    for entry in excinfo.traceback:
        if str(entry.path) == str(item.path):
            where = entry
    if where is None and len(excinfo.traceback):
        where = excinfo.traceback[-1]
    location = f"{_relative(item, where.path)}:{where.lineno + 1}" if where else item.nodeid
    lines = [line for line in excinfo.exconly().splitlines() if line.strip()] or [excinfo.typename]
    message = re.sub(r"\s+", " ", lines[0]).strip()
    if len(message) > MESSAGE_WIDTH:
        message = message[:MESSAGE_WIDTH - 1] + "…"
    return f"{location} {message}"


def _relative(item: pytest.Item, path) -> str:
    try:
        return str(item.config.rootpath.joinpath(path).relative_to(item.config.rootpath))
    except ValueError:
        return str(path)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ContractReport(config), "contract-report")
