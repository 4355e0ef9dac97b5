"""Conformance against golden vectors in the ../shared/golden format (README there), as public API.

``run_golden_case(meta, arrays)`` runs one case record through the packed path and returns the unpacked
output; ``check_golden_dir(DIR)`` runs every ``<family>.npz/json`` pair of a folder (one compiled function
per family) and counts passes and failures over the elements marked ``defined``.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import _golden


def load_family(directory: str, family: str) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """(json metadata, {case id: {array name: array}}) of ``<family>.json`` / ``<family>.npz``."""
    with open(os.path.join(directory, f"{family}.json")) as f:
        meta = json.load(f)
    with np.load(os.path.join(directory, f"{family}.npz")) as npz:
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for key in npz.files:
            cid, name = key.split("/", 1)
            arrays.setdefault(cid, {})[name] = npz[key]
    return meta, arrays


def run_golden_case(meta: dict, arrays: dict) -> np.ndarray:
    """Unpacked output of one golden case computed through the packed path.
    Raises ``UnsupportedConfig`` where the kernel's ``check`` refuses the configuration."""
    adapter = _golden.adapter(meta["family"])
    return adapter.run_golden_batch([adapter.from_golden(meta, arrays)])[0]


def first_mismatches(got, want, defined, n: int = 8) -> str:
    """The first ``n`` differing defined elements, as index: got vs want in hex."""
    got = np.asarray(got).astype(np.int64)
    want = np.asarray(want).astype(np.int64)
    bad = np.argwhere((got != want) & (np.asarray(defined) != 0))
    rows = []
    for idx in bad[:n]:
        g, w = int(got[tuple(idx)]), int(want[tuple(idx)])
        rows.append(f"  at {tuple(int(i) for i in idx)}: got {g} (0x{g & 0xFFFFFFFF:08x}) "
                    f"want {w} (0x{w & 0xFFFFFFFF:08x})")
    return f"{len(bad)} defined element(s) differ; first:\n" + "\n".join(rows)


# Golden cases whose ``defined`` mask is wrong (found while building the kernels; each is proved by a test):
# (family, case id) -> why. jaxpulp refuses them; ``check_golden_dir`` reports them as "disputed", not passed.
KNOWN_GOLDEN_MISLABELS = {
    ("pointwise", "pointwise_0197"): "a leftover pixel with sub-byte input reads bytes past the 1x1 input image "
                                     "(semantics.md §7.1) and outputs marked defined depend on them "
                                     "(tests/test_pointwise_golden.py::test_golden_mislabels_depend_on_the_memory_"
                                     "after_the_input)",
    ("pointwise", "pointwise_0471"): "same defect as pointwise_0197 (12 bytes past a 4-byte input)",
}


def case_should_be_refused(meta: dict) -> bool:
    """The library is undefined for this case: some output element is undefined or it writes out of bounds."""
    return (not meta["all_defined"]) or bool(meta["guard_written"])


@dataclasses.dataclass
class CaseResult:
    """One golden case: passed, or failed with a message; ``disputed``: refused although the file marks it
    defined, and listed in ``KNOWN_GOLDEN_MISLABELS`` (neither passed nor failed)."""

    id: str
    kernel: str
    passed: bool
    refused: str | None = None
    message: str = ""
    disputed: bool = False


def run_cases(metas: list[dict], arrays_by_case: dict) -> list[CaseResult]:
    """Run many case records of one family: refusals through ``from_golden``, the rest in one batch."""
    results: dict[str, CaseResult] = {}
    calls: dict[str, list] = {}
    for meta in metas:
        adapter = _golden.adapter(meta["family"])
        arrays = arrays_by_case[meta["id"]]
        try:
            calls.setdefault(meta["family"], []).append((meta, arrays, adapter.from_golden(meta, arrays)))
        except UnsupportedConfig as e:
            ok = case_should_be_refused(meta)
            why = KNOWN_GOLDEN_MISLABELS.get((meta["family"], meta["id"]))
            if not ok and why:
                results[meta["id"]] = CaseResult(meta["id"], meta["kernel"], False, str(e),
                                                 f"disputed golden label: {why}", disputed=True)
                continue
            results[meta["id"]] = CaseResult(meta["id"], meta["kernel"], ok, str(e),
                                             "" if ok else f"refused a case the library defines: {e}")
    for family, items in calls.items():
        outs = _golden.adapter(family).run_golden_batch([c for _, _, c in items])
        for (meta, arrays, _), got in zip(items, outs, strict=True):
            want, defined = arrays["out"], arrays["defined"]
            if got.shape != want.shape:
                results[meta["id"]] = CaseResult(meta["id"], meta["kernel"], False,
                                                 message=f"shape {got.shape}, expected {want.shape}")
                continue
            if np.shape(defined) != want.shape:
                results[meta["id"]] = CaseResult(meta["id"], meta["kernel"], False, message=(
                    f"golden file inconsistent: defined mask of shape {np.shape(defined)}, output {want.shape}"))
                continue
            bad = (got.astype(np.int64) != want.astype(np.int64)) & (defined != 0)
            msg = "" if not bad.any() else first_mismatches(got, want, defined)
            undefined = int((defined == 0).sum())
            if undefined and not case_should_be_refused(meta):  # all_defined, yet elements are not compared
                msg = (msg + "\n" if msg else "") + (
                    f"golden file inconsistent: the case says all_defined, but its mask leaves {undefined} of "
                    f"{defined.size} elements uncompared")
            if case_should_be_refused(meta):
                msg = (msg + "\n" if msg else "") + "ran a case the library leaves undefined (check() must refuse it)"
            results[meta["id"]] = CaseResult(meta["id"], meta["kernel"], not msg, None, msg)
    return [results[m["id"]] for m in metas]


_CASE_FIELDS = ("id", "family", "kernel", "all_defined", "guard_written")


def _check_records(cases, arrays: dict, where: str, file_family: str, declared=None) -> None:
    """Raise ``JaxpulpError`` unless ``cases`` is a list of case records (``_CASE_FIELDS``) of a known family,
    the file's own where its name is a family (``add.json`` holds add and add_legacy cases, not conv ones), each
    with its ``out`` and ``defined`` arrays in the npz; ``declared``: the file's own ``family`` field."""
    if not isinstance(cases, list):
        raise JaxpulpError(f"{where}: 'cases' is a {type(cases).__name__}, expected a list of case records")
    own = _golden.ADAPTERS.get(file_family)
    if own is not None and declared is not None and _golden.ADAPTERS.get(declared) is not own:
        raise JaxpulpError(f"{where}: declares family {declared!r}, but the file is named for {file_family!r}")
    for i, c in enumerate(cases):
        missing = [k for k in _CASE_FIELDS if k not in c] if isinstance(c, dict) else list(_CASE_FIELDS)
        if missing:
            raise JaxpulpError(f"{where}: case {i} lacks {missing} (expected a record with {list(_CASE_FIELDS)})")
        fam = c["family"]
        if fam not in _golden.ADAPTERS or (own is not None and _golden.ADAPTERS[fam] is not own):
            allowed = sorted(_golden.ADAPTERS) if own is None else sorted(k for k, v in _golden.ADAPTERS.items()
                                                                          if v is own)
            raise JaxpulpError(f"{where}: case {c['id']!r} has family {fam!r}; expected one of {allowed}")
        lacking = [k for k in ("out", "defined") if k not in arrays.get(c["id"], {})]
        if lacking:
            names = " / ".join(f"{c['id']}/{k}" for k in lacking)
            raise JaxpulpError(f"{where}: case {c['id']!r} has no {names} array in the npz")


def check_golden_dir(directory: str, families: list[str] | None = None, progress=None) -> list[CaseResult]:
    """Every case of every ``<family>.json``/``.npz`` pair in ``directory``. Raises ``JaxpulpError`` when the
    folder is missing, a requested family has no files there, a file is unreadable, or there is nothing to run
    (comparing nothing is not a pass)."""
    import zipfile

    if not os.path.isdir(directory):
        raise JaxpulpError(f"dir={directory!r}: " + ("a file, expected the folder of <family>.json / .npz pairs"
                                                     if os.path.exists(directory) else "no such folder"))
    names = sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".json")
                   and os.path.exists(os.path.join(directory, f[:-5] + ".npz")))
    unknown = sorted(set(families or ()) - set(names))
    if unknown:
        raise JaxpulpError(f"family={unknown[0]!r}: no {unknown[0]}.json / .npz pair in {directory!r}; "
                           f"expected one of {names}")
    results = []
    for fam in names:
        if families and fam not in families:
            continue
        where = f"{os.path.join(directory, fam)}.json/.npz"
        try:
            meta, arrays = load_family(directory, fam)
            cases = meta["cases"]
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            raise JaxpulpError(f"{where}: not a readable golden family ({type(e).__name__}: {e})") from None
        _check_records(cases, arrays, where, fam, meta.get("family"))
        if progress:
            progress(fam, len(cases))
        try:
            results.extend(run_cases(cases, arrays))
        except JaxpulpError as e:  # e.g. float arrays: name the file the bad array came from
            raise JaxpulpError(f"{where}: {e}") from None
    if not results:
        raise JaxpulpError(f"dir={directory!r}: no golden cases to run (expected <family>.json / <family>.npz "
                           "pairs with cases); comparing nothing is not a pass")
    return results
