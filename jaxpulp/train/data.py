"""Training data for the precision search: scikit-learn's bundled ``digits`` (8x8x1, no download) or any ``.npz``
holding ``x`` (N, H, W, C) and ``y`` (N,) integer labels.

Images become the network's u8 input: integer data already in [0, 255] is taken as is; digits (0..16) and float
data are scaled min-max to [0, 255] over the whole set and rounded. The network sees ``x_int`` (uint8) and the
float models the same values as ``x_int / 255`` (so every model reads exactly the deployed input).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from jaxpulp._checks import is_int
from jaxpulp.errors import JaxpulpError


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Seeded train / validation / test splits. ``x_*``: uint8 (n, H, W, C); ``y_*``: int32 (n,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def shape(self) -> tuple:
        """(H, W, C) of one image."""
        return tuple(self.x_train.shape[1:])


def to_u8(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Images as uint8 (see the module docstring)."""
    x = np.asarray(x)
    if x.dtype.kind in "iu" and x.size and x.min() >= 0 and x.max() <= 255 and x.max() > 16:
        return x.astype(np.uint8)
    x = x.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        raise JaxpulpError(f"{name}: every value is {lo}; expected images with some contrast")
    return np.clip(np.round((x - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def check_arrays(x, y, source: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate images / labels; returns (x, y int32, number of classes). Errors name the source and the problem."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.size == 0 or y.size == 0:
        raise JaxpulpError(f"{source}: empty data (x shape {x.shape}, y shape {y.shape}); expected at least one "
                           "example per split")
    if x.ndim != 4:
        raise JaxpulpError(f"{source}: x has shape {x.shape}, expected (N, H, W, C) images")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise JaxpulpError(f"{source}: y has shape {y.shape}, expected ({x.shape[0]},) labels, one per image")
    if x.dtype.kind not in "iuf" or y.dtype.kind not in "iuf":
        raise JaxpulpError(f"{source}: dtypes x={x.dtype}, y={y.dtype}; expected numbers")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise JaxpulpError(f"{source}: x has {int(np.sum(~np.isfinite(x)))} NaN / infinite values; expected finite")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise JaxpulpError(f"{source}: y has non-integer or NaN labels; expected class indices 0..K-1")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise JaxpulpError(f"{source}: label {int(y.min())} is out of range; expected class indices 0..K-1")
    k = int(y.max()) + 1
    if k < 2:
        raise JaxpulpError(f"{source}: only one class ({k}); expected at least 2")
    if k > 4096:
        raise JaxpulpError(f"{source}: label {k - 1} is out of range; expected class indices below 4096")
    return x, y.astype(np.int32), k


def split(name: str, x, y, *, seed: int = 0, val: float = 0.15, test: float = 0.15,
          num_classes: int | None = None) -> Dataset:
    """A seeded shuffled split of (x, y) into train / val / test."""
    if num_classes is not None and (not is_int(num_classes) or not 2 <= num_classes <= 4096):
        raise JaxpulpError(f"num_classes={num_classes!r}: expected an int in 2..4096 (or None: from the labels)")
    x, y, k = check_arrays(x, y, name)
    if num_classes is not None:
        num_classes = int(num_classes)
        if k > num_classes:
            raise JaxpulpError(f"{name}: label {k - 1} is out of range; expected 0..{num_classes - 1}")
        k = num_classes
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise JaxpulpError(f"val={val!r}, test={test!r}: expected fractions in (0, 1) summing below 1")
    n = x.shape[0]
    nv, nt = int(round(n * val)), int(round(n * test))
    if n - nv - nt < 1 or nv < 1 or nt < 1:
        raise JaxpulpError(f"{name}: {n} examples cannot fill train / val / test splits; expected at least 3")
    perm = np.random.default_rng(seed).permutation(n)
    xu = to_u8(x, f"{name}: x")
    parts = np.split(perm, [n - nv - nt, n - nt])
    (a, b, c) = parts
    return Dataset(name, xu[a], y[a], xu[b], y[b], xu[c], y[c], k)


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), as (N, 8, 8, 1) u8."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - optional extra
        raise JaxpulpError("data='digits' needs scikit-learn (pip install 'jaxpulp[train]')") from e
    d = load_digits()
    x = d.images.reshape(-1, 8, 8, 1)  # values 0..16
    return split("digits", (x * (255.0 / 16.0)).round().astype(np.int64), d.target, seed=seed)


def load_npz(path: str, seed: int = 0) -> Dataset:
    """A dataset from an ``.npz`` with arrays ``x`` (N, H, W, C) and ``y`` (N,)."""
    if not os.path.exists(path):
        raise JaxpulpError(f"data={path!r}: no such file; expected 'digits' or an .npz with x and y")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises several types for bad files
        raise JaxpulpError(f"data={path!r}: not a readable .npz ({e})") from e
    with z:
        missing = [k for k in ("x", "y") if k not in z.files]
        if missing:
            raise JaxpulpError(f"data={path!r}: arrays {z.files}, expected 'x' (N, H, W, C) and 'y' (N,)")
        x, y = z["x"], z["y"]
    return split(os.path.basename(path), x, y, seed=seed)


def load(spec: str, seed: int = 0) -> Dataset:
    """``"digits"`` or a path to an ``.npz``."""
    if not isinstance(spec, (str, os.PathLike)):
        raise JaxpulpError(f"data={spec!r}: expected 'digits' or a path to an .npz with x (N, H, W, C) and y (N,)")
    spec = os.fspath(spec)
    if spec == "digits":
        return digits(seed)
    if spec.endswith(".npz"):
        return load_npz(spec, seed)
    raise JaxpulpError(f"data={spec!r}: expected 'digits' or a path to an .npz with x (N, H, W, C) and y (N,)")
