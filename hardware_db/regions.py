"""Grid carbon intensity (gCO2e/kWh) by country, US state, Canadian province and cloud region.

The numbers are codecarbon's packaged data files, read as data from a dated snapshot shipped in
``hardware_db/grid_snapshot/`` (codecarbon's MIT license and ``SNAPSHOT.json``: the codecarbon version, the date
taken and a sha256 per file), so an estimate does not move when the installed codecarbon changes: its patch releases
change values (US-VA 369.1 g/kWh under 3.3.0, 244.8 under 3.3.2; France 67.4 under 2.3.0, 56.0 under 3.3.2).
codecarbon itself is not needed on the estimate path. ``grid_data_provenance()`` names the source, codecarbon's
version and the data's vintage for an estimate's assumptions; ``scripts/update-grid-snapshot.py`` refreshes the
snapshot. ISO-2 country codes and Canadian province codes come from the ISO 3166 tables shipped with ``pycountry``,
read as package data (``importlib.util.find_spec`` locates it without importing it).

Files read (paths relative to the snapshot, laid out as in the codecarbon package):

* ``data/private_infra/global_energy_mix.json`` — ISO-3 countries, field ``carbon_intensity`` (OWID
  ``carbon_intensity_elec``; the year is per country, field ``year``).
* ``data/private_infra/<year>/usa_emissions.json`` — US states in lbs/MWh, converted with
  0.45359237 (lb -> kg; lbs/MWh -> g/kWh is the same factor).
* ``data/private_infra/<year>/canada_energy_mix.json`` — provincial generation shares (%); intensity is
  computed as codecarbon does (``core/emissions.py`` ``_region_energy_mix_to_emissions_rate``): only coal,
  petroleum and natural gas count (995.73 / 816.69 / 743.84 g/kWh), so values are lower bounds.
* ``data/cloud/impact.csv`` — cloud regions (GCP only in recent codecarbon), field ``impact`` in g/kWh.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import importlib.util
import json
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from estimator.errors import EstimatorInputError, suggest

SNAPSHOT_DIR = Path(__file__).resolve().parent / "grid_snapshot"
LBS_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 0.45359237 kg; lbs/MWh * that = kg/MWh = g/kWh
# codecarbon core/emissions.py _region_energy_mix_to_emissions_rate, in g/kWh (non-fossil sources count 0)
CANADA_FOSSIL_G_PER_KWH = {"coal": 995.725971, "petroleum": 816.6885263, "naturalGas": 743.8415916}
KINDS = ("country", "us-state", "ca-province", "cloud")


@dataclass(frozen=True)
class GridIntensity:
    """Average grid carbon intensity of one region, in gCO2e per kWh, with where it came from.

    ``vintage`` is the year the number describes (OWID's per-country year, eGRID's year, the Canadian mix's
    folder), or "not stated"; ``codecarbon_version`` is the release the data was taken from.
    """

    region: str
    name: str
    g_per_kwh: float
    kind: str
    source: str
    vintage: str = "not stated"
    codecarbon_version: str = "unknown"


@dataclass(frozen=True)
class GridDataProvenance:
    """Where every grid intensity comes from: for an estimate's assumptions.

    ``source``: one line naming the data and the snapshot; ``codecarbon_version``: the release it was copied from;
    ``vintage``: the years the data describe, per data set; ``taken``: the date the snapshot was taken (ISO 8601);
    ``license``: the data's license; ``path``: the folder read.
    """

    source: str
    codecarbon_version: str
    vintage: str
    taken: str
    license: str
    path: str

    def to_dict(self) -> dict[str, str]:
        """The provenance as a plain dict of strings (for an estimate's assumptions or JSON)."""
        return asdict(self)


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def read_snapshot_meta(root: Path) -> dict:
    """SNAPSHOT.json of a snapshot folder, after checking every file against its sha256 (not cached)."""
    fix = "reinstall llm-cost-estimator, or refresh it with scripts/update-grid-snapshot.py"
    try:
        meta = json.loads((root / "SNAPSHOT.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise EstimatorInputError(f"grid-intensity snapshot {root} is unreadable ({err})", fix) from err
    for rel, digest in meta.get("files", {}).items():
        try:
            ok = hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest
        except OSError:
            ok = False
        if not ok:
            raise EstimatorInputError(f"grid-intensity snapshot file {root / rel} is missing or altered", fix)
    return meta


_snapshot_meta = cache(read_snapshot_meta)


def _newest(data: Path, filename: str) -> Path | None:
    """Newest ``private_infra/<year>/filename`` (codecarbon keeps dated folders)."""
    found = sorted((data / "private_infra").glob(f"*/{filename}"), key=lambda p: p.parent.name)
    return found[-1] if found else None


class _Reader:
    """Reads one codecarbon-shaped ``data/`` folder, labelling each row with the release and snapshot date."""

    def __init__(self, data: Path, version: str, taken: str | None):
        self.data, self.version, self.taken = data, version, taken

    def src(self, rel: Path | str, extra: str = "") -> str:
        base = f"codecarbon {self.version} {Path(rel).as_posix()}"
        if self.taken:
            base += f" (snapshot taken {self.taken})"
        return f"{base}; {extra}" if extra else base

    def row(self, region: str, name: str, g: float, kind: str, rel: Path | str, extra: str,
            vintage: object) -> GridIntensity:
        v = str(vintage) if vintage not in (None, "") else "not stated"
        return GridIntensity(region, name, g, kind, self.src(rel, extra), v, self.version)


def _countries(r: _Reader) -> list[GridIntensity]:
    rel = "data/private_infra/global_energy_mix.json"
    mix = json.loads((r.data / "private_infra" / "global_energy_mix.json").read_text(encoding="utf-8"))
    out = []
    for iso3, row in mix.items():
        g = row.get("carbon_intensity")
        if g is None or not g > 0:
            continue
        year = row.get("year")
        out.append(r.row(iso3.upper(), row.get("country_name", iso3), float(g), "country", rel,
                         f"OWID carbon_intensity_elec, {year or 'year not stated'}", year))
    return out


def _us_states(r: _Reader) -> list[GridIntensity]:
    path = _newest(r.data, "usa_emissions.json")
    if path is None:
        return []
    raw = json.loads(path.read_text(encoding="utf-8"))
    meta = raw.get("_source", {})
    about = f"{meta['name']}, {meta.get('year', '')}".strip(", ") if "name" in meta else "vintage not stated"
    rel = path.relative_to(r.data.parent)
    out = []
    for state, row in raw.items():
        code = str(row.get("regionCode", "")) if isinstance(row, dict) else ""
        if state.startswith("_") or len(code) != 2 or "emissions" not in row:
            continue
        g = float(row["emissions"]) * LBS_PER_MWH_TO_G_PER_KWH
        out.append(r.row(f"US-{code.upper()}", state.title(), g, "us-state", rel,
                         f"{about}; lbs/MWh x 0.45359237", meta.get("year")))
    return out


def _ca_provinces(r: _Reader, codes: dict[str, str]) -> list[GridIntensity]:
    path = _newest(r.data, "canada_energy_mix.json")
    if path is None:
        return []
    rel = path.relative_to(r.data.parent)
    out = []
    for prov, mix in json.loads(path.read_text(encoding="utf-8")).items():
        code = codes.get(prov.lower())
        if code is None or not mix.get("total"):
            continue
        g = sum(mix.get(k, 0.0) * f for k, f in CANADA_FOSSIL_G_PER_KWH.items()) / mix["total"]
        out.append(r.row(code, prov.title(), g, "ca-province", rel,
                         "generation shares x fossil factors as in codecarbon; lower bound", path.parent.name))
    return out


def _cloud(r: _Reader) -> list[GridIntensity]:
    path = r.data / "cloud" / "impact.csv"
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("impact") or not row.get("region"):
                continue
            place = ", ".join(x for x in (row.get("city"), row.get("country_name")) if x)
            region = f"{row['provider'].strip().lower()}:{row['region'].strip().lower()}"
            out.append(r.row(region, f"{row.get('providerName') or row['provider']} {row['region']} ({place})",
                             float(row["impact"]), "cloud", "data/cloud/impact.csv",
                             row.get("source") or "source not stated", None))
    return out


def _iso_tables() -> tuple[dict[str, str], dict[str, str]]:
    """(ISO-2 -> ISO-3 for countries, lower-case Canadian province name -> 'CA-XX') from pycountry's data."""
    pkg = _package_dir("pycountry")
    if pkg is None:
        return {}, {}
    db = pkg / "databases"
    countries = json.loads((db / "iso3166-1.json").read_text(encoding="utf-8"))["3166-1"]
    subdivisions = json.loads((db / "iso3166-2.json").read_text(encoding="utf-8"))["3166-2"]
    iso2 = {c["alpha_2"].upper(): c["alpha_3"].upper() for c in countries}
    provinces = {s["name"].lower(): s["code"] for s in subdivisions if s["code"].startswith("CA-")}
    return iso2, provinces


def load_intensities(data: Path, codecarbon_version: str, taken: str | None = None) -> list[GridIntensity]:
    """Every region in a codecarbon-shaped ``data/`` folder (the snapshot's, or an installed codecarbon's)."""
    r = _Reader(data, codecarbon_version, taken)
    _, provinces = _iso_tables()
    return _countries(r) + _us_states(r) + _ca_provinces(r, provinces) + _cloud(r)


@cache
def _table() -> tuple[dict[str, GridIntensity], dict[str, str]]:
    """(region id -> GridIntensity, lower-case name/alias -> region id). First registration of a name wins."""
    meta = _snapshot_meta(SNAPSHOT_DIR)
    entries = load_intensities(SNAPSHOT_DIR / "data", meta["codecarbon_version"], meta["taken"])
    iso2, _ = _iso_tables()
    by_id: dict[str, GridIntensity] = {}
    names: dict[str, str] = {}
    iso3_to_2 = {v: k for k, v in iso2.items()}
    for e in entries:
        if e.region in by_id:
            raise ValueError(f"duplicate region {e.region!r} in codecarbon data")
        if not e.g_per_kwh >= 0:
            raise ValueError(f"region {e.region!r}: intensity must be >= 0, got {e.g_per_kwh}")
        by_id[e.region] = e
        aliases = [e.region, e.name]
        if e.kind == "country" and e.region in iso3_to_2:
            aliases.append(iso3_to_2[e.region])
        if e.kind == "cloud":
            aliases.append(e.region.split(":", 1)[1])
        for a in aliases:
            names.setdefault(a.strip().lower(), e.region)
    return by_id, names


def _vintage_of(rows: list[GridIntensity], label: str) -> str:
    years = [r.vintage for r in rows if r.vintage != "not stated"]
    if not years:
        return f"{label} (year not stated)" if rows else ""
    common, _ = Counter(years).most_common(1)[0]
    lo, hi = min(years), max(years)
    span = common if lo == hi else f"{lo}-{hi}, mostly {common}"
    return f"{label} {span}"


@cache
def grid_data_provenance() -> GridDataProvenance:
    """Source, codecarbon version and vintage of every grid intensity (the shipped snapshot), for assumptions."""
    meta = _snapshot_meta(SNAPSHOT_DIR)
    by_kind: dict[str, list[GridIntensity]] = {k: [] for k in KINDS}
    for e in _table()[0].values():
        by_kind[e.kind].append(e)
    labels = {"country": "countries: OWID carbon_intensity_elec", "us-state": "US states: EPA eGRID",
              "ca-province": "Canadian provinces: generation mix", "cloud": "cloud regions: provider figures"}
    vintage = "; ".join(v for k in KINDS if (v := _vintage_of(by_kind[k], labels[k])))
    version = meta["codecarbon_version"]
    return GridDataProvenance(
        source=f"codecarbon {version} packaged data, snapshot taken {meta['taken']} (hardware_db/grid_snapshot)",
        codecarbon_version=version, vintage=vintage, taken=meta["taken"], license=meta.get("license", "MIT"),
        path=str(SNAPSHOT_DIR))


def grid_intensity(region: str) -> GridIntensity:
    """Grid intensity for an ISO-3/ISO-2 country code or name, 'US-VA'/'Virginia', 'CA-QC', or
    'gcp:us-east4'/'us-east4'.

    Case-insensitive. A name shared by a country and a US state ('Georgia') means the country; use 'US-GA'.
    """
    by_id, names = _table()
    key = region.strip().lower()
    if key in names:
        return by_id[names[key]]
    close = difflib.get_close_matches(key, list(names), n=6, cutoff=0.6)
    ids = list(dict.fromkeys(names[c] for c in close))[:3]
    hint = f"did you mean {', '.join(ids)}?" if ids else suggest(key, by_id)
    raise EstimatorInputError(f"unknown region {region!r}", f"{hint} (estimate --list-regions)")


def list_regions() -> list[GridIntensity]:
    """All regions, sorted by kind (country, us-state, ca-province, cloud) then id."""
    return sorted(_table()[0].values(), key=lambda e: (KINDS.index(e.kind), e.region))


__all__ = ["GridDataProvenance", "GridIntensity", "grid_data_provenance", "grid_intensity", "list_regions",
           "load_intensities"]
