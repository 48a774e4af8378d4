"""Regenerate docs/schema/*.schema.json (JSON Schema draft 2020-12) from representative `estimate --json` outputs.

Run after a deliberate change of the output: python scripts/json_schema.py. Top-level keys present in every sample
are required; nested records (assumptions, ranges, config) are typed but vary by input. tests/test_json_schema.py
validates real outputs against the files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "schema"
COMMANDS = {"training": "train", "inference": "serve", "plan": "plan"}
SAMPLES = {
    "training": [
        ["--params", "1e12", "--tokens", "13e12"],
        ["--params", "7e9", "--tokens", "2e12", "--gpus", "64", "--gpu", "tpu-v4"],
        ["--preset", "mixtral-8x7b", "--tokens", "1e12", "--gpus", "256", "--owned", "--capex-per-gpu", "3e4",
         "--electricity-usd-per-kwh", "0.1"],
        ["--params", "8e9", "--tokens", "1e12", "--gpus", "64", "--mfu", "0.4"],
    ],
    "inference": [
        ["serve", "--preset", "llama3-70b", "--queries-per-day", "1e8"],
        ["serve", "--params", "8e9", "--batch", "8", "--gpu", "a100-80gb"],
        ["serve", "--preset", "mixtral-8x7b", "--batching", "static", "--batch", "16"],
        ["serve", "--params", "7e9", "--gpu", "tpu-v4", "--batch", "4"],
    ],
    "plan": [
        ["plan", "--budget-flops", "1e22", "--gpus", "64"],
        ["plan", "--budget-usd", "1e6", "--gpus", "64", "--no-compare"],
    ],
}


def json_type(v: object) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def merge(vals: list, depth: int = 0) -> dict:
    """A schema that every value in ``vals`` satisfies (objects recursed two levels deep)."""
    types = sorted({json_type(v) for v in vals})
    if depth >= 2 and types == ["null"]:
        return {}  # only ever unset in the samples: any type
    if "integer" in types and "number" in types:
        types.remove("integer")
    if depth >= 2 and "null" not in types:
        types = sorted([*types, "null"])  # inputs and figures may be unset
    s: dict = {"type": types[0] if len(types) == 1 else types}
    objs = [v for v in vals if isinstance(v, dict)]
    if objs and depth < 2:
        keys = sorted(set().union(*objs))
        s["properties"] = {k: merge([o[k] for o in objs if k in o], depth + 1) for k in keys}
        required = sorted(set.intersection(*(set(o) for o in objs)))
        if required and depth == 0:
            s["required"] = required
    return s


def main() -> None:
    for mode, cmds in SAMPLES.items():
        outs = [json.loads(subprocess.run([sys.executable, "-m", "estimator", *c, "--json"], capture_output=True,
                                          text=True, check=True).stdout) for c in cmds]
        body = merge(outs)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"llm-cost-estimator/{mode}.schema.json",
                  "title": f"estimate --json output, mode {mode!r} (schema_version 1)",
                  "description": (f"Keys and types of the one JSON object `estimate {COMMANDS[mode]} --json` prints. "
                                  "Units are in the key names (_ms, _w, _j, _mwh, _usd, _gb...). Derived from "
                                  "representative outputs by scripts/json_schema.py and checked against outputs by "
                                  "tests/test_json_schema.py; additive changes keep schema_version 1, a key that "
                                  "changes meaning or goes away bumps it."), **body}
        schema["properties"]["mode"] = {"const": mode}
        schema["properties"]["schema_version"] = {"const": 1}
        (OUT / f"{mode}.schema.json").write_text(json.dumps(schema, indent=1) + "\n")
        print(mode, len(schema["properties"]), "keys,", len(schema.get("required", [])), "required")


if __name__ == "__main__":
    main()
