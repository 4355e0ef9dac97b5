"""Coefficients of the smooth closed-form cost model (``jaxpulp.surrogate.smooth_layer_cost``).

The numbers are package data, ``jaxpulp/data/smooth_fit.json``, written by ``python -m jaxpulp.surrogate fit``
(``dump``) and read here once at import (``load``). ``COEFFS`` is ``{family: {"in,mid,out": {"cycles": [F],
"energy_pj": [F]}}}``: per kernel family and type triple, the non-negative weights of that family's features
(``jaxpulp.surrogate.FEATURES``), cycles and picojoules.
"""
from __future__ import annotations

import json
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "smooth_fit.json")


def load(path: str = PATH) -> dict:
    """The ``coeffs`` table of a file written by ``dump``."""
    with open(path) as f:
        return json.load(f)["coeffs"]


def dump(coeffs: dict, path: str = PATH, fitted_with: str = "", target: str = "gap8") -> None:
    """Write ``coeffs`` as JSON, one type triple a line (so a refit reads as a small diff)."""
    lines = ["{", f'"about": {json.dumps(__doc__.splitlines()[0])},',
             f'"fitted_with": {json.dumps(fitted_with)},', f'"target": {json.dumps(target)},', '"coeffs": {']
    fams = sorted(coeffs)
    for i, fam in enumerate(fams):
        lines.append(f" {json.dumps(fam)}: {{")
        keys = sorted(coeffs[fam])
        for j, key in enumerate(keys):
            comma = "," if j + 1 < len(keys) else ""
            lines.append(f"  {json.dumps(key)}: {json.dumps(coeffs[fam][key], sort_keys=True)}{comma}")
        lines.append(" }" + ("," if i + 1 < len(fams) else ""))
    lines += ["}", "}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


COEFFS = load()
