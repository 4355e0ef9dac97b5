"""ONNX importers for the three integer dialects people deploy PULP-NN networks with (ecosystem.md App. A).

* **DORY / QuantLab**: ``Conv[weight_bits] -> Mul -> Add -> Div(2^d) -> Floor -> Clip[out_bits]``; residual
  ``Add`` nodes carry ``in{1,2}_{mul,add,shift}`` and ``out_{mul,add,shift,n_levels}`` attributes (DORY adder).
* **NEMO** integer-deployable: ``Conv -> Mul(kappa) -> Add(lambda) -> Cast -> Mul(m) -> Div(D) -> Cast -> Clip``
  (optionally ``Floor``); residual ``Mul, Mul, Add, Div, Floor``; average pooling ``AveragePool, Mul, Mul, Div,
  Floor``; 8-bit unsigned activations, 8-bit weights.
* **Deeploy**: ``RequantShift(x, mul, add; div, n_levels_out, signed)``, which rounds: ``floor((x*mul + add +
  div/2) / div)``. PULP-NN has no rounding term, but it adds lambda before its floor shift, so the importer folds
  ``div/2`` into lambda (and into the add offsets) and the kernels then compute Deeploy's arithmetic exactly;
  the layer is marked ``rounding=True`` and the network notes say so.

Every requantisation maps onto PULP-NN's batch-norm mode ``clip((kappa*acc + lambda) >> d)`` exactly; a
divisor that is not a power of two, a clip range that is not a PULP-NN type, or any other pattern gets a
``JaxpulpError`` naming the node, the pattern expected and a hint. Host-side tail operators after the last
integer layer (Sigmoid, LogSoftmax, Softmax, Gather, Unsqueeze, Concat, Squeeze, Shape) are not emulated:
they are dropped, listed in ``Network.notes``, and the network outputs are the integer tensors feeding them.
Activations are HWC (ONNX is NCHW, batch 1); a linear layer after a flatten of a C x H x W tensor gets its
weight columns permuted to the HWC order PULP-NN reads.

1-D networks (Conv1d / MaxPool1d / AveragePool1d on (N, C, L) tensors: TCNs, keyword spotting, EEG) run as the
2-D kernels on H = 1 images, exactly. A dilated convolution runs as the undilated kernel with zero taps in
between (exact; the notes give the MAC overhead); dilated pooling is refused. Deeploy's ``RequantShift`` may spell
its level count ``n_levels_out`` or ``n_levels``. A NEMO residual add ``floor((c1*a + c2*b) / D)`` maps exactly
when D divides c1 or c2. A lambda beyond int32 (NEMO's lambda*m) runs in the 64-bit tree with
``lambda = kappa*b + r``, b moved into the bias (exact while the accumulator stays inside int32).
"""
from __future__ import annotations

import math
import os

import numpy as np

from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.network.graph import Layer, Network, TensorSpec
from jaxpulp.qtypes import QType

DIALECTS = ("auto", "dory", "nemo", "deeploy", "integer")
_ALL_OPS = {"Conv", "MaxPool", "AveragePool", "Gemm", "MatMul", "Add", "RequantShift", "Mul"}
HOST_TAIL_OPS = ("Sigmoid", "LogSoftmax", "Softmax", "Gather", "Unsqueeze", "Concat", "Squeeze", "Shape")
_VIEW_OPS = ("Flatten", "Reshape", "Squeeze")
_CAST_OPS = ("Cast",)


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise JaxpulpError("ONNX import needs the 'onnx' package: pip install 'jaxpulp[onnx]'") from e
    return onnx, numpy_helper


class _Graph:
    """Nodes, constants, producers and consumers of an ONNX graph."""

    def __init__(self, model):
        onnx, nh = _onnx()
        self.onnx = onnx
        g = model.graph
        self.nodes = list(g.node)
        _check_structure(g, self.nodes)
        self.consts = {i.name: nh.to_array(i) for i in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.consts[n.output[0]] = nh.to_array(a.t)
                    elif a.name in ("value_float", "value_int"):
                        self.consts[n.output[0]] = np.asarray(onnx.helper.get_attribute_value(a))
        self.consumers = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.inputs = [i for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]

    def attrs(self, node) -> dict:
        out = {}
        for a in node.attribute:
            v = self.onnx.helper.get_attribute_value(a)
            if hasattr(v, "dims"):
                v = _onnx()[1].to_array(v)
            if isinstance(v, bytes):
                v = v.decode()
            out[a.name] = v
        return out

    def only_consumer(self, tensor: str):
        c = [n for n in self.consumers.get(tensor, []) if n.op_type != "Constant"]
        return c[0] if len(c) == 1 and tensor not in self.outputs else None

    def const(self, name: str, node, what: str) -> np.ndarray:
        if name not in self.consts:
            raise JaxpulpError(f"node {node.name or node.op_type!r} ({node.op_type}): {what} {name!r} must be a "
                               "constant (initializer or Constant node)")
        return np.asarray(self.consts[name])


def _check_structure(g, nodes) -> None:
    """The graph is well formed as ONNX requires: every tensor produced once, every node input a graph input, an
    initializer or the output of an earlier node (topological order, hence no cycle), every graph output
    produced. Raises naming the node and tensor (a dangling or looping edge otherwise surfaces as a pattern error
    about some other node)."""
    seen = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    later: dict = {}  # tensor -> its producing node
    for n in nodes:
        if not any(n.output):
            raise JaxpulpError(f"node {_node_id(n)}: no output; expected at least one")
        for o in n.output:
            if o and o in later:
                raise JaxpulpError(f"node {_node_id(n)}: output {o!r} is also produced by node {_node_id(later[o])}; "
                                   "expected every tensor produced once")
            later[o] = n
    for n in nodes:
        for i in n.input:
            if i not in seen:
                where = (f"produced only by node {_node_id(later[i])}, which is not before it (ONNX nodes are in "
                         "topological order; a cycle cannot be)" if i in later else
                         "produced by no node, initializer or graph input")
                raise JaxpulpError(f"node {_node_id(n)}: input {i!r} is {where}")
        seen.update(n.output)
    missing = [o.name for o in g.output if o.name not in seen]
    if missing:
        raise JaxpulpError(f"graph outputs {missing}: produced by no node, initializer or graph input")


def _node_id(n) -> str:
    return f"{n.name or (n.output[0] if n.output else '')!r} ({n.op_type})"


def _int_array(a, node, what: str) -> np.ndarray:
    a = np.asarray(a)
    r = np.round(a).astype(np.int64)
    if not np.array_equal(r, a):
        bad = a.ravel()[np.flatnonzero(r.ravel() != a.ravel())[0]]
        raise JaxpulpError(f"node {_node_id(node)}: {what} holds non-integer values (e.g. {bad!r}); "
                           "expected an integer-deployable graph (run the integerisation pass of your tool first)")
    return r


def _scalar(a, node, what: str):
    """The one value of a constant that must be a single number (all its elements equal: a per-tensor divisor, a
    Clip bound, an attribute); a constant whose elements differ is refused, not read by its first element."""
    v = np.ravel(np.asarray(a))
    if v.size == 0:
        raise JaxpulpError(f"node {_node_id(node)}: {what} is empty; expected one number")
    if v.size > 1 and not np.all(v == v[0]):
        raise JaxpulpError(f"node {_node_id(node)}: {what} holds {v.size} different values ({v[:4].tolist()}...); "
                           "expected one number for the whole tensor (PULP-NN requantises with one shift and one "
                           "output range per layer)")
    return v[0]


def _integral(v, node, what: str) -> int:
    """An attribute / constant that must be a whole number, as an int (1024.7 is refused, not truncated)."""
    f = float(v)
    if not np.isfinite(f) or f != round(f):
        raise JaxpulpError(f"node {_node_id(node)}: {what} = {f:.8g} is not a whole number; expected an "
                           "integer-deployable graph")
    return int(round(f))


def _pow2(d, node, what: str, notes: list | None = None, near: str = "strict") -> int:
    """log2 of a power-of-two divisor. ``near="shift"`` also accepts NEMO's 2^d - 1 divisors as shift d (what DORY
    generates for them), recording a note; ``"strict"`` refuses them."""
    d = _integral(d, node, what)
    if d > 0 and (d + 1) & d == 0 and d > 1 and near == "shift":
        sh = (d + 1).bit_length() - 1
        if notes is not None:
            notes.append(f"{node.name or node.output[0]}: divisor {d} = 2^{sh} - 1 mapped to shift {sh}, as DORY "
                         f"deploys it (floor(v/{d}) and v >> {sh} differ for v within v/2^{sh} below a multiple of "
                         f"2^{sh}); use nemo_divisor='strict' to refuse")
        return sh
    if d <= 0 or d & (d - 1):
        hint = ""
        if d > 0 and (d + 1) & d == 0:
            hint = (f" ({d} = 2^{int(math.log2(d + 1))} - 1: NEMO's variant, accepted as a shift with "
                    "nemo_divisor='shift')")
        raise JaxpulpError(f"node {_node_id(node)}: {what} = {d} is not a power of two; PULP-NN requantises "
                           f"with an arithmetic shift{hint}. Hint: re-export with power-of-two requant divisors")
    return d.bit_length() - 1


def _clip_type(lo, hi, node, bits_attr=None) -> QType:
    lo, hi = _integral(lo, node, "Clip min"), _integral(hi, node, "Clip max")
    for b in (8, 4, 2):
        if (lo, hi) == (0, (1 << b) - 1):
            t = QType(b, False)
            break
        if (lo, hi) == (-(1 << (b - 1)), (1 << (b - 1)) - 1):
            t = QType(b, True)
            break
    else:
        raise JaxpulpError(f"node {_node_id(node)}: clip range [{lo}, {hi}] is not a PULP-NN activation type "
                           "(expected [0, 2^b - 1] or [-2^(b-1), 2^(b-1) - 1] for b in 8, 4, 2)")
    if bits_attr is not None and int(bits_attr) != t.bits:
        raise JaxpulpError(f"node {_node_id(node)}: out_bits={bits_attr} disagrees with the clip range [{lo}, {hi}]")
    return t


def _rq_levels(attrs: dict, node):
    """A RequantShift's output level count: ``n_levels_out``, or ``n_levels`` as Deeploy's own kernel tests spell
    it (its parser accepts both)."""
    for k in ("n_levels_out", "n_levels"):
        if k in attrs:
            return attrs[k]
    raise JaxpulpError(f"node {_node_id(node)}: RequantShift has no n_levels_out (or n_levels) attribute; expected "
                       "the number of output levels (256, 16 or 4)")


def _levels_type(n_levels, signed, node) -> QType:
    n = _integral(_scalar(n_levels, node, "n_levels_out"), node, "n_levels_out")
    s = _integral(_scalar(signed, node, "signed"), node, "signed")
    if s not in (0, 1):
        raise JaxpulpError(f"node {_node_id(node)}: signed={s}; expected 0 or 1")
    b = n.bit_length() - 1
    if b not in (8, 4, 2) or n != 1 << b:
        raise JaxpulpError(f"node {_node_id(node)}: n_levels_out={n} is not 256, 16 or 4 (PULP-NN 8/4/2-bit outputs)")
    return QType(b, bool(s))


def _per_channel(a, C: int, node, what: str, axis: int | None = None) -> np.ndarray:
    """One value per channel of a constant with 1 or C values. ``axis``: the channel axis of the tensor it
    multiplies / adds to, counted from the right (-3 for (N, C, H, W), -2 for (N, C, L), -1 for (N, F)): under
    ONNX's broadcasting a constant of C values must lie along it ((C, 1, 1) or (1, C, 1, 1) for an image), not
    along a spatial axis; None (RequantShift, whose mul / add are per channel by definition): not checked."""
    a = np.asarray(a)
    if a.size == 1:
        return np.full(C, a.ravel()[0], np.int64)
    if a.size != C:
        raise JaxpulpError(f"node {_node_id(node)}: {what} has {a.size} values, expected 1 or {C} (one per channel)")
    along = [i - a.ndim for i, n in enumerate(a.shape) if n != 1]
    if axis is not None and along != [axis]:
        want = "(C,)" if axis == -1 else "(C" + ", 1" * (-axis - 1) + ")"
        raise JaxpulpError(f"node {_node_id(node)}: {what} of shape {a.shape} does not lie along the channel axis of "
                           f"the tensor it applies to (axis {axis} from the right; expected shape {want} or with "
                           "leading 1s): ONNX would broadcast it over another axis")
    return a.ravel().astype(np.int64)


def _i32(a, node, what: str) -> np.ndarray:
    a = np.asarray(a, np.int64)
    if a.size and (a.min() < -(1 << 31) or a.max() >= 1 << 31):
        raise JaxpulpError(f"node {_node_id(node)}: {what} spans [{a.min()}, {a.max()}], outside int32 "
                           "(PULP-NN's 32-bit requantisation parameters)")
    return a.astype(np.int32)


class _Requant:
    """A matched requantisation chain: out = clip((kappa*acc + lam) >> shift) of type ``qtype``."""

    def __init__(self, kappa, lam, shift, qtype, end, nodes, rounding=False):
        self.kappa, self.lam, self.shift, self.qtype = kappa, lam, shift, qtype
        self.end, self.nodes, self.rounding = end, nodes, rounding


def _follow(g: _Graph, cur: str, nodes: list, ops: tuple) -> tuple:
    """Walk the single-consumer chain from tensor ``cur`` through nodes of type ``ops`` (appended to ``nodes``);
    returns (the last tensor, the next node or None)."""
    nxt = g.only_consumer(cur)
    while nxt is not None and nxt.op_type in ops:
        nodes.append(nxt)
        cur = nxt.output[0]
        nxt = g.only_consumer(cur)
    return cur, nxt


def _other_input(node, tensor):
    ins = [i for i in node.input if i != tensor]
    return ins[0] if ins else None


def _match_requant(g: _Graph, tensor: str, C: int, notes: list | None = None, near: str = "strict",
                   axis: int | None = None) -> _Requant | None:
    """The requantisation chain that starts at ``tensor`` (C channels along ``axis`` from the right, see
    ``_per_channel``), or None if none starts there."""
    n = g.only_consumer(tensor)
    if n is None:
        return None
    if n.op_type == "RequantShift":
        a = g.attrs(n)
        mul = _int_array(g.const(n.input[1], n, "mul"), n, "mul")
        add = _int_array(g.const(n.input[2], n, "add"), n, "add")
        div = _integral(_scalar(a["div"], n, "div"), n, "div")
        shift = _pow2(div, n, "div")
        qt = _levels_type(_rq_levels(a, n), a.get("signed", 1), n)
        return _Requant(_per_channel(mul, C, n, "mul"), _per_channel(add, C, n, "add") + div // 2, shift, qt,
                        n.output[0], [n], rounding=True)
    if n.op_type != "Mul":
        return None
    nodes = [n]
    kappa = _int_array(g.const(_other_input(n, tensor), n, "kappa (multiplier)"), n, "kappa")
    kappa = _per_channel(kappa, C, n, "kappa", axis)
    lam = np.zeros(C, np.int64)
    cur = n.output[0]
    nxt = g.only_consumer(cur)
    if nxt is not None and nxt.op_type == "Add" and _other_input(nxt, cur) in g.consts:
        lam = _per_channel(_int_array(g.const(_other_input(nxt, cur), nxt, "lambda"), nxt, "lambda"), C, nxt,
                           "lambda", axis)
        nodes.append(nxt)
        cur = nxt.output[0]
        nxt = g.only_consumer(cur)
    cur, nxt = _follow(g, cur, nodes, _CAST_OPS)
    if nxt is not None and nxt.op_type == "Mul" and _other_input(nxt, cur) in g.consts:  # NEMO requant multiplier
        # per channel too: m * (kappa * acc + lam) == (m * kappa) * acc + m * lam, exactly, channel by channel
        m = _per_channel(_int_array(g.const(_other_input(nxt, cur), nxt, "multiplier"), nxt, "multiplier"), C, nxt,
                         "multiplier", axis)
        kappa, lam = kappa * m, lam * m
        nodes.append(nxt)
        cur = nxt.output[0]
        nxt = g.only_consumer(cur)
    if nxt is None or nxt.op_type != "Div":
        where = _node_id(nxt) if nxt is not None else "nothing"
        raise JaxpulpError(f"node {_node_id(n)}: a requantisation Mul must be followed by [Add] [Cast] [Mul] Div "
                           f"Floor/Cast Clip; found {where}. Hint: only integer-deployable exports are supported")
    shift = _pow2(_scalar(g.const(nxt.input[1], nxt, "divisor"), nxt, "divisor"), nxt, "divisor", notes, near)
    nodes.append(nxt)
    cur, nxt = _follow(g, nxt.output[0], nodes, ("Floor",) + _CAST_OPS)
    if nxt is None or nxt.op_type != "Clip":
        raise JaxpulpError(f"node {_node_id(nodes[-1])}: the requantisation chain must end in a Clip that sets the "
                           "output type (e.g. Clip(min=0, max=255) for u8)")
    a = g.attrs(nxt)
    lo = a.get("min", g.consts.get(nxt.input[1]) if len(nxt.input) > 1 and nxt.input[1] else None)
    hi = a.get("max", g.consts.get(nxt.input[2]) if len(nxt.input) > 2 and nxt.input[2] else None)
    if lo is None or hi is None:
        raise JaxpulpError(f"node {_node_id(nxt)}: Clip needs constant min and max (the output type)")
    qt = _clip_type(_scalar(lo, nxt, "Clip min"), _scalar(hi, nxt, "Clip max"), nxt, a.get("out_bits"))
    nodes.append(nxt)
    return _Requant(kappa, lam, shift, qt, nxt.output[0], nodes)


def _detect_dialect(g: _Graph) -> tuple[str, str]:
    """(dialect, the evidence for it) of a graph: "integer" where nothing tells the dialects apart."""
    ops = {n.op_type for n in g.nodes}
    if "RequantShift" in ops:
        return "deeploy", "it has RequantShift nodes"
    for n in g.nodes:
        a = {"weight_bits", "out_bits", "mult_bits", "in1_mul"} & {x.name for x in n.attribute}
        if a:
            return "dory", f"node {_node_id(n)} has the bit-width attribute {sorted(a)[0]}"
    if ops & {"Mul", "Div"}:
        return "nemo", "it requantises with Mul / Div nodes and has neither RequantShift nodes nor bit-width attributes"
    return "integer", "it has no requantisation"


def _check_dialect(dialect: str, g: _Graph) -> str:
    """The dialect of the imported network: the detected one for "auto"; a named one where the graph does not
    show another (a graph without requantisation, "integer", takes any name: e.g. a Deeploy pooling test)."""
    found, why = _detect_dialect(g)
    if dialect in ("auto", found) or found == "integer":
        return found if dialect == "auto" else dialect
    raise JaxpulpError(f"dialect={dialect!r}: the model is in the {found} dialect ({why}); pass dialect='auto' "
                       f"or {found!r} (the dialect decides how goldens are laid out and what reports say)")


def _nchw(shape) -> tuple:
    """(C, H, W) of an ONNX activation shape, batch 1: (N, C, H, W); (N, C, L) of a 1-D network as H = 1, W = L
    (Conv1d / MaxPool1d run as the 2-D kernels on 1 x L images, exactly); (N, F) as F channels of one pixel."""
    s = tuple(int(v) for v in shape)
    if len(s) in (2, 3, 4) and s[0] not in (0, 1):
        raise JaxpulpError(f"input shape {s}: expected batch 1 (N, C, H, W) / (N, C, L) in the model; batches are "
                           "given to run()")
    if len(s) == 4:
        return s[1], s[2], s[3]
    if len(s) == 3:
        return s[1], 1, s[2]
    if len(s) == 2:
        return s[1], 1, 1
    raise JaxpulpError(f"input shape {s}: expected (N, C, H, W), or (N, C, L) for a 1-D network")


def _spatial(a: dict, node, key: str, default: int, nd: int) -> tuple:
    """A Conv / pooling attribute over the spatial axes as (y, x); a 1-D node (``nd`` = 1) has y = ``default``
    (pads: the (begin, end) pair of L becomes (0, 0, begin, end))."""
    if key == "pads":
        v = [int(p) for p in a.get("pads", [0] * (2 * nd))]
        if len(v) != 2 * nd:
            raise JaxpulpError(f"node {_node_id(node)}: pads={v}, expected {2 * nd} values for a {nd}-D node")
        return (v[0], v[2], v[1], v[3]) if nd == 2 else (0, 0, v[0], v[1])  # (top, bottom, left, right)
    v = [int(p) for p in a.get(key, [default] * nd)]
    if len(v) != nd:
        raise JaxpulpError(f"node {_node_id(node)}: {key}={v}, expected {nd} values for a {nd}-D node")
    if min(v) < 1:  # strides, dilations, kernel_shape
        raise JaxpulpError(f"node {_node_id(node)}: {key}={v}, expected values >= 1")
    return (v[0], v[1]) if nd == 2 else (default, v[0])


class _Importer:
    def __init__(self, g: _Graph, dialect: str, input_types: dict, bn_bits: int, near: str):
        self.g = g
        self.near = near
        self.dialect = dialect
        self.bn_bits = 32 if bn_bits == "auto" else bn_bits
        self.bn_bits_arg = bn_bits
        self.layers: list[Layer] = []
        self.params: dict = {}
        self.notes: list[str] = []
        self.done: set[int] = set()
        # activation tensor name -> ((C, H, W), QType); views (Pad, Flatten) are aliases of their source
        self.tensors: dict = {}
        self.alias: dict = {}
        self.pending_pad: dict = {}
        if len(g.inputs) < 1:
            raise JaxpulpError("the model has no graph input (an empty graph, or a protobuf that is not an ONNX model)")
        self.input_names = [i.name for i in g.inputs]
        for inp in g.inputs:
            bad = [(k, d.dim_param or d.dim_value) for k, d in enumerate(inp.type.tensor_type.shape.dim)
                   if k > 0 and d.dim_value < 1]  # the batch axis (0) may be symbolic; the others fix the layers
            if bad:
                raise JaxpulpError(f"graph input {inp.name!r}: axis {bad[0][0]} is {bad[0][1]!r}; expected fixed "
                                   "sizes >= 1 on every axis but the batch (export with a concrete input shape)")
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            self.tensors[inp.name] = (_nchw(dims), input_types[inp.name])

    # ---------------------------------------------------------------------------------------------- utils
    def name_of(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def tensor(self, t: str, node):
        t = self.name_of(t)
        if t not in self.tensors:
            where = _node_id(node) if node is not None else "a layer"
            raise JaxpulpError(f"node {where}: input {t!r} is not an activation produced by a supported "
                               "layer (unsupported producer upstream?)")
        return t, self.tensors[t]

    def mark(self, nodes):
        for n in nodes:
            self.done.add(id(n))

    def add_layer(self, lay: Layer, params: dict | None, chw, qt):
        """Register a layer, named after its anchor ONNX node (``Conv_3``) or ``<kind><index>`` if unnamed."""
        anchor = lay.source[0] if lay.source else ""
        base = anchor if anchor and anchor not in _ALL_OPS else f"{lay.kind}{len(self.layers)}"
        name, k = base, 1
        while name in self.params or any(layer.name == name for layer in self.layers):
            k += 1
            name = f"{base}_{k}"
        lay = lay.replace(name=name)
        self.layers.append(lay)
        if params is not None:
            self.params[lay.name] = params
        self.tensors[lay.output] = (chw, qt)

    # ------------------------------------------------------------------------------------------- patterns
    def conv(self, n):
        g = self.g
        src, ((C, H, W), in_t) = self.tensor(n.input[0], n)
        a = g.attrs(n)
        w = _int_array(g.const(n.input[1], n, "weight"), n, "weight")
        nd = w.ndim - 2
        if nd not in (1, 2) or (nd == 1 and H != 1):
            raise JaxpulpError(f"node {_node_id(n)}: weight of shape {w.shape} on a (C, H, W) = {(C, H, W)} tensor; "
                               "expected a 2-D convolution, or a 1-D one on an (N, C, L) tensor")
        if nd == 1:  # Conv1d: (Co, Ci/group, K) on (N, C, L) = a 1 x K kernel on a 1 x L image, exactly
            w = w[:, :, None, :]
        Co, Cig, Kh, Kw = w.shape
        if "kernel_shape" in a and _spatial(a, n, "kernel_shape", 1, nd) != (Kh, Kw):
            raise JaxpulpError(f"node {_node_id(n)}: kernel_shape={list(a['kernel_shape'])}, but the weight "
                               f"{n.input[1]!r} has shape {tuple(int(s) for s in w.shape[2 if nd == 2 else 3:])} "
                               "over the spatial axes")
        group = int(a.get("group", 1))
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise JaxpulpError(f"node {_node_id(n)}: auto_pad={a['auto_pad']!r} is not supported; expected explicit "
                               "pads")
        dy, dx = _spatial(a, n, "dilations", 1, nd)
        if (dy, dx) != (1, 1):  # a dilated kernel is an undilated one with zero taps in between: exact
            wd = np.zeros((Co, Cig, (Kh - 1) * dy + 1, (Kw - 1) * dx + 1), w.dtype)
            wd[:, :, ::dy, ::dx] = w
            self.notes.append(f"{n.name or n.output[0]}: dilations {[dy, dx][2 - nd:]} run as an undilated "
                              f"{wd.shape[2]}x{wd.shape[3]} kernel with zero taps (PULP-NN has no dilation); exact, "
                              f"but the kernel does {wd.shape[2] * wd.shape[3] / (Kh * Kw):.3g}x the MACs "
                              f"({Kh * Kw} of {wd.shape[2] * wd.shape[3]} taps non-zero)")
            w, Kh, Kw = wd, wd.shape[2], wd.shape[3]
        pt, pb, pl, pr = _spatial(a, n, "pads", 0, nd)
        et, eb, el, er = self.pending_pad.pop(src, (0, 0, 0, 0))
        pad = (pt + et, pb + eb, pl + el, pr + er)
        sy, sx = _spatial(a, n, "strides", 1, nd)
        if group == 1:
            kind = "conv"
            if Cig != C:
                raise JaxpulpError(f"node {_node_id(n)}: weight has {Cig} input channels, the input has {C}")
            wq = np.transpose(w, (0, 2, 3, 1))  # (Co, Kh, Kw, Ci)
        elif group == C == Co and Cig == 1:
            kind = "depthwise"
            wq = w[:, 0]  # (C, Kh, Kw)
            if Kh * Kw < 4:  # the library's 4-tap do-while needs Kh*Kw >= 4 (§8.3), its strips Kw >= 2: zero taps
                # over extra zero padding (a column on the right, rows below) keep the layer exact
                dx_, dy_ = max(0, 2 - Kw), max(0, -(-4 // max(Kw, 2)) - Kh)
                wq = np.pad(wq, ((0, 0), (0, dy_), (0, dx_)))
                self.notes.append(f"{n.name or n.output[0]}: {Kh}x{Kw} depthwise kernel run as {Kh + dy_}x"
                                  f"{Kw + dx_} with zero taps over as much more zero padding (PULP-NN's depthwise "
                                  f"needs Kh*Kw >= 4 and Kw >= 2); exact, {(Kh + dy_) * (Kw + dx_) / (Kh * Kw):.3g}x "
                                  "the MACs")
                Kh, Kw = Kh + dy_, Kw + dx_
                pad = (pad[0], pad[1] + dy_, pad[2], pad[3] + dx_)
        else:
            raise JaxpulpError(f"node {_node_id(n)}: group={group} with {C} input / {Co} output channels; PULP-NN "
                               "has standard (group=1) and depthwise (group=C_in=C_out) convolutions only")
        wbits = int(a.get("weight_bits", 8))
        w_t = QType(wbits, True)
        if wq.size and (wq.min() < w_t.lo or wq.max() > w_t.hi):
            raise JaxpulpError(f"node {_node_id(n)}: weights span [{wq.min()}, {wq.max()}], outside {w_t}")
        bias = None
        if len(n.input) > 2 and n.input[2]:
            bias = _i32(_int_array(g.const(n.input[2], n, "bias"), n, "bias"), n, "bias")
            if bias.size != Co:
                raise JaxpulpError(f"node {_node_id(n)}: bias has {bias.size} values, expected {Co} (one per output "
                                   "channel)")
        Ho = (H + pad[0] + pad[1] - Kh) // sy + 1
        Wo = (W + pad[2] + pad[3] - Kw) // sx + 1
        if Ho < 1 or Wo < 1:
            raise JaxpulpError(f"node {_node_id(n)}: a {Kh}x{Kw} kernel with pads {list(pad)} (top, bottom, left, "
                               f"right) on a {H}x{W} input gives no output")
        if kind == "conv" and (max(pad[:2]) >= Kh or max(pad[2:]) >= Kw):  # (depthwise strips take any pad)
            raise JaxpulpError(f"node {_node_id(n)}: pads {list(pad)} (top, bottom, left, right) reach the "
                               f"{Kh}x{Kw} kernel's size; PULP-NN's convolution pads less than a kernel on every "
                               "side")
        rq = _match_requant(g, n.output[0], Co, self.notes, self.near, axis=-(nd + 1))
        if rq is None:
            raise JaxpulpError(f"node {_node_id(n)}: a convolution must be followed by its requantisation "
                               "(Mul-Add-Div-Floor-Clip, Mul-Add-Cast-Mul-Div-Clip or RequantShift); PULP-NN "
                               "kernels always requantise their int32 accumulators")
        lname = rq.end
        lam = rq.lam
        if bias is not None:
            # kappa*(acc + b) + lambda == kappa*acc + (kappa*b + lambda), exactly (and modulo 2^32 in the 32-bit
            # tree): folding keeps the kernels away from their bias-pointer defects (conv drift §5.5, depthwise
            # int8 bias indexed by group §8.5)
            folded = rq.kappa * bias.astype(np.int64) + rq.lam
            if np.abs(folded).max(initial=0) < 1 << 31:
                lam, bias = folded, None
                self.notes.append(f"{n.name or n.output[0]}: bias folded into lambda (kappa*(acc+b)+lambda = "
                                  "kappa*acc + (kappa*b+lambda), exact)")
        taps = Kh * Kw * (C if kind == "conv" else 1)
        lam, bias, bn_bits = self._wide_lambda(n, kind, rq.kappa, lam, bias, _acc_bound(taps, in_t, wq))
        params = dict(w=wq.astype(np.int8), kappa=_i32(rq.kappa, n, "kappa"), lam=_i32(lam, n, "lambda"),
                      out_mult=np.int32(0), out_shift=np.int32(rq.shift))
        if bias is not None:
            params["bias"] = bias
        lay = Layer(lname, kind, (src,), lname, (H, W, C), (Ho, Wo, Co), in_t, rq.qtype, w_t, kernel=(Kh, Kw),
                    stride=(sy, sx), pad=pad, relu=1, bn=1, bias=bias is not None, bn_bits=bn_bits,
                    rounding=rq.rounding, source=tuple(x.name or x.op_type for x in [n] + rq.nodes))
        self.mark([n] + rq.nodes)
        self.add_layer(lay, params, (Co, Ho, Wo), rq.qtype)

    def _wide_lambda(self, n, kind: str, kappa, lam, bias, acc_max: int):
        """(lambda, bias, bn_bits) of a BN layer. A lambda beyond int32 (NEMO: lambda*m) needs the library's 64-bit
        tree (kappa*acc + lambda in 64 bits, DORY's BNRelu_bits = 64), whose int64 lambda jaxpulp's kernels take
        as int32: lambda = kappa*b + r with b = floor(lambda/kappa), r in [0, kappa) goes into the bias, since
        kappa*(acc + b) + r == kappa*acc + lambda exactly while acc + b stays inside int32 (the accumulator's
        width)."""
        lam = np.asarray(lam, np.int64)
        if not lam.size or (lam.min() >= -(1 << 31) and lam.max() < 1 << 31):
            return lam, bias, self.bn_bits
        where = (f"node {_node_id(n)}: lambda spans [{lam.min()}, {lam.max()}], outside int32; only the library's "
                 "64-bit tree (bn_bits=64, DORY BNRelu_bits=64) computes kappa*acc + lambda without wrapping")
        if self.bn_bits_arg == 32:
            raise JaxpulpError(f"{where}. Hint: load with bn_bits=64 (jaxpulp --bn-bits 64)")
        kappa = np.asarray(kappa, np.int64)
        if (kappa == 0).any() or kind == "depthwise":
            why = ("some kappa is 0" if (kappa == 0).any() else "the depthwise kernels read the bias as int8 per "
                   "channel group (semantics.md §8.5)")
            raise JaxpulpError(f"{where}, and it cannot be moved into the bias exactly here ({why})")
        b = np.floor_divide(lam, kappa)
        r = lam - kappa * b
        total = b + (0 if bias is None else np.asarray(bias, np.int64))
        if np.abs(total).max() + acc_max >= 1 << 31:
            raise JaxpulpError(f"{where}; lambda = kappa*b + r would need a bias b up to {np.abs(total).max()}, "
                               "which with the accumulator can leave int32")
        self.notes.append(f"{n.name or n.output[0]}: lambda beyond int32 (up to {np.abs(lam).max():.3g}) runs in the "
                          "64-bit tree as lambda = kappa*b + r with b in the bias (kappa*(acc + b) + r == kappa*acc + "
                          "lambda, exact: acc + b stays inside int32)")
        return r, total.astype(np.int32), 64

    def pad(self, n):
        g = self.g
        src, _ = self.tensor(n.input[0], n)
        a = g.attrs(n)
        pads = a.get("pads")
        if pads is None and len(n.input) > 1:
            pads = g.const(n.input[1], n, "pads")
        pads = [int(p) for p in np.ravel(pads)]
        mode = a.get("mode", "constant")
        value = float(_scalar(a.get("value", g.consts.get(n.input[2], 0) if len(n.input) > 2 else 0), n, "value"))
        nd = len(pads) // 2 - 2  # pads of (N, C, H, W) or (N, C, L), begins then ends
        if mode != "constant" or value != 0 or nd not in (1, 2) or any(pads[i] for i in (0, 1, nd + 2, nd + 3)):
            raise JaxpulpError(f"node {_node_id(n)}: only zero padding of H and W (or L) is supported (pads={pads}, "
                               f"mode={mode!r}, value={value}); it is merged into the next Conv or pooling")
        if nd == 2:
            t, left, b, r = pads[2], pads[3], pads[6], pads[7]
        else:
            t, b, left, r = 0, 0, pads[2], pads[5]
        prev = self.pending_pad.pop(src, (0, 0, 0, 0))
        out = n.output[0]
        self.alias[out] = src
        if any((t, b, left, r)) or any(prev):
            self.pending_pad[src] = (prev[0] + t, prev[1] + b, prev[2] + left, prev[3] + r)
            for c in g.consumers.get(out, []):
                if c.op_type not in ("Conv", "Pad", "MaxPool", "AveragePool"):
                    raise JaxpulpError(f"node {_node_id(n)}: padding must feed a Conv or pooling node, found "
                                       f"{_node_id(c)}")
        self.mark([n])

    def pool(self, n):
        g = self.g
        src, ((C, H, W), in_t) = self.tensor(n.input[0], n)
        a = g.attrs(n)
        if "kernel_shape" not in a:
            raise JaxpulpError(f"node {_node_id(n)}: {n.op_type} needs kernel_shape")
        nd = len(a["kernel_shape"])
        if nd not in (1, 2) or (nd == 1 and H != 1):
            raise JaxpulpError(f"node {_node_id(n)}: kernel_shape={list(a['kernel_shape'])} on a (C, H, W) = "
                               f"{(C, H, W)} tensor; expected 2-D pooling, or 1-D pooling of an (N, C, L) tensor")
        Kh, Kw = _spatial(a, n, "kernel_shape", 1, nd)
        sy, sx = _spatial(a, n, "strides", 1, nd)
        if _spatial(a, n, "dilations", 1, nd) != (1, 1):
            raise JaxpulpError(f"node {_node_id(n)}: dilations={list(a['dilations'])}; PULP-NN pooling has no "
                               "dilation (a dilated window is not an undilated one with zero taps for max / average)")
        pt, pb, pl, pr = _spatial(a, n, "pads", 0, nd)
        et, eb, el, er = self.pending_pad.pop(src, (0, 0, 0, 0))
        pad = (pt + et, pb + eb, pl + el, pr + er)
        if int(a.get("ceil_mode", 0)):
            raise JaxpulpError(f"node {_node_id(n)}: ceil_mode=1 is not supported (PULP-NN floors the output size)")
        Ho = (H + pad[0] + pad[1] - Kh) // sy + 1
        Wo = (W + pad[2] + pad[3] - Kw) // sx + 1
        if n.op_type == "MaxPool":
            lay = Layer(n.output[0], "maxpool", (src,), n.output[0], (H, W, C), (Ho, Wo, C), in_t, in_t,
                        kernel=(Kh, Kw), stride=(sy, sx), pad=pad, source=(n.name or n.op_type,))
            self.mark([n])
            self.add_layer(lay, None, (C, Ho, Wo), in_t)
            return
        # AveragePool: NEMO's "AveragePool, Mul(k*k), Mul(m), Div(D), Floor" or a plain mean (floor of the sum / k*k)
        nodes = [n]
        cur = n.output[0]
        kk = Kh * Kw
        muls = []
        nxt = g.only_consumer(cur)
        while nxt is not None and nxt.op_type == "Mul" and _other_input(nxt, cur) in g.consts:
            muls.append(int(_scalar(_int_array(g.const(_other_input(nxt, cur), nxt, "multiplier"), nxt, "mul"), nxt,
                                    "multiplier")))
            nodes.append(nxt)
            cur = nxt.output[0]
            nxt = g.only_consumer(cur)
        if muls:
            if muls[0] != kk or len(muls) > 2:
                raise JaxpulpError(f"node {_node_id(n)}: expected AveragePool, Mul({kk}) [Mul(m)], Div(2^d), Floor "
                                   f"(the window sum times m, shifted); found multipliers {muls}")
            m = muls[1] if len(muls) == 2 else 1
            if nxt is None or nxt.op_type != "Div":
                raise JaxpulpError(f"node {_node_id(nodes[-1])}: expected Div(2^d) after the pooling multipliers")
            shift = _pow2(_scalar(g.const(nxt.input[1], nxt, "divisor"), nxt, "divisor"), nxt, "divisor", self.notes,
                          self.near)
            nodes.append(nxt)
            cur, _ = _follow(g, nxt.output[0], nodes, ("Floor",))
            out_t = in_t
            params = dict(lam=np.int32(m * kk), out_shift=np.int32(shift), out_add=np.int32(0))
            requant = 1
            self.notes.append(f"{cur}: NEMO average pooling floor(sum*{m}/2^{shift}) as pulp_nn_avgpool with "
                              f"lambda={m * kk} (the kernel divides lambda by Kh*Kw={kk})")
        else:
            params, requant, out_t = None, 0, in_t
        lay = Layer(cur, "avgpool", (src,), cur, (H, W, C), (Ho, Wo, C), in_t, out_t, kernel=(Kh, Kw),
                    stride=(sy, sx), pad=pad, requant=requant, source=tuple(x.name or x.op_type for x in nodes))
        self.mark(nodes)
        self.add_layer(lay, params, (C, Ho, Wo), out_t)

    def view(self, n):
        """Flatten / Reshape / Squeeze to a (1, N) vector: an alias of its source (a following linear layer reads the
        HWC image as its input vector)."""
        src, ((C, H, W), qt) = self.tensor(n.input[0], n)
        if n.op_type == "Reshape":
            shape = [int(v) for v in self.g.const(n.input[1], n, "shape").ravel()]
            if len(shape) != 2 or shape[0] not in (1, -1) and shape[1] not in (-1, C * H * W):
                raise JaxpulpError(f"node {_node_id(n)}: Reshape to {shape}; only a flatten to (1, {C * H * W}) "
                                   "in front of a fully connected layer is supported")
        for c in self.g.consumers.get(n.output[0], []):
            if c.op_type not in ("Gemm", "MatMul") + HOST_TAIL_OPS + _VIEW_OPS:
                raise JaxpulpError(f"node {_node_id(n)}: a flattened tensor may only feed Gemm / MatMul, found "
                                   f"{_node_id(c)}")
        self.alias[n.output[0]] = src
        self.mark([n])

    def linear(self, n):
        g = self.g
        src, ((C, H, W), in_t) = self.tensor(n.input[0], n)
        a = g.attrs(n)
        w = _int_array(g.const(n.input[1], n, "weight"), n, "weight")
        if n.op_type == "Gemm":
            if int(a.get("transA", 0)):
                raise JaxpulpError(f"node {_node_id(n)}: transA=1 is not supported")
            if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
                raise JaxpulpError(f"node {_node_id(n)}: alpha/beta must be 1 in an integer graph")
            wmat = w if int(a.get("transB", 0)) else w.T  # (M, N)
        else:
            wmat = w.T
        M, N = wmat.shape
        if N != C * H * W:
            raise JaxpulpError(f"node {_node_id(n)}: weight has {N} inputs, the input tensor has {C * H * W}")
        if H * W > 1:  # ONNX flattens N, C, H, W: columns in C, H, W order -> the H, W, C order PULP-NN reads
            wmat = wmat.reshape(M, C, H, W).transpose(0, 2, 3, 1).reshape(M, N)
        bias = None
        if n.op_type == "Gemm" and len(n.input) > 2 and n.input[2]:
            bias = _i32(_int_array(g.const(n.input[2], n, "bias"), n, "bias"), n, "bias")
            if bias.size != M:
                raise JaxpulpError(f"node {_node_id(n)}: bias has {bias.size} values, expected {M} (one per output)")
        w_t = QType(int(a.get("weight_bits", 8)), True)
        if wmat.size and (wmat.min() < w_t.lo or wmat.max() > w_t.hi):
            raise JaxpulpError(f"node {_node_id(n)}: weights span [{wmat.min()}, {wmat.max()}], outside {w_t}")
        rq = _match_requant(g, n.output[0], M, self.notes, self.near, axis=-1)
        nodes = [n]
        if rq is None:
            out_t, end = QType(32, True), n.output[0]
            params = dict(w=wmat.astype(np.int8), kappa=np.zeros(M, np.int32), lam=np.zeros(M, np.int32),
                          out_mult=np.int32(0), out_shift=np.int32(0))
            relu = bn = 0
            rounding = False
        else:
            out_t, end = rq.qtype, rq.end
            nodes += rq.nodes
            lam, bias, bn_bits = self._wide_lambda(n, "linear", rq.kappa, rq.lam, bias, _acc_bound(N, in_t, wmat))
            params = dict(w=wmat.astype(np.int8), kappa=_i32(rq.kappa, n, "kappa"), lam=_i32(lam, n, "lambda"),
                          out_mult=np.int32(0), out_shift=np.int32(rq.shift))
            relu = bn = 1
            rounding = rq.rounding
        if bias is not None:
            params["bias"] = bias
        lay = Layer(end, "linear", (src,), end, (H, W, C), (1, 1, M), in_t, out_t, w_t, relu=relu, bn=bn,
                    bias=bias is not None, bn_bits=bn_bits if rq is not None else self.bn_bits, rounding=rounding,
                    source=tuple(x.name or x.op_type for x in nodes))
        self.mark(nodes)
        self.add_layer(lay, params, (M, 1, 1), out_t)

    def add(self, n):
        """DORY adder (attributes), NEMO residual (Mul, Mul, Add, Div, Floor) or Deeploy (RequantShift'ed inputs,
        Add, RequantShift)."""
        g = self.g
        a = g.attrs(n)
        if "in1_mul" in a or "in1_shift" in a:
            srcs = [self.tensor(t, n) for t in n.input[:2]]
            (s1, (chw, t1)), (s2, (chw2, t2)) = srcs
            p = {}
            for k in (1, 2):
                rq = int(a.get(f"in{k}_rq", 1))
                p[f"in{k}_mul"] = np.int32(a.get(f"in{k}_mul", 1) if rq else 1)
                p[f"in{k}_add"] = np.int32(a.get(f"in{k}_add", 0) if rq else 0)
                p[f"in{k}_shift"] = np.int32(a.get(f"in{k}_shift", 0) if rq else 0)
            out_rq = int(a.get("out_rq", 1))
            p.update(out_mul=np.int32(a.get("out_mul", 1)), out_add=np.int32(a.get("out_add", 0)),
                     out_shift=np.int32(a.get("out_shift", 0)))
            levels = int(a.get("out_n_levels", 256))
            out_t = _levels_type(levels, a.get("out_signed", 0), n)
            nodes, end = [n], n.output[0]
        else:
            ins, nodes = [], []
            for t in n.input[:2]:
                prod = g.producer.get(t)
                if prod is not None and id(prod) not in self.done and prod.op_type in ("Mul", "RequantShift"):
                    ins.append(self._add_input(prod) + [prod])
                    nodes.append(prod)
                else:
                    ins.append([self.name_of(t), 1, 0, 0, None, None])
            nodes.append(n)
            end = n.output[0]
            out_rq, out_t = 0, None
            p = dict(out_mul=np.int32(1), out_add=np.int32(0), out_shift=np.int32(0))
            rq = _match_requant(g, end, 1, self.notes, self.near)
            nxt = g.only_consumer(end)
            if rq is not None:  # Deeploy: Add, RequantShift
                if rq.kappa.min() != rq.kappa.max() or rq.lam.min() != rq.lam.max():
                    raise JaxpulpError(f"node {_node_id(rq.nodes[0])}: the add's output requantisation must be "
                                       "per-tensor (one multiplier and offset)")
                p.update(out_mul=np.int32(rq.kappa[0]), out_add=np.int32(rq.lam[0]), out_shift=np.int32(rq.shift))
                out_rq, out_t, end = 1, rq.qtype, rq.end
                nodes += rq.nodes
            elif nxt is not None and nxt.op_type == "Div":  # NEMO: Mul, Mul, Add, Div(D), Floor
                D = _integral(_scalar(g.const(nxt.input[1], nxt, "divisor"), nxt, "divisor"), nxt, "divisor")
                sh = _pow2(D, nxt, "divisor", self.notes, self.near)
                # floor((c1*a + c2*b) / D) == c1/D*a + floor(c2*b / D) when D divides c1 (and symmetrically):
                # then each input is (x*c) >> d on its own, exactly as the kernel requantises its inputs separately
                # (the multiple of D shifts exactly). With neither scale a multiple of D the floor of the sum is not
                # the sum of two floors.
                if any(e[2] or e[3] for e in ins) or all(e[1] % D for e in ins):
                    raise JaxpulpError(f"node {_node_id(nxt)}: the residual add's inputs are scaled by {ins[0][1]} "
                                       f"and {ins[1][1]}, neither a multiple of the divisor {D}: floor((c1*a + "
                                       f"c2*b)/{D}) is not floor(c1*a/{D}) + floor(c2*b/{D}), and PULP-NN's add "
                                       "shifts each input separately, so there is no exact mapping")
                for e in ins:
                    e[2], e[3] = 0, sh
                nodes.append(nxt)
                end, _ = _follow(g, nxt.output[0], nodes, ("Floor",))
            for k, e in enumerate(ins, 1):
                if not self._folds_exactly(e):
                    if e[4] is None:
                        raise JaxpulpError(f"node {_node_id(n)}: input {k} of the residual add is scaled to a range "
                                           "PULP-NN's add clips (8 bits per input) but the source graph does not; "
                                           "no exact mapping")
                    nodes.remove(e[5])
                    e[:] = [self._requant_layer(e[:5], e[5]), 1, 0, 0, None, None]
            srcs = [self.tensor(e[0], n) for e in ins]
            (s1, (chw, t1)), (s2, (chw2, t2)) = srcs
            if out_t is None:
                out_t = QType(8, t1.signed or t2.signed)
                self.notes.append(f"{end}: residual add without an output clip in the source graph; PULP-NN's add "
                                  f"clips the sum to {out_t}")
            for k, e in enumerate(ins, 1):
                p[f"in{k}_mul"], p[f"in{k}_add"], p[f"in{k}_shift"] = np.int32(e[1]), np.int32(e[2]), np.int32(e[3])
        if chw != chw2:
            raise JaxpulpError(f"node {_node_id(n)}: operand shapes {chw} and {chw2} differ (no broadcasting in "
                               "PULP-NN's add)")
        C, H, W = chw
        rounding = any(x.op_type == "RequantShift" for x in nodes)
        lay = Layer(end, "add", (s1, s2), end, (H, W, C), (H, W, C), t1, out_t, in2_type=t2, requant=out_rq,
                    rounding=rounding,
                    source=tuple(x.name or x.op_type for x in [n] + [m for m in nodes if m is not n]))
        self.mark(nodes)
        self.add_layer(lay, p, chw, out_t)

    def _reach(self, e):
        """Reachable range [lo, hi] of ``(x*mul + add) >> shift`` over the source tensor's type."""
        _, (_, t) = self.tensor(e[0], None)
        ends = [(v * e[1] + e[2]) >> e[3] for v in (t.lo, t.hi)]
        return t, min(ends), max(ends)

    def _folds_exactly(self, e) -> bool:
        """An add input's requantisation can be the add kernel's own input requant: PULP-NN clips it to the 8-bit
        range of the input's signedness, the source graph to its own type (or not at all); they must agree."""
        t, lo, hi = self._reach(e)
        a8 = -128 if t.signed else 0
        a2, b2 = (e[4].lo, e[4].hi) if e[4] is not None else (lo, hi)
        return all(min(max(r, a8), a8 + 255) == min(max(r, a2), b2) for r in (lo, hi))

    def _requant_layer(self, e, node) -> str:
        """A standalone requantisation (Deeploy RequantShift on a residual branch) as a PULP-NN add of the tensor
        with itself, the second operand weighted 0: clip_out(clip8((x*mul + add) >> shift))."""
        src, mul, add, sh, qt = e
        t, lo, hi = self._reach(e)
        a8 = -128 if t.signed else 0
        if any(min(max(min(max(r, a8), a8 + 255), qt.lo), qt.hi) != min(max(r, qt.lo), qt.hi) for r in (lo, hi)):
            raise JaxpulpError(f"node {_node_id(node)}: requantisation to {qt} of a {t} tensor reaches [{lo}, {hi}]; "
                               "PULP-NN's add clips it to 8 bits first, which changes the result")
        _, (chw, _) = self.tensor(src, node)
        C, H, W = chw
        name = node.output[0]
        p = dict(in1_mul=np.int32(mul), in1_add=np.int32(add), in1_shift=np.int32(sh), in2_mul=np.int32(0),
                 in2_add=np.int32(0), in2_shift=np.int32(0), out_mul=np.int32(1), out_add=np.int32(0),
                 out_shift=np.int32(0))
        lay = Layer(name, "add", (src, src), name, (H, W, C), (H, W, C), t, qt, in2_type=t, requant=0,
                    rounding=True, source=(node.name or node.op_type,))
        self.notes.append(f"{name}: a standalone requantisation to {qt} runs as pulp_nn_add of the tensor with itself "
                          "(second operand weighted 0)")
        self.mark([node])
        self.add_layer(lay, p, chw, qt)
        return name

    def _add_input(self, prod):
        """[source tensor, mul, add, shift, clip type or None] of a residual add's input requantisation node."""
        g = self.g
        if prod.op_type == "Mul":
            a, b = prod.input[0], prod.input[1]
            src, c = (a, b) if b in g.consts else (b, a)
            mul = int(_scalar(_int_array(g.const(c, prod, "multiplier"), prod, "multiplier"), prod, "multiplier"))
            return [self.name_of(src), mul, 0, 0, None]
        pa = g.attrs(prod)
        div = _integral(_scalar(pa["div"], prod, "div"), prod, "div")
        sh = _pow2(div, prod, "div")
        mul = int(_scalar(_int_array(g.const(prod.input[1], prod, "mul"), prod, "mul"), prod, "mul"))
        add = int(_scalar(_int_array(g.const(prod.input[2], prod, "add"), prod, "add"), prod, "add"))
        return [self.name_of(prod.input[0]), mul, add + div // 2, sh,
                _levels_type(_rq_levels(pa, prod), pa.get("signed", 1), prod)]

    # ------------------------------------------------------------------------------------------------ walk
    def run(self):
        g = self.g
        tail = []
        for n in g.nodes:
            if id(n) in self.done or n.op_type == "Constant":
                continue
            op = n.op_type
            if op == "Conv":
                self.conv(n)
            elif op == "Pad":
                self.pad(n)
            elif op in ("MaxPool", "AveragePool"):
                self.pool(n)
            elif op in ("Gemm", "MatMul"):
                self.linear(n)
            elif op in _VIEW_OPS and not tail:
                self.view(n)
            elif op == "Add":
                self.add(n)
            elif op in ("RequantShift", "Mul") and all(c.op_type == "Add" for c in g.consumers.get(n.output[0], [])) \
                    and g.consumers.get(n.output[0]):
                continue  # an add's input requantisation: consumed by the Add
            elif op in HOST_TAIL_OPS or (tail and op in _VIEW_OPS):
                tail.append(n)
                self.mark([n])
            else:
                raise JaxpulpError(f"node {_node_id(n)}: operator {op} is not supported by the {self.dialect} "
                                   "importer. Expected Conv / Gemm / MatMul with a requantisation chain, Pad, "
                                   "MaxPool, AveragePool, Add (residual), Flatten / Reshape, or a host-side tail "
                                   f"({', '.join(HOST_TAIL_OPS)}) after the last integer layer")
        for n in tail:  # tail ops may only consume integer tensors or other tail ops
            for i in n.input:
                prod = g.producer.get(i)
                if prod is not None and prod.op_type not in HOST_TAIL_OPS + _VIEW_OPS + ("Constant",) \
                        and self.name_of(i) not in self.tensors:
                    raise JaxpulpError(f"node {_node_id(n)}: host-side operator reads {i!r}, which no supported "
                                       "layer produces")
        # network outputs: graph outputs that are integer tensors, plus integer tensors read by the dropped tail
        outs = []
        for o in g.outputs:
            t = self.name_of(o)
            if t in {layer.output for layer in self.layers} and t not in outs:
                outs.append(t)
        for n in tail:
            for i in n.input:
                t = self.name_of(i)
                if t in {layer.output for layer in self.layers} and t not in outs:
                    outs.append(t)
        if tail:
            self.notes.append("host-side tail not emulated (float post-processing): "
                              + ", ".join(f"{n.op_type} {n.name or n.output[0]}" for n in tail))
        if not outs:
            raise JaxpulpError("the model produces no integer output tensor")
        if any(layer.rounding for layer in self.layers):
            self.notes.append("Deeploy RequantShift rounds (+div/2): folded into lambda / the add offsets, so the "
                              "PULP-NN kernels compute the dialect's arithmetic exactly")
        return outs


def _acc_bound(taps: int, in_t: QType, w) -> int:
    """Worst-case |sum of products| of an accumulator of ``taps`` products (bias not included)."""
    xmax = max(abs(in_t.lo), abs(in_t.hi))
    return taps * xmax * (int(np.abs(w).max()) if np.size(w) else 0)


def _bn_overflow(lay: Layer, p: dict) -> int:
    """Worst-case |kappa*acc + lambda| of a BN-requantised layer (acc bounded by the input / weight ranges)."""
    taps = kinds.weight_numel(lay) // lay.out_shape[2]  # products per accumulator
    xmax = max(abs(lay.in_type.lo), abs(lay.in_type.hi))
    wmax = int(np.abs(p["w"]).max()) if np.size(p["w"]) else 0
    acc = taps * xmax * wmax + (int(np.abs(p["bias"]).max()) if lay.bias else 0)
    return int(np.abs(p["kappa"]).max()) * acc + int(np.abs(p["lam"]).max())


def _choose_bn_bits(layers, params, notes) -> tuple:
    """DORY picks one library tree per network (BNRelu_bits): 64 if some layer's BN arithmetic can leave int32."""
    worst = [(layer.name, _bn_overflow(layer, params[layer.name])) for layer in layers
             if layer.kind in kinds.WEIGHTED and layer.out_type.bits != 32]
    over = [(n, v) for n, v in worst if v >= 1 << 31]
    # wide lambda
    over += [(layer.name, 1 << 31) for layer in layers if layer.bn_bits == 64 and layer.name not in dict(over)]
    if not over:
        return tuple(layers)
    n, v = max(over, key=lambda t: t[1])
    notes.append(f"bn_bits=64 (the library's 64bit/ tree, DORY BNRelu_bits=64): the worst-case |kappa*acc + lambda| "
                 f"of layer {n} is {v:.3g} >= 2^31, which the 32-bit tree would wrap; pass bn_bits=32 (CLI: "
                 "--bn-bits 32) to force it")
    return tuple(layer.replace(bn_bits=64) if layer.kind in kinds.WEIGHTED else layer for layer in layers)


def load_onnx(model, *, dialect: str = "auto", input_type="u8", bn_bits="auto", nemo_divisor: str = "shift",
              name: str | None = None) -> Network:
    """Import an integer ONNX graph (path, bytes or ``onnx.ModelProto``) as a ``Network``.

    dialect: "auto" (detected: RequantShift -> deeploy, bit-width attributes -> dory, Mul/Div requantisation
    -> nemo, none -> integer, e.g. a bare MaxPool), or one of those names (recorded; the patterns accepted are
    the same; a name that contradicts what the graph shows is refused, any name is taken for a graph without
    requantisation). input_type: the network input's type, or a dict by graph input name (DORY configs
    give it as input_bits / input_signed; Deeploy test inputs are often signed, "i8"). bn_bits: 32 or 64, the PULP-NN
    library tree
    (DORY's ``BNRelu_bits``), or "auto": 64 when some layer's worst-case batch-norm value leaves int32.
    nemo_divisor: "shift" maps NEMO's 2^d - 1 divisors to a shift by d as DORY does (noted), "strict" refuses."""
    onnx, _ = _onnx()
    if dialect not in DIALECTS:
        raise JaxpulpError(f"dialect={dialect!r}: expected one of {DIALECTS}")
    if bn_bits not in (32, 64, "auto"):
        raise JaxpulpError(f"bn_bits={bn_bits!r}: expected 32, 64 or 'auto'")
    if nemo_divisor not in ("shift", "strict"):
        raise JaxpulpError(f"nemo_divisor={nemo_divisor!r}: expected 'shift' or 'strict'")
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise JaxpulpError(f"model={str(model)!r}: no such file")
        src_name = os.path.splitext(os.path.basename(str(model)))[0]
        if os.path.isfile(model) and os.path.getsize(model) == 0:
            raise JaxpulpError(f"model={str(model)!r}: an empty file (0 bytes), expected an ONNX model")
        try:
            model = onnx.load(str(model))
        except Exception as e:  # noqa: BLE001 - onnx raises several types for corrupt files
            raise JaxpulpError(f"model={str(model)!r}: not a readable ONNX file ({e})") from e
    elif isinstance(model, (bytes, bytearray)):
        try:
            model = onnx.load_model_from_string(bytes(model))
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and others
            raise JaxpulpError(f"model=<{len(model)} bytes>: not a serialised ONNX model ({e})") from e
        src_name = "model"
    elif isinstance(model, onnx.ModelProto):
        src_name = getattr(model.graph, "name", "model") or "model"
    else:
        raise JaxpulpError(f"model={model!r}: expected a path, the bytes of an ONNX file or an onnx.ModelProto")
    g = _Graph(model)
    d = _check_dialect(dialect, g)
    names = [i.name for i in g.inputs]
    if isinstance(input_type, dict):
        if set(input_type) != set(names):
            raise JaxpulpError(f"input_type: keys {sorted(input_type)}, expected the graph inputs {names}")
        types = {k: QType.parse(v) for k, v in input_type.items()}
    else:
        types = {k: QType.parse(input_type) for k in names}
    for k, t in types.items():  # refused here, by name, rather than by the first kernel that meets it
        if t.bits not in (8, 4, 2):
            raise JaxpulpError(f"input_type={t} for graph input {k!r}: expected an 8, 4 or 2-bit activation type "
                               "(u8, i8, u4, i4, u2, i2)")
    imp = _Importer(g, d, types, bn_bits, nemo_divisor)
    outs = imp.run()
    layers = tuple(imp.layers)
    if bn_bits == "auto":
        layers = _choose_bn_bits(layers, imp.params, imp.notes)
    specs = []
    for k in names:
        (C, H, W), qt = imp.tensors[k]
        specs.append(TensorSpec(k, (H, W, C), qt))
    return Network(name or src_name, tuple(specs), layers, imp.params, tuple(outs), dialect=d,
                   notes=tuple(imp.notes))
