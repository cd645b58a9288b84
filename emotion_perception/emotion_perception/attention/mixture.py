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

    def _marginal(self, dims: tuple[int, ...]):
        """Means, inverse covariances and log-normalisers of the marginal over ``dims`` (cached)."""
        cache = self.__dict__.setdefault("_cache", {})
        got = cache.get(dims)
        if got is None:
            idx = list(dims)
            mu = self.means[:, idx]
            cov = self.covariances[:, idx][:, :, idx]
            inv = np.linalg.inv(cov)
            lognorm = np.log(self.weights) - 0.5 * np.log(np.linalg.det(cov))
            got = cache[dims] = (mu, inv, lognorm)
        return got

    def posteriors(self, x, dims: tuple[int, ...] | None = None) -> np.ndarray:
        """P(k | x) of every component k; ``dims`` as in :meth:`posterior`."""
        dims = tuple(range(self.means.shape[1])) if dims is None else tuple(dims)
        mu, inv, lognorm = self._marginal(dims)
        d = np.asarray(x, float) - mu  # (K, D)
        logp = lognorm - 0.5 * np.einsum("ki,kij,kj->k", d, inv, d)
        logp -= logp.max()
        p = np.exp(logp)
        return p / p.sum()
