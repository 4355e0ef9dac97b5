"""``run``'s calls of small layers are compiled without XLA:CPU's split of elementwise loops over threads
(``execute.serial_call``): decided by the call's largest layer, reaching XLA (no loop of the compiled program is
split), and never changing a bit."""
import os
import re

import numpy as np
import pytest

from jaxpulp.network import execute, reference, zoo
from jaxpulp.network.execute import run


def _net(seed: int = 0):
    return zoo.mobilenet_v1(alpha=0.25, resolution=96, seed=seed)  # a network object of its own (fresh caches)


def _largest_layer(net) -> int:
    """Bytes (inputs + output) of the largest layer for one input, from the interpreter's own tensors: int32
    values, the network input in the dtype ``run`` moves it in."""
    x = np.zeros((1,) + net.input.shape, np.int64)
    t = reference.forward(net, x, keep=True)
    width = {name: 4 for name in t}
    t[net.input.name], width[net.input.name] = x, execute.host_dtype(net.input.qtype).itemsize
    return max(sum(t[i].size * width[i] for i in lay.inputs) + t[lay.output].size * width[lay.output]
               for lay in net.layers)


def _split_loops(text: str) -> list[str]:
    """The loops of a compiled CPU program that XLA splits over threads (more than one partition)."""
    return [p for p in re.findall(r'outer_dimension_partitions":\[([^\]]*)\]', text)
            if int(np.prod([int(v) for v in re.findall(r'\d+', p)] or [1])) > 1]


def test_a_call_is_serial_up_to_the_limit_of_its_largest_layer():
    net = _net()
    largest = _largest_layer(net)
    assert execute.layer_bytes(net) == largest
    most = execute.SERIAL_MAX_BYTES // largest
    assert most >= 1, "the test network's largest layer must fit the limit at batch 1"
    assert all(execute.serial_call(net, n, backend="cpu") for n in range(1, most + 1))
    assert not any(execute.serial_call(net, n, backend="cpu") for n in (most + 1, 2 * most + 1, 1024))
    assert not execute.serial_call(net, 1, backend="gpu")  # a rule of XLA:CPU only


@pytest.mark.parametrize("path", ["packed", "values"])
def test_a_serial_call_compiles_without_split_loops_and_gives_the_same_bits(monkeypatch, path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable CPU: XLA splits no loop either way, so the option cannot be observed")
    net = _net(seed=3)
    x = np.random.default_rng(5).integers(0, 256, (1,) + net.input.shape)
    want = reference.forward(net, x, keep=True)
    assert execute.serial_call(net, 1)
    fn, args, _ = execute.call_runner(net, path, True, execute.GAP8, None, 1)
    serial = fn.lower(execute._check_inputs(net, x), *args).compile().as_text()
    got = run(net, x, path=path, keep=True).tensors
    monkeypatch.setattr(execute, "SERIAL_MAX_BYTES", 0)  # the same call, split as XLA would split it
    other = _net(seed=3)
    assert not execute.serial_call(other, 1)
    fn, args, _ = execute.call_runner(other, path, True, execute.GAP8, None, 1)
    split = fn.lower(execute._check_inputs(other, x), *args).compile().as_text()
    got_split = run(other, x, path=path, keep=True).tensors
    assert _split_loops(split), "XLA split no loop of this call: the test cannot tell the two programs apart"
    assert not _split_loops(serial), f"the serial call still splits loops: {_split_loops(serial)[:3]}"
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} (serial)")
        np.testing.assert_array_equal(got_split[name], want[name], err_msg=f"{name} (split)")
