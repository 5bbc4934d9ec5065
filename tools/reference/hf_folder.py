"""Writes a checkpoint folder in Hugging Face layout (config.json + model.safetensors) from a PyTorch state dict,
plus a fixture file of inputs and expected outputs. Shared by the model reference scripts under tools/reference/models.
"""
import json
import os

import numpy as np

from safetensors_io import write_safetensors


def to_numpy(t):
    return t.detach().cpu().contiguous().numpy()


def write_hf_folder(folder, config, state_dict, skip=()):
    """config: dict written as config.json; state_dict: {HF name: torch tensor}; names in `skip` (tied copies) left out."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      [(k, to_numpy(v)) for k, v in state_dict.items() if k not in skip], {"format": "pt"})


def write_io(path, tensors, metadata=None):
    """tensors: {name: torch tensor or ndarray} (inputs as int64, outputs as float32/float64)."""
    write_safetensors(path, [(k, to_numpy(v) if hasattr(v, "detach") else np.asarray(v)) for k, v in tensors.items()],
                      {k: str(v) for k, v in (metadata or {}).items()})
