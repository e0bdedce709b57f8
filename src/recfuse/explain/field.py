"""The agronomy side of the XAI study: a yield model, honest validation, SHAP and the N advice.

Las Rosas corn (``agronomy``): yield-monitor points of one farm in 1999 and 2001 with the
nitrogen rate applied (an on-farm trial: strips of six N rates), the topographic zone (W: west
slope, HT: hilltop, E: east slope, LO: lowland) and soil brightness (a proxy for low organic
matter). Yield is in quintals/ha (100 kg), nitrogen in kg/ha.

Nearby yield-monitor points are not independent (same soil, same pass of the combine), so the
model is validated on spatial blocks: the field is cut into square cells of ``block_m`` metres
(from latitude/longitude, equirectangular) and whole cells are held out together
(`sklearn.model_selection.GroupKFold`). A random split is reported beside it to show how much it
flatters the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold, KFold

FEATURES = ("nitro", "topo", "bv", "year")
ZONES = ("W", "HT", "E", "LO")
#: model columns: the zone one-hot (TreeExplainer's SHAP is exact for numeric splits, not for
#: HistGradientBoosting's native categorical ones: additivity failed by up to 59 q/ha)
COLUMNS = ("nitro", "bv", "year", *(f"topo_{z}" for z in ZONES))
EARTH_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Prices:
    """Prices of the advice: corn in $ per quintal (100 kg), nitrogen in $ per kg N."""

    corn_per_q: float = 11.0
    n_per_kg: float = 0.9


def load_field(frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The Las Rosas table with the model's columns (topo as a category) and no missing rows."""
    if frame is None:
        from recfuse.data import load_table

        frame = load_table("agronomy")
    frame = frame.dropna(subset=["yield", *FEATURES, "lat", "long"]).copy()
    frame["topo"] = pd.Categorical(frame["topo"].astype(str).str.strip(), categories=ZONES)
    if frame["topo"].isna().any():
        raise ValueError("lasrosas.corn.txt: topo has a value outside W/HT/E/LO")
    return frame.reset_index(drop=True)


def spatial_blocks(frame: pd.DataFrame, block_m: float = 60.0) -> np.ndarray:
    """Block id per row: square cells of ``block_m`` metres on the field. int64 [n]."""
    lat0 = float(frame["lat"].mean())
    y = (frame["lat"] - frame["lat"].min()) * EARTH_M_PER_DEG
    x = (frame["long"] - frame["long"].min()) * EARTH_M_PER_DEG * np.cos(np.radians(lat0))
    cells = (
        np.floor(x / block_m).astype(int) * 10_000 + np.floor(y / block_m).astype(int)
    ).to_numpy()
    return np.unique(cells, return_inverse=True)[1].astype(np.int64)


def design(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns (`COLUMNS`): nitro, bv, year and the zone one-hot. float [n, 7]."""
    x = frame[["nitro", "bv", "year"]].astype(float).copy()
    for zone in ZONES:
        x[f"topo_{zone}"] = (frame["topo"] == zone).astype(float)
    return x


def new_model(seed: int) -> HistGradientBoostingRegressor:
    """Gradient boosting with yield non-decreasing in N.

    The constraint is agronomy, and it also matters statistically: the two years used different
    N rates (1999: 0-131.5, 2001: 0-124.6 kg/ha in other steps) and 2001 yielded more, so an
    unconstrained model can read the year off the exact N value and draw a zigzag response.
    """
    return HistGradientBoostingRegressor(
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        monotonic_cst=[1] + [0] * (len(COLUMNS) - 1),
        random_state=seed,
    )


@dataclass
class Validation:
    """Cross-validated R² and RMSE (q/ha) per fold for one way of splitting."""

    scheme: str
    r2: list[float]
    rmse: list[float]

    def row(self) -> dict[str, Any]:
        return {
            "split": self.scheme,
            "folds": len(self.r2),
            "R2 mean": float(np.mean(self.r2)),
            "R2 std": float(np.std(self.r2, ddof=1)),
            "RMSE mean": float(np.mean(self.rmse)),
            "RMSE std": float(np.std(self.rmse, ddof=1)),
        }


def cross_validate(
    frame: pd.DataFrame, seed: int, folds: int = 5, block_m: float = 60.0
) -> list[Validation]:
    """Spatially blocked and random K-fold validation of the yield model."""
    x, y = design(frame), frame["yield"].to_numpy()
    blocks = spatial_blocks(frame, block_m)
    schemes = {
        f"spatial blocks ({block_m:g} m)": GroupKFold(folds).split(x, y, blocks),
        "random": KFold(folds, shuffle=True, random_state=seed).split(x, y),
    }
    out = []
    for name, splits in schemes.items():
        r2, rmse = [], []
        for train, test in splits:
            model = new_model(seed).fit(x.iloc[train], y[train])
            pred = model.predict(x.iloc[test])
            resid = y[test] - pred
            r2.append(1 - float((resid**2).sum()) / float(((y[test] - y[test].mean()) ** 2).sum()))
            rmse.append(float(np.sqrt((resid**2).mean())))
        out.append(Validation(name, r2, rmse))
    return out


@dataclass
class FieldAnalysis:
    """A fitted yield model and everything the agent's tools read from it."""

    frame: pd.DataFrame
    model: HistGradientBoostingRegressor
    prices: Prices
    seed: int
    n_grid: np.ndarray = field(default_factory=lambda: np.linspace(0, 140, 29))
    bootstrap: int = 20
    block_m: float = 60.0

    @classmethod
    def fit(cls, frame: pd.DataFrame, prices: Prices, seed: int, **kw: Any) -> FieldAnalysis:
        model = new_model(seed).fit(design(frame), frame["yield"].to_numpy())
        return cls(frame, model, prices, seed, **kw)

    def response(self, zone: str | None = None, model: Any = None) -> np.ndarray:
        """Partial dependence of yield on N (q/ha) over `n_grid`, in one zone or the whole field."""
        rows = self.frame if zone is None else self.frame[self.frame["topo"] == zone]
        x = design(rows)
        probe = pd.concat([x] * len(self.n_grid), ignore_index=True)
        probe["nitro"] = np.repeat(self.n_grid, len(x))
        pred = (model or self.model).predict(probe).reshape(len(self.n_grid), len(x))
        return pred.mean(axis=1)

    def shap_values(self) -> tuple[np.ndarray, float]:
        """SHAP values per feature (the zone's one-hot columns summed): ([n, 4], expected value)."""
        import shap

        explainer = shap.TreeExplainer(self.model)
        values = np.asarray(explainer.shap_values(design(self.frame)))
        grouped = np.stack([values[:, _columns_of(f)].sum(axis=1) for f in FEATURES], axis=1)
        return grouped, float(np.asarray(explainer.expected_value).reshape(-1)[0])

    def shap_importance(self) -> dict[str, float]:
        """Mean |SHAP| (q/ha) per feature, from shap's TreeExplainer."""
        values, _ = self.shap_values()
        return {f: float(np.abs(values[:, i]).mean()) for i, f in enumerate(FEATURES)}

    def shap_interaction(self, a: str, b: str) -> float:
        """Mean |SHAP interaction| (q/ha) between features ``a`` and ``b`` (400 sampled points)."""
        import shap

        sample = design(self.frame).sample(min(400, len(self.frame)), random_state=self.seed)
        inter = np.asarray(shap.TreeExplainer(self.model).shap_interaction_values(sample))
        block = inter[:, _columns_of(a)][:, :, _columns_of(b)].sum(axis=(1, 2))
        return float(np.abs(block).mean() * 2)

    def profit_table(self, prices: Prices | None = None) -> pd.DataFrame:
        """Per zone: the profit-optimal N, its yield and profit, and a bootstrap 90% band of N."""
        prices = prices or self.prices
        curves = self.bootstrap_curves()
        rows = []
        for zone in ZONES:
            curve = self.response(zone)
            n_star, profit = optimal_n(self.n_grid, curve, prices)
            optima = [optimal_n(self.n_grid, c, prices)[0] for c in curves[zone]]
            lo, hi = np.percentile(optima, [5, 95]) if optima else (np.nan, np.nan)
            rows.append(
                {
                    "zone": zone,
                    "optimal N kg/ha": n_star,
                    "yield q/ha": float(np.interp(n_star, self.n_grid, curve)),
                    "profit $/ha": profit,
                    "N band 5%": float(lo),
                    "N band 95%": float(hi),
                }
            )
        return pd.DataFrame(rows)

    def bootstrap_curves(self) -> dict[str, np.ndarray]:
        """Per zone, the N response of `bootstrap` refits on spatial blocks drawn with
        replacement: [bootstrap, len(n_grid)] (computed once; any price then costs nothing)."""
        if getattr(self, "_curves", None) is None:
            rng = np.random.default_rng(self.seed)
            blocks = spatial_blocks(self.frame, self.block_m)
            ids = np.unique(blocks)
            curves: dict[str, list[np.ndarray]] = {z: [] for z in ZONES}
            for _ in range(self.bootstrap):
                chosen = rng.choice(ids, len(ids), replace=True)
                rows = np.concatenate([np.flatnonzero(blocks == b) for b in chosen])
                sample = self.frame.iloc[rows]
                model = new_model(self.seed).fit(design(sample), sample["yield"].to_numpy())
                for zone in ZONES:
                    curves[zone].append(self.response(zone, model))
            self._curves = {z: np.array(c) for z, c in curves.items()}
        return self._curves


def _columns_of(feature: str) -> list[int]:
    return [i for i, c in enumerate(COLUMNS) if c == feature or c.startswith(f"{feature}_")]


def optimal_n(n_grid: np.ndarray, yield_q: np.ndarray, prices: Prices) -> tuple[float, float]:
    """The N rate on ``n_grid`` maximizing corn price × yield − N price × N: (N, profit $/ha)."""
    profit = prices.corn_per_q * np.asarray(yield_q) - prices.n_per_kg * np.asarray(n_grid)
    best = int(np.argmax(profit))
    return float(n_grid[best]), float(profit[best])
