"""The contract report (tests/contract_report.py) on a generated test file: one row per platform path."""
from __future__ import annotations

import sys
import types

import pytest

import contract_report  # tests/ is on sys.path (conftest)

pytest_plugins = ["pytester"]

CONTRACTS = '''
import pytest

def helper(status):
    assert status == "ok", f"capture was {status}"

@pytest.mark.contract("tweet")
def test_tweet_text():
    assert 1 + 1 == 2

@pytest.mark.contract("tweet")
def test_tweet_photos():
    pass

@pytest.mark.contract("periscope")
def test_periscope_replay():
    helper("partial")

@pytest.mark.contract("periscope")
def test_periscope_live():
    assert False

@pytest.mark.contract("vimeo")
def test_vimeo():
    pytest.skip("no fixture yet")

def test_not_a_contract():
    pass
'''


@pytest.fixture
def contracts(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nmarkers =\n    contract(path): a platform contract test\n")
    pytester.makepyfile(test_contracts=CONTRACTS)
    return pytester


def rows(result: pytest.RunResult) -> dict[str, str]:
    """The report's rows: path -> what it says."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "platform contracts (yt-dlp " in line)
    table: dict[str, str] = {}
    for line in lines[start + 1:]:
        if line.startswith("=") or line.startswith(("FAILED", "SKIPPED", "ERROR")):
            break
        if line.strip():
            path, said = line.split(None, 1)
            table[path] = said.rstrip()
    return table


def test_one_row_per_path_with_the_first_failure(contracts):
    result = contracts.runpytest("-m", "contract", "--contract-paths", "telegram", plugins=[contract_report])
    result.assert_outcomes(passed=2, failed=2, skipped=1, deselected=1)
    table = rows(result)
    assert table["periscope"] == "FAIL test_contracts.py:4 AssertionError: capture was partial (+1 more failing)"
    assert table["tweet"] == "pass (2 tests)"
    assert table["vimeo"] == "skipped (1 test)"
    # Every path of archiver/capture/platforms.py has a row, tested or not, and so has one named on the command line.
    assert table["youtube"] == table["telegram"] == "no contract test"
    from archiver.capture import platforms
    assert {p.name for p in platforms.PATHS} | {"telegram"} == set(table)
    result.stdout.fnmatch_lines([f"*platform contracts (yt-dlp {contract_report.metadata.version('yt-dlp')})*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_paths_come_from_archiver_platforms(contracts, monkeypatch):
    registry = types.SimpleNamespace(PATHS=[types.SimpleNamespace(name="tweet"), types.SimpleNamespace(name="instagram")])
    import archiver.capture
    monkeypatch.setitem(sys.modules, "archiver.capture.platforms", registry)
    # `from archiver.capture import platforms` takes the package's attribute once the module has been imported.
    monkeypatch.setattr(archiver.capture, "platforms", registry, raising=False)
    result = contracts.runpytest("-m", "contract", "-k", "tweet", plugins=[contract_report])
    assert rows(result) == {"instagram": "no contract test", "tweet": "pass (2 tests)"}
    assert result.ret == 0


def test_a_marker_without_a_path_is_refused(pytester):
    pytester.makepyfile("import pytest\n@pytest.mark.contract\ndef test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", plugins=[contract_report])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@pytest.mark.contract takes one platform path*"])
