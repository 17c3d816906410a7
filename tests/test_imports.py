"""Commands that capture nothing never import the capture stack (issue 12): `status`, `list`, `show` and `search`
start in a fraction of the time a capture's imports take (yt-dlp alone is ~0.1 s), whatever the archive holds."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import CLI, base_env, local_storage, team_index_url

# What only capturing, checking or verifying needs: none of it may be loaded by a read command.
CAPTURE_ONLY = ("yt_dlp", "playwright", "httpx", "warcio", "asyncio", "croniter", "asn1crypto", "cryptography",
                "archiver.capture", "archiver.pipeline.worker", "archiver.pipeline.supervisor", "archiver.pipeline.checks", "archiver.custody.verify")

# Runs the CLI in a fresh interpreter as `python -m archiver` would, then writes the modules it loaded.
RUN_AND_LIST = ("import json, sys\n"
                "from archiver.cli import main\n"
                "code = main(sys.argv[2:])\n"
                "json.dump(sorted(sys.modules), open(sys.argv[1], 'w'))\n"
                "sys.exit(code)\n")


def _loaded(tmp_path, cli: CLI, *args: str) -> tuple[int, set[str]]:
    """Runs a command as ``cli`` would (its archive, its environment): its exit code and the modules it loaded."""
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", RUN_AND_LIST, str(out), "--archive", str(cli.archive), *args],
                          capture_output=True, text=True, env=cli.env, timeout=60, cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, set(json.loads(out.read_text()))


def _capture_only(modules: set[str], team: bool = False) -> list[str]:
    # psycopg, which a team-mode archive needs for any command, imports asyncio for its async connections.
    forbidden = [c for c in CAPTURE_ONLY if not (team and c == "asyncio")]
    return sorted(m for m in modules if any(m == c or m.startswith(c + ".") for c in forbidden))


def test_read_commands_never_import_the_capture_stack(cli, site, tmp_path):
    result = cli("capture", "--no-browser", site.url + "/2016/12/16/evacuation-suspended/", "--json")
    assert result.code == 0, result.err
    capture_id = result.json()[0]["capture_id"]
    url = site.url + "/2016/12/16/evacuation-suspended/"
    for args in (["status"], ["status", "--json"], ["list"], ["list", "--json", "--all"], ["list", "--gone"],
                 ["show", capture_id], ["show", capture_id, "--json"], ["show", url],
                 ["show", "https://never-captured.example/page"], ["search", "blasts"], ["search", "blasts", "--json"]):
        code, modules = _loaded(tmp_path, cli, *args)
        assert code in (0, 1), args
        team = bool(team_index_url(cli.archive))
        assert _capture_only(modules, team) == [], (args, _capture_only(modules, team))
        # boto3 only where a capture is read back from a bucket (show and search read its records), never to list.
        if args[0] in ("status", "list"):
            assert not {"boto3", "botocore"} & modules, args
        # PostgreSQL's client only for an archive whose index is there (team mode).
        assert ("psycopg" in modules) == team, args
    # ...while a command that captures does load it (the check above is not vacuous).
    code, modules = _loaded(tmp_path, cli, "check", url)
    assert "archiver.pipeline.checks" in modules and "httpx" in modules


def _modules_after_importing(module: str) -> set[str]:
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def test_a_runner_starts_without_the_browser_yt_dlp_or_the_checks():
    # `archiver run` imports the supervisor, and each worker process imports the worker: the browser, the tweet and
    # video paths and the liveness checks are imported when a job first needs them (a --no-browser run never does).
    for module in ("archiver.pipeline.supervisor", "archiver.pipeline.worker"):
        loaded = _modules_after_importing(module)
        late = [m for m in loaded if m.split(".")[0] in ("playwright", "yt_dlp")
                or m in ("archiver.capture.browser", "archiver.capture.tweet", "archiver.capture.video",
                         "archiver.pipeline.checks")]
        named = sorted({m if m.startswith("archiver") else m.split(".")[0] for m in late})
        assert late == [], f"{module} imports {named} at start-up"


def test_every_package_of_archiver_is_in_the_distribution():
    # pyproject.toml lists the packages by hand; a room missing from it would be missing from an installed wheel.
    import tomllib
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "archiver").rglob("__init__.py")}
    assert found == listed


def test_commands_on_a_local_archive_never_import_boto3(cli, site, tmp_path):
    # The S3 engine is chosen only when [storage] url names a bucket: a local archive never pays for boto3.
    cli = local_storage(cli)
    url = site.url + "/2016/12/16/evacuation-suspended/"
    code, modules = _loaded(tmp_path, cli, "capture", "--no-browser", url)
    assert code == 0 and not {"boto3", "botocore"} & modules
    capture_id = json.loads(cli("list", "--json").out)[0]["id"]
    for args in (["show", capture_id], ["search", "blasts"], ["verify"], ["reindex", "-o", str(tmp_path / "r.db")],
                 ["export", capture_id, "-o", str(tmp_path / "x.wacz")], ["report", capture_id, "-o",
                                                                          str(tmp_path / "r.html")]):
        code, modules = _loaded(tmp_path, cli, *args)
        assert code == 0, args
        assert not {"boto3", "botocore"} & modules, args
