"""A fitted Gaussian mixture evaluated with numpy (posterior of one component).

The thresholds of the eye and mouth states are mixtures fitted without labels
(scikit-learn ``GaussianMixture`` in :mod:`.fit`); inference needs only this, a few
microseconds per call, and can drop features that are missing by marginalising.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Mixture:
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # (K, D, D)

    @classmethod
    def from_dict(cls, d: dict) -> "Mixture":
        m = cls(np.asarray(d["weights"], float), np.asarray(d["means"], float), np.asarray(d["covariances"], float))
        k, dim = m.means.shape
        if m.weights.shape != (k,) or m.covariances.shape != (k, dim, dim):
            raise ValueError("mixture arrays of inconsistent shapes")
        return m

    def to_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "means": self.means.tolist(), "covariances": self.covariances.tolist()}

    def posterior(self, x, component: int, dims: tuple[int, ...] | None = None) -> float:
        """P(component | x); ``dims`` selects the features ``x`` holds (others marginalised)."""
        return float(self.posteriors(x, dims)[component])

    def posteriors(self, x, dims: tuple[int, ...] | None = None) -> np.ndarray:
        """P(k | x) of every component k."""
        x = np.asarray(x, float)
        idx = list(range(self.means.shape[1])) if dims is None else list(dims)
        logp = np.empty(len(self.weights))
        for k in range(len(self.weights)):
            mu = self.means[k, idx]
            cov = self.covariances[k][np.ix_(idx, idx)]
            d = x - mu
            sol = np.linalg.solve(cov, d)
            logp[k] = np.log(self.weights[k]) - 0.5 * (d @ sol + np.log(np.linalg.det(cov)))
        logp -= logp.max()
        p = np.exp(logp)
        return p / p.sum()
