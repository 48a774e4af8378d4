"""Refresh hardware_db/grid_snapshot/ from the installed codecarbon's packaged data.

Usage: ``python scripts/update-grid-snapshot.py [--date YYYY-MM-DD]`` in an environment with the codecarbon release
to snapshot (``pip install codecarbon==X``). Copies the four files hardware_db.regions reads, codecarbon's MIT
license, and writes SNAPSHOT.json (codecarbon version, date taken, sha256 of each file). Review the diff (which
regions moved and by how much: ``git diff --stat``, then tests/test_regions.py's pinned values) before committing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parents[1] / "hardware_db" / "grid_snapshot"
FILES = ("data/private_infra/global_energy_mix.json", "data/private_infra/{year}/usa_emissions.json",
         "data/private_infra/{year}/canada_energy_mix.json", "data/cloud/impact.csv")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--date", default=dt.date.today().isoformat(), help="date the snapshot is taken (default today)")
    a = p.parse_args(argv)
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        print("error: codecarbon is not installed; pip install codecarbon==<version to snapshot>", file=sys.stderr)
        return 2
    pkg = Path(next(iter(spec.submodule_search_locations)))
    years = sorted(p.parent.name for p in (pkg / "data" / "private_infra").glob("*/usa_emissions.json"))
    if not years:
        print(f"error: no data/private_infra/<year>/usa_emissions.json under {pkg}; snapshot a codecarbon >= 2.3",
              file=sys.stderr)
        return 2
    version = importlib.metadata.version("codecarbon")
    dist = importlib.metadata.distribution("codecarbon")
    licence = next((Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name == "LICENSE"), None)
    if licence is None or not licence.exists():
        print(f"error: codecarbon {version} ships no LICENSE file; take the snapshot from another release",
              file=sys.stderr)
        return 2
    if SNAPSHOT.exists():
        shutil.rmtree(SNAPSHOT / "data", ignore_errors=True)
    digests = {}
    for rel in (f.format(year=years[-1]) for f in FILES):
        dst = SNAPSHOT / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pkg / rel, dst)
        digests[rel] = hashlib.sha256(dst.read_bytes()).hexdigest()
    shutil.copyfile(licence, SNAPSHOT / "LICENSE")
    meta = {"codecarbon_version": version, "taken": a.date, "license": "MIT (LICENSE, codecarbon's own)",
            "upstream": "https://github.com/mlco2/codecarbon (codecarbon/data/)", "files": digests}
    (SNAPSHOT / "SNAPSHOT.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT} from codecarbon {version} ({len(digests)} files, {years[-1]} US/Canada folder)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
