"""Check a network against the golden activations of a deployment flow, layer by layer, compared with ``==``.

* DORY / NEMO folders: ``input.txt`` and ``out_layerN.txt`` (``N`` = the N-th layer of the network, in execution
  order, as DORY numbers them), HWC text; ``order="chw"`` for dumps stored channel-major (NEMO's dscnn_test),
  ``order="auto"`` tries HWC then CHW per file and reports which one matched. With several test inputs (DORY's
  ``n_inputs``): ``input_K.txt`` and ``out_K_layerN.txt``, run as one batch.
* Deeploy folders: ``inputs.npz`` (NCHW, one array per graph input, in order), ``outputs.npz`` (the final
  output) and optionally ``activations.npz`` (each requantised activation must equal some network tensor;
  ``*_pact_*`` arrays are raw accumulators, which PULP-NN kernels never store, and are skipped).
"""
from __future__ import annotations

import glob
import os
from typing import NamedTuple

import numpy as np

from jaxpulp.errors import JaxpulpError
from jaxpulp.network import goldens
from jaxpulp.network.graph import Network
from jaxpulp.network.execute import run


class LayerCheck(NamedTuple):
    """One golden comparison: ``what`` (file / array), ``tensor`` (network tensor), ``ok``, ``n_diff`` elements
    that differ, ``first`` (the first differing elements as text), ``note``."""

    what: str
    tensor: str
    ok: bool
    n_diff: int = 0
    first: str = ""
    note: str = ""


def _diff(got, want) -> tuple[int, str]:
    got, want = np.asarray(got).reshape(-1), np.asarray(want).reshape(-1)
    if got.size != want.size:
        return max(got.size, want.size), f"size {got.size}, expected {want.size}"
    bad = np.flatnonzero(got != want)
    first = ", ".join(f"[{int(i)}] got {int(got[i])} (0x{int(got[i]) & 0xFFFFFFFF:x}) want {int(want[i])} "
                      f"(0x{int(want[i]) & 0xFFFFFFFF:x})" for i in bad[:4])
    return int(bad.size), first


def _add_internals(net: Network, tensors: dict) -> dict:
    """The values a ``pulp_nn_add`` call computes internally (each input requantised and clipped to 8 bits,
    semantics.md §11.1) that source graphs often keep as separate activations: name -> array."""
    out = {}
    for lay in net.layers:
        if lay.kind != "add":
            continue
        p = net.params[lay.name]
        for k, (src, t) in enumerate(zip(lay.inputs, (lay.in_type, lay.in2_type)), 1):
            x = tensors[src].astype(np.int64)
            r = (x * int(p[f"in{k}_mul"]) + int(p[f"in{k}_add"])) >> (int(p[f"in{k}_shift"]) & 31)
            lo = -128 if t.signed else 0
            out[f"{lay.name} (inside pulp_nn_add: input {k} requantised)"] = np.clip(r, lo, lo + 255)
    return out


def golden_format(directory: str) -> str:
    """"dory" (input.txt + out_layerN.txt, or input_K.txt + out_K_layerN.txt) or "deeploy" (inputs.npz +
    outputs.npz)."""
    if os.path.exists(os.path.join(directory, "inputs.npz")):
        return "deeploy"
    if os.path.exists(os.path.join(directory, "input.txt")) or glob.glob(os.path.join(directory, "input_*.txt")):
        return "dory"
    raise JaxpulpError(f"golden={directory!r}: expected a DORY folder (input.txt, out_layerN.txt) or a Deeploy "
                       "folder (inputs.npz, outputs.npz)")


def load_inputs(net: Network, directory: str, order: str = "hwc") -> dict:
    """{input name: (batch, H, W, C) int64} from a golden folder (batch = DORY's n_inputs test inputs)."""
    if golden_format(directory) == "dory":
        xs = np.stack([goldens.hwc_values(f, net.input.shape, "hwc" if order == "auto" else order)
                       for f, _ in goldens.dory_layout(directory)])
        goldens.check_range(xs, net.input.qtype, f"{directory}: golden input")
        return {net.input.name: xs}
    path = os.path.join(directory, "inputs.npz")
    picked, _ = goldens.pick_inputs(goldens.read_npz_arrays(path), [s.name for s in net.inputs], path)
    out = {}
    for spec in net.inputs:
        what = f"{path}: input {spec.name!r}"
        out[spec.name] = goldens.to_hwc(picked[spec.name], spec.shape, "nchw", what)
        goldens.check_range(out[spec.name], spec.qtype, what)
    return out


def check(net: Network, directory: str, *, path: str = "packed", order: str = "hwc") -> list[LayerCheck]:
    """Run the golden input through ``net`` (``path`` = "packed" or "values") and compare every golden tensor."""
    if order not in ("hwc", "chw", "auto"):
        raise JaxpulpError(f"order={order!r}: expected 'hwc', 'chw' or 'auto'")
    fmt = golden_format(directory)
    xs = load_inputs(net, directory, order)
    res = run(net, xs, path=path, keep=True)
    out = []
    if fmt == "dory":
        for b, (_, files) in enumerate(goldens.dory_layout(directory)):
            if files and max(files) >= len(net.layers):
                raise JaxpulpError(f"{directory}: {os.path.basename(files[max(files)])} but the network has "
                                   f"{len(net.layers)} layers")
            for k, f in files.items():
                lay = net.layers[k]
                got = res.tensors[lay.output][b]
                tried = ("hwc", "chw") if order == "auto" else (order,)
                for o in tried:
                    want = goldens.hwc_values(f, lay.out_shape, o)
                    n, first = _diff(got, want)
                    if n == 0:
                        break
                note = f"stored {o.upper()}" if order == "auto" and o != "hwc" and n == 0 else ""
                out.append(LayerCheck(os.path.basename(f), lay.output, n == 0, n, first, note))
        return out
    outs = goldens.read_npz_nchw(os.path.join(directory, "outputs.npz"))
    for (k, want), name in zip(outs.items(), net.outputs):
        n, first = _diff(res.outputs[name], want)
        out.append(LayerCheck(f"outputs.npz:{k}", name, n == 0, n, first))
    act_path = os.path.join(directory, "activations.npz")
    if os.path.exists(act_path):
        cands = dict(res.tensors)
        cands.update(_add_internals(net, res.tensors))
        for k, want in goldens.read_npz_nchw(act_path).items():
            if "_pact_" in k:
                continue
            match = [t for t, v in cands.items() if v.size == want.size and
                     np.array_equal(v.reshape(-1), want.reshape(-1))]
            out.append(LayerCheck(f"activations.npz:{k}", match[0] if match else "", bool(match),
                                  0 if match else int(want.size),
                                  "" if match else "no network tensor holds these values"))
    return out
