#!/usr/bin/env python3
"""Independent numpy (float64) CP-ALS, the textbook algorithm of Kolda & Bader (2009, SIAM Review, Sec. 3.4),
written for the fixture `tests/fixtures/cp_reference.safetensors` that the .NET CP-ALS
(`Mpo.Decomposition.CpDecomposition`) is checked against. Never a runtime dependency of the framework.

It is deliberately naive where the .NET code is not: every update forms the full Khatri-Rao product of the other
factors and the mode-k unfolding, solves the normal equations with numpy.linalg.solve, never normalizes, and
measures the error after each sweep from an explicitly reconstructed tensor. ALS fits are invariant to column
scalings of the factors, so the .NET code's normalization and its cheaper error identity must give the same
trajectory of relative errors; the test compares those (not the factors, which are only unique up to
permutation and scaling).

Cases:
  given3   [5,6,7]    rank 3  rank-3 tensor + noise, Gaussian start (stored), 30 sweeps
  given4   [4,5,3,6]  rank 7  rank above some mode sizes, Gaussian start (stored), 25 sweeps
  svd      [6,5,8]    rank 4  HOSVD start (leading left singular vectors of each unfolding), 20 sweeps
  matrix   W [48,20], row factors [4,3,4], column factors [2,5,2], tensorized as the MPO's reshape
           (mpo_reference.to_tensor: modes a_k = i_k j_k = [8,15,8]), rank 6, Gaussian start (stored), 25 sweeps

Usage:  /usr/bin/python3 tools/reference/cp_reference.py [--out PATH]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpo_reference import to_tensor  # noqa: E402  (the MPO's reshape convention, spec 3.1)
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402


def unfold(X, k):
    """Mode-k unfolding: mode k first, the other modes in order, first most significant (C order)."""
    return np.moveaxis(X, k, 0).reshape(X.shape[k], -1)


def khatri_rao(mats):
    """Column-wise Kronecker product, the first matrix most significant (matches `unfold`)."""
    out = mats[0]
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, out.shape[1])
    return out


def reconstruct(factors):
    return (factors[0] @ khatri_rao(factors[1:]).T).reshape([f.shape[0] for f in factors])


def cp_als(X, factors, sweeps):
    """Plain ALS: A_k <- X_(k) KR(others) (Hadamard of others' Grams)^-1, modes in order; error after each sweep."""
    factors = [f.copy() for f in factors]
    norm = np.linalg.norm(X)
    history = []
    for _ in range(sweeps):
        for k in range(X.ndim):
            others = [factors[m] for m in range(X.ndim) if m != k]
            V = np.ones((factors[0].shape[1],) * 2)
            for A in others:
                V = V * (A.T @ A)
            M = unfold(X, k) @ khatri_rao(others)
            factors[k] = np.linalg.solve(V, M.T).T   # V is symmetric
        history.append(np.linalg.norm(X - reconstruct(factors)) / norm)
    return factors, np.array(history)


def hosvd_init(X, rank):
    return [np.linalg.svd(unfold(X, k), full_matrices=False)[0][:, :rank] for k in range(X.ndim)]


def low_rank_plus_noise(rng, shape, rank, noise):
    true = [rng.standard_normal((a, rank)) for a in shape]
    X = reconstruct(true)
    return X + noise * np.linalg.norm(X) / np.sqrt(X.size) * rng.standard_normal(shape)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "fixtures", "cp_reference.safetensors"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args()

    tensors, cases = [], {}

    def add(name, X, rank, sweeps, init, meta=None, start=None):
        if start is None:
            start = hosvd_init(X, rank)
        _, history = cp_als(X, start, sweeps)
        # ALS never increases the error (each update is an exact least-squares minimizer).
        assert np.all(np.diff(history) <= 1e-12 * history[:-1]), (name, history)
        tensors.append((f"{name}.X", X))
        if init == "given":
            for k, f in enumerate(start):
                tensors.append((f"{name}.init{k}", f))
        tensors.append((f"{name}.history", history))
        cases[name] = dict(shape=list(X.shape), rank=rank, sweeps=sweeps, init=init, **(meta or {}))
        print(f"{name}: shape {list(X.shape)} rank {rank}: error {history[0]:.6f} -> {history[-1]:.6f} in {sweeps} sweeps")

    rng = np.random.default_rng(20210603)
    X = low_rank_plus_noise(rng, (5, 6, 7), 3, 0.05)
    add("given3", X, 3, 30, "given", start=[rng.standard_normal((a, 3)) for a in X.shape])

    X = low_rank_plus_noise(rng, (4, 5, 3, 6), 5, 0.1)
    add("given4", X, 7, 25, "given", start=[rng.standard_normal((a, 7)) for a in X.shape])

    X = low_rank_plus_noise(rng, (6, 5, 8), 6, 0.05)
    add("svd", X, 4, 20, "svd")

    rows, cols = [4, 3, 4], [2, 5, 2]
    W = rng.standard_normal((48, 4)) @ rng.standard_normal((4, 20)) + 0.1 * rng.standard_normal((48, 20))
    X = np.ascontiguousarray(to_tensor(W, rows, cols)).reshape([i * j for i, j in zip(rows, cols)])
    tensors.append(("matrix.W", W))
    add("matrix", X, 6, 25, "given", meta=dict(row_factors=rows, col_factors=cols),
        start=[rng.standard_normal((a, 6)) for a in X.shape])

    metadata = {"generator": "tools/reference/cp_reference.py", "numpy": np.__version__,
                "cases": json.dumps(cases, separators=(",", ":"))}
    write_safetensors(args.out, tensors, metadata)
    back, meta = read_safetensors(args.out)
    assert meta == metadata and len(back) == len(tensors)
    for nm, arr in tensors:
        assert np.array_equal(back[nm], arr), nm
    print(f"wrote {args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
