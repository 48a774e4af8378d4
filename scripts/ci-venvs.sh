#!/usr/bin/env bash
# The package as a user gets it, in fresh virtual environments (run by .ci/run after scripts/test.sh):
#   1. build the sdist and the wheel (python -m build) and check the sdist carries tests/data and the grid snapshot;
#   2. "wheel":  the wheel installed non-editable, newest versions, smoke subset;
#   3. "lowest": the wheel on the lowest declared versions (scripts/lowest-constraints.txt, == pins), same smoke subset,
#      then the CLI again after upgrading click alone (the lowest typer beside the newest click).
# The smoke subset runs from a folder outside the repository, so the installed package is tested, not the source.
# Usage: bash scripts/ci-venvs.sh [all|wheel|lowest]   (CONSTRAINTS=FILE tries other pins for the "lowest" venv)
# Needs no GPU; network only to the package registries; never installs torch (no extra is installed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WHICH=${1:-all}
CONSTRAINTS=${CONSTRAINTS:-$ROOT/scripts/lowest-constraints.txt}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ci-venvs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
# files of the suite that need no extra (no torch, streamlit, matplotlib, hypothesis)
SMOKE_TESTS=(test_packaging.py test_regions.py test_cli.py test_presets.py test_flops.py test_memory.py test_hardware_db.py
            test_training.py test_inference.py test_planning.py test_context_parallel.py)

# pip warns about every package the machine's local indexes lack; that is noise here, everything else is shown
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

step() { printf '== %s (%ss)\n' "$1" "$SECONDS"; }

fail() { echo "error: $1; $2" >&2; exit 1; }

build() {
  step "build sdist and wheel"
  "$PY" -m venv "$WORK/build"
  quiet_pip "$WORK/build/bin/python" -m pip install -q build
  # copy the tree so the build's egg-info and build/ folders never land in the checkout
  mkdir "$WORK/src"
  git -C "$ROOT" ls-files -co --exclude-standard -z | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK/src" 2>/dev/null) || true
  "$WORK/build/bin/python" -m build -q --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; fail "python -m build failed" "see the log above"; }
  local sdist listing wheel_listing
  sdist=$(ls "$WORK"/dist/*.tar.gz)
  listing=$(tar -tzf "$sdist")
  for want in tests/data/hf_configs/ hardware_db/grid_snapshot/SNAPSHOT.json hardware_db/grid_snapshot/LICENSE \
              scripts/lowest-constraints.txt; do
    grep -q "/$want" <<<"$listing" || fail "the sdist lacks $want" "add it to MANIFEST.in"
  done
  # (listings in variables, not pipes: grep -q would close a pipe early and fail it under pipefail)
  wheel_listing=$("$PY" -m zipfile -l "$(ls "$WORK"/dist/*.whl)")
  grep -q "hardware_db/grid_snapshot/data/private_infra/global_energy_mix.json" <<<"$wheel_listing" \
    || fail "the wheel lacks the grid snapshot" "add it to [tool.setuptools.package-data] in pyproject.toml"
  echo "sdist $(basename "$sdist"): $(wc -l <<<"$listing") entries ($(grep -c '/tests/data/' <<<"$listing") under tests/data)"
}

smoke() {  # $1: venv folder
  local v=$1 run
  run=$(mktemp -d "$WORK/run.XXXXXX")
  # a cache of this venv's own: pint's cache_folder=":auto:" records absolute paths into the venv, which a later
  # venv with the same pint would then read after this one is deleted (FileNotFoundError .../constants_en.txt)
  local -x XDG_CACHE_HOME="$run/cache"
  cd "$run"
  "$v/bin/python" - "$v" <<'EOF'
import sys, estimator, hardware_db
for m in (estimator, hardware_db):
    assert m.__file__.startswith(sys.argv[1]), f"{m.__name__} imported from {m.__file__}, not the venv"
EOF
  "$v/bin/estimate" --params 1e12 --tokens 13e12 --json >train.json
  "$v/bin/estimate" --inference --params 70e9 --gpu h100-sxm --prompt-tokens 1000 --output-tokens 500 --batch 64 \
    --json >serve.json
  for r in DE FR CA-QC US-VA gcp:us-east4; do "$v/bin/estimate" --params 7e9 --tokens 2e12 --region "$r" --json >"region-$r.json"; done
  "$v/bin/python" - <<'EOF'
import json, pathlib
assert json.loads(pathlib.Path("train.json").read_text())["mode"] == "training"
assert json.loads(pathlib.Path("serve.json").read_text())["mode"] == "inference"
for p in pathlib.Path(".").glob("region-*.json"):
    json.loads(p.read_text())
EOF
  "$v/bin/estimate" --list-regions >/dev/null
  "$v/bin/python" -m estimator --help >/dev/null
  if "$v/bin/estimate" --params lots 2>err.txt; then fail "estimate --params lots exited 0" "it must exit 2"; fi
  grep -q '^error: ' err.txt || fail "estimate --params lots printed $(head -c 200 err.txt)" "print error: <what>; <fix>"
  "$v/bin/estimate-benchmark" --only claims --out bench >bench.txt
  [ -s bench/REPORT-claims.md ] || fail "estimate-benchmark wrote no report" "see bench.txt"
  "$v/bin/estimate-benchmark" --only training --out bench >bench.txt  # no matplotlib here: report, no plot, a note
  grep -q "^note: matplotlib is not installed" bench.txt || fail "estimate-benchmark gave no note without matplotlib" \
    "see benchmarks/cli.py"
  printf '[pytest]\nmarkers =\n    gpu: needs an NVIDIA GPU\n    slow: longer end-to-end tests\n' >pytest.ini
  "$v/bin/python" -m pytest -q -p no:cacheprovider -c pytest.ini --rootdir "$run" \
    "${SMOKE_TESTS[@]/#/$ROOT/tests/}"
  cd "$ROOT"
}

venv() {  # $1: name; rest: pip arguments
  local name=$1; shift
  step "venv $name"
  "$PY" -m venv "$WORK/$name"
  quiet_pip "$WORK/$name/bin/python" -m pip install -q "$@" "$(ls "$WORK"/dist/*.whl)" pytest
  "$WORK/$name/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(pint|pandas|numpy|typer|click|rich|pycountry)==' | tr '\n' ' '; echo
  smoke "$WORK/$name"
}

newest_click() {  # the lowest typer beside the newest click: typer wraps click, and that pair broke 0.12-0.15
  local v=$WORK/lowest
  local -x XDG_CACHE_HOME="$WORK/cache-newest-click"  # pint's cache, as in smoke()
  step "lowest venv, newest click"
  quiet_pip "$v/bin/python" -m pip install -q --upgrade click
  "$v/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(typer|click)==' | tr '\n' ' '; echo
  cd "$WORK"
  "$v/bin/estimate" --help >/dev/null
  "$v/bin/estimate" --params 7e9 --tokens 2e12 --tp 2 --json >/dev/null
  if "$v/bin/estimate" --nonsense 2>err.txt; then fail "estimate --nonsense exited 0" "it must exit 2"; fi
  grep -q '^error: unknown option --nonsense' err.txt || fail "estimate --nonsense printed $(head -c 200 err.txt)" \
    "raise the typer floor in pyproject.toml"
  "$v/bin/python" -m pytest -q -p no:cacheprovider -c /dev/null --rootdir "$WORK" "$ROOT/tests/test_cli.py"
  cd "$ROOT"
}

build
case $WHICH in
  all) venv wheel; venv lowest --constraint "$CONSTRAINTS"; newest_click ;;
  wheel) venv wheel ;;
  lowest) venv lowest --constraint "$CONSTRAINTS"; newest_click ;;
  *) fail "unknown venv '$WHICH'" "use all, wheel or lowest" ;;
esac
step "ci-venvs done"
