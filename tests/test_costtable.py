"""Cost tables: gather-and-sum evaluation against a plain loop over the cost model, the configuration space
(producer/consumer variables, pruning, enumeration) and the PLiNIO-style export."""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpulp import JaxpulpError, costtable
from jaxpulp.sweep import toy_net


@functools.cache
def _toy():
    net = toy_net()
    table = costtable.build_table(net)
    return net, table, costtable.config_space(table)


def test_gather_equals_plain_cost_model_loop():
    _, _, space = _toy()
    cfgs = np.asarray(costtable.decode_sampled(space.arrays, jnp.arange(40), 7))
    got = costtable.evaluate(space, cfgs)
    for i, c in enumerate(cfgs):
        ref = costtable.reference_cost(space, c)
        for k, v in ref.items():
            g = np.asarray(got[k][i]).item()
            if k == "energy_pj":
                assert g == pytest.approx(v, rel=1e-6)
            else:
                assert g == v, (k, i)


def test_table_entries_are_the_cost_model_of_each_triple():
    from jaxpulp.cost import kernel_cost
    from jaxpulp.network import mapping

    net, table, _ = _toy()
    lay = net.layer("pw1")
    e = table.entry("pw1", "u4", "i2", "u8")
    cc = kernel_cost(mapping.kernel_config(lay.with_types(in_type="u4", w_type="i2", out_type="u8")))
    assert e["supported"] and e["cycles"] == cc.cycles and e["energy_pj"] == pytest.approx(cc.energy_pj)
    assert e["weight_bytes"] == 16 * 16 * 2 // 8
    assert e["act_bytes"] == 16 * 16 * 16 * 4 // 8 + 16 * 16 * 16
    assert table.entry("mp", "u4", "u2")["supported"] is False  # max pooling keeps its type
    assert table.entry("add1", "u2", "u4", "u8")["supported"]


def test_producer_consumer_variables():
    net, _, space = _toy()
    names = space.names
    # one variable per tensor (the max-pool and the requant-free average pool share their input's), one per
    # weighted layer; the input and the int32 output are fixed
    assert names == ("input", "conv0", "dw1", "pw1", "add1", "fc", "conv0.w", "dw1.w", "pw1.w", "fc.w")
    var = {v.name: v for v in space.variables}
    assert var["add1"].tensors == ("add1", "mp", "gap")
    assert [str(t) for t in var["input"].choices] == ["u8"] and [str(t) for t in var["fc"].choices] == ["i32"]
    cfg = space.config_of({"conv0": "u4", "add1": "u2", "fc.w": "i4"})
    layers = {lay.name: lay for lay in space.layers_of(cfg)}
    # the tensor conv0 is written by conv0 and read by dw1 and by the add: one type everywhere
    assert str(layers["conv0"].out_type) == str(layers["dw1"].in_type) == str(layers["add1"].in2_type) == "u4"
    assert str(layers["mp"].in_type) == str(layers["mp"].out_type) == str(layers["gap"].out_type) == "u2"
    assert str(layers["fc"].w_type) == "i4"


def test_enumeration_covers_the_space_once():
    _, _, space = _toy()
    cfgs = np.asarray(costtable.decode_enumerated(space.arrays, jnp.arange(space.size)))
    assert len({c.tobytes() for c in cfgs}) == space.size == 3 ** 8
    assert (cfgs < np.asarray(space.arrays.n_choices)).all() and (cfgs >= 0).all()


def test_sampling_is_a_pure_function_of_seed_and_index():
    _, _, space = _toy()
    a = np.asarray(costtable.decode_sampled(space.arrays, jnp.arange(1000), 5))
    b = np.asarray(costtable.decode_sampled(space.arrays, jnp.arange(500, 1000), 5))
    c = np.asarray(costtable.decode_sampled(space.arrays, jnp.arange(1000), 6))
    np.testing.assert_array_equal(a[500:], b)
    assert (a != c).any()
    for v in range(a.shape[1]):  # every choice of every free variable is drawn
        assert set(a[:, v]) == set(range(len(space.variables[v].choices)))


def test_evaluate_under_vmap_and_jit_and_blocks():
    _, _, space = _toy()
    cfgs = costtable.decode_enumerated(space.arrays, jnp.arange(300))
    whole = costtable.evaluate(space, cfgs)
    blocked = costtable.evaluate_blocked(space.arrays, cfgs, 65536, 524288, block=64)
    mapped = jax.jit(jax.vmap(lambda c: costtable.evaluate_arrays(space.arrays, c, 65536, 524288)))(cfgs)
    for k in whole:
        np.testing.assert_array_equal(np.asarray(whole[k]), np.asarray(blocked[k]))
        np.testing.assert_array_equal(np.asarray(whole[k]), np.asarray(mapped[k]))


def test_pruning_removes_choices_no_kernel_runs():
    from jaxpulp.network import zoo

    net = zoo.mobilenet_v1(alpha=0.25, resolution=128)
    lay = net.layers[0]  # 3 input channels: K = 27, only 8-bit weights make whole bytes
    one = net.replace(layers=(lay,), outputs=(lay.output,), params={lay.name: net.params[lay.name]})
    table = costtable.build_table(one)
    space = costtable.config_space(table)
    assert [str(t) for t in space.variables[-1].choices] == ["i8"]
    assert "weight-row-multiple" in str(table.kernel[0, 0, 1, 0])
    unpruned = costtable.config_space(table, prune=False)
    assert len(unpruned.variables[-1].choices) == 3
    res = costtable.evaluate(unpruned, np.array([[0, 0, 1]]))
    assert not bool(res["supported"][0])


def test_bad_arguments_name_the_argument():
    _, table, space = _toy()
    with pytest.raises(JaxpulpError, match="act_types"):
        costtable.config_space(table, act_types=("u8", "i32"))
    with pytest.raises(JaxpulpError, match="weight_types"):
        costtable.config_space(table, weight_types=("u8",))
    for name in ("act_types", "weight_types"):  # [] meant "all" (weights) or ended in an IndexError (acts)
        with pytest.raises(JaxpulpError, match=f"{name}=\\[\\]: expected at least one type"):
            costtable.config_space(table, **{name: []})
    with pytest.raises(JaxpulpError, match="fixed"):
        costtable.config_space(table, fixed={"nope": "u8"})
    with pytest.raises(JaxpulpError, match="configs"):
        costtable.evaluate(space, np.zeros((3, 4), np.int32))
    with pytest.raises(JaxpulpError, match="types"):
        space.config_of({"conv0": "i8"})


def test_fixed_and_free_input():
    _, table, _ = _toy()
    s = costtable.config_space(table, fixed={"conv0": "u4", "pw1.w": "i2"}, free_input=True)
    var = {v.name: v for v in s.variables}
    assert [str(t) for t in var["conv0"].choices] == ["u4"]
    assert [str(t) for t in var["pw1.w"].choices] == ["i2"]
    assert len(var["input"].choices) == 3


def test_export_lut_layout(tmp_path):
    _, table, _ = _toy()
    path = tmp_path / "lut.json"
    costtable.save_lut(table, str(path))
    d = json.loads(path.read_text())
    assert d["format"] == "jaxpulp-cost-lut" and d["units"]["cycles"] == "cycles" and d["target"] == "gap8"
    by = {lay["name"]: lay for lay in d["layers"]}
    conv = by["conv0"]
    assert conv["pattern"] == "Conv2dGeneric" and by["dw1"]["pattern"] == "Conv2dDW"
    assert conv["spec"]["in_channels"] == 8 and conv["spec"]["out_channels"] == 16
    assert conv["spec"]["kernel_size"] == [3, 3] and conv["spec"]["output_shape"] == [1, 16, 16, 16]
    assert by["dw1"]["spec"]["groups"] == 16 and by["fc"]["spec"]["in_features"] == 16
    assert len(conv["lut"]) == 6 * 3 * 6  # every (input, weight, output) triple, bits and signedness
    assert len(by["add1"]["lut"]) == 6 * 6 * 6 and len(by["fc"]["lut"]) == 6 * 3 * 7
    for e in conv["lut"]:
        types = (f"{'i' if e['in_format'] == 'int' else 'u'}{e['in_precision']}", f"i{e['w_precision']}",
                 f"{'i' if e['out_format'] == 'int' else 'u'}{e['out_precision']}")
        ref = table.entry("conv0", *types)
        assert e["supported"] == ref["supported"]
        if e["supported"]:
            assert e["cycles"] == ref["cycles"] and e["kernel"] == ref["kernel"]
        else:
            assert e["cycles"] is None and e["reason"]
