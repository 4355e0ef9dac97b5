"""Per-core built-in counts of the cost model = the golden vectors' per-core counters, for every case of every
family (sdotusp4+sdotsp4, bextract+bextractu, binsert, pack4, clip_r, clipu_r, SIMD max, scalar min/max, fl1,
barrier, core_id)."""
import json
import os

import numpy as np
import pytest

from jaxpulp.cluster.config import Cluster
from jaxpulp.cost import kernel_cost
from jaxpulp.kernels import _golden, config as kc

HERE = os.path.dirname(__file__)
GOLDEN = os.path.join(HERE, "golden")
if not os.path.exists(os.path.join(GOLDEN, "conv.json")):  # before the lead copies them
    GOLDEN = os.path.join(HERE, "..", "..", "shared", "golden")

COUNTERS = {"sdotp": ("sdotusp4", "sdotsp4"), "extract": ("bextract", "bextractu"), "insert": ("binsert",),
            "pack4": ("pack4",), "clip": ("clip_r",), "clipu": ("clipu_r",),
            "simd": ("max4", "maxu4", "min4", "minu4", "avgu4"), "minmax": ("maxsi", "minsi", "maxusi", "minusi"),
            "bitcount": ("fl1",), "barrier": ("barrier",), "core_id": ("core_id",)}


@pytest.mark.parametrize("family", ["conv", "pointwise", "depthwise", "linear_quant", "linear_noquant", "maxpool",
                                    "avgpool", "add"])
def test_per_core_builtins_equal_golden_counters(family):
    with open(os.path.join(GOLDEN, family + ".json")) as f:
        meta = json.load(f)
    arrays = np.load(os.path.join(GOLDEN, family + ".npz"))
    idx = {n: i for i, n in enumerate(meta["counter_names"])}
    failures = []
    for c in meta["cases"]:
        gold = arrays[c["id"] + "/counters_per_core"]
        cc = kernel_cost(_golden.config_of(c), Cluster(num_cores=c["ncores"]))
        assert len(cc.per_core) == c["ncores"]
        for core in range(c["ncores"]):
            got = cc.per_core[core].builtins()
            for k, names in COUNTERS.items():
                want = sum(int(gold[core, idx[n]]) for n in names if n in idx)
                if got[k] != want:
                    failures.append(f"{c['id']} {c['kernel']} core {core} {k}: model {got[k]}, golden {want}")
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:20])


def test_signed_shift_clip_uses_unsigned_clip_in_the_matmul_block():
    """semantics.md §4.4: the 4x2 block clips unsigned in SHIFT-CLIP mode, leftover paths clip signed."""
    base = dict(in_type="u8", out_type="i8", w_type="i8", H=8, W=3, Ci=4, Co=5, Kh=1, Kw=1, relu=0, bn=0)
    c = kernel_cost(kc.ConvConfig(**base), Cluster(num_cores=1)).per_core[0]
    # 8 rows x 1 pair: 4 channels x 2 pixels via the block (clipu) + 1 leftover channel x 2 pixels (clip);
    # 8 leftover pixels x 5 channels (clip)
    assert c.clipu == 8 * 8 and c.clip == 8 * 2 + 8 * 5
    bn = kernel_cost(kc.ConvConfig(**{**base, "relu": 1, "bn": 1}), Cluster(num_cores=1)).per_core[0]
    assert bn.clipu == 0 and bn.clip == 8 * 3 * 5
