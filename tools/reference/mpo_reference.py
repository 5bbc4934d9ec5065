#!/usr/bin/env python3
"""Independent numpy (float64) reference implementation of the MPO decomposition
used by MPOP (Gao et al., ACL 2021), written from the project specification
`mpo-spec.md` (not from the original code). It generates the test fixture
`tests/fixtures/mpo_reference.safetensors` that the .NET implementation is
checked against. It is never a runtime dependency of the framework.

Spec sections implemented (mpo-spec.md):
  2    notation: W in R^{I x J}, I = prod(row_factors), J = prod(col_factors),
       a_k = i_k j_k, full bonds d_k = min(a_1..a_k, a_{k+1}..a_n), d_0 = d_n = 1,
       core k has shape [d_{k-1}, i_k, j_k, d_k].
  3.1  reshape convention: row-major reshape to [i_1..i_n, j_1..j_n], then permute
       to (i_1, j_1, ..., i_n, j_n)                     -> to_tensor / from_tensor
  3.2  left-to-right sequential SVD (TT-SVD), no truncation          -> tt_svd
  3.3  symmetric canonical gauge with L_b, R_b, P_b, Q_b             -> canonical_gauge
  3.4  truncation by slicing bonds                                   -> truncate
  3.5  reconstruction (contraction)                                  -> contract
  3.6  parameter count, error bound, entanglement entropy            -> param_count,
                                                                       error_bound, entropy

One step NOT in the spec is applied after 3.3: `normalize_signs`, a +-1 diagonal
gauge per bond index (the canonical form is unique only up to such signs, which
depend on the SVD library). It changes neither the canonical form, the bond values
nor any reconstruction; it only makes the stored cores comparable across SVD
implementations. Rule: bonds left to right (1-based b = 1..n-1, between 0-based
cores b-1 and b); for each bond index m, the entry of largest absolute value (first
in row-major order on ties) of core[b-1][..., m] is made positive; the matching
slice core[b][m, ...] is flipped with it.

Usage:  /usr/bin/python3 tools/reference/mpo_reference.py [--out PATH]
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

# --------------------------------------------------------------------------- 2 / 3.1

def full_bonds(row_factors, col_factors):
    """Full bond dimensions [d_0, d_1, ..., d_n] (spec 2), d_0 = d_n = 1."""
    a = [i * j for i, j in zip(row_factors, col_factors)]
    n = len(a)
    return [1] + [min(math.prod(a[:k]), math.prod(a[k:])) for k in range(1, n)] + [1]


def to_tensor(W, row_factors, col_factors):
    """Spec 3.1: W [I, J] -> X'[i_1, j_1, ..., i_n, j_n]."""
    n = len(row_factors)
    X = W.reshape(list(row_factors) + list(col_factors))           # row-major
    perm = [ax for k in range(n) for ax in (k, n + k)]              # (i_1, j_1, i_2, j_2, ...)
    return X.transpose(perm)


def from_tensor(Xp, row_factors, col_factors):
    """Inverse of to_tensor: X'[i_1, j_1, ..., i_n, j_n] -> W [I, J] (spec 3.5)."""
    n = len(row_factors)
    perm = [2 * k for k in range(n)] + [2 * k + 1 for k in range(n)]
    X = Xp.transpose(perm)
    return X.reshape(math.prod(row_factors), math.prod(col_factors))


def bond_unfolding(W, row_factors, col_factors, b):
    """Bond-b unfolding of W (b = 1..n-1): X' reshaped to [a_1..a_b, a_{b+1}..a_n]."""
    a = [i * j for i, j in zip(row_factors, col_factors)]
    return np.ascontiguousarray(to_tensor(W, row_factors, col_factors)).reshape(
        math.prod(a[:b]), math.prod(a[b:]))

# --------------------------------------------------------------------------- 3.2

def tt_svd(W, row_factors, col_factors):
    """Spec 3.2: left-to-right sequential SVD without truncation.
    Returns n cores, core k of shape [d_{k-1}, i_k, j_k, d_k]; cores 0..n-2 are
    left-orthonormal, the singular values are carried to the right."""
    n = len(row_factors)
    d = full_bonds(row_factors, col_factors)
    R = np.ascontiguousarray(to_tensor(W, row_factors, col_factors))
    cores = []
    for k in range(n - 1):                                          # 0-based core k
        i, j = row_factors[k], col_factors[k]
        M = R.reshape(d[k] * i * j, -1)
        U, s, Vh = np.linalg.svd(M, full_matrices=False)
        assert len(s) == d[k + 1], (len(s), d[k + 1])               # exact, see spec note
        cores.append(U.reshape(d[k], i, j, d[k + 1]))
        R = s[:, None] * Vh                                         # diag(s) @ Vh
    cores.append(R.reshape(d[n - 1], row_factors[-1], col_factors[-1], 1))
    return cores

# --------------------------------------------------------------------------- 3.3

def canonical_gauge(cores):
    """Spec 3.3: symmetric (bi-)canonical gauge.
    Returns (gauged cores, [lambda_1..lambda_{n-1}] raw bond singular values,
    descending). After the gauge, bond b carries lambda_b^{1/2} on both sides:
    the left block (cores 0..b-1, reshaped [-1, d_b]) has Gram matrix diag(lambda_b)
    and so has the right block (cores b..n-1, reshaped [d_b, -1])."""
    n = len(cores)
    d = [c.shape[0] for c in cores] + [1]
    # Left factors L_b (d_b x d_b), b = 1..n-1, stored at L[b].
    L = [None] * n
    _, s, Vh = np.linalg.svd(cores[0].reshape(-1, d[1]), full_matrices=False)
    L[1] = s[:, None] * Vh
    for b in range(2, n):
        T = np.tensordot(L[b - 1], cores[b - 1], axes=([1], [0]))   # [d_{b-1}, i, j, d_b]
        _, s, Vh = np.linalg.svd(T.reshape(-1, d[b]), full_matrices=False)
        L[b] = s[:, None] * Vh
    # Right factors R_b (d_b x d_b), b = n-1..1.
    R = [None] * n
    U, s, _ = np.linalg.svd(cores[n - 1].reshape(d[n - 1], -1), full_matrices=False)
    R[n - 1] = U * s[None, :]
    for b in range(n - 2, 0, -1):
        T = np.tensordot(cores[b], R[b + 1], axes=([3], [0]))       # [d_b, i, j, d_{b+1}]
        U, s, _ = np.linalg.svd(T.reshape(d[b], -1), full_matrices=False)
        R[b] = U * s[None, :]
    # Gauge matrices P_b, Q_b with P_b @ Q_b = I.
    P, Q, lambdas = [None] * n, [None] * n, []
    for b in range(1, n):
        U, lam, Vh = np.linalg.svd(L[b] @ R[b])
        inv_sqrt = lam ** -0.5
        P[b] = R[b] @ Vh.T * inv_sqrt[None, :]                      # R_b V diag(lam^-1/2)
        Q[b] = inv_sqrt[:, None] * (U.T @ L[b])                     # diag(lam^-1/2) U^T L_b
        lambdas.append(lam)
    # Apply: core k (0-based) gets Q of its left bond k and P of its right bond k+1.
    out = []
    for k in range(n):
        T = cores[k]
        if k > 0:
            T = np.tensordot(Q[k], T, axes=([1], [0]))
        if k < n - 1:
            T = np.tensordot(T, P[k + 1], axes=([3], [0]))
        out.append(T)
    return out, lambdas


def normalize_signs(cores):
    """NOT in the spec: deterministic +-1 gauge per bond index (see module docstring)."""
    cores = [c.copy() for c in cores]
    for b in range(1, len(cores)):
        left = cores[b - 1].reshape(-1, cores[b - 1].shape[3])      # [.., d_b]
        idx = np.argmax(np.abs(left), axis=0)
        sign = np.sign(left[idx, np.arange(left.shape[1])])
        sign[sign == 0] = 1.0
        cores[b - 1] = cores[b - 1] * sign[None, None, None, :]
        cores[b] = cores[b] * sign[:, None, None, None]
    return cores

# --------------------------------------------------------------------------- 3.4 / 3.5

def truncate(cores, bonds):
    """Spec 3.4: bonds = [d'_1..d'_{n-1}]; core k := core k[:d'_{k-1}, :, :, :d'_k]."""
    dp = [1] + list(bonds) + [1]
    return [c[:dp[k], :, :, :dp[k + 1]] for k, c in enumerate(cores)]


def cap_bonds(full, cap):
    """Spec 3.4 uniform cap: d'_k = min(cap, d_k) for the inner bonds."""
    return [min(cap, dk) for dk in full[1:-1]]


def contract(cores, row_factors, col_factors):
    """Spec 3.5: contract the cores left to right and fold back to W [I, J]."""
    t = cores[0]
    for c in cores[1:]:
        t = np.tensordot(t, c, axes=([t.ndim - 1], [0]))
    t = t.reshape(t.shape[1:-1])                                    # squeeze d_0, d_n
    return from_tensor(t, row_factors, col_factors)

# --------------------------------------------------------------------------- 3.6

def param_count(row_factors, col_factors, bonds):
    """Spec 3.6: N_MPO = sum_k d'_{k-1} i_k j_k d'_k, bonds = [d'_1..d'_{n-1}]."""
    dp = [1] + list(bonds) + [1]
    return sum(dp[k] * i * j * dp[k + 1] for k, (i, j) in enumerate(zip(row_factors, col_factors)))


def error_bound(lambdas, bonds):
    """Spec 3.6: sqrt(sum_b eps_b^2), eps_b^2 = sum of discarded lambda_b^2."""
    return math.sqrt(sum(float(np.sum(lam[k:] ** 2)) for lam, k in zip(lambdas, bonds)))


def entropy(lam):
    """Spec 3.6 with p_j = lambda_j^2 / sum lambda^2 (physics convention), S = -sum p ln p."""
    p = lam ** 2 / np.sum(lam ** 2)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))

# --------------------------------------------------------------------------- fixture cases

CASES = [
    # name,  row_factors,     col_factors,     seed
    ("n3",   [2, 3, 4],       [4, 3, 3],       20210603),
    ("n4",   [2, 3, 3, 2],    [2, 2, 2, 3],    20210604),
    ("n5",   [2, 2, 4, 2, 2], [2, 2, 3, 2, 2], 20210605),
    ("n5sq", [2, 3, 2, 2, 2], [2, 2, 2, 3, 2], 20210606),
]
SPECTRUM = "s_i = 10*0.8**i + 0.01*(r-i)/r, i = 0..r-1, r = min(I,J)"


def make_matrix(I, J, seed):
    """W = U diag(s) V^T, U, V orthonormal (QR of seeded Gaussians), decaying distinct spectrum."""
    rng = np.random.default_rng(seed)
    r = min(I, J)
    U, _ = np.linalg.qr(rng.standard_normal((I, r)))
    V, _ = np.linalg.qr(rng.standard_normal((J, r)))
    i = np.arange(r)
    s = 10.0 * 0.8 ** i + 0.01 * (r - i) / r
    return (U * s[None, :]) @ V.T


def check_canonical(cores, lambdas, tol):
    """Each bond b: left block Gram = diag(lambda_b), right block Gram = diag(lambda_b)."""
    n = len(cores)
    worst = 0.0
    for b in range(1, n):
        left = cores[0]
        for c in cores[1:b]:
            left = np.tensordot(left, c, axes=([left.ndim - 1], [0]))
        right = cores[b]
        for c in cores[b + 1:]:
            right = np.tensordot(right, c, axes=([right.ndim - 1], [0]))
        Lm = left.reshape(-1, left.shape[-1])
        Rm = right.reshape(right.shape[0], -1)
        lam = lambdas[b - 1]
        e = max(np.max(np.abs(Lm.T @ Lm - np.diag(lam))), np.max(np.abs(Rm @ Rm.T - np.diag(lam))))
        worst = max(worst, e / lam[0])
    assert worst < tol, worst
    return worst


def build_case(name, rows, cols, seed, tensors, report):
    n = len(rows)
    I, J = math.prod(rows), math.prod(cols)
    d = full_bonds(rows, cols)
    W = make_matrix(I, J, seed)
    normW = np.linalg.norm(W)

    raw = tt_svd(W, rows, cols)
    err_tt = np.linalg.norm(contract(raw, rows, cols) - W) / normW
    gauged, lambdas = canonical_gauge(raw)
    cores = normalize_signs(gauged)
    err_gauge = np.linalg.norm(contract(cores, rows, cols) - W) / normW
    assert err_tt < 1e-12 and err_gauge < 1e-12, (err_tt, err_gauge)
    canon_dev = check_canonical(cores, lambdas, 1e-12)

    # Uniqueness: any invertible gauge G_b on the raw TT cores must lead to the same
    # canonical, sign-normalized cores (so other SVD implementations can match them).
    rng = np.random.default_rng(seed + 1)
    moved = [c.copy() for c in raw]
    for b in range(1, n):
        G = rng.standard_normal((d[b], d[b])) + 3.0 * np.eye(d[b])
        moved[b - 1] = np.tensordot(moved[b - 1], G, axes=([3], [0]))
        moved[b] = np.tensordot(np.linalg.inv(G), moved[b], axes=([1], [0]))
    again = normalize_signs(canonical_gauge(moved)[0])
    uniq_dev = max(float(np.max(np.abs(x - y))) for x, y in zip(again, cores))
    assert uniq_dev < 1e-9, (name, uniq_dev)
    # margin of the sign rule: |largest| - |second largest| entry per bond index, relative
    sign_margin = min(
        float(np.min(np.diff(np.sort(np.abs(c.reshape(-1, c.shape[3])), axis=0)[-2:], axis=0)
                     / np.max(np.abs(c.reshape(-1, c.shape[3])), axis=0)))
        for c in cores[:-1])

    # lambda_b == singular values of the explicit bond-b unfolding (spec 3.3)
    lam_dev = 0.0
    for b in range(1, n):
        sv = np.linalg.svd(bond_unfolding(W, rows, cols, b), compute_uv=False)
        assert len(sv) == d[b] == len(lambdas[b - 1])
        dev = np.max(np.abs(sv - lambdas[b - 1]))
        assert dev < 1e-12, (name, b, dev)
        lam_dev = max(lam_dev, dev)
        assert np.all(np.diff(lambdas[b - 1]) < 0), "degenerate or unsorted bond values"

    tensors.append((f"{name}.W", W))
    for k, c in enumerate(cores):
        tensors.append((f"{name}.core{k}", c))
    for b in range(1, n):
        tensors.append((f"{name}.lambda{b}", lambdas[b - 1]))
    ent = np.array([entropy(lam) for lam in lambdas])
    tensors.append((f"{name}.entropy", ent))

    # single-bond cuts: tight case of the bound; also == best rank-k approx of the unfolding
    cut_sizes, cut_errors = [], []
    for b in range(1, n):
        keep = d[b] // 2
        assert keep >= 1
        bonds = list(d[1:-1])
        bonds[b - 1] = keep
        Wc = contract(truncate(cores, bonds), rows, cols)
        err = float(np.linalg.norm(W - Wc))
        tight = math.sqrt(float(np.sum(lambdas[b - 1][keep:] ** 2)))
        assert abs(err - tight) < 1e-10, (name, b, err, tight)
        U, s, Vh = np.linalg.svd(bond_unfolding(W, rows, cols, b), full_matrices=False)
        best = (U[:, :keep] * s[:keep]) @ Vh[:keep]
        assert np.max(np.abs(bond_unfolding(Wc, rows, cols, b) - best)) < 1e-10
        tensors.append((f"{name}.cut{b}.W", Wc))
        tensors.append((f"{name}.cut{b}.error", np.array(err)))
        cut_sizes.append(keep)
        cut_errors.append(err)

    # uniform cap
    cap = max(1, max(d[1:-1]) // 2)
    cbonds = cap_bonds(d, cap)
    Wcap = contract(truncate(cores, cbonds), rows, cols)
    cap_err = float(np.linalg.norm(W - Wcap))
    bound = error_bound(lambdas, cbonds)
    tensors.append((f"{name}.cap.W", Wcap))
    tensors.append((f"{name}.cap.error", np.array(cap_err)))
    tensors.append((f"{name}.cap.bound", np.array(bound)))

    meta = {
        "row_factors": rows, "col_factors": cols,
        "full_bonds": d[1:-1],
        "seed": seed,
        "cut_sizes": cut_sizes,
        "cap": cap,
        "cap_bonds": cbonds,
        "cap_bonds_cut": [b for b in range(1, n) if cbonds[b - 1] < d[b]],
        "cap_error_le_bound": bool(cap_err <= bound),
        "params_full": param_count(rows, cols, d[1:-1]),
        "params_cap": param_count(rows, cols, cbonds),
    }
    report[name] = dict(
        meta, I=I, J=J, recon_rel_err_ttsvd=err_tt, recon_rel_err_gauge=err_gauge,
        lambda_vs_unfolding_maxdev=lam_dev, canonical_gram_maxdev_rel=canon_dev,
        gauge_uniqueness_maxdev=uniq_dev, sign_rule_min_rel_margin=sign_margin,
        lambda_min=[float(l[-1]) for l in lambdas], lambda_max=[float(l[0]) for l in lambdas],
        min_rel_gap=[float(np.min(-np.diff(l) / l[:-1])) for l in lambdas],
        entropy=ent.tolist(), cut_errors=cut_errors, cap_error=cap_err, cap_bound=bound)
    return meta


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "fixtures", "mpo_reference.safetensors"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--report", action="store_true", help="print per-case numbers as JSON")
    args = ap.parse_args()

    tensors, cases_meta, report = [], {}, {}
    for name, rows, cols, seed in CASES:
        cases_meta[name] = build_case(name, rows, cols, seed, tensors, report)
    metadata = {
        "generator": "tools/reference/mpo_reference.py",
        "numpy": np.__version__,
        "spectrum": SPECTRUM,
        "cases": json.dumps(cases_meta, separators=(",", ":")),
    }
    write_safetensors(args.out, tensors, metadata)

    # round-trip check
    back, meta = read_safetensors(args.out)
    assert meta == metadata and len(back) == len(tensors)
    for nm, arr in tensors:
        assert back[nm].shape == arr.shape and np.array_equal(back[nm], arr), nm
    print(f"wrote {args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes")
    if args.report:
        json.dump(report, sys.stdout, indent=1)
        print()


if __name__ == "__main__":
    main()
