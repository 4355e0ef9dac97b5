"""Cost tables: the exact cost of every precision choice of every layer, computed once from the cost model, so
that a network's cost under a precision configuration is a gather and a sum (``vmap``-able, millions of
configurations per second).

Legend: L layers, V configuration variables, C choices per variable (padded), N = 7 type slots per axis.

* ``build_table(net, target)`` -> ``CostTable``: for each layer and every (input, weight | second input,
  output) type triple on the universal axes ``ACT_AXIS`` (u8 u4 u2 i8 i4 i2 i32) and ``W_AXIS`` (i8 i4 i2),
  the cycles, energy (pJ), packed weight bytes, live activation bytes (inputs + output) and whether the
  library runs it (``kernel_config`` + the family's ``check``). Arrays ``[L, N, N, N]``.
* ``config_space(table, ...)`` -> ``ConfigSpace``: the variables of a sweep. One variable per activation
  tensor (producer/consumer consistency: a layer's output type *is* the next layer's input type; tensors a
  max-pool ties together share one variable) and one per weighted layer, each with its allowed types.
  A configuration is an int32 vector ``[V]`` of choice indices.
* ``evaluate(space, configs)``: cost and memory of ``[B, V]`` configurations (jit-compiled; pure).
* ``export_lut(table)``: PLiNIO-style per-layer look-up tables (JSON-able dict).

Memory model (bytes): ``weight_bytes`` = sum of packed weight sizes (``kinds.weight_bytes``; the int32 kappa /
lambda / bias, up to 12 B per output channel whatever the precisions, are not counted: ``report.memory`` adds
them); ``peak_act_bytes`` = the largest live input(s) + output of one layer; ``l1_bytes`` = the largest input(s) +
output + weights of one layer (it runs untiled from L1 if <= ``Cluster.l1_bytes``); the network fits L2 if
weight_bytes + peak_act_bytes <= ``Cluster.l2_bytes``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp._checks import is_int
from jaxpulp.cluster.config import Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.network import kinds
from jaxpulp.qtypes import ALL_ACT_TYPES, WEIGHT_TYPES, QType

I32 = QType(32, True)
ACT_AXIS = ALL_ACT_TYPES + (I32,)  # u8 u4 u2 i8 i4 i2 i32
W_AXIS = WEIGHT_TYPES  # i8 i4 i2
N = len(ACT_AXIS)
WEIGHTED = kinds.WEIGHTED  # ("conv", "depthwise", "linear")
FIELDS = ("cycles", "energy_pj", "weight_bytes", "act_bytes", "l1_bytes")
_ACT_INDEX = {t: i for i, t in enumerate(ACT_AXIS)}
_W_INDEX = {t: i for i, t in enumerate(W_AXIS)}


def slot_names(kind: str) -> tuple:
    """What the three table axes of a layer of ``kind`` mean: ("in", "w", "out"), ("in1", "in2", "out") or
    ("in", None, "out")."""
    return kinds.of(kind).slots


# the universal axis and the Layer type field of each slot name
_SLOT_AXIS = {"in": ACT_AXIS, "in1": ACT_AXIS, "in2": ACT_AXIS, "w": W_AXIS, "out": ACT_AXIS, None: (None,)}
_SLOT_FIELD = {"in": "in_type", "in1": "in_type", "in2": "in2_type", "w": "w_type", "out": "out_type"}


def axis_types(kind: str, slot: int) -> tuple:
    """The types along table axis ``slot`` (0, 1, 2) of a layer of ``kind`` (``(None,)`` for an unused slot)."""
    return _SLOT_AXIS[slot_names(kind)[_check_slot(slot)]]


def _check_slot(slot) -> int:
    if not is_int(slot) or not 0 <= slot <= 2:
        raise JaxpulpError(f"slot={slot!r}: expected a table axis 0, 1 or 2")
    return int(slot)


def axis_index(kind: str, slot: int, t) -> int:
    """The index of type ``t`` on table axis ``slot`` of a layer of ``kind``."""
    name = slot_names(kind)[_check_slot(slot)]
    index = _W_INDEX if name == "w" else _ACT_INDEX
    try:
        return index[t]
    except (KeyError, TypeError):
        pass
    if isinstance(t, str):
        try:
            qt = QType.parse(t)
        except JaxpulpError:
            qt = None
        if qt in index:
            return index[qt]
    raise JaxpulpError(f"t={t!r}: not on table axis {slot} ({name!r}) of a {kind!r} layer; expected one of "
                       f"{[str(x) for x in _SLOT_AXIS[name]]}")


def target_and_cluster(target):
    """(``Target``, its ``Cluster``) of a target name, ``Target`` or ``Cluster``."""
    from jaxpulp.cost import resolve_target

    t = resolve_target(target)
    return t, Cluster(num_cores=t.num_cores)


def entry_bytes(lay, a, b, c) -> tuple:
    """(weight_bytes, act_bytes) of ``lay`` at table entry (a, b, c): the packed weights (``kinds.weight_bytes``;
    kappa / lambda / bias are not counted: they do not depend on the precision choice) and the packed input(s)
    and output (bytes)."""
    second = {"w": "w_type", "in2": "in2_type"}.get(slot_names(lay.kind)[1])
    w = kinds.weight_bytes(lay, b) if second == "w_type" else 0
    return w, kinds.act_bytes(lay, a, b if second == "in2_type" else None, c)


@dataclasses.dataclass(frozen=True, eq=False)
class CostTable:
    """Exact per-layer costs of every type triple (numpy arrays ``[L, N, N, N]``; see the module docstring).

    layers: the network's ``Layer`` records; network: its name; target: the cost target's name.
    cycles (int64, cycles), energy_pj (float64, pJ), weight_bytes / act_bytes / l1_bytes (int64, bytes),
    supported (bool), kernel (str: the C function, or ``"unsupported: <rule>"``).
    """

    network: str
    target: str
    layers: tuple
    input_name: str
    input_type: QType
    cycles: np.ndarray
    energy_pj: np.ndarray
    weight_bytes: np.ndarray
    act_bytes: np.ndarray
    l1_bytes: np.ndarray
    supported: np.ndarray
    kernel: np.ndarray
    model: str = "exact"

    @functools.cached_property
    def digest(self) -> str:
        """Hash of the table contents (identifies it in results files)."""
        h = hashlib.blake2b(digest_size=8)
        for a in (self.cycles, self.energy_pj, self.weight_bytes, self.act_bytes, self.supported):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr([(lay.name, lay.kind, lay.inputs, lay.output) for lay in self.layers]).encode())
        return h.hexdigest()

    def entry(self, layer: str, *types) -> dict:
        """Cost of one layer at ``types`` = (in, w, out), (in1, in2, out) or (in, out) for pools."""
        li = [lay.name for lay in self.layers].index(layer) if isinstance(layer, str) else int(layer)
        lay = self.layers[li]
        idx = _triple_index(lay, types)
        out = {f: getattr(self, f)[(li,) + idx].item() for f in FIELDS + ("supported",)}
        out["kernel"] = str(self.kernel[(li,) + idx])
        return out


def _triple_index(lay, types) -> tuple:
    types = tuple(QType.parse(t) for t in types)
    slots = slot_names(lay.kind)
    if slots[1] is None:
        if len(types) != 2:
            raise JaxpulpError(f"types={types}: a {lay.kind} layer takes (in, out)")
        return (_ACT_INDEX[types[0]], 0, _ACT_INDEX[types[1]])
    if len(types) != 3:
        raise JaxpulpError(f"types={types}: a {lay.kind} layer takes {slots}")
    return tuple(axis_index(lay.kind, s, t) for s, t in enumerate(types))


def layer_at(lay, a, b, c):
    """``lay`` with the types of table entry (a, b, c) (universal-axis types; ``b`` None for pools)."""
    return lay.with_types(**{_SLOT_FIELD[n]: t for n, t in zip(slot_names(lay.kind), (a, b, c), strict=True) if n})


def check_layer(lay, cluster: Cluster):
    """The kernel config of ``lay`` if the library runs it; raises ``JaxpulpError`` / ``UnsupportedConfig``."""
    from jaxpulp.network import mapping

    cfg = mapping.kernel_config(lay, "library", cluster)
    try:
        mod = mapping.kernel_module(cfg)
    except JaxpulpError as e:  # family module not written yet: its cost model still counts the kernel
        if "not implemented yet" not in str(e):
            raise
        return cfg
    mod.check(cfg, cluster)
    return cfg


def build_table(net, target="gap8", log=None) -> CostTable:
    """The exact cost of every type triple of every layer of ``net`` on ``target`` (a name, ``Target`` or
    ``Cluster``; ``"deployed:gap8-board"`` / ``"deployed:gap8-gvsoc"``: deployed cycles, ``jaxpulp.deploy.table``).
    Each distinct (layer shape, types) is costed once (``kernel_cost`` is cached). ``log``: a ``print``-like
    function told about each layer as it starts (long builds stay visible)."""
    from jaxpulp.cost import kernel_cost
    from jaxpulp.network.graph import Network

    if not isinstance(net, Network):
        raise JaxpulpError(f"net={type(net).__name__}: expected a jaxpulp Network")
    if isinstance(target, str) and target.startswith("deployed:"):  # deployed latency (jaxpulp.deploy.table)
        from jaxpulp.deploy.table import deployed_table

        return deployed_table(net, target[len("deployed:"):])
    tgt, cluster = target_and_cluster(target)
    L = len(net.layers)
    shape = (L, N, N, N)
    cyc = np.zeros(shape, np.int64)
    en = np.zeros(shape, np.float64)
    wb = np.zeros(shape, np.int64)
    ab = np.zeros(shape, np.int64)
    sup = np.zeros(shape, bool)
    kern = np.full(shape, "unsupported: not a kernel", dtype=object)
    for li, lay in enumerate(net.layers):
        if log:
            log(f"cost table {net.name} ({tgt.name}): layer {li + 1}/{L} {lay.name} ({lay.kind})")
        for (ia, a), (ib, b), (ic, c) in itertools.product(*(enumerate(axis_types(lay.kind, s)) for s in range(3))):
            if a.bits == 32:
                continue
            try:
                cfg = check_layer(layer_at(lay, a, b, c), cluster)
                cc = kernel_cost(cfg, tgt)
            except UnsupportedConfig as e:
                kern[li, ia, ib, ic] = f"unsupported: {e.rule}"
                continue
            except JaxpulpError:
                continue
            w_bytes, act = entry_bytes(lay, a, b, c)
            cyc[li, ia, ib, ic] = cc.cycles
            en[li, ia, ib, ic] = cc.energy_pj
            wb[li, ia, ib, ic] = w_bytes
            ab[li, ia, ib, ic] = act
            sup[li, ia, ib, ic] = True
            kern[li, ia, ib, ic] = cfg.c_name
    return CostTable(net.name, tgt.name, tuple(net.layers), net.input.name, net.input.qtype, cyc, en, wb, ab,
                     ab + wb, sup, kern)


# --------------------------------------------------------------------------------------------- config space


@dataclasses.dataclass(frozen=True)
class Variable:
    """One configuration variable: ``kind`` "act" (the type of ``tensors``) or "weight" (of layer
    ``layer``); ``choices``: the allowed types, in choice-index order."""

    name: str
    kind: str
    choices: tuple
    tensors: tuple = ()
    layer: str = ""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SpaceArrays:
    """The arrays ``evaluate`` gathers from (a pytree).

    rows [T, 6] int32: per local table entry cycles, weight_bytes, act_bytes, l1_bytes, unsupported (0/1) and
    the float32 bits of energy_pj; base [L]: each layer's first row; strides [L, 3] and slot_vars [L, 3]: row
    = base + sum_s strides * config[slot_vars] (slot_vars = V for an unused slot: the config is padded with a
    0); n_choices [V]; radix [V] (mixed-radix place values for enumeration, 0 when the space is too large);
    index_matrix [V, L] float32: the same row offsets as a matrix (row = base + config @ index_matrix, exact in
    float32 below 2**24 rows, and a matmul is the fastest way to compute it on CPU).
    """

    base: jax.Array
    strides: jax.Array
    slot_vars: jax.Array
    rows: jax.Array
    n_choices: jax.Array
    radix: jax.Array
    index_matrix: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class ConfigSpace:
    """The variables of a precision sweep over ``table`` and the local tables ``evaluate`` reads.

    variables: ``Variable`` records (V); size: number of configurations (a Python int, may be huge);
    cluster: L1 / L2 sizes for the fit flags.
    """

    table: CostTable
    variables: tuple
    arrays: SpaceArrays
    cluster: Cluster
    size: int

    @property
    def names(self) -> tuple:
        return tuple(v.name for v in self.variables)

    def check_configs(self, configs, name: str = "configs") -> np.ndarray:
        """``configs`` ``[..., V]`` as a numpy int array, or raise: integer choice indices, each in
        0..n_choices - 1 of its variable (vectorised: one min and one max per variable)."""
        V = len(self.variables)
        try:
            c = np.asarray(configs)
        except (TypeError, ValueError):
            raise JaxpulpError(f"{name}={configs!r}: expected [..., {V}] integer choice indices") from None
        if c.ndim < 1 or c.shape[-1] != V:
            raise JaxpulpError(f"{name}: shape {c.shape}, expected (..., {V}) choice indices")
        if c.dtype.kind not in "iu":
            raise JaxpulpError(f"{name}: dtype {c.dtype}, expected integer choice indices (a float index is "
                               "not cast)")
        if c.size:
            flat = c.reshape(-1, V)
            n = np.asarray(self.arrays.n_choices)
            # one reduction: seen unsigned, a negative index is huge, so max >= n catches both ends
            u = flat.view(np.dtype(flat.dtype.str.replace("i", "u"))) if flat.dtype.kind == "i" else flat
            bad = np.flatnonzero(u.max(axis=0) >= n)
            if bad.size:
                lo, hi = flat.min(axis=0), flat.max(axis=0)
                k = int(bad[0])
                val = int(lo[k]) if lo[k] < 0 else int(hi[k])
                raise JaxpulpError(f"{name}[..., {k}] ({self.variables[k].name!r}) = {val}: expected a choice index "
                                   f"in 0..{int(n[k]) - 1}")
        return c

    def types_of(self, config) -> dict:
        """Variable name -> type string of one configuration ``[V]``."""
        c = self.check_configs(config, "config")
        if c.ndim != 1:
            raise JaxpulpError(f"config: shape {c.shape}, expected ({len(self.variables)},), one configuration")
        return {v.name: str(v.choices[int(i)]) for v, i in zip(self.variables, c, strict=True)}

    def config_of(self, types: dict) -> np.ndarray:
        """The configuration ``[V]`` of ``types`` (variable name -> type; unnamed variables take choice 0)."""
        out = np.zeros(len(self.variables), np.int32)
        known = {v.name: k for k, v in enumerate(self.variables)}
        for name, t in types.items():
            if name not in known:
                raise JaxpulpError(f"types: variable {name!r} is not in this space; expected one of "
                                   f"{list(known)[:8]}...")
            v = self.variables[known[name]]
            qt = QType.parse(t)
            if qt not in v.choices:
                raise JaxpulpError(f"types[{name!r}]={t!r}: expected one of {[str(c) for c in v.choices]}")
            out[known[name]] = v.choices.index(qt)
        return out

    def layers_of(self, config) -> tuple:
        """The network's layers at the types of ``config`` (for the plain cost model or the value path)."""
        types = self.types_of(config)
        t_of = {}
        for v in self.variables:
            for t in v.tensors:
                t_of[t] = types[v.name]
        out = []
        for lay in self.table.layers:
            second = slot_names(lay.kind)[1]
            mid = types[f"{lay.name}.w"] if second == "w" else t_of[lay.inputs[1]] if second == "in2" else None
            out.append(layer_at(lay, t_of[lay.inputs[0]], mid, t_of[lay.output]))
        return tuple(out)


def _groups(table: CostTable, tie_pools: bool = True) -> list:
    """Activation tensors in first-use order, merged where a pool ties its output type to its input."""
    order = [table.input_name] + [lay.output for lay in table.layers]
    parent = {t: t for t in order}

    def find(t):
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for lay in table.layers:
        if lay.kind == "maxpool" or (tie_pools and lay.kind == "avgpool" and not lay.requant):
            parent[find(lay.output)] = find(lay.inputs[0])
    groups: dict = {}
    for t in order:
        groups.setdefault(find(t), []).append(t)
    return list(groups.values())


def config_space(table: CostTable, *, act_types=None, weight_types=None, free_input: bool = False,
                 fixed: dict | None = None, prune: bool = True, tie_pools: bool = True,
                 cluster: Cluster | None = None) -> ConfigSpace:
    """The configuration space of a sweep.

    act_types: allowed activation types of every free tensor (e.g. ``("u8", "u4", "u2")``); default: 8, 4 and
    2 bits with the tensor's original signedness. weight_types: default ``("i8", "i4", "i2")``. The network
    input keeps its type unless ``free_input``; int32 tensors (no-quant linear outputs) keep theirs; ``fixed``
    pins tensors (``{"conv0": "u8"}``) or weights (``{"conv0.w": "i8"}``). prune: drop choices that make a
    layer unsupported whatever the other variables are (repeated to a fixed point). tie_pools: an average pool
    without requantisation (``flag_requant = 0``) only divides, so its output keeps its input's type, like a
    max pool's (False: a free variable; the library then just clips). cluster: L1 / L2 sizes (default: GAP-8,
    64 kB / 512 kB).
    """
    fixed = {k: QType.parse(v) for k, v in (fixed or {}).items()}
    for name, given in (("act_types", act_types), ("weight_types", weight_types)):
        if given is not None and not len(given):  # an empty list meant "all" (weights) or an IndexError (acts)
            raise JaxpulpError(f"{name}={given!r}: expected at least one type, or None for the default")
    w_choices = tuple(QType.parse(t) for t in (W_AXIS if weight_types is None else weight_types))
    for t in w_choices:
        if t not in W_AXIS:
            raise JaxpulpError(f"weight_types: {t} is not a weight type; expected a subset of "
                               f"{[str(x) for x in W_AXIS]}")
    a_choices = None if act_types is None else tuple(QType.parse(t) for t in act_types)
    for t in a_choices or ():
        if t not in ALL_ACT_TYPES:
            raise JaxpulpError(f"act_types: {t} is not an activation type; expected a subset of "
                               f"{[str(x) for x in ALL_ACT_TYPES]}")
    orig = {table.input_name: table.input_type}
    for lay in table.layers:
        orig[lay.output] = lay.out_type
    variables = []
    known = set()
    for group in _groups(table, tie_pools):
        head = group[0]
        name = head
        pinned = [fixed[t] for t in group if t in fixed]
        choices: tuple
        if pinned:
            choices = (pinned[0],)
        elif (head == table.input_name and not free_input) or orig[head].bits == 32:
            choices = (orig[head],)
        elif a_choices is not None:
            choices = a_choices
        else:
            choices = tuple(QType(b, orig[head].signed) for b in (8, 4, 2))
        variables.append(Variable(name, "act", choices, tensors=tuple(group)))
        known.update(group)
    for lay in table.layers:
        if kinds.of(lay).weighted:
            name = f"{lay.name}.w"
            choices = (fixed[name],) if name in fixed else w_choices
            variables.append(Variable(name, "weight", choices, layer=lay.name))
    names = {v.name for v in variables} | known
    for k in fixed:
        if k not in names:
            raise JaxpulpError(f"fixed: {k!r} is neither a tensor nor a '<layer>.w' weight of {table.network}")
    tensor_var = {t: i for i, v in enumerate(variables) for t in v.tensors}
    weight_var = {v.layer: i for i, v in enumerate(variables) if v.kind == "weight"}
    V = len(variables)
    slot_vars = np.full((len(table.layers), 3), V, np.int32)
    for li, lay in enumerate(table.layers):
        slot_vars[li, 0] = tensor_var[lay.inputs[0]]
        slot_vars[li, 2] = tensor_var[lay.output]
        second = slot_names(lay.kind)[1]
        if second == "w":
            slot_vars[li, 1] = weight_var[lay.name]
        elif second == "in2":
            slot_vars[li, 1] = tensor_var[lay.inputs[1]]
    for li, lay in enumerate(table.layers):
        if not table.supported[li].any():
            rules = sorted({str(k).split(": ", 1)[-1] for k in table.kernel[li].reshape(-1)} - {"not a kernel"})
            raise JaxpulpError(f"layer {lay.name!r}: the library runs it at no precision ({', '.join(rules)}); "
                               "expected a layer shape PULP-NN supports")
    if prune:
        variables = _prune(table, variables, slot_vars)
    return _assemble(table, tuple(variables), slot_vars, cluster or Cluster())


def _local_indices(table, variables, slot_vars, li):
    """Universal-axis indices of each slot's choices for layer ``li``."""
    lay = table.layers[li]
    out = []
    for s in range(3):
        v = slot_vars[li, s]
        if v == len(variables):
            out.append(np.array([0]))
        else:
            out.append(np.array([axis_index(lay.kind, s, t) for t in variables[v].choices]))
    return out


def _prune(table, variables, slot_vars):
    variables = list(variables)
    changed = True
    while changed:
        changed = False
        for li in range(len(table.layers)):
            idx = _local_indices(table, variables, slot_vars, li)
            sub = table.supported[li][np.ix_(*idx)]
            for s in range(3):
                v = slot_vars[li, s]
                if v == len(variables):
                    continue
                keep = sub.any(axis=tuple(a for a in range(3) if a != s))
                if not keep.all():
                    var = variables[v]
                    choices = tuple(c for c, k in zip(var.choices, keep, strict=True) if k)
                    if not choices:
                        lay = table.layers[li]
                        raise JaxpulpError(
                            f"layer {lay.name!r}: no supported kernel for any choice of {var.name!r} in "
                            f"{[str(c) for c in var.choices]} (with the other variables' choices); widen the "
                            "choices or fix the neighbouring tensors")
                    variables[v] = dataclasses.replace(var, choices=choices)
                    changed = True
                    break
            if changed:
                break
    return variables


def _assemble(table, variables, slot_vars, cluster) -> ConfigSpace:
    L = len(table.layers)
    V = len(variables)
    if any(v.kind == "weight" and not v.choices for v in variables):
        raise JaxpulpError("config_space: a weight variable has no choice")
    blocks, base, strides = [], np.zeros(L, np.int32), np.zeros((L, 3), np.int32)
    pos = 0
    for li in range(L):
        idx = _local_indices(table, variables, slot_vars, li)
        sel = (li,) + tuple(np.ix_(*idx))
        sub = {f: getattr(table, f)[sel] for f in FIELDS + ("supported",)}
        n = sub["supported"].size
        dims = sub["supported"].shape
        strides[li] = (dims[1] * dims[2], dims[2], 1)
        base[li] = pos
        e32 = sub["energy_pj"].astype(np.float32).reshape(-1).view(np.int32)
        cols = [sub["cycles"], sub["weight_bytes"], sub["act_bytes"], sub["l1_bytes"], ~sub["supported"]]
        cols = [np.asarray(c).reshape(-1) for c in cols]
        for c in cols[:4]:
            if c.max(initial=0) >= 2**31:
                raise JaxpulpError(f"layer {table.layers[li].name!r}: a cost of {c.max()} does not fit int32")
        blocks.append(np.stack([c.astype(np.int32) for c in cols] + [e32], axis=1))
        pos += n
    rows = np.concatenate(blocks)
    worst = sum(int(table.cycles[li].max()) for li in range(L))
    if worst >= 2**31:
        raise JaxpulpError(f"network {table.network!r}: up to {worst} cycles per inference, which overflows the "
                           "int32 sums of evaluate()")
    n_choices = np.array([len(v.choices) for v in variables], np.int32)
    size = 1
    for n in n_choices:
        size *= int(n)
    radix = np.zeros(V, np.int64)
    if size < 2**31:
        r = 1
        for k in range(V - 1, -1, -1):
            radix[k] = r
            r *= int(n_choices[k])
    if len(rows) >= 2**24:
        raise JaxpulpError(f"network {table.network!r}: {len(rows)} table rows, expected fewer than 2**24")
    index_matrix = np.zeros((V + 1, L), np.float32)
    for li in range(L):
        for s in range(3):
            index_matrix[slot_vars[li, s], li] += strides[li, s]
    arrays = SpaceArrays(jnp.asarray(base), jnp.asarray(strides), jnp.asarray(slot_vars), jnp.asarray(rows),
                         jnp.asarray(n_choices), jnp.asarray(radix.astype(np.int32)), jnp.asarray(index_matrix[:V]))
    return ConfigSpace(table, variables, arrays, cluster, size)


# ------------------------------------------------------------------------------------------------ evaluation


def decode_enumerated(arrays: SpaceArrays, index):
    """Configuration ``[..., V]`` number ``index`` (int32 ``[...]``) in mixed-radix (lexicographic) order."""
    if not isinstance(index, jax.core.Tracer) and not isinstance(arrays.n_choices, jax.core.Tracer):
        # concrete: check the range once (traced: the caller's)
        _check_enumerated(arrays, index)
    index = jnp.asarray(index, jnp.int32)[..., None]
    return ((index // jnp.maximum(arrays.radix, 1)) % arrays.n_choices).astype(jnp.int32)


def _check_enumerated(arrays: SpaceArrays, index) -> None:
    radix, n = np.asarray(arrays.radix), np.asarray(arrays.n_choices)
    if n.size and not radix.any() and (n > 1).any():
        raise JaxpulpError("arrays: the space is too large to enumerate (radix 0); use decode_sampled")
    size = int(np.prod(n.astype(object))) if n.size else 1
    try:
        a = np.asarray(index)
    except (TypeError, ValueError):
        a = np.asarray([], np.float64)
    if a.dtype.kind not in "iu" and not (a.dtype == object and all(isinstance(x, int) for x in a.ravel())):
        raise JaxpulpError(f"index={index!r}: expected integer configuration numbers in 0..{size - 1}")
    if a.size:
        lo, hi = a.min(), a.max()
        if lo < 0 or hi >= size:
            bad = lo if lo < 0 else hi
            raise JaxpulpError(f"index={int(bad)}: expected a configuration number in 0..{size - 1} "
                               "(the space's size)")


def _mix32(x):
    """lowbias32 integer hash of uint32 ``x`` (C. Wellons): a cheap counter-based random stream."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def decode_sampled(arrays: SpaceArrays, index, seed: int):
    """Configuration ``[..., V]`` number ``index`` of the uniform random stream ``seed`` (each variable's choice
    is a hash of (seed, index, variable): a pure function, so any index range can be recomputed)."""
    idx = jnp.asarray(index).astype(jnp.uint32)[..., None]
    v = jnp.arange(arrays.n_choices.shape[0], dtype=jnp.uint32)
    s = _mix32(jnp.uint32(seed) ^ jnp.uint32(0x9E3779B9))
    h = _mix32(_mix32(idx ^ s) + v * jnp.uint32(0x85EBCA6B) + s)
    return (h % arrays.n_choices.astype(jnp.uint32)).astype(jnp.int32)


def _ordered_sum(x):
    """Sum over the last axis layer by layer: the same float32 result whatever the batch shape or device."""
    acc = x[..., 0]
    for i in range(1, x.shape[-1]):
        acc = acc + x[..., i]
    return acc


def evaluate_arrays(arrays: SpaceArrays, configs, l1_bytes: int, l2_bytes: int) -> dict:
    """Cost and memory of configurations ``[..., V]`` (pure ``jnp``; see ``evaluate``)."""
    configs = jnp.asarray(configs)
    offs = jnp.matmul(configs.astype(jnp.float32), arrays.index_matrix, precision=jax.lax.Precision.HIGHEST)
    row = arrays.base + jnp.rint(offs).astype(jnp.int32)  # [..., L]
    r = arrays.rows[row]  # [..., L, 6]
    tot = jnp.sum(r, axis=-2)  # one pass over the gathered rows for the sums, one for the maxima
    top = jnp.max(r, axis=-2)
    out = {
        "cycles": tot[..., 0],
        "energy_pj": _ordered_sum(jax.lax.bitcast_convert_type(r[..., 5], jnp.float32)),
        "weight_bytes": tot[..., 1],
        "peak_act_bytes": top[..., 2],
        "memory_bytes": tot[..., 1] + top[..., 2],
        "l1_bytes": top[..., 3],
        "supported": tot[..., 4] == 0,
    }
    out["l1_fit"] = out["l1_bytes"] <= l1_bytes
    out["l2_fit"] = out["memory_bytes"] <= l2_bytes
    return out


BLOCK = 1 << 14  # configurations per block: the gathered rows of one block stay in cache


def evaluate_blocked(arrays: SpaceArrays, configs, l1_bytes: int, l2_bytes: int, block: int = BLOCK) -> dict:
    """``evaluate_arrays`` over ``[B, V]`` configurations, ``block`` at a time (``lax.map``): the same numbers,
    several times faster for large B on CPU."""
    B, V = configs.shape
    if B <= block:
        return evaluate_arrays(arrays, configs, l1_bytes, l2_bytes)
    nb = -(-B // block)
    padded = jnp.pad(configs, ((0, nb * block - B), (0, 0))).reshape(nb, block, V)
    out = jax.lax.map(lambda c: evaluate_arrays(arrays, c, l1_bytes, l2_bytes), padded)
    return {k: v.reshape(nb * block)[:B] for k, v in out.items()}


@functools.partial(jax.jit, static_argnames=("l1", "l2"))
def _evaluate_jit(arrays, configs, l1, l2):
    flat = configs.reshape(-1, configs.shape[-1])
    out = evaluate_blocked(arrays, flat, l1, l2)
    return {k: v.reshape(configs.shape[:-1]) for k, v in out.items()}


def evaluate(space: ConfigSpace, configs) -> dict:
    """Cost and memory of configurations ``configs`` int32 ``[..., V]`` (choice indices).

    Returns arrays ``[...]``: cycles (int32, cycles), energy_pj (float32, pJ), weight_bytes, peak_act_bytes,
    memory_bytes (= weight + peak activation), l1_bytes (int32, bytes), supported, l1_fit, l2_fit (bool).
    Costs of an unsupported configuration count only its supported layers.
    """
    if not isinstance(space, ConfigSpace):
        raise JaxpulpError(f"space={type(space).__name__}: expected a ConfigSpace (config_space(table))")
    if isinstance(configs, jax.core.Tracer):
        V = len(space.variables)
        if configs.ndim < 1 or configs.shape[-1] != V or not jnp.issubdtype(configs.dtype, jnp.integer):
            raise JaxpulpError(f"configs: shape {configs.shape} dtype {configs.dtype}, expected (..., {V}) "
                               "integer choice indices")
    else:
        space.check_configs(configs)  # one min / max per variable, vectorised
    configs = jnp.asarray(configs)
    return _evaluate_jit(space.arrays, configs, space.cluster.l1_bytes, space.cluster.l2_bytes)


def reference_cost(space: ConfigSpace, config, target=None) -> dict:
    """The same numbers as ``evaluate`` for one configuration by a plain loop over the layers calling the cost
    model (the oracle and the benchmark's baseline)."""
    from jaxpulp.cost import kernel_cost

    if not isinstance(space, ConfigSpace):
        raise JaxpulpError(f"space={type(space).__name__}: expected a ConfigSpace (config_space(table))")
    tgt, cluster = target_and_cluster(target or space.table.target)
    cyc, en, wb, peak, l1, ok = 0, 0.0, 0, 0, 0, True
    for lay in space.layers_of(config):
        try:
            cc = kernel_cost(check_layer(lay, cluster), tgt)
        except JaxpulpError:
            ok = False
            continue
        w, a = entry_bytes(lay, lay.in_type, lay.w_type if kinds.of(lay).weighted else lay.in2_type,
                           lay.out_type)
        cyc += cc.cycles
        en += cc.energy_pj
        wb += w
        peak = max(peak, a)
        l1 = max(l1, a + w)
    return dict(cycles=cyc, energy_pj=en, weight_bytes=wb, peak_act_bytes=peak, memory_bytes=wb + peak,
                l1_bytes=l1, supported=ok, l1_fit=l1 <= space.cluster.l1_bytes,
                l2_fit=wb + peak <= space.cluster.l2_bytes)


# ---------------------------------------------------------------------------------------------------- export

def _plinio_spec(lay) -> dict:
    """The layer's PyTorch attributes, as PLiNIO's ``PatternSpec`` names them (shapes NCHW, batch 1)."""
    H, W, C = lay.in_shape
    Ho, Wo, Co = lay.out_shape
    t, b, left, r = lay.pad
    k = kinds.of(lay)
    if k.flat:
        spec = dict(in_features=H * W * C, out_features=Co)
    elif k.weighted:
        spec = dict(in_channels=C, out_channels=Co, kernel_size=list(lay.kernel), stride=list(lay.stride),
                    padding=[t, left] if (t, left) == (b, r) else [t, b, left, r],
                    groups=C if k.channelwise else 1)
    elif lay.kind in kinds.POOLS:
        spec = dict(kernel_size=list(lay.kernel), stride=list(lay.stride), padding=[t, b, left, r])
    else:
        spec = {}
    spec["input_shape"] = [1, C, H, W]
    spec["output_shape"] = [1, Co] if k.flat else [1, Co, Ho, Wo]
    return spec


def _fmt(t) -> str:
    return "int" if t.signed else "uint"


def export_lut(table: CostTable) -> dict:
    """Per-layer cost look-up tables of every precision triple, in the layout of PLiNIO cost specifications:
    each layer has ``pattern`` (PLiNIO's pattern name), ``spec`` (PyTorch attribute names, NCHW
    ``output_shape``) and ``lut``, one entry per triple with ``in_precision`` / ``w_precision`` /
    ``out_precision`` (bits) and ``in_format`` / ``w_format`` / ``out_format`` ("int" or "uint"), the C kernel,
    and cycles, energy_pj, weight_bytes, act_bytes, l1_bytes (null where ``supported`` is false). A layer
    without weights has ``w_precision`` null (an add: ``in2_precision`` instead)."""
    import jaxpulp

    layers = []
    for li, lay in enumerate(table.layers):
        lut = []
        lk = kinds.of(lay)
        second = lk.slots[1] or "w"
        for (ia, a), (ib, b), (ic, c) in itertools.product(*(enumerate(axis_types(lay.kind, s)) for s in range(3))):
            if a.bits == 32 or (c.bits == 32 and not lk.int32_out) or (b is not None and b.bits == 32):
                continue
            e = dict(in_precision=a.bits, in_format=_fmt(a))
            e.update({f"{second}_precision": b and b.bits, f"{second}_format": b and _fmt(b)})
            e.update(out_precision=c.bits, out_format=_fmt(c))
            ok = bool(table.supported[li, ia, ib, ic])
            e["supported"] = ok
            k = str(table.kernel[li, ia, ib, ic])
            e["kernel"] = k if ok else None
            if not ok:
                e["reason"] = k.split(": ", 1)[1] if k.startswith("unsupported: ") else "no such kernel"
            for f in FIELDS:
                v = getattr(table, f)[li, ia, ib, ic].item()
                e[f] = (round(v, 3) if isinstance(v, float) else v) if ok else None
            lut.append(e)
        layers.append(dict(name=lay.name, kind=lay.kind, pattern=lk.plinio, inputs=list(lay.inputs),
                           output=lay.output, spec=_plinio_spec(lay), lut=lut))
    return {
        "format": "jaxpulp-cost-lut",
        "format_version": 1,
        "tool": f"jaxpulp {jaxpulp.__version__}",
        "network": table.network,
        "target": table.target,
        "model": table.model,
        "units": dict(cycles="cycles", energy_pj="pJ", weight_bytes="bytes", act_bytes="bytes", l1_bytes="bytes"),
        "layers": layers,
    }


def save_lut(table: CostTable, path: str) -> None:
    """Write ``export_lut(table)`` as JSON to ``path``."""
    from jaxpulp._io import check_output_path, write_text

    if not isinstance(table, CostTable):
        raise JaxpulpError(f"table={type(table).__name__}: expected a CostTable (build_table(net))")
    check_output_path(path, "path")
    write_text(path, json.dumps(export_lut(table), indent=1) + "\n")  # atomically
