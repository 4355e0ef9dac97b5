"""Mixed-precision search on real data (DNAS style) with the cost surrogate in the loss.

Pipeline per cycle weight ``lambda_cycles`` (``search_one``):

1. float training (shared: ``train_float``), 2. search: per-variable precision logits over the choices of
   ``costtable.config_space`` (activations 8/4/2 bits with the tensor's signedness, weights i8/i4/i2; choices the
   library cannot run are pruned), softmax (optionally Gumbel-softmax) mixtures of fake quantisers, loss

       cross-entropy + lambda_cycles * E[cycles] + lambda_mem * relu(E[memory bytes] / budget - 1)

   (memory: weight + peak activation bytes, or weight bytes only with ``budget_on="weights"``; expectations
   from ``jaxpulp.surrogate``, exact at one-hot), temperature annealed geometrically;
3. argmax -> a configuration; with ``hard_budget`` a configuration over the budget is repaired (``repair``:
   the largest layers' weights, then the largest activation tensors, one precision step lower at a time);
4. fine-tune with QAT whose forward is the integer network (straight-through, ``model.forward(ints=...)``),
   keeping the epoch with the best integer (= bit-exact) validation accuracy; 5. integerise, exact cost from the
   cost tables, accuracies (float, fake-quant, bit-exact on the packed path).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpulp import costtable, surrogate
from jaxpulp.errors import JaxpulpError
from jaxpulp.network import kinds
from jaxpulp.network.graph import Network
from jaxpulp.train import model as M, qat


def _optax():
    try:
        import optax
    except ImportError as e:  # pragma: no cover - optional extra
        raise JaxpulpError("training needs optax (pip install 'jaxpulp[train]')") from e
    return optax


BUDGET_ON = ("all", "weights")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Hyper-parameters (epochs are passes over the training split; lr: Adam step sizes; budget_bytes: the
    memory budget, default GAP-8 L2 = 512 kB; budget_on: what it bounds, "all" = weight + peak activation bytes
    or "weights" = weight bytes only; hard_budget: the argmax configuration must meet the budget (``repair``);
    t_start / t_end: softmax temperature schedule)."""

    float_epochs: int = 30
    search_epochs: int = 10
    finetune_epochs: int = 5
    batch: int = 64
    lr: float = 1e-2
    qat_lr: float = 1e-3
    logit_lr: float = 0.05
    t_start: float = 1.0
    t_end: float = 0.05
    gumbel: bool = False
    lambda_mem: float = 1.0
    budget_bytes: int = 512 * 1024
    budget_on: str = "all"
    hard_budget: bool = False
    seed: int = 0

    def __post_init__(self):
        for k, lo in (("float_epochs", 0), ("search_epochs", 0), ("finetune_epochs", 0), ("batch", 1), ("seed", 0)):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise JaxpulpError(f"{k}={v!r}: expected an int >= {lo}")
        for k in ("lr", "qat_lr", "logit_lr", "t_start", "t_end", "budget_bytes"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
                raise JaxpulpError(f"{k}={v!r}: expected a finite number > 0")
        if isinstance(self.lambda_mem, bool) or not isinstance(self.lambda_mem, numbers.Real) \
                or not 0 <= self.lambda_mem < math.inf:
            raise JaxpulpError(f"lambda_mem={self.lambda_mem!r}: expected a finite number >= 0")
        if self.budget_on not in BUDGET_ON:
            raise JaxpulpError(f"budget_on={self.budget_on!r}: expected one of {BUDGET_ON}")
        for k in ("gumbel", "hard_budget"):
            if not isinstance(getattr(self, k), (bool, np.bool_)):
                raise JaxpulpError(f"{k}={getattr(self, k)!r}: expected True or False")


def _check_training(model, ds, cfg=None) -> None:
    """Check the model, dataset and config of a training entry point against each other, up front: image shape
    (H, W, C) and label range 0..num_classes - 1 of every split."""
    from jaxpulp.train.data import Dataset

    if not isinstance(model, M.Model):
        raise JaxpulpError(f"model={type(model).__name__}: expected a jaxpulp.train.model.Model (model.named / build)")
    if not isinstance(ds, Dataset):
        raise JaxpulpError(f"ds={type(ds).__name__}: expected a jaxpulp.train.data.Dataset (data.split / load)")
    if cfg is not None and not isinstance(cfg, SearchConfig):
        raise JaxpulpError(f"cfg={type(cfg).__name__}: expected a SearchConfig")
    want = tuple(model.input.shape)
    for part in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{part}"), np.asarray(getattr(ds, f"y_{part}"))
        if tuple(x.shape[1:]) != want:
            raise JaxpulpError(f"ds.x_{part}: images of shape {tuple(x.shape[1:])}, but model {model.name!r} takes "
                               f"{want} (H, W, C)")
        if y.size and (y.min() < 0 or y.max() >= model.num_classes):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise JaxpulpError(f"ds.y_{part}: label {bad} is out of range; model {model.name!r} has "
                               f"{model.num_classes} classes, expected labels 0..{model.num_classes - 1}")


@dataclasses.dataclass(frozen=True, eq=False)
class Space:
    """The search space of a model: cost table, configuration space and surrogate tables."""

    model: M.Model
    table: costtable.CostTable
    space: costtable.ConfigSpace
    st: surrogate.SurrogateTables



def _optax_promotion():
    """optax's Adam raises a float decay to an int32 step count (bias correction), which strict dtype promotion
    (on in the tests) refuses; optax's own updates run under standard promotion, jaxpulp's code stays strict."""
    return jax.numpy_dtype_promotion("standard")


def make_space(model: M.Model, target: str = "gap8") -> Space:
    """Cost tables of the model's topology (every layer at every type triple) and its configuration space."""
    if not isinstance(model, M.Model):
        raise JaxpulpError(f"model={type(model).__name__}: expected a jaxpulp.train.model.Model (model.named / build)")
    table = costtable.build_table(model.network(), target)
    space = costtable.config_space(table)
    return Space(model, table, space, surrogate.surrogate_tables(space))


def mixes(sp: Space, probs):
    """(act_mix, w_mix) of probabilities ``[V, C]`` over the space's variables."""
    act, w = {}, {}
    for vi, v in enumerate(sp.space.variables):
        mix = tuple((t, probs[vi, ci]) for ci, t in enumerate(v.choices))
        if v.kind == "act":
            for t in v.tensors:
                act[t] = mix
        else:
            w[v.layer] = mix
    return act, w


@functools.cache
def _adam(lr: float):
    """One optimiser object per step size (a static jit argument: the same object reuses the compiled step)."""
    return _optax().adam(lr)


def _xf(x_int):
    return jnp.asarray(x_int, jnp.float32) / 255.0


def _ce(logits, y):
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0])


def _batches(n, batch, rng):
    perm = rng.permutation(n)
    for i in range(0, n - batch + 1 if n >= batch else 1, batch):
        yield perm[i:i + batch]


# ------------------------------------------------------------------------------------------------ float


@functools.partial(jax.jit, static_argnums=(0, 1))
def _float_step(model, opt, params, state, x, y):
    loss, g = jax.value_and_grad(lambda p: _ce(M.forward(model, p, _xf(x)), y))(params)
    with _optax_promotion():
        upd, state = opt.update(g, state, params)
    return _optax().apply_updates(params, upd), state, loss


def train_float(model: M.Model, ds, cfg: SearchConfig, params=None, progress=None):
    """Float training (PACT clips, no quantisation). Returns the parameters."""
    _check_training(model, ds, cfg)
    params = params if params is not None else M.init_params(model, cfg.seed)
    opt = _adam(cfg.lr)
    state = opt.init(params)
    rng = np.random.default_rng(cfg.seed)
    for ep in range(cfg.float_epochs):
        for idx in _batches(len(ds.y_train), cfg.batch, rng):
            params, state, loss = _float_step(model, opt, params, state, ds.x_train[idx], ds.y_train[idx])
        if progress:
            progress(f"float epoch {ep + 1}/{cfg.float_epochs} loss {float(loss):.4f}")
    return params


# ----------------------------------------------------------------------------------------------- search


def expected_cost(sp: Space, probs) -> dict:
    e = surrogate.expected_cost(sp.st, probs)
    e["memory_bytes"] = e["weight_bytes"] + e["peak_act_bytes"]
    return e


_BUDGET_KEY = {"all": "memory_bytes", "weights": "weight_bytes"}


def search_loss(sp: Space, params, logits, x, y, temperature, lam_cycles, cfg: SearchConfig, key=None):
    """(loss, aux) of the search objective (see the module docstring)."""
    z = logits
    if key is not None:
        z = z + jax.random.gumbel(key, z.shape)
    probs = surrogate.softmax_probs(sp.st, z, temperature)
    act, w = mixes(sp, probs)
    ce = _ce(M.forward(sp.model, params, _xf(x), act_mix=act, w_mix=w), y)
    e = expected_cost(sp, probs)
    used = e[_BUDGET_KEY[cfg.budget_on]]
    mem = cfg.lambda_mem * jax.nn.relu(used / cfg.budget_bytes - 1.0)
    return ce + lam_cycles * e["cycles"] + mem, {"ce": ce, "cycles": e["cycles"], "memory": used}


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _search_step(sp, cfg, opt_p, opt_l, params, logits, sp_state, sl_state, x, y, temperature, lam, key):
    (loss, aux), (gp, gl) = jax.value_and_grad(
        lambda p, lg: search_loss(sp, p, lg, x, y, temperature, lam, cfg, key if cfg.gumbel else None),
        argnums=(0, 1), has_aux=True)(params, logits)
    optax = _optax()
    with _optax_promotion():
        up, sp_state = opt_p.update(gp, sp_state, params)
        ul, sl_state = opt_l.update(gl, sl_state, logits)
    return optax.apply_updates(params, up), optax.apply_updates(logits, ul), sp_state, sl_state, loss, aux


def run_search(sp: Space, params, ds, lam_cycles: float, cfg: SearchConfig, progress=None):
    """Joint training of weights and precision logits. Returns (params, logits, last aux)."""
    if not isinstance(sp, Space):
        raise JaxpulpError(f"sp={type(sp).__name__}: expected a Space (make_space(model))")
    _check_training(sp.model, ds, cfg)
    V, C = sp.st.valid.shape
    logits = jnp.zeros((V, C), jnp.float32)
    opt_p, opt_l = _adam(cfg.qat_lr), _adam(cfg.logit_lr)
    sp_state, sl_state = opt_p.init(params), opt_l.init(logits)
    rng = np.random.default_rng(cfg.seed + 1)
    n_steps = max(1, cfg.search_epochs * max(1, len(ds.y_train) // cfg.batch))
    key = jax.random.PRNGKey(cfg.seed)
    step, aux = 0, {}
    for ep in range(cfg.search_epochs):
        for idx in _batches(len(ds.y_train), cfg.batch, rng):
            temp = cfg.t_start * (cfg.t_end / cfg.t_start) ** (step / max(1, n_steps - 1))
            key, sub = jax.random.split(key)
            params, logits, sp_state, sl_state, loss, aux = _search_step(
                sp, cfg, opt_p, opt_l, params, logits, sp_state, sl_state, ds.x_train[idx], ds.y_train[idx],
                jnp.float32(temp), jnp.float32(lam_cycles), sub)
            step += 1
        if progress:
            progress(f"search lambda={lam_cycles:g} epoch {ep + 1}/{cfg.search_epochs} T={temp:.3f} loss "
                     f"{float(loss):.4f} E[cycles] {float(aux['cycles']):.0f}")
    return params, logits, aux


def defective(lay) -> str | None:
    """Why the library's kernel for ``lay`` computes other values than the intended arithmetic (so the packed
    path would differ from the QAT evaluation forward), or None. The cost tables count these kernels as
    runnable; the search steers around them."""
    if (lay.kind == "linear" and lay.in_type.bits == 2 and lay.out_type.bits == 2 and lay.w_type.bits == 4):
        return "pulp_nn_linear_{u2,i2}_{u2,i2}_i4 unpacks the wrong weight registers (library_defects.md 4)"
    return None


def argmax_config(sp: Space, logits) -> np.ndarray:
    """The configuration ``[V]`` (choice indices) of the largest valid logit per variable; a weight variable
    whose layer would run a defective kernel (``defective``) takes its next-best choice."""
    z = np.where(np.asarray(sp.st.valid), np.asarray(logits), -np.inf)
    config = np.argmax(z, axis=1).astype(np.int32)
    wvar = {v.layer: i for i, v in enumerate(sp.space.variables) if v.kind == "weight"}
    for _ in range(len(config)):
        bad = [lay for lay in sp.space.layers_of(config) if defective(lay) and lay.name in wvar]
        if not bad:
            break
        vi = wvar[bad[0].name]
        z[vi, config[vi]] = -np.inf
        if not np.isfinite(z[vi]).any():
            raise JaxpulpError(f"layer {bad[0].name!r}: every weight choice runs a defective kernel")
        config[vi] = int(np.argmax(z[vi]))
    return config


def _weight_count(lay) -> int:
    H, W, C = lay.in_shape
    Co = lay.out_shape[2]
    return {"conv": Co * lay.kernel[0] * lay.kernel[1] * C, "depthwise": Co * lay.kernel[0] * lay.kernel[1],
            "linear": Co * H * W * C}[lay.kind]


def budget_bytes_of(cost: dict, budget_on: str) -> int:
    """The bytes a budget bounds in an ``exact_cost`` result."""
    return int(cost[_BUDGET_KEY[budget_on]])


def repair(sp: Space, config, budget_bytes: int, budget_on: str = "all") -> np.ndarray:
    """A configuration that meets the budget, from ``config`` by lowering precisions one step at a time: first
    the weights of the largest layer (weight count x bits) that can go lower, then (``budget_on="all"``) the
    largest activation tensor (elements x bits). A step is taken only if the configuration stays supported by
    the library and runs no defective kernel (``defective``). Raises ``JaxpulpError`` if nothing is left to lower
    and the budget is still exceeded."""
    config = np.array(config, np.int32)
    valid = np.asarray(sp.st.valid)
    variables = sp.space.variables
    for _ in range(4 * len(variables) + 1):
        cost = exact_cost(sp, config)
        used = budget_bytes_of(cost, budget_on)
        if used <= budget_bytes:
            return config
        layers = {lay.name: lay for lay in sp.space.layers_of(config)}
        by_out = {lay.output: lay for lay in layers.values()}
        cands = []
        for vi, v in enumerate(variables):
            t = v.choices[config[vi]]
            if v.kind == "weight":
                size, rank = _weight_count(layers[v.layer]) * t.bits, 0
            elif budget_on == "all" and all(x in by_out for x in v.tensors):
                size, rank = max(int(np.prod(by_out[x].out_shape)) for x in v.tensors) * t.bits, 1
            else:
                continue
            lower = [ci for ci, c in enumerate(v.choices) if valid[vi, ci] and c.bits < t.bits]
            for ci in sorted(lower, key=lambda ci: -v.choices[ci].bits):
                cands.append((rank, -size, vi, ci))
        for _rank, _size, vi, ci in sorted(cands):
            trial = config.copy()
            trial[vi] = ci
            if exact_cost(sp, trial)["supported"] and not any(defective(lay) for lay in sp.space.layers_of(trial)):
                config = trial
                break
        else:
            break
    raise JaxpulpError(f"hard budget {budget_bytes} B ({budget_on}): the smallest configuration reachable by "
                       f"lowering precisions still needs {used} B; expected a larger budget")


# --------------------------------------------------------------------------------------------- fine-tune


def qat_loss(model, params, layers, x, y):
    """Cross-entropy of the integer network's logits (straight-through gradients of the fake-quantised model)."""
    ints = qat.integer_tensors(model, layers, qat.int_params(model, params, layers), x)
    act, w = M.fixed_mix(layers)
    return _ce(M.forward(model, params, _xf(x), act_mix=act, w_mix=w, ints=ints), y)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _qat_step(model, layers, opt, params, state, x, y):
    loss, g = jax.value_and_grad(lambda p: qat_loss(model, p, layers, x, y))(params)
    with _optax_promotion():
        upd, state = opt.update(g, state, params)
    return _optax().apply_updates(params, upd), state, loss


def finetune(model: M.Model, params, ds, layers: tuple, cfg: SearchConfig, epochs: int | None = None,
             progress=None, select: bool = True):
    """QAT at fixed precisions (``layers`` from ``qat.layers_at``); the loss sees the integer network.

    select: return the parameters of the epoch with the best integer (= bit-exact) accuracy on the validation
    split (the last of equal ones), not the last epoch's; False (or an empty validation split): the last."""
    _check_training(model, ds, cfg)
    opt = _adam(cfg.qat_lr)
    state = opt.init(params)
    rng = np.random.default_rng(cfg.seed + 2)
    epochs = cfg.finetune_epochs if epochs is None else epochs
    select = select and len(ds.y_val) > 0
    best, best_acc = params, -1.0
    for ep in range(epochs):
        for idx in _batches(len(ds.y_train), cfg.batch, rng):
            params, state, loss = _qat_step(model, layers, opt, params, state, ds.x_train[idx], ds.y_train[idx])
        msg = f"fine-tune epoch {ep + 1}/{epochs} loss {float(loss):.4f}"
        if select:
            acc = accuracy(qat.integer_logits(model, params, layers, ds.x_val), ds.y_val)
            if acc >= best_acc:
                best, best_acc = params, acc
            msg += f" val acc {acc:.4f}"
        if progress:
            progress(msg)
    return best if select and epochs else params


# -------------------------------------------------------------------------------------------- evaluation


@functools.partial(jax.jit, static_argnums=(0,))
def _float_logits(model, params, x):
    return M.forward(model, params, _xf(x))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _fq_logits(model, params, layers, x):
    act, w = M.fixed_mix(layers)
    return M.forward(model, params, _xf(x), act_mix=act, w_mix=w)


def accuracy(logits, y) -> float:
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(y)))


def bit_exact_logits(net, x) -> np.ndarray:
    """int logits of the integerised network on the packed (library) path."""
    from jaxpulp.network.execute import run

    out = run(net, np.asarray(x)).outputs[net.outputs[0]]
    return out.reshape(out.shape[0], -1)


def evaluate(model: M.Model, params, layers: tuple, x, y) -> tuple[dict, Network]:
    """(accuracies, integerised network): float, fake-quant, integer (value path = QAT eval forward) and bit-exact
    (packed path) accuracies."""
    net = qat.integerise(model, params, _precisions_of(model, layers))
    be = bit_exact_logits(net, x)
    ints = np.asarray(qat.integer_logits(model, params, layers, x))
    return dict(float_acc=accuracy(_float_logits(model, params, x), y),
                fakequant_acc=accuracy(_fq_logits(model, params, layers, x), y),
                integer_acc=accuracy(ints, y), bitexact_acc=accuracy(be, y),
                bitexact_equals_qat_eval=bool(np.array_equal(be, ints))), net


def _precisions_of(model, layers) -> dict:
    out = {}
    for lay in layers:
        if lay.kind not in kinds.POOLS and lay.out_type.bits != 32:
            out[lay.output] = str(lay.out_type)
        if lay.w_type is not None:
            out[f"{lay.name}.w"] = str(lay.w_type)
    return out


def exact_cost(sp: Space, config) -> dict:
    """Cost and memory of one configuration from the cost tables (``costtable.evaluate``), as Python numbers."""
    r = costtable.evaluate(sp.space, jnp.asarray(config)[None])
    return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in
            ((k, np.asarray(v)) for k, v in r.items())}


def search_one(sp: Space, float_params, ds, lam_cycles: float, cfg: SearchConfig, progress=None) -> tuple:
    """Search, argmax, fine-tune, integerise and measure at one ``lambda_cycles``. Returns (row, network)."""
    t0 = time.perf_counter()
    params, logits, aux = run_search(sp, float_params, ds, lam_cycles, cfg, progress)
    config = argmax = argmax_config(sp, logits)
    if cfg.hard_budget:
        config = repair(sp, config, cfg.budget_bytes, cfg.budget_on)
    types = sp.space.types_of(config)
    layers = qat.layers_at(sp.model, _precisions_of(sp.model, sp.space.layers_of(config)))
    params = finetune(sp.model, params, ds, layers, cfg, progress=progress)
    acc, net = evaluate(sp.model, params, layers, ds.x_test, ds.y_test)
    cost = exact_cost(sp, config)
    row = dict(lambda_cycles=float(lam_cycles), config=types, **acc,
               cycles=int(cost["cycles"]), energy_pj=float(cost["energy_pj"]),
               weight_bytes=int(cost["weight_bytes"]), activation_bytes=int(cost["peak_act_bytes"]),
               memory_bytes=int(cost["memory_bytes"]), l1_bytes=int(cost["l1_bytes"]),
               l1_fit=bool(cost["l1_fit"]), l2_fit=bool(cost["l2_fit"]),
               budget_on=cfg.budget_on, budget_fit=bool(budget_bytes_of(cost, cfg.budget_on) <= cfg.budget_bytes),
               supported=bool(cost["supported"]), repaired=bool(not np.array_equal(config, argmax)),
               expected_cycles_end=float(aux.get("cycles", np.nan)), seconds=round(time.perf_counter() - t0, 2))
    return row, net
