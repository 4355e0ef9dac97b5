"""Shared helpers of the golden conformance tests (data in tests/golden, copied from ../shared/golden)."""
import functools
import os

import numpy as np

from jaxpulp import testing

GOLDEN_DIR = os.path.join(os.path.dirname(__file__), "golden")


@functools.cache
def family(name):
    """(case records, {case id: arrays}) of one golden family."""
    meta, arrays = testing.load_family(GOLDEN_DIR, name)
    return meta["cases"], arrays


def assert_equal_defined(got, want, defined, what):
    got = np.asarray(got)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {want.shape}")
    if ((got.astype(np.int64) != want.astype(np.int64)) & (defined != 0)).any():
        raise AssertionError(f"{what}: " + testing.first_mismatches(got, want, defined))


def report(failures, total, what):
    if failures:
        head = "\n".join(failures[:10])
        raise AssertionError(f"{what}: {len(failures)} of {total} cases failed\n{head}")
