"""The trunk stays cut (issue 11): small functions, short composing modules, real types for type checkers."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_estimator_function_over_80_lines():
    long = [f"{p.name}:{name} ({n} lines)" for p in sorted((ROOT / "estimator").glob("*.py"))
            for name, _, n in _functions(p) if n > MAX_FUNCTION_LINES]
    assert not long, long


@pytest.mark.parametrize("module", ["training.py", "inference.py"])
def test_composing_modules_stay_short(module):
    n = len((ROOT / "estimator" / module).read_text().splitlines())
    assert n < 300, f"estimator/{module} has {n} lines"


def test_public_api_is_imported_for_real():
    """``from estimator import estimate_training`` is the function itself (no lazy module __getattr__)."""
    import estimator
    from estimator.training import estimate_training

    assert estimator.estimate_training is estimate_training
    assert not hasattr(estimator, "__getattr__")
    assert (ROOT / "estimator" / "py.typed").is_file() and (ROOT / "hardware_db" / "py.typed").is_file()


@pytest.mark.skipif(shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists(),
                    reason="mypy not installed (dev extra)")
def test_type_checkers_see_real_signatures(tmp_path):
    snippet = tmp_path / "use.py"
    snippet.write_text("from estimator import estimate_training, TrainingConfig\n"
                       "reveal_type(estimate_training)\nreveal_type(TrainingConfig(params=7e9).tokens)\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-incremental",
                        "--cache-dir", str(tmp_path / "cache"), str(snippet)], capture_output=True, text=True,
                       cwd=ROOT)
    assert "TrainingEstimate" in r.stdout and "float | None" in r.stdout, r.stdout + r.stderr
