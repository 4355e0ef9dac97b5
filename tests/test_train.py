"""jaxpulp.train: the QAT evaluation forward is the integer network the packed (library) path runs, bit for bit;
searched configurations cost what the cost tables say; bad data is refused clearly."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("optax")
pytest.importorskip("sklearn")

from jaxpulp import costtable  # noqa: E402
from jaxpulp.errors import JaxpulpError  # noqa: E402
from jaxpulp.network.execute import run  # noqa: E402
from jaxpulp.qtypes import QType  # noqa: E402
from jaxpulp.train import (  # noqa: E402
    data,
    model as M,  # noqa: E402
    qat,
    search as S,  # noqa: E402
)

CFG = S.SearchConfig(float_epochs=1, search_epochs=1, finetune_epochs=1, batch=128)


@pytest.fixture(scope="module")
def ds():
    return data.digits(0)


def _sub(model, act_bits, w_bits):
    prec = {}
    for lay in model.layers:
        if lay.kind not in ("maxpool", "avgpool") and lay.out_type.bits != 32:
            prec[lay.output] = f"{'i' if lay.out_type.signed else 'u'}{act_bits}"
        if lay.w_type is not None and lay.inputs[0] != "input":  # the 1-channel first conv runs only i8
            prec[f"{lay.name}.w"] = f"i{w_bits}"
    return prec


def _random_params(model, seed):
    """Init weights with random folded-BN scales / biases and PACT clips (training is covered by the search test)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    p = M.init_params(model, seed)
    for lp in p["layers"].values():
        if "a" in lp:
            lp["a"] = jnp.asarray(rng.uniform(0.3, 2.0, lp["a"].shape), jnp.float32)
        lp["b"] = jnp.asarray(rng.normal(0, 0.3, lp["b"].shape), jnp.float32)
    p["alpha"] = {k: jnp.float32(rng.uniform(0.5, 3.0)) for k in p["alpha"]}
    return p


CASES = [
    ("all8", lambda: M.build("t8", (8, 8, 1), [M.conv(8), M.conv(16, stride=2), M.avgpool()], 10), (8, 8)),
    ("sub-byte u4/i2", lambda: M.build("t4", (8, 8, 1), [M.conv(8), M.conv(16, stride=2), M.avgpool()], 10), (4, 2)),
    ("signed i4/i4, depthwise, dense", lambda: M.build("sg", (8, 8, 1), [
        M.conv(8), M.conv(16, signed=True), M.maxpool(2), M.dw(3, signed=True), M.dense(16)], 10), (4, 4)),
    ("residual u2/i8", lambda: M.build("rs", (8, 8, 1), [
        M.conv(8), M.residual(M.dw(3), M.conv(8, k=1)), M.maxpool(2), M.dense(32)], 10), (2, 8)),
]


@pytest.mark.parametrize("name,make,bits", CASES, ids=[c[0] for c in CASES])
def test_packed_path_equals_qat_eval(ds, name, make, bits):
    model = make()
    prec = _sub(model, *bits) if bits != (8, 8) else {}
    layers = qat.layers_at(model, prec)
    params = _random_params(model, 1)
    net = qat.integerise(model, params, prec)
    assert [str(layer.out_type) for layer in net.layers] == [str(layer.out_type) for layer in layers]
    x = ds.x_test[:48]
    want = np.asarray(qat.integer_logits(model, params, layers, x))
    got = run(net, x).outputs[net.outputs[0]].reshape(48, -1)
    assert np.array_equal(got, want)
    assert len(np.unique(want)) > 10  # logits carry information (not all zeros / saturated)
    # the straight-through forward's value is the integer network's (integer logits x one scale)
    act, w = M.fixed_mix(layers)
    ints = qat.integer_tensors(model, layers, qat.int_params(model, params, layers), x)
    f = np.asarray(M.forward(model, params, x / 255.0, act_mix=act, w_mix=w, ints=ints))
    nz = want != 0
    ratio = f[nz] / want[nz]
    assert ratio[0] > 0 and np.allclose(ratio, ratio[0], rtol=1e-4)
    assert np.all(np.abs(f[~nz]) <= 1e-4 * np.abs(f).max())


def _twn_reference(w2d):
    """Ternary weights per row by the TWN rule, in plain numpy: threshold 0.7 * mean|w|, pattern sign(w) where
    |w| is above it, scale = the least-squares scale of that pattern <w, q> / <q, q>."""
    q = np.where(np.abs(w2d) > 0.7 * np.abs(w2d).mean(axis=1, keepdims=True), np.sign(w2d), 0.0)
    s = (w2d * q).sum(axis=1) / np.maximum((q * q).sum(axis=1), 1)
    return q, s


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([(8, 3, 3, 4), (16, 36), (4, 3, 3)]), st.booleans())
def test_two_bit_weights_are_twn_ternary(seed, shape, per_channel):
    """i2 weights are {-1, 0, +1} x scale with the TWN threshold (per output channel, or per tensor), both in the
    integer parameters and in the fake-quantised forward; 4 and 8 bits keep the uniform max|w| grid."""
    import jax.numpy as jnp

    w = np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)
    q, s = M.w_quant(jnp.asarray(w), QType(2, True), per_channel)
    rows = w.reshape(shape[0], -1) if per_channel else w.reshape(1, -1)
    q_ref, s_ref = _twn_reference(rows.astype(np.float64))
    assert np.array_equal(np.asarray(q).reshape(rows.shape), q_ref)
    np.testing.assert_allclose(np.asarray(s), np.broadcast_to(s_ref, (shape[0],)), rtol=1e-5)
    fq = np.asarray(M.fq_weight(jnp.asarray(w), QType(2, True), per_channel)).reshape(shape[0], -1)
    np.testing.assert_allclose(fq, np.asarray(q).reshape(shape[0], -1) * np.asarray(s)[:, None], rtol=1e-6)
    q4, s4 = M.w_quant(jnp.asarray(w), QType(4, True), per_channel)
    assert np.abs(np.asarray(q4)).max() == 7 and set(np.unique(np.asarray(q4))) <= set(range(-7, 8))


def test_signed_avgpool_refused():
    with pytest.raises(JaxpulpError, match="avgpool after a signed tensor"):
        M.build("bad", (8, 8, 1), [M.conv(8, signed=True), M.avgpool()], 10)


def test_layers_at_errors():
    model = M.named("tiny", (8, 8, 1), 10)
    with pytest.raises(JaxpulpError, match="nope"):
        qat.layers_at(model, {"nope": "u4"})
    with pytest.raises(JaxpulpError, match="expected i8, i4 or i2"):
        qat.layers_at(model, {"conv2.w": "u4"})


def test_cli_search_resumable_exact_cost(tmp_path, capsys):
    """``jaxpulp search`` end to end (tiny settings): the row's cost equals costtable.reference_cost of its
    configuration, the packed path equals the QAT evaluation, a rerun resumes instead of recomputing. A hard 1 kB
    budget on the weights (all-8-bit: 1,384 B) is met by the chosen configuration."""
    import json

    from jaxpulp.cli import main
    from jaxpulp.network import store

    out = tmp_path / "run"
    argv = ["search", "--data", "digits", "--net", "tiny", "--lambdas", "1e-4", "--out", str(out), "--quiet",
            "--float-epochs", "1", "--search-epochs", "1", "--finetune-epochs", "1", "--budget-kb", "1",
            "--budget-on", "weights", "--hard-budget", "--batch", "128"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in open(out / "results.jsonl")]
    assert len(rows) == 1
    row = rows[0]
    model = M.named("tiny", (8, 8, 1), 10)
    sp = S.make_space(model)
    config = sp.space.config_of(row["config"])
    ref = costtable.reference_cost(sp.space, config)
    assert row["cycles"] == ref["cycles"] and row["weight_bytes"] == ref["weight_bytes"]
    assert row["activation_bytes"] == ref["peak_act_bytes"] and row["l2_fit"] == ref["l2_fit"]
    assert row["energy_pj"] == pytest.approx(ref["energy_pj"], rel=1e-6)
    assert row["bitexact_equals_qat_eval"] and row["bitexact_acc"] == row["integer_acc"]
    assert row["weight_bytes"] <= 1024 and row["budget_fit"] and row["budget_on"] == "weights"
    net = store.load(str(out / row["network"]))
    if row.get("onnx"):  # exported in the DORY dialect, with goldens the packed path reproduces
        from jaxpulp.network import conformance
        from jaxpulp.network.onnx_import import load_onnx

        back = load_onnx(str(out / row["onnx"]))
        assert all(c.ok for c in conformance.check(back, str((out / row["onnx"]).parent)))
    want = [str(layer.out_type) for layer in sp.space.layers_of(config)]
    assert [str(layer.out_type) for layer in net.layers] == want
    assert (out / "pareto.png").exists() or "no matplotlib" in capsys.readouterr().out
    assert main(argv) == 0  # resumed: nothing recomputed
    assert len(open(out / "results.jsonl").read().splitlines()) == 1
    assert main(argv[:-2] + ["--batch", "64"]) == 2  # other settings in the same folder: refused
    assert main(["search", "--lambdas", "-1", "--out", str(tmp_path / "x")]) == 2
    whole = open(out / "results.jsonl").read()
    with open(out / "results.jsonl", "w") as f:  # the row's write was interrupted: that lambda is searched again
        f.write(whole[:-30])
    capsys.readouterr()
    assert main(argv) == 0 and "lambda=0.0001" in capsys.readouterr().out
    again = [json.loads(line) for line in open(out / "results.jsonl")]
    assert len(again) == 1 and again[0]["config"] == row["config"]  # seeded: the same search
    fp = out / "float_params.npz"
    saved = fp.read_bytes()
    fp.write_bytes(saved[:100])  # damaged float parameters (with one lambda to redo): refused by name
    with open(out / "results.jsonl", "w") as f:
        f.write(whole[:-30])
    assert main(argv) == 2 and "float_params.npz: saved float parameters are not readable" in capsys.readouterr().err
    fp.write_bytes(saved)
    assert main(argv) == 0
    (out / "run.json").write_text("{half")  # unreadable settings: refused by name, nothing else touched
    before = sorted(p.name for p in out.iterdir())
    assert main(argv) == 2 and "run.json holds this run's settings but is not readable" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_results_rows_tolerate_only_an_interrupted_last_write(tmp_path):
    from jaxpulp.train.cli import read_rows

    p = tmp_path / "results.jsonl"
    p.write_text('{"lambda_cycles": 0}\n{"lambda_cycles": 1e-5, "cyc')  # the last write cut short
    assert [r["lambda_cycles"] for r in read_rows(str(p))] == [0] and p.read_text().endswith("cyc")
    assert [r["lambda_cycles"] for r in read_rows(str(p), repair=True)] == [0]
    assert p.read_text() == '{"lambda_cycles": 0}\n'  # cut back to the last whole row
    p.write_text('{"lambda_cycles": 0}')  # a whole row without its newline: kept, newline added on repair
    assert len(read_rows(str(p), repair=True)) == 1 and p.read_text() == '{"lambda_cycles": 0}\n'
    for bad, match in (('{"lambda_cycles": 0\n{"lambda_cycles": 1}\n', ":1: not a JSON row"),
                       ('{"lambda_cycles": 0}\n[1, 2]\n', ":2: expected a result row"),
                       ('{"lambda_cycles": true}\n', ":1: expected a result row")):
        p.write_text(bad)
        with pytest.raises(JaxpulpError, match=match):
            read_rows(str(p), repair=True)
        assert p.read_text() == bad  # never cut


def test_data_splits_seeded(ds):
    again = data.digits(0)
    assert np.array_equal(ds.x_train, again.x_train) and ds.shape == (8, 8, 1) and ds.num_classes == 10
    other = data.digits(1)
    assert not np.array_equal(ds.y_train, other.y_train)
    n = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    assert n == 1797 and ds.x_train.dtype == np.uint8


@pytest.mark.parametrize("x,y,match", [
    (np.zeros((0, 4, 4, 1)), np.zeros(0), "empty"),
    (np.zeros((10, 4, 4)), np.zeros(10), r"expected \(N, H, W, C\)"),
    (np.zeros((10, 4, 4, 1)), np.zeros(9), "one per image"),
    (np.full((10, 4, 4, 1), np.nan), np.arange(10) % 2, "NaN"),
    (np.random.rand(10, 4, 4, 1), -(np.arange(10) % 2), "out of range"),
    (np.random.rand(10, 4, 4, 1), np.arange(10) % 2 + 0.5, "non-integer"),
])
def test_bad_data(tmp_path, x, y, match):
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=y)
    with pytest.raises(JaxpulpError, match=match):
        data.load(str(p))


def test_npz_loader(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, x=rng.random((40, 4, 4, 2)).astype(np.float32), y=rng.integers(0, 3, 40))
    d = data.load(str(p), seed=3)
    assert d.shape == (4, 4, 2) and d.x_train.dtype == np.uint8 and d.x_train.max() <= 255
    with pytest.raises(JaxpulpError, match="expected 'digits'"):
        data.load("mnist")
    np.savez(tmp_path / "e.npz", a=np.zeros(3))
    with pytest.raises(JaxpulpError, match="expected 'x'"):
        data.load(str(tmp_path / "e.npz"))


def test_defective_linear_is_avoided():
    """The library's linear u2 x i4 -> u2 kernel sums the wrong weights: argmax steers to another weight type."""
    model = M.build("d", (8, 8, 1), [M.conv(8), M.maxpool(2), M.dense(32)], 10)
    sp = S.make_space(model)
    V, C = sp.st.valid.shape
    want = {"conv1": "u2", "fc3": "u2", "fc3.w": "i4"}
    logits = np.zeros((V, C), np.float32)
    for vi, v in enumerate(sp.space.variables):
        if v.name in want:
            logits[vi, [str(c) for c in v.choices].index(want[v.name])] = 5.0
    config = S.argmax_config(sp, logits)
    types = sp.space.types_of(config)
    assert types["conv1"] == "u2" and types["fc3"] == "u2" and types["fc3.w"] != "i4"
    assert S.defective(qat.layers_at(model, want)[2])


def test_from_network_keeps_topology():
    """A model from an integerised network's topology has the same layers (template flags) and trains from there."""
    model = CASES[3][1]()
    net = qat.integerise(model, _random_params(model, 0), _sub(model, 4, 8))
    again = M.from_network(net)
    def summary(layers):
        return [(la.name, la.kind, la.inputs, la.in_shape, la.out_shape, str(la.out_type)) for la in layers]
    assert summary(again.layers) == summary(net.layers)
    p = M.init_params(again, 0)
    assert set(p["layers"]) == {layer.name for layer in net.layers if layer.w_type is not None}
    from jaxpulp.network.zoo import mobilenet_v1

    mb = M.from_network(mobilenet_v1(alpha=0.25, resolution=32))
    assert len(mb.layers) == 29 and str(mb.layers[-1].out_type) == "i32" and mb.num_classes == 10
    with pytest.raises(JaxpulpError, match="avgpool after a signed tensor"):
        M.from_network(mobilenet_v1(alpha=0.25, resolution=32, act="i8"))
    with pytest.raises(JaxpulpError, match="linear classifier"):
        M.from_network(net.replace(layers=net.layers[:-2], outputs=(net.layers[-3].output,),
                                   params={k: v for k, v in net.params.items() if k not in ("classifier", "fc6")}))


@pytest.mark.parametrize("gumbel", [False, True])
def test_search_loss_contains_cost_terms(ds, gumbel):
    """The surrogate is in the loss: d(loss)/d(logits) at lambda = 1 minus that at lambda = 0 is the gradient of the
    expected cycles (same temperature / Gumbel noise); the memory term is zero under budget and positive over it."""
    import jax
    import jax.numpy as jnp

    from jaxpulp import surrogate

    model = M.named("tiny", (8, 8, 1), 10)
    sp = S.make_space(model)
    params = M.init_params(model, 0)
    V, C = sp.st.valid.shape
    logits = jnp.asarray(np.random.default_rng(0).normal(0, 1, (V, C)), jnp.float32)
    x, y = ds.x_train[:32], ds.y_train[:32]
    key = jax.random.PRNGKey(0) if gumbel else None
    cfg = S.SearchConfig(gumbel=gumbel)
    grad = lambda lam, c: jax.grad(lambda la: S.search_loss(sp, params, la, x, y, 0.5, lam, c, key)[0])(logits)  # noqa
    noise = jax.random.gumbel(key, (V, C)) if gumbel else 0.0
    gc = jax.grad(lambda lg: S.expected_cost(sp, surrogate.softmax_probs(sp.st, lg + noise, 0.5))["cycles"])(logits)
    assert float(jnp.abs(gc).max()) > 0
    np.testing.assert_allclose(np.asarray(grad(1e-3, cfg) - grad(0.0, cfg)), 1e-3 * np.asarray(gc), rtol=1e-2,
                               atol=1e-4 * float(jnp.abs(1e-3 * gc).max()) + 1e-6)
    l0, aux = S.search_loss(sp, params, logits, x, y, 0.5, 0.0, cfg, key)
    over = S.SearchConfig(gumbel=gumbel, budget_bytes=100, budget_on="weights")  # the weight bytes alone > 100
    l1, aux_w = S.search_loss(sp, params, logits, x, y, 0.5, 0.0, over, key)
    assert float(aux["memory"]) > 100 and float(l1) > float(l0)
    e = S.expected_cost(sp, surrogate.softmax_probs(sp.st, logits + noise, 0.5))
    assert float(aux_w["memory"]) == pytest.approx(float(e["weight_bytes"]), rel=1e-6)
    assert float(aux["memory"]) == pytest.approx(float(e["memory_bytes"]), rel=1e-6)
    assert float(e["weight_bytes"]) < float(e["memory_bytes"])


def test_hard_budget_repair_lowers_largest_layers():
    """``repair`` lowers the largest layer's weights first and stops as soon as the budget holds; the result is
    supported and its exact cost meets the budget; an unreachable budget is refused with the bytes it needs."""
    model = M.named("small", (8, 8, 1), 10)
    sp = S.make_space(model)
    c8 = sp.space.config_of({})
    w8 = S.exact_cost(sp, c8)["weight_bytes"]
    assert S.repair(sp, c8, w8, "weights").tolist() == c8.tolist()  # already within: unchanged
    one = sp.space.types_of(S.repair(sp, c8, w8 - 1, "weights"))
    changed = {k: v for k, v in one.items() if v != sp.space.types_of(c8)[k]}
    assert changed == {"conv3.w": "i4"}  # conv3 (16 -> 32 channels, 3x3) holds most of the weights
    for budget in (w8 // 2, w8 // 3):
        cfg = S.repair(sp, c8, budget, "weights")
        cost = S.exact_cost(sp, cfg)
        assert cost["weight_bytes"] <= budget and cost["supported"]
        assert all(sp.space.types_of(cfg)[k] == v for k, v in sp.space.types_of(c8).items() if not k.endswith(".w"))
    m8 = S.exact_cost(sp, c8)["memory_bytes"]
    cfg = S.repair(sp, c8, m8 - w8 // 2 - 1, "all")  # more than the weights alone can give: activations too
    assert S.exact_cost(sp, cfg)["memory_bytes"] <= m8 - w8 // 2 - 1
    with pytest.raises(JaxpulpError, match="hard budget 10 B"):
        S.repair(sp, c8, 10, "weights")
    with pytest.raises(JaxpulpError, match="budget_on='flash'"):
        S.SearchConfig(budget_on="flash")
    for bad in (float("nan"), float("inf"), -1.0):  # a NaN weight made every loss NaN without a word
        with pytest.raises(JaxpulpError, match=f"lambda_mem={bad!r}"):
            S.SearchConfig(lambda_mem=bad)


def test_finetune_keeps_best_validation_epoch(ds):
    """With selection the returned parameters are the epoch with the best integer validation accuracy (what the
    progress lines report), not the last one's."""
    model = M.named("tiny", (8, 8, 1), 10)
    layers = qat.layers_at(model, _sub(model, 4, 2))
    cfg = S.SearchConfig(batch=128, qat_lr=0.05)
    msgs = []
    p = S.finetune(model, M.init_params(model, 0), ds, layers, cfg, epochs=3, progress=msgs.append)
    accs = [float(m.rsplit(" ", 1)[1]) for m in msgs]
    got = S.accuracy(qat.integer_logits(model, p, layers, ds.x_val), ds.y_val)
    assert len(accs) == 3 and got == pytest.approx(max(accs), abs=1e-4)
    last = S.finetune(model, M.init_params(model, 0), ds, layers, cfg, epochs=3, select=False)
    assert S.accuracy(qat.integer_logits(model, last, layers, ds.x_val), ds.y_val) == pytest.approx(accs[-1],
                                                                                                   abs=1e-4)


@pytest.mark.parametrize("argv,match", [
    (["--net", "nope"], "--net 'nope'"),
    (["--data", "missing.npz"], "--data 'missing.npz'"),
    (["--lambdas", "1e-4,x"], "--lambdas"),
    (["--budget-kb", "0"], "--budget-kb"),
    (["--budget-on", "flash"], "--budget-on"),
])
def test_cli_search_errors(tmp_path, capsys, argv, match):
    """Bad arguments: one line on stderr, exit 2, and no output folder left behind."""
    from jaxpulp.cli import main

    out = tmp_path / "run"
    assert main(["search", "--out", str(out)] + argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and not out.exists()
