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
from jaxpulp.network.execute import run
from jaxpulp.network.graph import Network


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
        for k, (src, t) in enumerate(zip(lay.inputs, (lay.in_type, lay.in2_type), strict=True), 1):
            x = tensors[src].astype(np.int64)
            r = (x * int(p[f"in{k}_mul"]) + int(p[f"in{k}_add"])) >> (int(p[f"in{k}_shift"]) & 31)
            lo = -128 if t.signed else 0
            out[f"{lay.name} (inside pulp_nn_add: input {k} requantised)"] = np.clip(r, lo, lo + 255)
    return out


def _read_npz(path: str) -> dict:
    """``goldens.read_npz_nchw`` with a damaged file reported by name."""
    import zipfile

    try:
        return goldens.read_npz_nchw(path)
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        if isinstance(e, JaxpulpError):
            raise
        raise JaxpulpError(f"{path}: not a readable npz file ({type(e).__name__}: {e})") from None


def missing_goldens(net: Network, files: dict, prefix: str = "out_layer") -> list[LayerCheck]:
    """A failing ``LayerCheck`` for each layer up to the last golden file that has no golden (``files``: {layer
    index: path}): a layer in the middle without its golden is reported by name, not skipped."""
    return [LayerCheck(f"{prefix}{k}.txt", net.layers[k].output, False, 0,
                       f"missing: no golden for layer {k} ({net.layers[k].name})", "missing")
            for k in range(max(files) + 1) if k not in files] if files else []


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
    layout = goldens.dory_layout(directory) if fmt == "dory" else []
    if fmt == "dory" and not any(files for _, files in layout):
        raise JaxpulpError(f"golden={directory!r}: no out_layerN.txt files; comparing nothing is not a pass")
    xs = load_inputs(net, directory, order)
    res = run(net, xs, path=path, keep=True)
    out = []
    if fmt == "dory":
        for b, (_, files) in enumerate(layout):
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
            prefix = "out_layer" if len(layout) == 1 else f"out_{b}_layer"
            out += missing_goldens(net, files, prefix)
        return out
    outs = _read_npz(os.path.join(directory, "outputs.npz"))
    # pairs in order; a count mismatch is a failed check of its own, so no output goes uncompared unnoticed
    for (k, want), name in zip(outs.items(), net.outputs, strict=False):
        n, first = _diff(res.outputs[name], want)
        out.append(LayerCheck(f"outputs.npz:{k}", name, n == 0, n, first))
    if len(outs) != len(net.outputs):
        out.append(LayerCheck("outputs.npz", ", ".join(net.outputs), False, abs(len(outs) - len(net.outputs)),
                              f"{len(outs)} arrays {list(outs)}, expected one per network output: "
                              f"{len(net.outputs)} {list(net.outputs)}",
                              "unpaired outputs are not compared"))
    act_path = os.path.join(directory, "activations.npz")
    if os.path.exists(act_path):
        cands = dict(res.tensors)
        cands.update(_add_internals(net, res.tensors))
        goldens_ = {k: v for k, v in _read_npz(act_path).items() if not _raw_accumulator(k)}
        out.extend(match_activations(goldens_, cands))
    if not out:
        raise JaxpulpError(f"golden={directory!r}: no golden tensors to compare; comparing nothing is not a pass")
    return out


def _raw_accumulator(name: str) -> bool:
    return "_pact_" in name


def skipped_goldens(directory: str) -> list[str]:
    """The golden arrays of a Deeploy folder that ``check`` does not compare: ``activations.npz``'s raw
    accumulators (``*_pact_*``), which PULP-NN kernels never store (empty for DORY folders)."""
    act_path = os.path.join(directory, "activations.npz")
    if not os.path.isdir(directory) or not os.path.exists(act_path):
        return []
    return [f"activations.npz:{k}" for k in _read_npz(act_path) if _raw_accumulator(k)]


def match_activations(golden: dict, cands: dict) -> list[LayerCheck]:
    """Pair each golden activation with one network tensor and compare them. A golden is matched by name when
    a tensor has its name (then compared, pass or fail); otherwise by value: to an unused tensor of the same
    size holding exactly its values, the first in execution order (``cands`` order) when several do (a constant
    array, e.g. all zeros, is equal to many). Each tensor is used once; the note says how each was matched."""
    used = set()
    out = []
    for k, want in golden.items():
        if k in cands:
            used.add(k)
            n, first = _diff(cands[k], want)
            out.append(LayerCheck(f"activations.npz:{k}", k, n == 0, n, first, "matched by name"))
            continue
        flat = want.reshape(-1)
        hits = [t for t, v in cands.items() if t not in used and v.size == want.size and
                np.array_equal(v.reshape(-1), flat)]
        if not hits:
            out.append(LayerCheck(f"activations.npz:{k}", "", False, int(want.size),
                                  "no unused network tensor holds these values"))
            continue
        used.add(hits[0])
        note = ("matched by value (the only tensor holding it)" if len(hits) == 1 else
                f"matched by position: first in execution order of {len(hits)} unused tensors holding these values")
        out.append(LayerCheck(f"activations.npz:{k}", hits[0], True, 0, "", note))
    return out
