#!/usr/bin/env python3
"""Produce tests/fixtures/gp_sklearn.json: posterior and log marginal likelihood of a GP with
fixed hyperparameters computed by scikit-learn, an implementation independent of ours.

Kernel: ConstantKernel(s2) * Matern(length_scale=[...], nu=2.5) + WhiteKernel(noise), with
normalize_y=True (sklearn standardizes y with the population std, as src/engine/gp.rs does).
Run: python3 scripts/gp_fixture.py > tests/fixtures/gp_sklearn.json
"""
import json

import numpy as np
import sklearn
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

rng = np.random.default_rng(42)
X = rng.random((12, 3))
y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2] + 0.01 * rng.standard_normal(12)
Xs = rng.random((6, 3))
lengthscales = [0.4, 0.9, 1.7]
s2, noise = 1.3, 0.02

kernel = ConstantKernel(s2, "fixed") * Matern(length_scale=lengthscales, nu=2.5, length_scale_bounds="fixed") \
    + WhiteKernel(noise, "fixed")
gp = GaussianProcessRegressor(kernel=kernel, optimizer=None, normalize_y=True).fit(X, y)
mean, std = gp.predict(Xs, return_std=True)
print(json.dumps({
    "generator": f"scikit-learn {sklearn.__version__}, scripts/gp_fixture.py",
    "x": X.tolist(), "y": y.tolist(), "xs": Xs.tolist(),
    "lengthscales": lengthscales, "signal_variance": s2, "noise_variance": noise,
    "mean": mean.tolist(), "std_with_noise": std.tolist(),
    "log_marginal_likelihood": float(gp.log_marginal_likelihood_value_),
}, indent=1))
