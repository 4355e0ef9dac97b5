"""Output paths are judged before any work (a CLI fuzz of stop 33): an output that is one of the command's inputs,
two outputs on one file, a ``--png`` of no image format, a folder in which no file can be created (``os.access``
says yes to root on /proc) are refused with the option named, and nothing already on disk is touched; a golden
file whose ``defined`` mask contradicts its ``all_defined`` flag fails instead of passing uncompared elements."""
from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest

from jaxpulp import _io, cli
from jaxpulp.errors import JaxpulpError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLD = os.path.join(ROOT, "tests", "golden")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    out = str(d / "s.jsonl")
    assert cli.main(["sweep", "--net", "toy:size=4", "--samples", "8", "--sample", "--out", out, "--no-parquet",
                     "--no-progress"]) == 0
    return out


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_pareto_out_on_its_own_results_keeps_them(sweep, tmp_path, capsys):
    rows = str(tmp_path / "s.jsonl")
    shutil.copy(sweep, rows)
    shutil.copy(sweep + ".meta.json", rows + ".meta.json")
    before = _bytes(rows)
    assert cli.main(["pareto", rows, "--out", rows]) == 2
    assert "is also an input of this command" in capsys.readouterr().err
    assert _bytes(rows) == before and len(before.splitlines()) == 8
    assert cli.main(["pareto", str(tmp_path / "*.jsonl"), "--out", rows]) == 2  # through a glob too
    assert _bytes(rows) == before
    assert cli.main(["pareto", rows, "--out", str(tmp_path / "front.jsonl")]) == 0  # another path: fine


def _unwritable(monkeypatch, folder):
    """Make ``folder`` refuse new files as a read-only mount (or /proc) does, whoever runs the test."""
    real = _io.tempfile.mkstemp

    def mkstemp(*a, dir=None, **kw):
        if dir is not None and os.path.realpath(dir) == os.path.realpath(folder):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(_io.tempfile, "mkstemp", mkstemp)


def test_check_output_path_tries_to_create_a_file(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _io.check_output_path(str(ro / "a.json"), "--json")  # writable: passes, leaves nothing behind
    assert os.listdir(ro) == []
    _unwritable(monkeypatch, ro)
    with pytest.raises(JaxpulpError, match=r"--json .*cannot create a file in folder .*Read-only file system"):
        _io.check_output_path(str(ro / "a.json"), "--json")


@pytest.mark.parametrize("argv", [["compare-m7", "--json", "{keep}", "--png", "{ro}/m.png"],
                                  ["report", "mobilenet_v1", "--json", "{keep}",
                                   "--png", "{ro}/r.png"],
                                  ["compare-m7", "--json", "{keep}", "--png", "{d}/m.bmpx"]],
                         ids=["compare-m7-unwritable-png", "report-unwritable-png", "compare-m7-png-no-format"])
def test_a_bad_png_is_refused_before_any_output_is_written(argv, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    keep = tmp_path / "keep.json"
    keep.write_text('{"mine": 1}')
    _unwritable(monkeypatch, ro)
    rc = cli.main([a.format(keep=keep, ro=ro, d=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and "--png" in err, err
    assert keep.read_text() == '{"mine": 1}'
    assert sorted(os.listdir(tmp_path)) == ["keep.json", "ro"] and os.listdir(ro) == []


def test_two_outputs_on_one_file_are_refused(tmp_path, capsys):
    # each output must end in its own format's suffix, so only a link can make two of them one file
    os.symlink(tmp_path / "r.json", tmp_path / "r.csv")
    assert cli.main(["report", "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")]) == 2
    assert "the same file as" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["r.csv"] and not os.path.exists(tmp_path / "r.json")


def test_run_out_must_be_an_npz_and_not_its_input(tmp_path, capsys):
    gold = tmp_path / "add.json"
    shutil.copy(os.path.join(GOLD, "add.json"), gold)
    before = _bytes(gold)
    assert cli.main(["run", "--out", str(gold)]) == 2
    assert "expected a file name ending in .npz" in capsys.readouterr().err
    x = tmp_path / "x.npz"
    np.savez(x, x=np.zeros((1, 200, 200, 1), np.uint8))
    xb = _bytes(x)
    assert cli.main(["run", "--input", str(x), "--out", str(x)]) == 2
    assert "argument 'input'" in capsys.readouterr().err
    assert _bytes(gold) == before and _bytes(x) == xb


def _golden_copy(d, family, edit):
    """``family``'s golden pair copied into ``d`` with ``edit(meta, arrays)`` applied to the loaded data."""
    from jaxpulp import testing

    meta, arrays = testing.load_family(GOLD, family)
    edit(meta, arrays)
    with open(os.path.join(d, f"{family}.json"), "w") as f:
        json.dump(meta, f)
    np.savez(os.path.join(d, f"{family}.npz"), **{f"{cid}/{k}": v for cid, a in arrays.items() for k, v in a.items()})


def test_check_golden_fails_cases_whose_mask_contradicts_all_defined(tmp_path, capsys):
    def hide_and_corrupt(meta, arrays):
        for c in meta["cases"]:
            if c["all_defined"] and not c["guard_written"]:
                a = arrays[c["id"]]
                a["defined"] = np.zeros_like(a["defined"])  # nothing left to compare ...
                a["out"] = a["out"] + 7  # ... so this corruption went unseen: "666 passed"
                return

    _golden_copy(str(tmp_path), "add", hide_and_corrupt)
    assert cli.main(["check-golden", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "golden file inconsistent: the case says all_defined" in out and "665 passed, 1 failed" in out


def test_check_golden_of_refusals_only_compared_nothing(tmp_path, capsys):
    def undefined_only(meta, arrays):
        meta["cases"] = [c for c in meta["cases"] if not c["all_defined"]]

    _golden_copy(str(tmp_path), "add", undefined_only)
    assert cli.main(["check-golden", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no case compared an output" in out and " 0 failed" in out, out


def test_check_golden_fails_a_mask_of_another_shape(tmp_path, capsys):
    def reshape(meta, arrays):
        c = next(c for c in meta["cases"] if c["all_defined"] and not c["guard_written"])
        arrays[c["id"]]["defined"] = arrays[c["id"]]["defined"].reshape(-1)[:-1]

    _golden_copy(str(tmp_path), "add", reshape)
    assert cli.main(["check-golden", str(tmp_path)]) == 1
    assert "defined mask of shape" in capsys.readouterr().out


def test_out_of_memory_hint_names_the_commands_own_size_options():
    import argparse

    e = MemoryError("cannot allocate")
    assert cli._one_line(e, argparse.Namespace(batch=None)).endswith("use a smaller --batch")
    assert cli._one_line(e, argparse.Namespace(chunk=None, inputs=4)).endswith("use a smaller --chunk / --inputs")


@pytest.mark.parametrize("body, want", [("1,\n-2,\n3\n", [1, -2, 3]), ("57.000,\\\n0.000,\\\n", [57, 0]),
                                        ("4 5, 6\n", [4, 5, 6])])
def test_dory_text_dumps_read_numbers_and_separators(tmp_path, body, want):
    from jaxpulp.network.goldens import read_dory_txt

    p = tmp_path / "out_layer0.txt"
    p.write_text("# x (shape [3]),\n" + body)
    assert read_dory_txt(str(p))[2].tolist() == want


@pytest.mark.parametrize("line", ["0 garbage,", "2x5,", "1.2.3,", "nan,"])
def test_dory_text_dumps_refuse_text_that_is_not_a_number(tmp_path, line):
    from jaxpulp.network.goldens import read_dory_txt

    p = tmp_path / "out_layer0.txt"
    p.write_text(f"# x (shape [3]),\n1,\n{line}\n3\n")
    with pytest.raises(JaxpulpError, match=r"out_layer0.txt:3: .*expected numbers separated by commas"):
        read_dory_txt(str(p))


@pytest.mark.parametrize("family", [None, "pointwise", "depthwise"])
def test_kernels_cost_tables_the_family_asked_for(family, capsys):
    # --family was ignored with --cost: every table was the conv one
    assert cli.main(["kernels", "--cost"] + (["--family", family] if family else [])) == 0
    heads = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("MACs/cycle on ")]
    assert len(heads) == 2 and all(f" - {family or 'conv'} " in h for h in heads), heads
