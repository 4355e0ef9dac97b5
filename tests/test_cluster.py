"""The work splits: Python (static) and traced twins agree; the spec's worked partition examples hold."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpulp import JaxpulpError
from jaxpulp.cluster import run, split
from jaxpulp.cluster.config import Cluster


def test_traced_conv_split_equals_static_split():
    grid = list(itertools.product(range(1, 21), range(1, 21), (1, 2, 4, 8)))
    ho, wo, nc = (jnp.array(v, jnp.int32) for v in zip(*grid, strict=True))

    def all_cores(h, w, n):
        return run.over_cores(lambda c: jnp.stack(run.conv_split(c, h, w, n)))

    got = np.asarray(jax.jit(jax.vmap(all_cores))(ho, wo, nc))
    for i, (h, w, n) in enumerate(grid):
        for core in range(8):
            want = (0, 0, 0, 0)
            if core < n:
                r = split.conv_split(core, h, w, n)
                want = (r.row0, r.row1, r.col0, r.col1)
            assert tuple(got[i, core]) == want, (h, w, n, core)


@pytest.mark.parametrize("ho, wo, expect", [
    # semantics.md §15.4 (NC = 8): (core -> rows, columns)
    (8, 7, {c: ((c, c + 1), (0, 7)) for c in range(8)}),
    (6, 7, {0: ((0, 2), (0, 3)), 1: ((0, 2), (3, 7)), 4: ((4, 6), (0, 3)), 6: ((6, 6), (0, 3))}),
    (12, 5, {2: ((3, 6), (0, 2)), 3: ((3, 6), (2, 5))}),
    (3, 9, {0: ((0, 1), (0, 4)), 1: ((0, 1), (4, 9)), 5: ((2, 3), (4, 9))}),
    (1, 2, {0: ((0, 1), (0, 1)), 1: ((0, 1), (1, 2))}),
])
def test_conv_split_examples(ho, wo, expect):
    for core, (rows, cols) in expect.items():
        r = split.conv_split(core, ho, wo, 8)
        assert ((r.row0, r.row1), (r.col0, r.col1)) == (rows, cols)


def test_every_output_pixel_has_exactly_one_core():
    for ho, wo, nc in itertools.product(range(1, 18), range(1, 18), (1, 2, 4, 8)):
        owners = np.zeros((ho, wo), int)
        for core in range(nc):
            r = split.conv_split(core, ho, wo, nc)
            owners[r.row0:r.row1, r.col0:r.col1] += 1
        assert (owners == 1).all(), (ho, wo, nc)


def test_pixel_roles_pairs_and_leftovers():
    owner, pair, j = (np.asarray(a) for a in run.conv_pixel_roles(6, 7, 8, (8, 8)))
    assert owner[0, 2] == 0 and not pair[0, 2]        # core 0: x 0..2 -> pair (0,1) + leftover 2
    assert owner[0, 3] == 1 and pair[0, 6]            # core 1: x 3..6 -> two pairs
    assert owner[1, 0] == 0 and j[1, 0] == 1          # second row of core 0
    assert (owner[6:] == -1).all() and (owner[:, 7] == -1).all()


@pytest.mark.parametrize("kw", [dict(num_cores=3), dict(num_cores=0), dict(l1_bytes=-1), dict(freq_hz=0)])
def test_cluster_rejects_bad_values(kw):
    with pytest.raises(JaxpulpError, match=list(kw)[0]):
        Cluster(**kw)
