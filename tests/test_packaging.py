"""What the installed distribution declares and ships (runs against the source tree and the built wheel alike)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

import estimator

DIST = "llm-cost-estimator"
LOWEST = Path(__file__).resolve().parents[1] / "scripts" / "lowest-constraints.txt"
PYPROJECT = LOWEST.parents[1] / "pyproject.toml"
PACKAGES = ("estimator", "hardware_db", "benchmarks", "dashboards", "profiler")
CORE_PACKAGES = ("estimator", "hardware_db")  # what `pip install llm-cost-estimator` must run on its own
IMPORT_TO_DIST = {"pynvml": "nvidia-ml-py"}


def _parse(reqs: list[tuple[str, str | None]]) -> dict[str, tuple[str | None, str | None]]:
    """dist name -> (extra or None for core, declared minimum or None)."""
    out = {}
    for req, extra in reqs:
        name = re.match(r"[A-Za-z0-9._-]+", req).group(0).lower()
        marker = re.search(r"extra\s*==\s*['\"]([^'\"]+)", req)
        minimum = re.search(r">=\s*([0-9][0-9.]*)", req)
        out.setdefault(name, (extra or (marker.group(1) if marker else None), minimum.group(1) if minimum else None))
    return out


def _requirements() -> dict[str, tuple[str | None, str | None]]:
    """What the installed distribution's metadata declares (the wheel's, or the editable install's)."""
    return _parse([(r, None) for r in importlib.metadata.requires(DIST) or []])


def _pyproject_requirements() -> dict[str, tuple[str | None, str | None]]:
    """What pyproject.toml declares now (an editable install's metadata is as old as its last pip install)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    reqs = [(r, None) for r in project["dependencies"]]
    reqs += [(r, extra) for extra, rs in project.get("optional-dependencies", {}).items() for r in rs]
    return _parse(reqs)


def _third_party_imports(package: str) -> set[str]:
    root = Path(estimator.__file__).resolve().parent.parent / package
    own = set(PACKAGES)
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in sys.stdlib_module_names and n not in own and n != "__future__"}


def test_every_import_is_declared_and_core_imports_are_core():
    reqs = _requirements()
    for package in PACKAGES:
        for mod in sorted(_third_party_imports(package)):
            dist = IMPORT_TO_DIST.get(mod, mod).lower()
            assert dist in reqs, f"{package}/ imports {mod}, which {DIST} does not declare"
            if package in CORE_PACKAGES and mod not in ("torch", "pynvml"):
                assert reqs[dist][0] is None, f"{package}/ imports {mod}, declared only in extra {reqs[dist][0]}"


def test_data_read_packages_are_declared():
    reqs = _requirements()
    assert reqs["pycountry"][0] is None  # ISO 3166 tables read by hardware_db/regions.py
    assert reqs["click"][0] is None  # estimator/errors.py
    assert reqs["codecarbon"][0] == "profiler"  # the sweep's tracker only; grid data is the shipped snapshot


def test_declared_minimums_are_the_lowest_constraints_ci_installs():
    pins = {}
    for line in LOWEST.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    core = {name: minimum for name, (extra, minimum) in _pyproject_requirements().items() if extra is None}
    assert set(pins) == set(core), "every core dependency has one == pin in scripts/lowest-constraints.txt"
    for name, minimum in core.items():
        assert minimum is not None, f"{name} has no declared minimum"
        pinned = [int(x) for x in pins[name].split(".")]
        declared = [int(x) for x in minimum.split(".")]
        assert pinned[: len(declared)] == declared and not any(pinned[len(declared):]), (name, minimum, pins[name])


def test_typer_floor_excludes_the_broken_releases():
    _, minimum = _pyproject_requirements()["typer"]
    # 0.12.0-0.12.3 crash on `str | None`; up to 0.15.3 they mis-parse options and fail --help under click >= 8.2
    assert tuple(int(x) for x in minimum.split(".")) >= (0, 16)


def test_package_data_is_installed():
    snap = files("hardware_db") / "grid_snapshot"
    meta = json.loads((snap / "SNAPSHOT.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["codecarbon_version"])
    assert "MIT License" in (snap / "LICENSE").read_text(encoding="utf-8")
    for rel in meta["files"]:
        assert (snap / rel).is_file(), rel
    assert (files("hardware_db") / "accelerators.csv").is_file()
    assert (files("benchmarks") / "data" / "training_runs.csv").is_file()


def test_python_m_estimator_is_the_estimate_command():
    run = subprocess.run([sys.executable, "-m", "estimator", "--params", "1e9", "--tokens", "2e10", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["mode"] == "training"
    bad = subprocess.run([sys.executable, "-m", "estimator", "--params", "lots"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
