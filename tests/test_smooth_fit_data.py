"""The smooth-model coefficients are JSON package data (jaxpulp/data/smooth_fit.json): they load with the values
the generated Python module held before, and ``dump`` / ``load`` round-trip every float exactly."""
import json

from jaxpulp import smooth_fit as _smooth_fit, surrogate

# Entries copied from the generated module ``jaxpulp/sweep/_smooth_fit.py`` as it stood before the move to JSON.
BEFORE = {
    ("add", "i2,i2,i2"): {"cycles": [1780.12, 0.0, 24.5065], "energy_pj": [704802.0, 0.0, 17617.7]},
    ("avgpool", "u8,-,u8"): {"cycles": [0.0, 293.72, 39.9825, 6.829, 0.0],
                             "energy_pj": [0.0, 116677.0, 13330.8, 1249.73, 7524.43]},
    ("depthwise", "u8,i8,u8"): {"cycles": [114.423, 37.8766, 38.8954, 9.61988, 37.6017, 0.0],
                                "energy_pj": [29397.5, 28301.1, 26263.0, 6704.12, 26212.4, 0.0]},
    ("linear", "i2,i2,i2"): {"cycles": [248.119, 16.1301, 6.17958, 1.61353],
                             "energy_pj": [99258.3, 12705.2, 1591.08, 1378.7]},
    ("pointwise", "u8,i8,u8"): {"cycles": [0.0, 62.0473, 69.5306, 0.0727861, 49.3988, 0.873883],
                                "energy_pj": [0.0, 0.0, 49782.4, 32.1077, 34358.8, 609.02]},
}
COUNTS = {"add": 216, "avgpool": 36, "conv": 108, "depthwise": 108, "linear": 126, "maxpool": 6, "pointwise": 108}


def test_loaded_table_keeps_the_generated_values():
    assert {f: len(d) for f, d in _smooth_fit.COEFFS.items()} == COUNTS
    assert set(_smooth_fit.COEFFS) == set(surrogate.FAMILIES)
    for (fam, key), want in BEFORE.items():
        assert _smooth_fit.COEFFS[fam][key] == want
    for fam, table in _smooth_fit.COEFFS.items():
        for key, v in table.items():
            F = len(surrogate.FEATURES[fam])
            assert set(v) == {"cycles", "energy_pj"} and all(len(v[n]) == F for n in v), (fam, key)
            assert all(isinstance(x, float) and x >= 0 for n in v for x in v[n]), (fam, key)


def test_dump_load_round_trips_exactly(tmp_path):
    path = str(tmp_path / "fit.json")
    coeffs = {"conv": {"u8,i8,u8": {"cycles": [0.1, 1 / 3, 2.5e-300, 1e300], "energy_pj": [0.0, 7.0, 1e-7, 3.3]}},
              "maxpool": {"u8,-,u8": {"cycles": [383.597], "energy_pj": [139924.0]}}}
    _smooth_fit.dump(coeffs, path, fitted_with="jaxpulp test", target="gap8")
    assert _smooth_fit.load(path) == coeffs
    with open(path) as f:
        doc = json.load(f)
    assert doc["fitted_with"] == "jaxpulp test" and doc["target"] == "gap8"


def test_write_fit_writes_what_the_loader_reads(tmp_path):
    path = str(tmp_path / "fit.json")
    surrogate.write_fit(path, _smooth_fit.COEFFS)
    assert _smooth_fit.load(path) == _smooth_fit.COEFFS
