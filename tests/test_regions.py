"""hardware_db.regions: grid intensity from the shipped snapshot of codecarbon's data, without codecarbon."""

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from estimator.errors import EstimatorInputError
from hardware_db import regions
from hardware_db.regions import grid_data_provenance, grid_intensity, list_regions


def test_france_is_low_and_poland_india_high():
    assert grid_intensity("France").g_per_kwh < 100
    assert grid_intensity("FRA").g_per_kwh == grid_intensity("fr").g_per_kwh
    assert grid_intensity("POL").g_per_kwh > 500
    assert grid_intensity("India").g_per_kwh > 500


def test_usa_by_iso3_iso2_and_source_names_codecarbon():
    usa = grid_intensity("usa")
    assert usa is grid_intensity("US")
    assert usa.kind == "country" and 200 < usa.g_per_kwh < 600
    assert "codecarbon" in usa.source and "global_energy_mix.json" in usa.source


def test_us_state_by_code_and_name():
    va = grid_intensity("US-VA")
    assert va.kind == "us-state" and va is grid_intensity("virginia")
    assert 100 < va.g_per_kwh < 800  # lbs/MWh converted to g/kWh
    assert grid_intensity("US-GA").kind == "us-state"
    assert grid_intensity("Georgia").kind == "country"  # documented: the country wins the bare name


def test_canadian_province_and_cloud_region():
    assert grid_intensity("CA-QC").kind == "ca-province"
    assert grid_intensity("CA-QC").g_per_kwh < grid_intensity("CA-AB").g_per_kwh
    east4 = grid_intensity("gcp:us-east4")
    assert east4.kind == "cloud" and east4 is grid_intensity("US-EAST4")
    assert east4.g_per_kwh > 0


def test_unknown_region_suggests():
    with pytest.raises(EstimatorInputError) as err:
        grid_intensity("Frnace")
    assert "FRA" in str(err.value) and "estimate --list-regions" in str(err.value)


def test_list_regions_sorted_and_covers_kinds():
    regions = list_regions()
    assert len(regions) > 200
    assert {r.kind for r in regions} == {"country", "us-state", "ca-province", "cloud"}
    countries = [r.region for r in regions if r.kind == "country"]
    assert countries == sorted(countries)


def test_codecarbon_neither_imported_nor_needed():
    # codecarbon blocked outright: the snapshot alone answers, and the numbers are the snapshot's
    code = ("import sys; sys.modules['codecarbon'] = None; from hardware_db.regions import grid_intensity, "
            "list_regions; list_regions(); print(round(grid_intensity('US-VA').g_per_kwh, 1))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "244.8"


def test_values_are_the_snapshots_not_the_installed_codecarbons():
    # pinned to the snapshot (codecarbon 3.3.2): 3.3.0 gave US-VA 369.1, 2.3.0 gave France 67.4
    assert grid_intensity("US-VA").g_per_kwh == pytest.approx(244.8, abs=0.05)
    assert grid_intensity("FR").g_per_kwh == pytest.approx(56.0, abs=0.05)
    assert grid_intensity("DE").g_per_kwh == pytest.approx(380.95, abs=0.01)
    assert grid_intensity("CA-QC").g_per_kwh == pytest.approx(3.9, abs=0.05)
    assert grid_intensity("CA-YT").name == "Yukon"  # pycountry < 22.1.10 calls it "Yukon Territory" and loses it
    assert len(list_regions()) == 316


def test_provenance_names_source_version_and_vintage():
    prov = grid_data_provenance()
    meta = json.loads((regions.SNAPSHOT_DIR / "SNAPSHOT.json").read_text(encoding="utf-8"))
    assert prov.codecarbon_version == meta["codecarbon_version"] == "3.3.2"
    assert prov.taken == meta["taken"] and prov.taken in prov.source and "codecarbon 3.3.2" in prov.source
    assert "eGRID 2023" in prov.vintage and "OWID" in prov.vintage and "mostly 2022" in prov.vintage
    assert set(prov.to_dict()) == {"source", "codecarbon_version", "vintage", "taken", "license", "path"}
    va = grid_intensity("US-VA")
    assert (va.vintage, va.codecarbon_version) == ("2023", "3.3.2") and "snapshot taken" in va.source
    assert grid_intensity("FRA").vintage == "2023"
    assert grid_intensity("gcp:us-east4").vintage == "not stated"


def test_an_altered_snapshot_is_refused(tmp_path):
    snap = tmp_path / "grid_snapshot"
    shutil.copytree(regions.SNAPSHOT_DIR, snap)
    regions.read_snapshot_meta(snap)  # an intact copy passes
    f = snap / "data" / "private_infra" / "global_energy_mix.json"
    f.write_text(f.read_text(encoding="utf-8").replace('"carbon_intensity": 56.039', '"carbon_intensity": 5.6'))
    with pytest.raises(EstimatorInputError, match="missing or altered"):
        regions.read_snapshot_meta(snap)


def test_snapshot_matches_the_installed_codecarbon_of_the_same_release():
    """Where the snapshot's codecarbon release is installed (the profiler extra), its data files are identical."""
    spec = importlib.util.find_spec("codecarbon")
    version = grid_data_provenance().codecarbon_version
    if spec is None or importlib.metadata.version("codecarbon") != version:
        pytest.skip(f"codecarbon {version} is not installed")
    installed = Path(next(iter(spec.submodule_search_locations)))
    meta = json.loads((regions.SNAPSHOT_DIR / "SNAPSHOT.json").read_text(encoding="utf-8"))
    for rel in meta["files"]:
        assert (installed / rel).read_bytes() == (regions.SNAPSHOT_DIR / rel).read_bytes(), rel
    fresh = {e.region: e.g_per_kwh for e in regions.load_intensities(installed / "data", version)}
    assert fresh == {e.region: e.g_per_kwh for e in list_regions()}
