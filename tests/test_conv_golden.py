"""Conv conformance: every golden case through the packed path, the value path and the numpy twin."""
import numpy as np
from golden_util import assert_equal_defined, family, report

from jaxpulp import UnsupportedConfig, testing
from jaxpulp.kernels import _golden, conv

CASES, ARRAYS = family("conv")


def test_packed_path_matches_every_golden_case():
    results = testing.run_cases(CASES, ARRAYS)
    failures = [f"{r.id} {r.kernel}: {r.message}" for r in results if not r.passed]
    report(failures, len(results), "conv packed path")


def test_check_refuses_exactly_the_undefined_cases():
    wrong = []
    for meta in CASES:
        try:
            _golden.conv.from_golden(meta, ARRAYS[meta["id"]])
            refused = False
        except UnsupportedConfig:
            refused = True
        if refused != testing.case_should_be_refused(meta):
            wrong.append(f"{meta['id']} refused={refused} all_defined={meta['all_defined']} "
                         f"guard_written={meta['guard_written']}")
    report(wrong, len(CASES), "conv check()")
    assert any(testing.case_should_be_refused(m) for m in CASES)  # the data does exercise refusals


def test_reference_twin_matches_every_defined_case():
    failures = []
    for meta in CASES:
        a = ARRAYS[meta["id"]]
        try:
            call = _golden.conv.from_golden(meta, a)
        except UnsupportedConfig:
            continue
        got = conv.reference(a["x"], a["w"], call.args[2], call.cfg, call.cluster)
        try:
            assert_equal_defined(got, a["out"], a["defined"], meta["id"])
        except AssertionError as e:
            failures.append(str(e))
    report(failures, len(CASES), "conv reference twin")


def test_value_path_equals_packed_path_where_no_quirk_applies():
    calls, arrays = [], []
    for meta in CASES:
        if not meta["matches_ideal"]:
            continue
        a = ARRAYS[meta["id"]]
        try:
            calls.append(_golden.conv.from_golden(meta, a))
        except UnsupportedConfig:
            continue
        arrays.append(a)
    assert len(calls) > 400
    values = _golden.conv.run_values_golden_batch(calls, arrays)
    packed = _golden.conv.run_golden_batch(calls)
    failures = []
    for c, v, p, _a in zip(calls, values, packed, arrays, strict=True):
        if not np.array_equal(v, p):
            failures.append(f"{c.meta['id']}: " + testing.first_mismatches(v, p, np.ones_like(p)))
    report(failures, len(calls), "conv value path vs packed path")


def test_value_path_differs_where_the_quirk_applies():
    # The signed shift-and-clip quirk (semantics.md §4.4) must be visible: ideal != library on those cases.
    metas = [m for m in CASES if not m["matches_ideal"] and m["all_defined"]][:20]
    calls = [_golden.conv.from_golden(m, ARRAYS[m["id"]]) for m in metas]
    values = _golden.conv.run_values_golden_batch(calls, [ARRAYS[m["id"]] for m in metas])
    assert all(not np.array_equal(v, ARRAYS[m["id"]]["out"]) for v, m in zip(values, metas, strict=True))
