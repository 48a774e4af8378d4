"""The training GPU-hours interval is derived from published runs, not typed in by hand.

REGENERATED DATA: the stored ``training_time_interval`` row of hardware_db/assumptions.csv depends on the time model.
When the model changes and ``test_assumption_equals_the_derivation`` fails, re-run
``python -m benchmarks.interval_fit --write`` (it rewrites that one row) and commit the row.
"""

from __future__ import annotations

import pytest

from benchmarks import interval_fit as fit
from benchmarks import training_bench as tb
from hardware_db import assumption

REGENERATE = "re-run `python -m benchmarks.interval_fit --write` and commit hardware_db/assumptions.csv"


@pytest.fixture(scope="module")
def derived() -> dict:
    return fit.derive()


def test_assumption_equals_the_derivation(derived):
    """The shipped low/high factors are the conformal 80% order statistics of reported / predicted over the fit
    runs."""
    a = assumption(fit.KEY)
    row = fit.assumption_row(derived)
    assert (a.low, a.high) == (float(row["low"]), float(row["high"])), REGENERATE
    assert float(a.value) == float(row["value"]), REGENERATE
    assert f"held-out coverage {derived['cv_coverage']:.0%}" in a.source, REGENERATE
    assert all(r.id in a.source for r in derived["runs"]), REGENERATE


def test_fit_rows_are_the_comparable_published_runs(derived):
    """Only one pre-training pass is fitted (hours_cover), and every fit run names its organisation."""
    runs = tb.load_runs().set_index("id")
    assert derived["n_runs"] >= 20 and derived["n_organisations"] >= 8
    for r in derived["runs"]:
        assert runs.loc[r.id, "hours_cover"] in tb.COMPARABLE_HOURS_COVER, r.id
        assert r.organisation == fit.ORGANISATION[r.id]
    ids = {r.id for r in derived["runs"]}
    assert not ids & {"llama3.2-1b", "llama3.1-405b", "palm-540b", "bloom-176b", "falcon-180b"}


def test_factors_are_the_conformal_order_statistics():
    ratios = [0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.5, 4.0, 9.0]  # n = 11: k_lo = floor(1.2) = 1, k_hi = ceil(10.8)
    assert fit.factors(ratios) == (0.5, 9.0)
    assert fit.factors(ratios[:-1] * 2) == (0.5, 4.0)  # n = 20: k_lo = floor(2.1) = 2, k_hi = ceil(18.9) = 19
    assert fit.factors(ratios, conformal=False) == (1.0, 4.0)  # numpy linear quantile: p10 at index 1, p90 at 9


def test_cross_validation_holds_out_whole_organisations():
    runs = [fit.FitRun(f"a{i}", "A", 1.0 + i / 10, 1.0) for i in range(5)] + [
        fit.FitRun(f"b{i}", "B", 3.0 + i / 10, 1.0) for i in range(5)]
    folds = {f.organisation: f for f in fit.cross_validate(runs)}
    # fitted on B alone, A's ratios (1.0-1.4) lie below B's interval: none inside
    assert folds["A"].low >= 3.0 and not any(ok for *_, ok in folds["A"].runs)
    d = fit.derive(runs)
    assert d["cv_coverage"] == 0.0 and d["n_organisations"] == 2


def test_estimator_reads_the_factors():
    from estimator.ranges import training_time_factors

    lo, hi, rec = training_time_factors()
    a = assumption(fit.KEY)
    assert (lo, hi) == (a.low, a.high) and lo < hi
    assert "interval_fit" in rec["training_time_interval"].source


def test_write_row_replaces_only_that_row(tmp_path, derived):
    path = tmp_path / "assumptions.csv"
    path.write_text(fit.ASSUMPTIONS_CSV.read_text(encoding="utf-8"), encoding="utf-8")
    before = path.read_text(encoding="utf-8").splitlines()
    fit.write_row(fit.assumption_row(derived) | {"low": "0.5"}, path)
    after = path.read_text(encoding="utf-8").splitlines()
    assert len(after) == len(before)
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(changed) == 1 and changed[0][1].startswith(fit.KEY + ",1,0.5,")
