"""``benchmarks/network_trace.py``'s attribution of profiler events: asynchronous operations are timed to their
completion event, not by their launch event alone."""
import importlib.util
import os
import sys

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "network_trace.py")


@pytest.fixture(scope="module")
def trace_tool():
    sys.path.insert(0, os.path.dirname(_PATH))
    try:
        spec = importlib.util.spec_from_file_location("_network_trace", _PATH)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(os.path.dirname(_PATH))
    return mod


def _x(name, ts, dur):
    return {"ph": "X", "name": name, "ts": ts, "dur": dur}


def test_an_asynchronous_operation_counts_to_its_completion_less_what_ran_inside(trace_tool):
    events = [_x("conv.1", 0, 40), _x("ThunkExecutor::Execute (wait for completion)", 41, 1900),
              _x("tanh", 1000, 100), _x("end: tanh", 1101, 1), _x("end: conv.1", 1200, 1),  # late: after tanh
              _x("add", 1300, 50), _x("end: add", 1351, 1)]
    tot, late = trace_tool.op_times(events, {"conv.1", "tanh", "add"})
    assert tot == pytest.approx({"conv.1": 1.1, "tanh": 0.1, "add": 0.05})  # ms: 1200 - 0 - 100 us for the conv
    assert late == pytest.approx({"conv.1": 1.1})


def test_synchronous_operations_and_unmatched_completions_keep_their_duration(trace_tool):
    events = [_x("a", 0, 300), _x("end: a", 301, 1), _x("b", 400, 30), _x("b", 500, 30), _x("end: b", 2000, 1)]
    tot, late = trace_tool.op_times(events)
    assert tot == pytest.approx({"a": 0.3, "b": 0.06}) and late == {}  # b: two runs, one completion event: not paired
