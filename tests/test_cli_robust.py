"""The command line never ends in a traceback (issue 10): every command driven with malformed files and flags
exits 2 with one line on stderr, and leaves no file behind; a closed pipe, Ctrl-C and unexpected errors are
one line too. The other regression tests of the issue are in test_cli_safety.py."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jaxpulp import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.path.join(ROOT, "tests", "data", "external")
DRONET = os.path.join(EXT, "dory_examples", "quantlab_dronet_8bit")
RESIDUAL = os.path.join(EXT, "dory_examples", "nemo_residual_test_1", "model_int.onnx")  # input u8 (200, 200, 1)
DEEPLOY_ADD = os.path.join(EXT, "deeploy", "DeeployTest", "Tests", "Kernels", "Integer", "Add", "Regular_RQ")


def _files(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def _make_inputs(d):
    """Malformed input files, by name, in folder ``d``."""
    def w(name, data):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    w("empty.npy", b"")
    w("random.npy", bytes(range(256)) * 3)
    np.save(os.path.join(d, "object.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(os.path.join(d, "float.npy"), np.full((1, 200, 200, 1), 0.5))
    np.save(os.path.join(d, "zero.npy"), np.zeros((0, 200, 200, 1), np.int64))
    np.save(os.path.join(d, "good.npy"), np.zeros((1, 200, 200, 1), np.int64))
    np.savez(os.path.join(d, "two_unnamed.npz"), foo=np.zeros((1, 200, 200, 1), np.uint8),
             bar=np.ones((1, 200, 200, 1), np.uint8))
    np.save(os.path.join(d, "negative.npy"), np.full((1, 200, 200, 1), -1, np.int64))
    np.save(os.path.join(d, "nine_bits.npy"), np.full((1, 200, 200, 1), 300, np.int64))
    with open(os.path.join(d, "good.npy"), "rb") as f:
        w("truncated.npy", f.read()[:300])
    w("truncated.npz", b"PK\x03\x04" + b"\0" * 40)
    np.savez(os.path.join(d, "data_empty.npz"), x=np.zeros((0, 4, 4, 8), np.int64))
    np.savez(os.path.join(d, "data_labels.npz"), x=np.zeros((3, 4, 4, 8), np.int64), y=np.zeros(5, np.int64))
    np.savez(os.path.join(d, "data_label_range.npz"), x=np.zeros((3, 4, 4, 8), np.int64), y=np.array([0, 99, -3]))
    np.savez(os.path.join(d, "data_three.npz"), x=np.zeros((3, 4, 4, 8), np.int64), y=np.array([0, 1, 2]))
    w("empty.onnx", b"")
    os.makedirs(os.path.join(d, "emptydir"))
    os.makedirs(os.path.join(d, "gold_bad"))
    w("gold_bad/conv.json", b"{not json")
    w("gold_bad/conv.npz", b"garbage")
    gold = os.path.join(ROOT, "tests", "golden")
    with open(os.path.join(gold, "add.json")) as f:
        add_meta = json.load(f)
    for name, meta in (("gold_dict_cases", dict(add_meta, cases={})),
                       ("gold_no_fields", dict(add_meta, cases=[{"id": "add_0000"}])),
                       ("gold_no_arrays", add_meta),
                       ("gold_other_family", dict(add_meta, family="conv"))):
        os.makedirs(os.path.join(d, name))
        with open(os.path.join(d, name, "add.json"), "w") as f:
            json.dump(meta, f)
        np.savez(os.path.join(d, name, "add.npz"), **{"unrelated/out": np.zeros(3)})
    os.makedirs(os.path.join(d, "dory_noout"))
    with open(os.path.join(DRONET, "input.txt"), "rb") as src:
        w("dory_noout/input.txt", src.read())
    w("empty.jsonl", b"")
    w("truncated.jsonl", b'{"index": 0, "cycles": 5, "memory_bytes"')
    w("strcycles.jsonl", b'{"index": 0, "supported": true, "cycles": "many", "memory_bytes": 3, "config": {}}\n')
    w("good.jsonl", b'{"index": 0, "supported": true, "cycles": 5, "memory_bytes": 3, "config": {"a": "u8"}}\n')
    w("garbage.parquet", b"PAR1 not really")
    os.makedirs(os.path.join(d, "deeploy_trunc"))
    for f in ("network.onnx", "inputs.npz", "outputs.npz"):
        with open(os.path.join(DEEPLOY_ADD, f), "rb") as src:
            w(f"deeploy_trunc/{f}", src.read())
    with open(os.path.join(DEEPLOY_ADD, "activations.npz"), "rb") as src:
        w("deeploy_trunc/activations.npz", src.read()[:100])


# (id, argv with {d} for the folder of malformed files)
CASES = [
    ("run-input-empty-npy", "run --input {d}/empty.npy"),
    ("run-input-random-bytes", "run --input {d}/random.npy"),
    ("run-input-object-npy", "run --input {d}/object.npy"),
    ("run-input-truncated-npy", "run --input {d}/truncated.npy"),
    ("run-input-float", "run --input {d}/float.npy"),
    ("run-input-zero-batch", "run --input {d}/zero.npy"),
    ("run-input-truncated-npz", "run --input {d}/truncated.npz"),
    ("run-input-missing", "run --input {d}/nope.npy"),
    ("run-input-folder", "run --input {d}/emptydir"),
    ("run-batch-negative", "run --batch -5"),
    ("run-batch-zero", "run --batch 0"),
    ("run-seed-negative", "run --seed -1"),
    ("run-out-missing-folder", "run --out {d}/no/such/a.npz"),
    ("run-out-is-folder", "run --out {d}/emptydir"),
    ("run-model-missing", "run {d}/nope.onnx"),
    ("run-model-unknown", "run resnet"),
    ("run-cores-1024", "run --cores 1024"),
    ("report-cores-1024", "report --cores 1024"),
    ("report-csv-missing-folder", "report --csv {d}/no/x.csv"),
    ("report-png-folder", "report --png {d}/emptydir"),
    ("report-json-missing-folder", "report --json {d}/no/x.json"),
    ("check-golden-empty", "check dronet --golden {d}/emptydir"),
    ("check-golden-no-out-layers", "check dronet --golden {d}/dory_noout"),
    ("check-json-missing-folder", "check dronet --golden {d}/dory_noout --json {d}/no/x.json"),
    ("check-deeploy-truncated-activations",
     "check {d}/deeploy_trunc/network.onnx --input-type i8 --golden {d}/deeploy_trunc"),
    ("check-golden-missing-folder", "check-golden {d}/nope"),
    ("check-golden-empty-folder", "check-golden {d}/emptydir"),
    ("check-golden-bogus-family", "check-golden " + os.path.join(ROOT, "tests", "golden") + " --family bogus"),
    ("check-golden-garbage", "check-golden {d}/gold_bad"),
    ("check-golden-show-negative", "check-golden {d}/emptydir --show -1"),
    ("kernels-bogus-family", "kernels --family bogus"),
    ("kernels-png-without-cost", "kernels --png {d}/h.png"),
    ("kernels-png-missing-folder", "kernels --cost --png {d}/no/h.png"),
    ("demo-batch-zero", "demo --batch 0"),
    ("demo-batch-huge", "demo --batch 5000"),
    ("sweep-act-types-comma", "sweep --net toy --out {d}/s.jsonl --act-types ,"),
    ("sweep-weight-types-bogus", "sweep --net toy --out {d}/s.jsonl --weight-types q9"),
    ("sweep-alpha-abc", "sweep --net mobilenet_v1:alpha=abc --out {d}/s.jsonl"),
    ("sweep-alpha-negative", "sweep --net mobilenet_v1:alpha=-1 --out {d}/s.jsonl"),
    ("sweep-net-helper", "sweep --net dronet_input --out {d}/s.jsonl"),
    ("sweep-net-bad-kw", "sweep --net toy:colour=red --out {d}/s.jsonl"),
    ("sweep-chunk-zero", "sweep --net toy --out {d}/s.jsonl --chunk 0"),
    ("sweep-samples-zero", "sweep --net toy --out {d}/s.jsonl --samples 0"),
    ("sweep-seed-negative", "sweep --net toy --out {d}/s.jsonl --seed -1"),
    ("sweep-coordinator-alone", "sweep --net toy --out {d}/s.jsonl --coordinator localhost:1234"),
    ("sweep-distributed-no-cluster", "sweep --net toy:size=4 --out {d}/s.jsonl --distributed"),
    ("sweep-shard-bad", "sweep --net toy --out {d}/s.jsonl --shard 3/2"),
    ("sweep-data-empty-x", "sweep --net toy:size=4 --out {d}/s.jsonl --data {d}/data_empty.npz"),
    ("sweep-data-mismatched-labels", "sweep --net toy:size=4 --out {d}/s.jsonl --data {d}/data_labels.npz"),
    ("sweep-data-truncated", "sweep --net toy:size=4 --out {d}/s.jsonl --data {d}/truncated.npz"),
    ("sweep-out-folder", "sweep --net toy:size=4 --out {d}/emptydir"),
    ("sweep-out-missing-folder", "sweep --net toy:size=4 --out {d}/no/such/s.jsonl"),
    ("sweep-target-bogus", "sweep --net toy --out {d}/s.jsonl --target z80"),
    ("pareto-empty", "pareto {d}/empty.jsonl --png {d}/p.png"),
    ("pareto-truncated", "pareto {d}/truncated.jsonl --png {d}/p.png"),
    ("pareto-string-cycles", "pareto {d}/strcycles.jsonl"),
    ("pareto-objectives-config", "pareto {d}/good.jsonl --objectives config"),
    ("pareto-objectives-unknown", "pareto {d}/good.jsonl --objectives nope"),
    ("pareto-objectives-bad-direction", "pareto {d}/good.jsonl --objectives cycles:up"),
    ("pareto-objectives-bookkeeping", "pareto {d}/good.jsonl --objectives cycles,index"),
    ("pareto-garbage-parquet", "pareto {d}/garbage.parquet"),
    ("pareto-folder", "pareto {d}/emptydir"),
    ("pareto-missing", "pareto {d}/nope.jsonl"),
    ("pareto-png-missing-folder", "pareto {d}/good.jsonl --png {d}/no/p.png"),
    ("pareto-out-missing-folder", "pareto {d}/good.jsonl --out {d}/no/p.jsonl"),
    ("cost-lut-out-missing-folder", "cost-lut --net toy --out {d}/no/lut.json"),
    ("cost-lut-net-bogus", "cost-lut --net bogus --out {d}/lut.json"),
    ("compare-m7-json-missing-folder", "compare-m7 --json {d}/no/x.json"),
    ("compare-m7-png-folder", "compare-m7 --png {d}/emptydir"),
    ("compare-m7-power-negative", "compare-m7 --m7-power-mw -5"),
    ("compare-m7-freq-text", "compare-m7 --m7-freq-mhz abc"),
    ("compare-m7-target-bogus", "compare-m7 --gap8-target z80"),
    ("search-data-missing", "search --data {d}/nope.npz --out {d}/srch"),
    ("search-data-truncated", "search --data {d}/truncated.npz --out {d}/srch"),
    ("search-lambdas-text", "search --lambdas abc --out {d}/srch"),
    ("search-net-bogus", "search --net bogus --out {d}/srch"),
    ("search-batch-zero", "search --batch 0 --out {d}/srch"),
    ("search-out-is-file", "search --out {d}/good.jsonl"),
    # outputs checked before any work: creatable, of their kind, distinct, none of the command's inputs
    ("pareto-out-is-its-input", "pareto {d}/good.jsonl --out {d}/good.jsonl"),
    ("pareto-out-matches-input-glob", "pareto {d}/go*.jsonl --out {d}/good.jsonl"),
    ("pareto-png-unknown-format", "pareto {d}/good.jsonl --png {d}/p.xyz"),
    ("report-json-and-csv-one-file", "report --json {d}/r.json --csv {d}/r.json"),
    ("compare-m7-png-unknown-format", "compare-m7 --json {d}/m.json --png {d}/m.xyz"),
    ("run-out-not-npz", "run --out {d}/acts.json"),
    ("run-out-is-its-input", "run --input {d}/truncated.npz --out {d}/truncated.npz"),
    ("run-batch-beyond-memory", "run --batch 3000000000"),
    ("run-model-empty-onnx", "run {d}/empty.onnx"),
    ("check-golden-cases-not-a-list", "check-golden {d}/gold_dict_cases"),
    ("check-golden-case-without-fields", "check-golden {d}/gold_no_fields"),
    ("check-golden-case-without-arrays", "check-golden {d}/gold_no_arrays"),
    ("check-golden-file-of-another-family", "check-golden {d}/gold_other_family"),
    ("sweep-data-labels-out-of-range", "sweep --net toy:size=4 --out {d}/s.jsonl --data {d}/data_label_range.npz"),
    ("sweep-inputs-beyond-data", "sweep --net toy:size=4 --out {d}/s.jsonl --data {d}/data_three.npz --inputs 4"),
    ("sweep-act-types-i32", "sweep --net toy --out {d}/s.jsonl --act-types u8,i32"),
    ("sweep-weight-types-unsigned", "sweep --net toy --out {d}/s.jsonl --weight-types u8"),
    ("sweep-act-types-twice", "sweep --net toy --out {d}/s.jsonl --act-types u8,u4,u8"),
    ("unknown-command", "frobnicate"),
    ("unknown-flag", "run --frobnicate"),
]


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("bad"))
    _make_inputs(d)
    return d


@pytest.mark.parametrize("argv", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_is_one_line_exit_2(argv, bad_dir, capsys, monkeypatch):
    monkeypatch.delenv("JAXPULP_TRACEBACK", raising=False)
    before = _files(bad_dir)
    rc = cli.main(argv.format(d=bad_dir).split())
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err + out
    # progress aside
    assert len(lines) - sum(ln.startswith(("sweep ", "note: ", "cost table ")) for ln in lines) == 1, err
    assert "error" in lines[-1] and "JAXPULP_TRACEBACK" not in lines[-1], lines[-1]  # an anticipated error
    assert _files(bad_dir) == before, "a file was left behind"


# Values argparse accepts (any float, any literal after "key=", any option) that the command must refuse by name:
# an infinite budget once ended in "OverflowError ... (unexpected)", a NaN memory weight and an infinite M7 clock
# ran to the end with meaningless results, "toy:size=abc" ended in "invalid literal for int()" naming nothing.
NAMED = [
    ("search-budget-inf", "search --budget-kb inf --out {d}/srch", "--budget-kb inf"),
    ("search-budget-below-a-byte", "search --budget-kb 1e-4 --out {d}/srch", "--budget-kb 0.0001"),
    ("search-lambda-mem-nan", "search --lambda-mem nan --out {d}/srch", "--lambda-mem nan"),
    ("search-lambda-mem-negative", "search --lambda-mem -1 --out {d}/srch", "--lambda-mem -1.0"),
    ("compare-m7-freq-inf", "compare-m7 --m7-freq-mhz inf", "m7_freq_mhz=inf"),
    ("compare-m7-power-nan", "compare-m7 --m7-power-mw nan", "m7_power_mw=nan"),
    # unit slips: a clock in Hz, a power in uW ran to the end (0 pJ a cycle, energy ratios of 1e10)
    ("compare-m7-freq-in-hz", "compare-m7 --m7-freq-mhz 4e8", "m7_freq_mhz=400000000.0: expected a clock in MHz"),
    ("compare-m7-power-in-uw", "compare-m7 --m7-power-mw 390000", "m7_power_mw=390000.0: expected an average power"),
    ("compare-m7-freq-in-ghz", "compare-m7 --m7-freq-mhz 0.48", "m7_freq_mhz=0.48: expected a clock in MHz"),
    ("compare-m7-power-in-w", "compare-m7 --m7-power-mw 0.3", "m7_power_mw=0.3: expected an average power"),
    # a dialect that contradicts the model was recorded as given (and laid out its goldens as that dialect's)
    ("run-onnx-dialect-contradicts", f"run {RESIDUAL} --dialect deeploy",
     "dialect='deeploy': the model is in the nemo dialect"),
    ("sweep-toy-size-text", "sweep --net toy:size=abc --out {d}/s.jsonl", "size='abc'"),
    ("sweep-toy-size-one", "sweep --net toy:size=1 --out {d}/s.jsonl", "size=1"),
    ("sweep-toy-seed-negative", "cost-lut --net toy:seed=-1 --out {d}/lut.json", "seed=-1"),
    ("sweep-act-types-u9", "sweep --net toy --act-types u8,u9 --out {d}/s.jsonl", "--act-types 'u8,u9': 'u9'"),
    ("sweep-weight-types-x", "sweep --net toy --weight-types i8,x --out {d}/s.jsonl", "--weight-types 'i8,x': 'x'"),
    # ONNX import options given for a model that is not imported: they were silently ignored
    ("run-builtin-input-type", "run dronet --input-type i8", "--input-type 'i8'"),
    ("run-builtin-dialect", "run --dialect nemo", "--dialect 'nemo'"),
    ("report-builtin-bn-bits", "report mobilenet_v1 --bn-bits 64", "--bn-bits '64'"),
    ("run-onnx-input-type-u9", f"run {RESIDUAL} --input-type u9", "--input-type 'u9'"),
    ("run-input-nine-bits", "run dronet --input {d}/nine_bits.npy", "no activation type holds them"),
    # options without the mode they belong to: they were ignored
    ("sweep-samples-with-enumerate", "sweep --net toy:size=4 --enumerate --samples 5 --out {d}/s.jsonl",
     "--samples 5 with --enumerate"),
    ("sweep-inputs-without-metric", "sweep --net toy:size=4 --inputs 4 --out {d}/s.jsonl",
     "--inputs 4: inputs per configuration of the quality metric; only with --metric"),
    ("run-seed-with-input", "run dronet --input {d}/good.npy --seed 3", "--seed 3: seeds the random input"),
    ("run-seed-dronet", "run --seed 3", "dronet runs its bundled example image"),
    ("check-order-deeploy", f"check {DEEPLOY_ADD}/network.onnx --golden {DEEPLOY_ADD} --order chw",
     "--order chw: the element order of DORY text dumps"),
    ("report-schedule-without-deploy", "report dronet --deploy none --schedule double",
     "--schedule 'double' with --deploy none"),
    ("report-flavour-without-deploy", "report dronet --deploy none --flavour pulp-nn-mixed",
     "--flavour 'pulp-nn-mixed' with --deploy none"),
    # outputs named for another format: "sweep --out p.parquet" had its Parquet copy (stem + .parquet) replace its
    # results; "a.json" shared "a.parquet" with "a.jsonl"; the others wrote JSON under any name
    ("sweep-out-parquet", "sweep --net toy:size=4 --out {d}/p.parquet", "expected a file name ending in .jsonl"),
    ("sweep-out-json", "sweep --net toy:size=4 --out {d}/p.json", "expected a file name ending in .jsonl"),
    ("cost-lut-out-txt", "cost-lut --net toy:size=4 --out {d}/lut.txt", "expected a file name ending in .json"),
    ("compare-m7-json-png", "compare-m7 --json {d}/m.png", "expected a file name ending in .json"),
    ("report-csv-json", "report dronet --csv {d}/r.json", "expected a file name ending in .csv"),
    ("kernels-cost-family-pool", "kernels --cost --family maxpool", "--family 'maxpool' with --cost"),
    # two arrays, neither named after the input: the first was taken, a guess
    ("run-input-npz-ambiguous", "run dronet --input {d}/two_unnamed.npz", "arrays ['foo', 'bar'] for the network"),
    # errors that named the wrong thing: a folder "no such file", a file "no such folder", a model by its stem
    ("run-input-is-a-folder", "run --input {d}/emptydir", "emptydir': a folder, expected a .npy"),
    ("check-golden-dir-is-a-file", "check-golden {d}/good.npy", "good.npy': a file, expected the folder"),
    ("run-model-unreadable", "run {d}/good.npy", "good.npy': not a readable ONNX file"),
    ("cost-lut-net-unreadable", "cost-lut --net {d}/good.npy --out {d}/lut.json", "net='"),
    ("cost-lut-net-key-twice", "cost-lut --net toy:size=4,size=8 --out {d}/lut.json", "'size' given twice"),
    ("cost-lut-net-empty-options", "cost-lut --net toy: --out {d}/lut.json", "nothing after ':'"),
    # a search took over any folder (replacing a pareto.png there), repeated lambdas and options with no search
    # step to act on ran and wrote identical rows
    ("search-out-foreign-folder", "search --out {d}", "a folder with other files and no search run in it"),
    ("search-lambdas-repeated", "search --lambdas 0,1e-5,0 --out {d}/srch", "'0,1e-5,0': 0 given twice"),
    ("search-gumbel-without-search", "search --search-epochs 0 --gumbel --out {d}/srch",
     "--gumbel with --search-epochs 0"),
    ("search-lambdas-without-search", "search --search-epochs 0 --lambdas 0,1 --out {d}/srch",
     "--lambdas '0,1' with --search-epochs 0"),
]


@pytest.mark.parametrize("model,hint", [("dronet", False), (RESIDUAL, True)], ids=["builtin", "onnx"])
def test_out_of_range_input_suggests_an_input_type_only_where_the_option_exists(model, hint, bad_dir, capsys):
    assert cli.main(["run", model, "--input", os.path.join(bad_dir, "negative.npy")]) == 2
    err = capsys.readouterr().err
    assert "values span [-1, -1], outside the network input type u8" in err, err
    assert ("Hint: pass --input-type i2" in err) == hint and ("--input-type" in err) == hint, err


@pytest.mark.parametrize("argv,named", [c[1:] for c in NAMED], ids=[c[0] for c in NAMED])
def test_unusable_option_values_are_refused_by_name(argv, named, bad_dir, capsys, monkeypatch):
    monkeypatch.delenv("JAXPULP_TRACEBACK", raising=False)
    before = _files(bad_dir)
    rc = cli.main(argv.format(d=bad_dir).split())
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith("error: ") and named in err and "unexpected" not in err, (rc, err)
    assert _files(bad_dir) == before, "a file was left behind"


def test_every_command_is_covered():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    covered = {c[1].split()[0] for c in CASES}
    assert set(sub.choices) <= covered, set(sub.choices) - covered


def test_broken_pipe_is_quiet(monkeypatch, capsys):
    def boom(args):
        raise BrokenPipeError(32, "Broken pipe")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_fn(parser(), "kernels", boom))
    assert cli.main(["kernels"]) == 141
    assert "Traceback" not in capsys.readouterr().err


def test_output_into_a_closed_pipe_has_no_traceback():
    """``jaxpulp report | head``: the reader has gone before we write (here: closed before the first byte)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "jaxpulp.cli", "kernels", "--family", "maxpool"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=300)
    assert rc == 141 and "Traceback" not in err and "BrokenPipe" not in err, (rc, err)


def _with_fn(parser, command, fn):
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.choices[command].set_defaults(fn=fn)
    return parser


def test_ctrl_c_in_sweep_says_how_to_resume(monkeypatch, capsys, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_fn(parser(), "sweep", interrupted))
    out = str(tmp_path / "r.jsonl")
    assert cli.main(["sweep", "--net", "toy", "--out", out]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "resume" in err and out in err, err


def test_unexpected_exception_is_one_line_and_traceback_on_request(monkeypatch, capsys):
    def bug(args):
        raise TypeError("boom\nsecond line")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_fn(parser(), "kernels", bug))
    monkeypatch.delenv("JAXPULP_TRACEBACK", raising=False)
    assert cli.main(["kernels"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: TypeError: boom (unexpected; JAXPULP_TRACEBACK=1 shows where)"
    monkeypatch.setenv("JAXPULP_TRACEBACK", "1")
    with pytest.raises(TypeError):
        cli.main(["kernels"])


def show_messages(d):  # pragma: no cover - a helper to read every message: python -c "...show_messages('/tmp/x')"
    import contextlib
    import io

    os.makedirs(d, exist_ok=True)
    _make_inputs(d)
    for name, argv in CASES:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(argv.format(d=d).split())
        print(f"{name}: rc={rc} {err.getvalue().strip()}")
