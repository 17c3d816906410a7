"""requirements.lock is what runs: every dependency pyproject.toml names is pinned there inside its range, with
hashes, and the running venv holds exactly those versions (a package upgraded or added by hand is caught)."""
from __future__ import annotations

import tomllib
from importlib.metadata import distributions

import pytest
from packaging.requirements import Requirement

import lockfile  # scripts/lockfile.py (conftest puts scripts/ on sys.path)

PYPROJECT = tomllib.loads((lockfile.ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def declared() -> list[Requirement]:
    """Runtime dependencies, the test extra and the build backend, as pyproject.toml states them."""
    names = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["test"],
             *PYPROJECT["build-system"]["requires"]]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize("path", [lockfile.LOCK, lockfile.TOOLS_LOCK], ids=lambda p: p.name)
def test_every_pin_is_exact_and_hashed(path):
    pins = lockfile.read(path)  # raises LockError on a line that is not name==version
    assert pins, f"{path.name} pins nothing"
    unhashed = [f"{path.name}:{p.line} {p.name}=={p.version}" for p in pins
                if not any(h.startswith("sha256:") and len(h) == len("sha256:") + 64 for h in p.hashes)]
    assert not unhashed, f"pins without --hash=sha256: {unhashed}"


@pytest.mark.parametrize("requirement", declared(), ids=str)
def test_declared_dependency_is_pinned_inside_its_range(requirement):
    pins = [p for p in lockfile.read() if p.name == lockfile.normalize(requirement.name)]
    assert pins, f"{requirement.name} is in pyproject.toml but not in {lockfile.LOCK.name}: run `make lock`"
    for pin in pins:
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{lockfile.LOCK.name}:{pin.line} pins {pin.name}=={pin.version}, outside pyproject.toml's "
            f"{requirement}: run `make lock`")
    assert any(p.applies() for p in pins), f"no pin of {requirement.name} applies to this interpreter"


def test_installed_versions_equal_the_lock():
    locked = lockfile.applicable(lockfile.LOCK)
    tools = lockfile.applicable(lockfile.TOOLS_LOCK)
    installed = {lockfile.normalize(d.metadata["Name"]): d.version for d in distributions()}
    missing = sorted(f"{n}=={p.version}" for n, p in locked.items() if n not in installed)
    drifted = sorted(f"{n} {installed[n]} (lock: {p.version})" for n, p in {**tools, **locked}.items()
                     if n in installed and installed[n] != p.version)
    unlocked = sorted(set(installed) - set(locked) - set(tools) - lockfile.ALWAYS_KEPT)
    fix = "run `make setup` (after touching requirements.lock), or `make lock` if pyproject.toml changed"
    assert not missing, f"locked but not installed: {missing}; {fix}"
    assert not drifted, f"installed at another version than the lock's: {drifted}; {fix}"
    assert not unlocked, f"installed but in no lock: {unlocked}; {fix}"


def test_reader_refuses_an_unpinned_line(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# a comment\nfoo==1.0 ; python_version >= '3.11' \\\n    --hash=sha256:" + "a" * 64
                    + "\n    # via bar\nyt-dlp>=2024.8.6\n", encoding="utf-8")
    with pytest.raises(lockfile.LockError, match=r"requirements.lock:5: not a pinned requirement .*yt-dlp>=2024.8.6"):
        lockfile.read(lock)
    lock.write_text("foo==1.0 ; python_version >= '3.11' \\\n    --hash=sha256:" + "a" * 64 + "\n", encoding="utf-8")
    [pin] = lockfile.read(lock)
    assert (pin.name, pin.version, pin.marker, pin.hashes, pin.line) == (
        "foo", "1.0", "python_version >= '3.11'", ("sha256:" + "a" * 64,), 1)
