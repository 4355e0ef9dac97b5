"""Readers (and a writer) for the activation dumps deployment flows produce.

* DORY / QuantLab / NEMO ``input.txt``, ``out_layerN.txt``, ``output.txt``: a header comment ``# name (shape
  [..]),`` then one value per line (``12,`` or NEMO's ``"12.000,\\"``), HWC order (NEMO's dscnn_test stores
  CHW; pass ``order="chw"``).
* Deeploy ``inputs.npz`` / ``outputs.npz`` / ``activations.npz``: NCHW arrays (batch first).
"""
from __future__ import annotations

import os
import re

import numpy as np

from jaxpulp.errors import JaxpulpError

_HEADER = re.compile(r"^\s*#?\s*(?P<name>[^()]*?)\s*\(shape\s*\[(?P<shape>[^\]]*)\]\)")
_NUM = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def read_dory_txt(path: str) -> tuple[str, tuple, np.ndarray]:
    """(name, shape from the header, int64 values in file order) of a DORY text dump. Values that are not
    integers (``12.5``) raise: goldens of integer graphs are integers."""
    if not os.path.exists(path):
        raise JaxpulpError(f"path={path!r}: no such golden file")
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:
        raise JaxpulpError(f"{path}: empty file, expected a '# name (shape [..])' header and one value per line")
    m = _HEADER.match(lines[0])
    if not m:
        raise JaxpulpError(f"{path}: first line {lines[0][:60]!r} is not a '# name (shape [d0, d1, ...])' header")
    name = m.group("name").strip()
    shape = tuple(int(s) for s in m.group("shape").split(",") if s.strip())
    vals = []
    for k, line in enumerate(lines[1:], 2):
        for tok in _NUM.findall(line):
            v = float(tok)
            if v != int(v):
                raise JaxpulpError(f"{path}:{k}: value {tok} is not an integer")
            vals.append(int(v))
    return name, shape, np.asarray(vals, np.int64)


def hwc_values(path: str, shape_hwc: tuple, order: str = "hwc") -> np.ndarray:
    """A DORY dump as an (H, W, C) int64 tensor of ``shape_hwc``; ``order`` = the file's element order."""
    if order not in ("hwc", "chw"):
        raise JaxpulpError(f"order={order!r}: expected 'hwc' or 'chw'")
    _, _, vals = read_dory_txt(path)
    H, W, C = shape_hwc
    if vals.size != H * W * C:
        raise JaxpulpError(f"{path}: {vals.size} values, expected {H}*{W}*{C} = {H * W * C} for shape {shape_hwc}")
    if order == "chw":
        return vals.reshape(C, H, W).transpose(1, 2, 0)
    return vals.reshape(H, W, C)


def write_dory_txt(path: str, name: str, values: np.ndarray) -> None:
    """Write an HWC tensor as a DORY text dump (header with its shape, one value per line)."""
    v = np.asarray(values)
    with open(path, "w") as f:
        f.write(f"# {name} (shape [{', '.join(str(s) for s in v.shape)}]),\n")
        f.writelines(f"{int(x)},\n" for x in v.reshape(-1))


def read_npz_nchw(path: str) -> dict:
    """{name: int64 array} of a Deeploy npz; 4-D NCHW arrays become (N, H, W, C), others are kept as stored.
    Float arrays holding integers are accepted; non-integer values raise."""
    if not os.path.exists(path):
        raise JaxpulpError(f"path={path!r}: no such npz file")
    out = {}
    with np.load(path) as z:
        for k in z.files:
            a = np.asarray(z[k])
            if a.dtype.kind == "f":
                if not np.array_equal(a, np.round(a)):
                    raise JaxpulpError(f"{path}: array {k!r} holds non-integer values")
            a = a.astype(np.int64)
            if a.ndim == 4:
                a = a.transpose(0, 2, 3, 1)
            out[k] = a
    return out
