"""Save and load a ``Network`` as one ``.npz`` file (the layer records as JSON, the parameters as arrays), so an
imported network can be reused without the ONNX package. ``load`` checks the format version and validates."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from jaxpulp._io import atomic_path, check_output_path
from jaxpulp.errors import JaxpulpError
from jaxpulp.network.graph import Layer, Network, TensorSpec

FORMAT = "jaxpulp-network-1"
_TYPES = ("in_type", "out_type", "w_type", "in2_type")


def _layer_dict(lay: Layer) -> dict:
    d = {f: getattr(lay, f) for f in Layer.__dataclass_fields__}
    for k in _TYPES:
        d[k] = None if d[k] is None else str(d[k])
    return d


def save(net: Network, path: str) -> str:
    """Write ``net`` to ``path`` (``.npz``)."""
    if not isinstance(net, Network):
        raise JaxpulpError(f"net={net!r}: expected a jaxpulp Network")
    if not isinstance(path, str) or not path.strip():
        raise JaxpulpError(f"path={path!r}: expected a file path (.npz)")
    path = path if path.endswith(".npz") else path + ".npz"  # where numpy would write it
    check_output_path(path, "path")
    meta = {"format": FORMAT, "name": net.name, "dialect": net.dialect, "notes": list(net.notes),
            "outputs": list(net.outputs),
            "inputs": [{"name": i.name, "shape": list(i.shape), "qtype": str(i.qtype)} for i in net.inputs],
            "layers": [_layer_dict(layer) for layer in net.layers]}
    arrays: dict[str, Any] = {"__meta__": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    for lname, p in net.params.items():
        for k, v in p.items():
            arrays[f"{len(arrays):05d}|{lname}|{k}"] = np.asarray(v)
    with atomic_path(path) as tmp:  # never a half-written file, e.g. when interrupted
        np.savez_compressed(tmp, **arrays)
    return path


def load(path: str) -> Network:
    """Read a network written by ``save``."""
    if not isinstance(path, str) or not path.strip():
        raise JaxpulpError(f"path={path!r}: expected a file path (.npz)")
    if not os.path.exists(path):
        raise JaxpulpError(f"path={path!r}: no such network file")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise JaxpulpError("a single .npy array, not an .npz archive")
    except Exception as e:  # noqa: BLE001 - numpy raises several types for bad files
        raise JaxpulpError(f"path={path!r}: not a jaxpulp network file (not a readable .npz archive: {e})") from None
    try:
        with z:
            meta, params, layers = _read(z, path)
        inputs = tuple(TensorSpec(i["name"], tuple(i["shape"]), i["qtype"]) for i in meta["inputs"])
        return Network(meta["name"], inputs, tuple(layers), params, tuple(meta["outputs"]), dialect=meta["dialect"],
                       notes=tuple(meta["notes"]))
    except JaxpulpError:
        raise  # a record that is read but invalid: the message names it
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file fails in many ways (JSON, zip, zlib, keys)
        raise JaxpulpError(f"path={path!r}: not a jaxpulp network file (damaged or foreign .npz: "
                           f"{type(e).__name__}: {e})") from None


def _read(z, path: str) -> tuple:
    if "__meta__" not in z.files:
        raise JaxpulpError(f"path={path!r}: not a jaxpulp network file (no __meta__ record)")
    meta = json.loads(bytes(z["__meta__"]).decode())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise JaxpulpError(f"path={path!r}: not a jaxpulp network file: format {fmt!r}, expected {FORMAT!r}")
    params: dict = {}
    for key in z.files:
        if key == "__meta__":
            continue
        _, lname, k = key.split("|", 2)
        a = z[key]
        params.setdefault(lname, {})[k] = a if a.ndim else a[()]
    layers = []
    for d in meta["layers"]:
        d = dict(d)
        for k in ("inputs", "in_shape", "out_shape", "kernel", "stride", "pad", "source"):
            d[k] = tuple(d[k])
        layers.append(Layer(**d))
    return meta, params, layers
