"""Quality metric of a precision configuration: run the network on the value path with precision as data.

A configuration changes tensor and weight types; the parameters of the given (8-bit) network are re-derived
at the new precision by one rule, written as ``jnp`` functions of the (traced) types so a whole batch of
configurations is one compiled call:

* every tensor and weight type has ``m`` magnitude bits (``bits`` unsigned, ``bits - 1`` signed); a type
  with ``d = m_original - m_new`` fewer represents the same real values on a grid ``2**d`` times coarser:
  ``x_new ~ x / 2**d``;
* weights: ``w_new = clip(round(w / 2**d_w))`` to the new type; the network input likewise (when it is free);
* requantisation: the accumulator shrinks by ``2**e`` (``e = d_in + d_w``) and the output must shrink by
  ``2**d_out``, so ``(kappa*acc + lambda) >> shift`` becomes ``(kappa*2**(e-m) * acc' + lambda/2**m) >>
  (shift + d_out - m)`` with ``m = min(e, shift + d_out)`` (no negative shift, no lost kappa bits); the
  multiplier mode scales ``out_mult`` the same way; the shift-only mode can only shorten its shift
  (``max(shift + d_out - e, 0)``); bias / 2**e;
* add: each input's ``(x*mul + add) >> shift`` is brought back to its original scale (``e = d_k``) and the
  output requantisation shift grows by ``d_out`` (without output requantisation the inputs take it);
* average pool with requantisation: ``lambda`` plays kappa's part, ``out_add`` lambda's; pools without
  requantisation keep their input's type (``config_space(tie_pools=True)``);
* the output is compared on the original scale: ``y_new * 2**s`` (``s`` = d of the output tensor, or ``e``
  of a no-quant int32 linear layer).

Metrics per configuration (over all inputs): ``error`` = ||y*2**s - y_ref||_2 / ||y_ref||_2 against the
given network's output, ``agreement`` = fraction of inputs whose arg-max class equals the given network's,
``accuracy`` = fraction equal to the labels (when labels are given).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import quant
from jaxpulp.costtable import WEIGHTED


def _mag(t) -> int:
    return t.bits - 1 if t.signed else t.bits


def _pow2_shift(x, m):
    """x * 2**-m for int32 x and traced int m (floor for m > 0, exact left shift for m < 0)."""
    x = jnp.asarray(x, jnp.int32)
    return jnp.where(m >= 0, jnp.right_shift(x, jnp.maximum(m, 0)), jnp.left_shift(x, jnp.maximum(-m, 0)))


def _fold(kappa, lam, shift, e, d_out):
    """(kappa', lam', shift') of the rule in the module docstring."""
    t = jnp.asarray(shift, jnp.int32) + d_out
    m = jnp.minimum(e, t)
    return jnp.left_shift(jnp.asarray(kappa, jnp.int32), e - m), _pow2_shift(lam, m), t - m


def _requantise_values(v, lo, hi, d):
    v = jnp.asarray(v, jnp.float32) * jnp.exp2(-d.astype(jnp.float32))
    # float32 bounds, as implicit int32 -> float32 promotion gave them (explicit for strict promotion)
    return jnp.clip(jnp.round(v), jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32)).astype(jnp.int32)


class Deriver:
    """Static description of a space's types for the value path: per variable and choice the bits,
    signedness and scale exponent d (numpy ``[V, C]``)."""

    def __init__(self, space, output: str):
        self.space, self.output = space, output
        table = space.table
        orig = {table.input_name: table.input_type}
        for lay in table.layers:
            orig[lay.output] = lay.out_type
        C = max(len(v.choices) for v in space.variables)
        V = len(space.variables)
        self.bits = np.zeros((V, C), np.int32)
        self.signed = np.zeros((V, C), np.int32)
        self.d = np.zeros((V, C), np.int32)
        self.tensor_var, self.weight_var = {}, {}
        for k, v in enumerate(space.variables):
            if v.kind == "act":
                ref = orig[v.tensors[0]]
                for t in v.tensors:
                    self.tensor_var[t] = k
            else:
                ref = next(lay for lay in table.layers if lay.name == v.layer).w_type
                self.weight_var[v.layer] = k
            for c, t in enumerate(v.choices):
                self.bits[k, c], self.signed[k, c] = t.bits, int(t.signed)
                self.d[k, c] = 0 if t.bits == 32 else _mag(ref) - _mag(t)

    def derive(self, params, config, *, weights: bool = True, layers=None):
        """(params', act_types, w_types, input d, output scale exponent) of one configuration ``[V]``; ``w_types``
        (layer -> bits) describes the configuration, the value path sees the weight types through the
        re-derived weight values. ``weights=False``: the weights are left out of params' (a caller that has them
        from elsewhere, ``_batched.Plan``, saves tracing them); ``layers``: the names of the layers whose
        parameters to derive (default all)."""
        V = len(self.space.variables)
        pick = lambda a: jnp.asarray(a)[jnp.arange(V), config]  # noqa: E731
        bits, signed, d = pick(self.bits), pick(self.signed), pick(self.d)
        tv = self.tensor_var
        act_types = {t: (bits[k], signed[k]) for t, k in tv.items()}
        w_types = {name: bits[k] for name, k in self.weight_var.items()}
        out, scale = {}, {}
        table = self.space.table
        for lay in table.layers:
            if layers is not None and lay.name not in layers:
                continue
            p = {k: jnp.asarray(v) for k, v in params.get(lay.name, {}).items() if weights or k != "w"}
            d_in, d_out = d[tv[lay.inputs[0]]], d[tv[lay.output]]
            if lay.kind in WEIGHTED:
                kw = self.weight_var[lay.name]
                d_w = d[kw]
                if weights:
                    lo, hi = quant.type_bounds(bits[kw], 1)
                    p["w"] = _requantise_values(p["w"], lo, hi, d_w)
                e = d_in + d_w
                if lay.bias:
                    p["bias"] = _pow2_shift(p["bias"], e)
                if lay.out_type.bits == 32:
                    scale[lay.output] = e
                else:
                    mode = quant.mode(lay.relu, lay.bn)
                    if mode == quant.MODE_BN:
                        p["kappa"], p["lam"], p["out_shift"] = _fold(p["kappa"], p["lam"], p["out_shift"], e, d_out)
                    elif mode == quant.MODE_MULT:
                        p["out_mult"], _, p["out_shift"] = _fold(p["out_mult"], 0, p["out_shift"], e, d_out)
                    else:
                        p["out_shift"] = jnp.maximum(jnp.asarray(p["out_shift"], jnp.int32) + d_out - e, 0)
            elif lay.kind == "add":
                d2 = d[tv[lay.inputs[1]]]
                extra = 0 if lay.requant else d_out
                for k, dk in (("in1", d_in), ("in2", d2)):
                    p[f"{k}_mul"], p[f"{k}_add"], p[f"{k}_shift"] = _fold(p[f"{k}_mul"], p[f"{k}_add"],
                                                                         p[f"{k}_shift"], dk, extra)
                if lay.requant:
                    p["out_mul"], p["out_add"], p["out_shift"] = _fold(p["out_mul"], p["out_add"], p["out_shift"], 0,
                                                                       d_out)
            elif lay.kind == "avgpool" and lay.requant:
                p["lam"], p["out_add"], p["out_shift"] = _fold(p["lam"], p["out_add"], p["out_shift"], d_in, d_out)
            out[lay.name] = p
        s = scale.get(self.output, d[tv[self.output]]) if layers is None else self.out_scale(config)
        return out, act_types, w_types, d[tv[table.input_name]], s

    def out_scale(self, config):
        """The output scale exponent of a configuration ``[V]`` (``derive``'s last result, alone): d of the output
        tensor, or ``d_in + d_w`` of a weighted layer with a 32-bit output."""
        V = len(self.space.variables)
        d = jnp.asarray(self.d)[jnp.arange(V), config]
        tv = self.tensor_var
        for lay in self.space.table.layers:
            if lay.output == self.output and lay.kind in WEIGHTED and lay.out_type.bits == 32:
                return d[tv[lay.inputs[0]]] + d[self.weight_var[lay.name]]
        return d[tv[self.output]]


def _metrics(y, s, y_ref, labels):
    """Metrics of one configuration's outputs ``y`` [N, ...] at output scale exponent ``s``."""
    y = y.reshape(y.shape[0], -1).astype(jnp.float32) * jnp.exp2(s.astype(jnp.float32))
    ref = y_ref.reshape(y_ref.shape[0], -1).astype(jnp.float32)
    err = jnp.sqrt(jnp.sum((y - ref) ** 2)) / jnp.maximum(jnp.sqrt(jnp.sum(ref ** 2)), 1e-30)
    cls = jnp.argmax(y, axis=-1)
    res = {"error": err, "agreement": jnp.mean((cls == jnp.argmax(ref, axis=-1)).astype(jnp.float32))}
    if labels is not None:
        res["accuracy"] = jnp.mean((cls == labels).astype(jnp.float32))
    return res


def config_outputs(net, der: Deriver, config, x):
    """The definition, one configuration ``[V]``: (int32 outputs of ``net.outputs[0]`` on ``x`` [N, ...], output
    scale exponent): the parameters re-derived (``Deriver.derive``), the input requantised when it is free,
    then ``run_values``. Traceable."""
    from jaxpulp.network import execute as netrun

    params, act_types, _, d_in, s = der.derive(net.params, config)
    lo, hi = quant.type_bounds(act_types[net.input.name][0], act_types[net.input.name][1])
    xq = _requantise_values(x, lo, hi, d_in) if net.input.name in der.tensor_var else x
    return netrun.run_values(net, xq, params=params, act_types=act_types), s


def make_metric_fn(net, space, *, method: str = "batched", rows: int = 32):
    """A jit-compiled ``f(configs [B, V], x [N, H, W, C], y_ref [N, ...], labels [N] or None) -> dict`` of
    ``error``, ``agreement`` (and ``accuracy``) per configuration ``[B]`` (float32).

    method="batched": the configurations folded into the batch (``_batched.forward``: the shared prefix once
    per input, the first KxK convolution once with every weight choice stacked, batched GEMMs; chunks of about
    ``rows`` configuration x input pairs); "loop": one configuration after the
    other, each its ``config_outputs`` (the definition; slower). Both give the same int32 network outputs."""
    from jaxpulp.errors import JaxpulpError

    if method not in ("batched", "loop"):
        raise JaxpulpError(f"method={method!r}: expected 'batched' or 'loop'")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise JaxpulpError(f"rows={rows!r}: expected an int >= 1 (configuration x input pairs per chunk)")
    der = Deriver(space, net.outputs[0])
    if method == "loop":
        def one(config, x, y_ref, labels):
            return _metrics(*config_outputs(net, der, config, x), y_ref, labels)

        @jax.jit
        def f_loop(configs, x, y_ref, labels):
            # lax.map: under vmap, convolutions with per-configuration weights become grouped convolutions
            return jax.lax.map(functools.partial(one, x=x, y_ref=y_ref, labels=labels), configs)

        return f_loop
    from jaxpulp.sweep import _batched

    plan = _batched.Plan(net, der)

    @jax.jit
    def f(configs, x, y_ref, labels):
        y, s = _batched.forward(plan, configs, x, rows=rows)
        return jax.vmap(lambda yb, sb: _metrics(yb, sb, y_ref, labels))(y, s)

    return f


def reference_outputs(net, x) -> np.ndarray:
    """The given network's output on the value path (the metric's reference)."""
    from jaxpulp.network import execute as netrun

    return np.asarray(jax.jit(lambda xs: netrun.run_values(net, xs))(jnp.asarray(x, jnp.int32)))


def random_inputs(net, n: int, seed: int) -> np.ndarray:
    """``n`` uniform random inputs of the network's input type, int32 ``[n, H, W, C]``."""
    t = net.input.qtype
    return np.random.default_rng(seed).integers(t.lo, t.hi + 1, (n,) + tuple(net.input.shape)).astype(np.int32)
