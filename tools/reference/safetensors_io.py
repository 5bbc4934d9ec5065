"""Minimal safetensors reader/writer on numpy (Debian has no `safetensors` package).

Format: u64 little-endian header length, JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}
padded with spaces to a multiple of 8, then the raw little-endian buffer (offsets relative to its start).
Shared by every reference script under tools/reference/.
"""
import json
import struct

import numpy as np

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_NAMES = {np.dtype(v).str: k for k, v in _DTYPES.items()}


def write_safetensors(path, tensors, metadata=None):
    """tensors: iterable of (name, numpy array) written in that order, dtype kept (F64/F32/F16/I64/I32/...)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors:
        arr = np.asarray(arr)
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray would make 0-d 1-d)
        arr = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
        key = _NAMES.get(arr.dtype.str) or _NAMES[np.dtype(arr.dtype).newbyteorder("<").str]
        raw = arr.tobytes()
        header[name] = {"dtype": key, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """Returns ({name: numpy array}, metadata dict)."""
    with open(path, "rb") as f:
        buf = f.read()
    (hlen,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + hlen])
    meta = header.pop("__metadata__", {})
    data = buf[8 + hlen:]
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=_DTYPES[h["dtype"]]).reshape(h["shape"])
    return out, meta
