"""Scaling laws as data and pure functions: predicted loss and the compute-optimal (params, tokens) split.

Constants live in ``hardware_db/scaling_laws.csv`` (one row per constant, with its source); this
module only evaluates them. Conventions: N = parameters, D = training tokens, C = 6 N D FLOPs
(the Kaplan/Chinchilla approximation used to state the laws), T = lifetime inference tokens.

Laws:
- ``chinchilla3`` (default): Hoffmann et al. 2022 Eq. 10, L = E + A/N^alpha + B/D^beta (Approach 3).
- ``besiroglu2024``: the same form refitted by Besiroglu et al. 2024 (arXiv:2404.10102).
- ``kaplan2020``: Kaplan et al. 2020 Eq. 1.5 loss and the compute-optimal N ~ 1.3e9 (C/PF-day)^0.73.

Inference in view (Sardana et al. 2023, "Beyond Chinchilla-Optimal", arXiv:2401.00448): the optimum
minimises training + inference FLOPs, 6 N D + 2 N T, at a given loss. Its Lagrange condition is
``(6 D + 2 T) beta B D^-(beta+1) = 6 alpha A N^-alpha`` (with T = 0 it is Chinchilla's optimum).

Repeated data (Muennighoff et al. 2023, arXiv:2305.16264): with U unique tokens trained for D tokens,
the effective data is D' = U + U R* (1 - exp(-R / R*)), R = D/U - 1 repetitions, R* ~ 15.4.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

from estimator.errors import EstimatorInputError, suggest

PF_DAY_FLOP = 1e15 * 86400  # Kaplan et al. 2020: 1 PF-day = 8.64e19 FLOP
LAWS = ("chinchilla3", "besiroglu2024", "kaplan2020")
DEFAULT_LAW = "chinchilla3"
LAW_NAMES = {
    "chinchilla3": "Chinchilla Approach 3 (Hoffmann et al. 2022, Eq. 10)",
    "besiroglu2024": "Chinchilla refit (Besiroglu et al. 2024, arXiv:2404.10102)",
    "kaplan2020": "Kaplan et al. 2020 (Eq. 1.5; N_opt ~ C^0.73)",
}


@dataclass(frozen=True)
class Constant:
    """One row of scaling_laws.csv."""

    key: str
    value: float
    low: float | None
    high: float | None
    unit: str
    source: str


@cache
def constants() -> dict[str, Constant]:
    """All rows of ``hardware_db/scaling_laws.csv``, validated (unique keys, finite positive values, a source)."""
    text = resources.files("hardware_db").joinpath("scaling_laws.csv").read_text(encoding="utf-8")
    out: dict[str, Constant] = {}
    for i, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        key = row["key"].strip()
        try:
            v = float(row["value"])
        except ValueError:
            raise ValueError(f"scaling_laws.csv line {i}: value {row['value']!r} is not a number") from None
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"scaling_laws.csv line {i}: {key} must be finite and positive")
        if not row.get("source", "").strip():
            raise ValueError(f"scaling_laws.csv line {i}: {key} has no source")
        if key in out:
            raise ValueError(f"scaling_laws.csv line {i}: duplicate key {key}")
        lo = float(row["low"]) if row.get("low") else None
        hi = float(row["high"]) if row.get("high") else None
        out[key] = Constant(key, v, lo, hi, row.get("unit", ""), row["source"].strip())
    return out


def constant(key: str) -> Constant:
    """One constant of hardware_db/scaling_laws.csv by key."""
    try:
        return constants()[key]
    except KeyError:
        raise KeyError(f"no scaling constant {key!r} in hardware_db/scaling_laws.csv") from None


@dataclass(frozen=True)
class ScalingLaw:
    """A fitted law. ``form`` is "chinchilla" (E + A/N^a + B/D^b) or "kaplan" (Kaplan Eq. 1.5)."""

    id: str
    name: str
    form: str
    coef: dict
    source: str

    # -------------------------------------------------------------- loss
    def loss(self, n: float, d: float) -> float:
        """Predicted final pre-training loss (nats/token, on the fitting paper's data) of N params on D tokens."""
        c = self.coef
        if self.form == "chinchilla":
            return c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d ** c["beta"]
        return ((c["n_c"] / n) ** (c["alpha_n"] / c["alpha_d"]) + c["d_c"] / d) ** c["alpha_d"]

    # -------------------------------------------------------------- optimum
    def tokens_for_params(self, n: float, inference_tokens: float = 0.0) -> float:
        """Tokens D for which N is the compute-optimal size (with T inference tokens: Sardana et al. 2023)."""
        c = self.coef
        if self.form == "kaplan":
            if inference_tokens:
                raise EstimatorInputError("--lifetime-inference-tokens needs a law of the form E + A/N^a + B/D^b",
                                          "use --scaling-law chinchilla3 or besiroglu2024")
            cflops = PF_DAY_FLOP * (n / c["n_opt_coef"]) ** (1.0 / c["n_opt_exp"])
            return cflops / (6.0 * n)
        a, b, A, B = c["alpha"], c["beta"], c["A"], c["B"]
        d0 = (b * B * n ** a / (a * A)) ** (1.0 / b)  # closed form at T = 0
        t = float(inference_tokens or 0.0)
        if t <= 0:
            return d0
        rhs = 6.0 * a * A * n ** -a

        def f(d):
            return (6.0 * d + 2.0 * t) * b * B * d ** -(b + 1.0) - rhs  # decreasing in d

        lo, hi = d0, d0 * 4.0
        while f(hi) > 0:
            lo, hi = hi, hi * 4.0
        for _ in range(100):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
            if hi / lo < 1 + 1e-12:
                break
        return math.sqrt(lo * hi)

    def allocate(self, c6: float, inference_tokens: float = 0.0, unique_tokens: float | None = None
                 ) -> tuple[float, float]:
        """The optimal (N, D) with 6 N D = ``c6`` FLOPs.

        Without a data limit: the N where 6 N tokens_for_params(N) = C. With ``unique_tokens``: the N
        that minimises the loss with Muennighoff's effective data (golden-section search on log N).
        """
        if c6 <= 0 or not math.isfinite(c6):
            raise EstimatorInputError(f"compute must be positive and finite, got {c6!r}", "pass a positive budget")
        if unique_tokens is not None:
            if inference_tokens:
                raise EstimatorInputError("--unique-tokens and --lifetime-inference-tokens cannot be combined",
                                          "pass only one of them")
            if self.form != "chinchilla":
                raise EstimatorInputError("--unique-tokens needs a law of the form E + A/N^a + B/D^b",
                                          "use --scaling-law chinchilla3 or besiroglu2024")

            def obj(logn):
                n = math.exp(logn)
                return self.loss(n, effective_tokens(c6 / (6 * n), unique_tokens))

            n0, _ = self.allocate(c6)
            lo, hi = math.log(n0) - 6, math.log(n0) + 3
            g = (math.sqrt(5) - 1) / 2
            x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
            f1, f2 = obj(x1), obj(x2)
            for _ in range(80):
                if f1 < f2:
                    hi, x2, f2 = x2, x1, f1
                    x1 = hi - g * (hi - lo)
                    f1 = obj(x1)
                else:
                    lo, x1, f1 = x1, x2, f2
                    x2 = lo + g * (hi - lo)
                    f2 = obj(x2)
            n = math.exp((lo + hi) / 2)
            return n, c6 / (6 * n)
        if self.form == "chinchilla" and not inference_tokens:
            a, b, A, B = (self.coef[k] for k in ("alpha", "beta", "A", "B"))
            g = (a * A / (b * B)) ** (1.0 / (a + b))
            n = g * (c6 / 6.0) ** (b / (a + b))  # Hoffmann et al. 2022 Eq. 4
            return n, c6 / (6.0 * n)
        lo, hi = 1e3, 1e16  # 6 N D(N) is increasing in N
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            if 6.0 * mid * self.tokens_for_params(mid, inference_tokens) > c6:
                hi = mid
            else:
                lo = mid
            if hi / lo < 1 + 1e-10:
                break
        n = math.sqrt(lo * hi)
        return n, self.tokens_for_params(n, inference_tokens)

    def exponents(self) -> tuple[float, float]:
        """(a, b) with N_opt ~ C^a and D_opt ~ C^b (no inference, no data limit)."""
        if self.form == "kaplan":
            return self.coef["n_opt_exp"], 1.0 - self.coef["n_opt_exp"]
        a, b = self.coef["alpha"], self.coef["beta"]
        return b / (a + b), a / (a + b)

    def to_dict(self) -> dict:
        """The law's id, name, form, constants and source."""
        return {"id": self.id, "name": self.name, "form": self.form, "constants": dict(self.coef),
                "source": self.source}


@cache
def get_law(name: str | None = None) -> ScalingLaw:
    """The scaling law ``name`` (default Chinchilla Approach 3) with its constants from scaling_laws.csv."""
    key = (name or DEFAULT_LAW).strip().lower()
    if key not in LAWS:
        raise EstimatorInputError(f"unknown scaling law {name!r}", suggest(key, LAWS))
    rows = {k.split(".", 1)[1]: v for k, v in constants().items() if k.startswith(key + ".")}
    form = "kaplan" if key == "kaplan2020" else "chinchilla"
    need = ("alpha_n", "alpha_d", "n_c", "d_c", "n_opt_coef", "n_opt_exp") if form == "kaplan" else (
        "E", "A", "B", "alpha", "beta")
    missing = [k for k in need if k not in rows]
    if missing:
        raise ValueError(f"scaling_laws.csv lacks {key}.{', '.join(missing)}")
    src = "; ".join(sorted({rows[k].source for k in need}))
    return ScalingLaw(key, LAW_NAMES[key], form, {k: rows[k].value for k in need}, src)


def effective_tokens(d: float, unique: float | None, r_star: float | None = None) -> float:
    """Muennighoff et al. 2023: value of D tokens drawn from U unique ones, D' = U + U R* (1 - e^(-R/R*))."""
    if unique is None or d <= unique:
        return d
    r_star = r_star or constant("muennighoff2023.r_d_star").value
    r = d / unique - 1.0
    return unique + unique * r_star * (1.0 - math.exp(-r / r_star))


def data_stock() -> Constant:
    """Villalobos et al. 2024: effective stock of public human-generated text, tokens (with 90% CI)."""
    return constant("villalobos2024.stock_tokens")


def hq_data_stock() -> Constant:
    """Villalobos et al. 2022 (arXiv:2211.04325v1): stock of high-quality language data, in tokens.

    The paper states it in words (4.6e12-1.7e13); they are converted with OpenAI's rule of thumb of
    ~4/3 tokens per English word (``openai.tokens_per_word``). ``value`` and ``low`` are the low end,
    the threshold of the plan's data warning; ``high`` is the high end.
    """
    w, f = constant("villalobos2022.hq_stock_words"), constant("openai.tokens_per_word")
    return Constant("villalobos2022.hq_stock_tokens", w.value * f.value, (w.low or w.value) * f.value,
                    (w.high or w.value) * f.value, "tokens",
                    f"{w.source}; x {f.value:.4g} tokens/word: {f.source}")
