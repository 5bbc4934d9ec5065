"""PyTorch's AdamW on a few hand-fed steps, as the oracle for Mpo.Training.AdamW.

Three parameters in three groups (decayed, not decayed, an "aux" group with its own lr and weight decay), six steps
with a changing learning-rate factor (the first one 0, as HF's warmup gives), random gradients over several orders of
magnitude, and one step where the "aux" parameter has no gradient (PyTorch skips it: no decay, no moments, no step).
Two cases: float64 with PyTorch's default betas/eps, float32 with other betas/eps.

Writes tests/fixtures/adamw_reference.safetensors:
  <case>.init.<p>, <case>.grad<t>.<p> (absent when the gradient is None), <case>.after<t>.<p> (parameters after step t),
  <case>.exp_avg.<p>, <case>.exp_avg_sq.<p>, <case>.step.<p> (state after the last step); t = 0..5.
__metadata__.cases (JSON): per case the dtype, betas, eps, lr factors, the steps without an aux gradient, and the
groups (name, lr, weight_decay, parameter names).

Run: /usr/bin/python3 tools/reference/adamw_reference.py   (Debian python3-torch, PyTorch 1.13)
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

SHAPES = {"w": (3, 4), "b": (4,), "aux": (2, 5)}
GROUPS = [
    {"name": "default", "lr": 1e-2, "weight_decay": 0.1, "parameters": ["w"]},
    {"name": "default.no_decay", "lr": 1e-2, "weight_decay": 0.0, "parameters": ["b"]},
    {"name": "aux", "lr": 3e-3, "weight_decay": 0.01, "parameters": ["aux"]},
]
FACTORS = [0.0, 0.5, 1.0, 0.8, 0.6, 0.4]
NO_AUX_GRAD = [2]
CASES = {
    "f64": {"dtype": "float64", "betas": [0.9, 0.999], "eps": 1e-8, "seed": 1},
    "f32": {"dtype": "float32", "betas": [0.8, 0.95], "eps": 1e-6, "seed": 2},
}


def run_case(name, case):
    dtype = getattr(torch, case["dtype"])
    rng = np.random.default_rng(case["seed"])
    params = {p: torch.nn.Parameter(torch.tensor(rng.standard_normal(s), dtype=dtype)) for p, s in SHAPES.items()}
    groups = [{"params": [params[p] for p in g["parameters"]], "lr": g["lr"], "weight_decay": g["weight_decay"]} for g in GROUPS]
    opt = torch.optim.AdamW(groups, betas=tuple(case["betas"]), eps=case["eps"], foreach=False)
    out = [(f"{name}.init.{p}", t.detach().numpy().copy()) for p, t in params.items()]
    for t, factor in enumerate(FACTORS):
        for g, spec in zip(opt.param_groups, GROUPS):
            g["lr"] = spec["lr"] * factor
        for p, tensor in params.items():
            if p == "aux" and t in NO_AUX_GRAD:
                tensor.grad = None
                continue
            # Gradients spanning 1e-9 .. 1e1, so that eps matters for some entries and not for others.
            scale = 10.0 ** rng.integers(-9, 2, size=SHAPES[p])
            grad = torch.tensor(rng.standard_normal(SHAPES[p]) * scale, dtype=dtype)
            tensor.grad = grad
            out.append((f"{name}.grad{t}.{p}", grad.numpy().copy()))
        opt.step()
        out += [(f"{name}.after{t}.{p}", tensor.detach().numpy().copy()) for p, tensor in params.items()]
    for p, tensor in params.items():
        state = opt.state[tensor]
        out.append((f"{name}.exp_avg.{p}", state["exp_avg"].numpy().copy()))
        out.append((f"{name}.exp_avg_sq.{p}", state["exp_avg_sq"].numpy().copy()))
        out.append((f"{name}.step.{p}", np.array(int(state["step"].item()), dtype=np.int64)))
    return out


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    path = os.path.join(root, "tests", "fixtures", "adamw_reference.safetensors")
    tensors = []
    for name, case in CASES.items():
        tensors += run_case(name, case)
    # The skipped step really was skipped: aux's step count is one short of the others'.
    steps = {n: int(a) for n, a in tensors if ".step." in n}
    assert steps["f64.step.aux"] == len(FACTORS) - len(NO_AUX_GRAD) and steps["f64.step.w"] == len(FACTORS), steps
    meta = {
        "generator": "tools/reference/adamw_reference.py",
        "torch": torch.__version__,
        "cases": json.dumps({n: {**c, "factors": FACTORS, "no_aux_grad_steps": NO_AUX_GRAD, "groups": GROUPS} for n, c in CASES.items()}),
    }
    write_safetensors(path, tensors, meta)
    back, _ = read_safetensors(path)
    for n, a in tensors:
        assert np.array_equal(back[n], a), n
    print(f"wrote {path}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
