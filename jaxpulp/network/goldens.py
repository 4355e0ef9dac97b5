"""Readers (and a writer) for the activation dumps deployment flows produce.

* DORY / QuantLab / NEMO ``input.txt``, ``out_layerN.txt``, ``output.txt``: a header comment ``# name (shape
  [..]),`` then one value per line (``12,`` or NEMO's ``"12.000,\\"``), HWC order (NEMO's dscnn_test stores
  CHW; pass ``order="chw"``).
* DORY with several test inputs (``n_inputs`` in the DORY config): ``input_K.txt`` and ``out_K_layerN.txt`` for
  K = 0 .. n_inputs - 1 (``dory_layout``). The DORY config's ``input_bits`` / ``input_signed`` give the input type
  (``dory_input_type``).
* Deeploy ``inputs.npz`` / ``outputs.npz`` / ``activations.npz``: NCHW arrays (batch first); (N, C, L) arrays of
  1-D networks are H = 1 images. ``inputs.npz`` is matched to the graph inputs by name, else in order (extra
  arrays are ignored, as Deeploy's test generator does).
"""
from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from jaxpulp.errors import JaxpulpError

_HEADER = re.compile(r"^\s*#?\s*(?P<name>[^()]*?)\s*\(shape\s*\[(?P<shape>[^\]]*)\]\)")
_NUM = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_SEPARATORS = re.compile(r"[\s,\\]")  # between values: commas, spaces and NEMO's line-continuation backslashes


def read_dory_txt(path: str) -> tuple[str, tuple, np.ndarray]:
    """(name, shape from the header, int64 values in file order) of a DORY text dump. Values that are not
    integers (``12.5``) and text that is not a number raise: goldens of integer graphs are integers."""
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
        other = _SEPARATORS.sub("", _NUM.sub("", line))
        if other:  # "0 garbage" read as 0 and "2x5" as two values: a corrupt dump, not a golden
            raise JaxpulpError(f"{path}:{k}: {line.strip()[:60]!r} holds {other[:20]!r}, expected numbers separated "
                               "by commas / spaces (a '\\' continuation at most)")
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
            elif a.ndim == 3:  # (N, C, L) of a 1-D network: (N, H=1, W=L, C)
                a = a.transpose(0, 2, 1)[:, None]
            out[k] = a
    return out


def read_npz_arrays(path: str) -> dict:
    """{name: array} of an npz, with a clear error for a file numpy cannot read."""
    if not os.path.exists(path):
        raise JaxpulpError(f"path={path!r}: no such npz file")
    try:
        with np.load(path) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # noqa: BLE001 - zipfile / numpy raise several types for corrupt files
        raise JaxpulpError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e


def pick_inputs(arrays: dict, names: list, what: str) -> tuple[dict, list]:
    """Arrays for the graph inputs ``names``: by name when every name is present, else the non-empty arrays in
    order (Deeploy's test generator zips them with the graph inputs). Returns ({input name: array}, the names of
    the arrays left unused)."""
    if all(n in arrays for n in names):
        return {n: arrays[n] for n in names}, [k for k in arrays if k not in names]
    keys = [k for k, a in arrays.items() if np.size(a)]
    if len(keys) < len(names):
        raise JaxpulpError(f"{what}: arrays {list(arrays)}, expected the network inputs {names} (by name, or "
                           f"{len(names)} arrays in order)")
    # keys may outnumber names: the extra arrays are returned, not paired
    return dict(zip(names, (arrays[k] for k in keys), strict=False)), keys[len(names):]


def to_hwc(a: np.ndarray, shape_hwc: tuple, layout: str, what: str) -> np.ndarray:
    """An input array as (batch, H, W, C): ``layout`` "nchw" (Deeploy, also (N, C, L) and flat), "nhwc" (jaxpulp,
    also flat) or "auto" (nhwc when the trailing axes are (H, W, C), else nchw when they are (C, H, W) or
    (C, L))."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        if not np.array_equal(a, np.round(a)):
            raise JaxpulpError(f"{what}: holds non-integer values; expected an integer input")
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise JaxpulpError(f"{what}: dtype {a.dtype}, expected integers")
    H, W, C = shape_hwc
    n = H * W * C
    if layout == "auto":
        layout = "nhwc" if tuple(a.shape[-3:]) == (H, W, C) or a.ndim < 3 else "nchw"
    if a.size == 0 or a.size % n:
        raise JaxpulpError(f"{what}: shape {a.shape}, expected (batch, {H}, {W}, {C}) HWC or (batch, {C}, {H}, {W}) "
                           "NCHW")
    if layout == "nchw":
        if a.ndim >= 3 and tuple(a.shape[-3:]) == (C, H, W):
            return a.reshape((-1, C, H, W)).transpose(0, 2, 3, 1)
        if H == 1 and a.ndim >= 2 and tuple(a.shape[-2:]) == (C, W):
            return a.reshape((-1, C, W)).transpose(0, 2, 1)[:, None]
        if a.ndim <= 2 or C == 1 or H * W == 1:  # flat, or one channel / one pixel: the orders agree
            return a.reshape((-1, C, H, W)).transpose(0, 2, 3, 1)
        raise JaxpulpError(f"{what}: shape {a.shape}, expected (batch, {C}, {H}, {W}) NCHW")
    return a.reshape((-1, H, W, C))


def check_range(x: np.ndarray, qtype, what: str, hint: bool = True) -> None:
    """Raise when the input values leave the network input's type, suggesting (``hint``: for a network imported
    from ONNX, whose input type is an import option) the type that holds them."""
    x = np.asarray(x)
    if x.size and (x.min() < qtype.lo or x.max() > qtype.hi):
        lo, hi = int(x.min()), int(x.max())
        t = type_hint(lo, hi)
        why = ("no activation type holds them (PULP-NN inputs are integers of at most 8 bits)" if t is None else
                f"Hint: pass --input-type {t} (load_onnx(..., input_type={t!r}))"
                + ("; Deeploy test inputs are often signed" if lo < 0 else ""))
        raise JaxpulpError(f"{what}: values span [{lo}, {hi}], outside the network input type {qtype} [{qtype.lo}, "
                           f"{qtype.hi}]" + (f"; {why}" if hint or t is None else ""))


def dory_layout(directory: str) -> list:
    """The DORY golden files of ``directory``, one entry per test input: [(input file, {layer index: file})].
    ``input.txt`` + ``out_layerN.txt`` (one input), or ``input_K.txt`` + ``out_K_layerN.txt`` (``n_inputs`` test
    inputs, as DORY's parser names them)."""
    def layers(pattern):
        out = {}
        for f in glob.glob(os.path.join(directory, pattern)):
            m = re.fullmatch(re.escape(pattern).replace(r"\*", r"(\d+)"), os.path.basename(f))
            if m:
                out[int(m.group(1))] = f
        return dict(sorted(out.items()))

    single = os.path.join(directory, "input.txt")
    multi = sorted((int(m.group(1)), f) for f in glob.glob(os.path.join(directory, "input_*.txt"))
                   if (m := re.fullmatch(r"input_(\d+)\.txt", os.path.basename(f))))
    if os.path.exists(single):
        return [(single, layers("out_layer*.txt"))]
    if not multi:
        raise JaxpulpError(f"golden={directory!r}: no input.txt or input_K.txt (DORY golden inputs)")
    n = dory_config(directory).get("n_inputs")
    if n is not None and int(n) != len(multi):
        raise JaxpulpError(f"golden={directory!r}: the DORY config says n_inputs={n}, found {len(multi)} "
                           "input_K.txt files")
    if [k for k, _ in multi] != list(range(len(multi))):
        raise JaxpulpError(f"golden={directory!r}: input files {[os.path.basename(f) for _, f in multi]}, expected "
                           f"input_0.txt .. input_{len(multi) - 1}.txt")
    return [(f, layers(f"out_{k}_layer*.txt")) for k, f in multi]


def dory_config(directory: str) -> dict:
    """The DORY network configuration (``dory_config.json``, or the single ``config*.json``) in ``directory``, or
    {} when there is none."""
    cands = [os.path.join(directory, "dory_config.json")]
    if not os.path.exists(cands[0]):
        cands = glob.glob(os.path.join(directory, "config*.json"))
    if len(cands) != 1 or not os.path.exists(cands[0]):
        return {}
    try:
        with open(cands[0]) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise JaxpulpError(f"{cands[0]}: not a readable DORY config ({e})") from e
    if not isinstance(cfg, dict):
        raise JaxpulpError(f"{cands[0]}: expected a JSON object (the DORY network configuration)")
    return cfg


def dory_input_type(directory: str) -> str | None:
    """The input type the DORY config in ``directory`` sets (``input_bits``, ``input_signed``), e.g. "i8", or None
    when it sets none (DORY then assumes u8)."""
    cfg = dory_config(directory)
    if "input_bits" not in cfg and "input_signed" not in cfg:
        return None
    bits, signed = int(cfg.get("input_bits", 8)), bool(cfg.get("input_signed", False))
    return f"{'i' if signed else 'u'}{bits}"


def type_hint(lo: int, hi: int) -> str | None:
    """The narrowest PULP-NN activation type holding [lo, hi], e.g. "i8" (for an input-type hint); None when no
    type of at most 8 bits does."""
    for t in ("u2", "i2", "u4", "i4", "u8", "i8"):
        b, signed = int(t[1]), t[0] == "i"
        tlo, thi = (-(1 << (b - 1)), (1 << (b - 1)) - 1) if signed else (0, (1 << b) - 1)
        if tlo <= lo and hi <= thi:
            return t
    return None
