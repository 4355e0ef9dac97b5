"""Pareto front against the definition (property tests), the results-file parser and writer, the plot."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxpulp import JaxpulpError
from jaxpulp.sweep import _pareto, _results


def _brute(P):
    P = np.asarray(P, float)
    keep = []
    for i, p in enumerate(P):
        dom = np.all(P <= p, axis=1) & np.any(P < p, axis=1)
        if not dom.any():
            keep.append(i)
    return np.array(keep, np.int64)


@settings(max_examples=150, deadline=None)
@given(k=st.integers(1, 4), pts=st.lists(st.lists(st.integers(0, 6), min_size=4, max_size=4), min_size=0,
                                         max_size=40))
def test_front_matches_definition(k, pts):
    P = np.array(pts, float).reshape(-1, 4)[:, :k]
    np.testing.assert_array_equal(_pareto.pareto_front(P), _brute(P))


def test_objectives_directions_and_errors():
    assert _pareto.parse_objectives("cycles,accuracy,error:max") == [("cycles", 1), ("accuracy", -1), ("error", -1)]
    rows = [{"cycles": 1, "memory_bytes": 2, "error": 0.1, "supported": True}]
    assert _pareto.parse_objectives(None, rows) == [("cycles", 1), ("memory_bytes", 1), ("error", 1)]
    with pytest.raises(JaxpulpError, match="objectives"):
        _pareto.parse_objectives("cycles:up")
    with pytest.raises(JaxpulpError, match="latency"):
        _pareto.front_rows(rows, [("latency", 1)])
    with pytest.raises(JaxpulpError, match="'cycles' given twice"):
        _pareto.parse_objectives("cycles,memory_bytes,cycles:max")


def test_a_nan_objective_is_comparable_with_nothing_and_left_out():
    # a NaN row used to be on every front (no comparison with NaN is true, so nothing dominated it)
    rows = [dict(index=0, cycles=float("nan"), memory_bytes=1), dict(index=1, cycles=1, memory_bytes=2),
            dict(index=2, cycles=2, memory_bytes=3), dict(index=3, cycles=3, memory_bytes=1, error=float("nan"))]
    assert [r["index"] for r in _pareto.front_rows(rows, _pareto.parse_objectives("cycles,memory_bytes"))] == [1, 3]
    front = _pareto.front_rows(rows, _pareto.parse_objectives("cycles,memory_bytes,error"))
    assert front == []  # only row 3 has an error, and it is NaN


def test_front_rows_skip_unsupported_and_maximise():
    rows = [dict(index=0, cycles=10, memory_bytes=5, accuracy=0.5, supported=True),
            dict(index=1, cycles=10, memory_bytes=5, accuracy=0.9, supported=True),
            dict(index=2, cycles=1, memory_bytes=1, accuracy=None, supported=False),
            dict(index=3, cycles=20, memory_bytes=1, accuracy=0.1, supported=True)]
    front = _pareto.front_rows(rows, _pareto.parse_objectives("cycles,memory_bytes,accuracy"))
    assert [r["index"] for r in front] == [1, 3]


class _Space:
    """The two attributes RowFormatter reads."""

    def __init__(self, choices):
        from jaxpulp.costtable import Variable
        from jaxpulp.qtypes import QType

        self.variables = tuple(Variable(f"t{i}", "act", tuple(QType.parse(c) for c in cs))
                               for i, cs in enumerate(choices))


_row = st.fixed_dictionaries({
    "supported": st.booleans(), "cycles": st.integers(0, 2**31 - 1), "energy_pj": st.floats(0, 1e12),
    "weight_bytes": st.integers(0, 2**31 - 1), "peak_act_bytes": st.integers(0, 2**31 - 1),
    "memory_bytes": st.integers(0, 2**31 - 1), "l1_bytes": st.integers(0, 2**31 - 1), "l1_fit": st.booleans(),
    "l2_fit": st.booleans(), "error": st.one_of(st.floats(0, 10), st.just(float("nan"))),
    "agreement": st.floats(0, 1)})


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=12), cut=st.integers(0, 10**6), seed=st.integers(0, 2**32 - 1))
def test_rows_round_trip_and_any_truncation_resumes(tmp_path_factory, rows, cut, seed):
    space = _Space([("u8", "u4", "u2"), ("i8", "i2")])
    fmt = _results.RowFormatter(space, seed, "0.1.0")
    cfgs = np.array([[i % 3, i % 2] for i in range(len(rows))])
    res = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    lines = fmt.lines(np.arange(len(rows)), cfgs, res)
    path = str(tmp_path_factory.mktemp("r") / "x.jsonl")
    data = "".join(lines).encode()
    open(path, "wb").write(data)
    back = _results.read_rows(path)
    assert len(back) == len(rows)
    for r, b, c in zip(rows, back, cfgs, strict=True):
        assert b["seed"] == seed and b["config"] == {"t0": ("u8", "u4", "u2")[c[0]], "t1": ("i8", "i2")[c[1]]}
        assert b["supported"] == r["supported"]
        if r["supported"]:
            assert b["cycles"] == r["cycles"] and b["l2_fit"] == r["l2_fit"]
            assert b["energy_pj"] == pytest.approx(r["energy_pj"], rel=1e-12, abs=0.051)
            assert (b["error"] is None) if r["error"] != r["error"] else b["error"] == pytest.approx(r["error"], 1e-5)
        else:
            assert b["cycles"] is None and b["error"] is None
    # a kill at any byte: the scan keeps exactly the whole rows before it and cuts the partial one off
    cut = cut % (len(data) + 1)
    open(path, "wb").write(data[:cut])
    done, n = _results.scan_done(path, lambda i: i, len(rows))
    whole = data[:cut].count(b"\n")
    assert n == whole and done.sum() == whole and done[:whole].all()
    assert open(path, "rb").read() == "".join(lines[:whole]).encode()


def test_scan_rejects_foreign_and_duplicate_rows(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"index": 0, "a": 1}\n{"index": 0, "a": 1}\n')
    with pytest.raises(JaxpulpError, match="twice"):
        _results.scan_done(str(p), lambda i: i, 5)
    p.write_text('{"index": 7}\n')
    with pytest.raises(JaxpulpError, match="does not belong"):
        _results.scan_done(str(p), lambda i: i, 5)
    p.write_text('[1, 2]\n')
    with pytest.raises(JaxpulpError, match="not a results row"):
        _results.scan_done(str(p), lambda i: i, 5)
    # a file that is no results file is refused untouched (its unterminated tail was cut before it was judged)
    for foreign in (b"PAR1\x15\x04\n\x00\x01binary tail", b"PAR1 no newline at all", b'{"index": 0}\nPAR1 tail'):
        p.write_bytes(foreign)
        with pytest.raises(JaxpulpError, match="not a results row"):
            _results.scan_done(str(p), lambda i: i, 5)
        assert p.read_bytes() == foreign
    with pytest.raises(JaxpulpError, match="no such file"):
        _results.read_rows(str(tmp_path / "none.jsonl"))


def test_plot_png(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    rows = [dict(index=i, cycles=int(c), memory_bytes=int(m), error=float(e), supported=True)
            for i, (c, m, e) in enumerate(zip(rng.integers(1, 1000, 300), rng.integers(1, 1000, 300), rng.random(300),
                                              strict=True))]
    front = _pareto.front_rows(rows, _pareto.parse_objectives("cycles,memory_bytes"))
    png = _pareto.plot_front(rows, front, str(tmp_path / "f.png"), color="error")
    head = open(png, "rb").read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
    json.dumps(front)  # rows stay plain JSON
