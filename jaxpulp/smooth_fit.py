"""Coefficients of the smooth closed-form cost model (``jaxpulp.surrogate.smooth_layer_cost``).

The numbers are package data, ``jaxpulp/data/smooth_fit.json``, written by ``python -m jaxpulp.surrogate fit``
(``dump``) and read here once at import (``load``). ``COEFFS`` is ``{family: {"in,mid,out": {"cycles": [F],
"energy_pj": [F]}}}``: per kernel family and type triple, the non-negative weights of that family's features
(``jaxpulp.surrogate.FEATURES``), cycles and picojoules.
"""
from __future__ import annotations

import json
import math
import os

from jaxpulp.errors import JaxpulpError

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "smooth_fit.json")


def _read(path: str) -> dict:
    if not isinstance(path, (str, os.PathLike)):
        raise JaxpulpError(f"path={path!r}: expected a file path")
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise JaxpulpError(f"path={path!r}: cannot read it ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise JaxpulpError(f"path={path!r}: not a smooth-fit JSON file ({e})") from None
    coeffs = doc.get("coeffs") if isinstance(doc, dict) else None
    if not isinstance(coeffs, dict) or not all(isinstance(v, dict) for v in coeffs.values()):
        raise JaxpulpError(f"path={path!r}: expected a JSON object with a \"coeffs\" object of families "
                           "(a file written by smooth_fit.dump)")
    return doc


def load(path: str = PATH) -> dict:
    """The ``coeffs`` table of a file written by ``dump``."""
    return _read(path)["coeffs"]


def _check_coeffs(coeffs) -> None:
    if not isinstance(coeffs, dict):
        raise JaxpulpError(f"coeffs={type(coeffs).__name__}: expected {{family: {{triple: {{field: [numbers]}}}}}}")
    for fam, triples in coeffs.items():
        if not isinstance(fam, str) or not isinstance(triples, dict):
            raise JaxpulpError(f"coeffs[{fam!r}]={triples!r}: expected {{triple: {{field: [numbers]}}}}")
        for key, fields in triples.items():
            ok = isinstance(key, str) and isinstance(fields, dict) and all(
                isinstance(f, str) and isinstance(v, (list, tuple)) for f, v in fields.items())
            if not ok:
                raise JaxpulpError(f"coeffs[{fam!r}][{key!r}]={fields!r}: expected {{field: [numbers]}}")
            for f, v in fields.items():
                for x in v:
                    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                        raise JaxpulpError(f"coeffs[{fam!r}][{key!r}][{f!r}]: value {x!r}, expected finite "
                                           "numbers (JSON has no NaN / inf)")


def dump(coeffs: dict, path: str = PATH, fitted_with: str = "", target: str = "gap8") -> None:
    """Write ``coeffs`` as JSON, one type triple a line (so a refit reads as a small diff)."""
    from jaxpulp._io import check_output_path, write_text

    _check_coeffs(coeffs)
    check_output_path(path, "path")
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
    write_text(path, "\n".join(lines) + "\n")


_DOC = _read(PATH)
COEFFS = _DOC["coeffs"]
TARGET = _DOC.get("target", "gap8")  # the target the coefficients were fitted on
