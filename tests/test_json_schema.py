"""Every mode's --json output validates against its published JSON Schema (docs/schema/, issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from estimator.cli import main

jsonschema = pytest.importorskip("jsonschema")
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schema"
CASES = [
    ("training", ["--params", "7e9", "--tokens", "1e12", "--gpus", "64"]),
    ("training", ["train", "--preset", "llama3-8b", "--gpus", "64", "--gpu", "a100-80gb", "--region", "FR"]),
    ("training", ["--params", "7e9", "--tokens", "1e12", "--gpus", "64", "--gpu", "tpu-v4"]),  # no price, no embodied
    ("inference", ["serve", "--preset", "llama3-8b", "--batch", "8"]),
    ("inference", ["--inference", "--params", "70e9", "--queries-per-day", "1e7"]),
    ("inference", ["serve", "--params", "8e9", "--batching", "static", "--batch", "16", "--gpu", "h200"]),
    ("plan", ["plan", "--budget-flops", "1e21", "--gpus", "8", "--no-compare"]),
]


def _out(argv, capsys) -> dict:
    main([*argv, "--json"])
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("mode,argv", CASES, ids=[" ".join(a) for _, a in CASES])
def test_output_validates_against_its_schema(mode, argv, capsys):
    d = _out(argv, capsys)
    schema = json.loads((SCHEMA_DIR / f"{mode}.schema.json").read_text())
    jsonschema.validate(d, schema)
    assert d["mode"] == mode and d["schema_version"] == 1 and isinstance(d["config"], dict)


def test_schema_rejects_a_missing_key(capsys):
    d = _out(CASES[0][1], capsys)
    schema = json.loads((SCHEMA_DIR / "training.schema.json").read_text())
    del d["gpu_hours"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, schema)


@pytest.mark.parametrize("kind", ["gpus", "regions", "presets"])
def test_listings_are_json_with_a_schema_version(kind, capsys):
    main([f"--list-{kind}", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["mode"] == f"list-{kind}" and d["schema_version"] == 1 and len(d["rows"]) > 3
