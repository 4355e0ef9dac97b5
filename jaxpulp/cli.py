"""The ``jaxpulp`` command line.

    jaxpulp --version
    jaxpulp run | report | check ...             whole networks (jaxpulp.network.cli)
    jaxpulp sweep | pareto | cost-lut ...        precision sweeps (jaxpulp.sweep)
    jaxpulp search --data digits --net tiny ...  mixed-precision search on real data (jaxpulp.train)
    jaxpulp kernels [--family conv] [--cost]     every kernel variant by C name, with its constraints
    jaxpulp demo [--batch 8]                     a few conv variants on the PULP-NN benchmark layer
    jaxpulp check-golden DIR                     run every golden case in DIR: "N passed, M failed"
    jaxpulp compare-m7 [--png heat.png]          the 27 permutations vs an STM32H7 (jaxpulp.cost.compare_m7)
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

import jaxpulp
from jaxpulp._io import IMAGE_SUFFIXES, check_output_path, check_suffix, int_arg
from jaxpulp.qtypes import QType


def _cmd_kernels(args) -> int:
    from jaxpulp.kernels import catalog

    if args.png and not args.cost:
        raise jaxpulp.JaxpulpError(f"--png {args.png!r}: only with --cost (the heat map of the cost table)")
    vs = catalog.variants(args.family)
    if not vs:
        raise jaxpulp.JaxpulpError(f"--family {args.family!r}: no such family; expected one of "
                                   f"{sorted({v.family for v in catalog.variants()})}")
    if args.cost:
        from jaxpulp.cost import report as cost_report

        if args.family not in (None, *cost_report.PERMUTATION_FAMILIES):
            raise jaxpulp.JaxpulpError(f"--family {args.family!r} with --cost: the permutation table covers "
                                       f"{', '.join(cost_report.PERMUTATION_FAMILIES)} (the benchmark layer's shape)")
        print(cost_report.kernels_cost_report(png=args.png, family=args.family or "conv"))
        return 0
    width = max(len(v.c_name) for v in vs)
    for v in vs:
        print(f"{v.c_name:<{width}}  {v.family:<14}  {v.constraints}")
    print(f"{len(vs)} kernels")
    return 0


def demo_layer():
    """The PULP-NN benchmark layer (Bruschi et al.): 16x16x32 input, 64 output channels, 3x3, padding 1."""
    return dict(H=16, W=16, Ci=32, Co=64, Kh=3, Kw=3, pad=(1, 1, 1, 1))


def _cmd_demo(args) -> int:
    from jaxpulp import packing
    from jaxpulp.kernels import conv

    rng = np.random.default_rng(0)
    layer = demo_layer()
    print(f"jaxpulp {jaxpulp.__version__} demo: conv on {layer['H']}x{layer['W']}x{layer['Ci']} -> "
          f"{layer['Co']} channels, {layer['Kh']}x{layer['Kw']}, pad 1, 8 cores, batch {args.batch}")
    print(f"{'kernel':<24} {'first output bytes':<26} {'ms/batch':>9} {'emulated MMAC/s':>16}  twin")
    for it, ot, wt in (("u8", "u8", "i8"), ("u4", "u4", "i4"), ("u2", "u2", "i2"), ("u8", "u4", "i2"),
                       ("i8", "i8", "i8")):
        cfg = conv.Config(QType.parse(it), QType.parse(ot), QType.parse(wt), **layer)
        x = rng.integers(cfg.in_type.lo, cfg.in_type.hi + 1, (args.batch, cfg.H, cfg.W, cfg.Ci))
        w = rng.integers(cfg.w_type.lo, cfg.w_type.hi + 1, (cfg.Co, cfg.Kh, cfg.Kw, cfg.Ci))
        shift = cfg.in_type.bits + cfg.w_type.bits + 7 - cfg.out_type.bits
        params = conv.Params(kappa=rng.integers(1, 64, cfg.Co).astype(np.int32),
                             lam=rng.integers(-(1 << shift), 1 << shift, cfg.Co).astype(np.int32),
                             out_shift=shift + 6)
        xw = np.stack([packing.pack_hwc(xi, cfg.in_type) for xi in x])
        ww = packing.pack(w, cfg.w_type)
        conv.run(xw, ww, params, cfg=cfg).block_until_ready()  # compile
        t0 = time.perf_counter()
        out = conv.run(xw, ww, params, cfg=cfg).block_until_ready()
        dt = time.perf_counter() - t0
        got = packing.unpack_hwc(np.asarray(out[0]), (cfg.Ho, cfg.Wo, cfg.Co), cfg.out_type)
        twin = conv.reference(x[0], w, params, cfg)
        ok = "==" if np.array_equal(got, twin) else "MISMATCH"
        first = " ".join(f"{b:02x}" for b in packing.words_to_bytes(np.asarray(out[0]))[:8])
        print(f"{cfg.c_name:<24} {first:<26} {dt * 1e3:9.2f} {cfg.macs * args.batch / dt / 1e6:16.1f}  {ok}")
    return 0


def _cmd_check_golden(args) -> int:
    from jaxpulp import testing

    def progress(fam, n):
        print(f"  {fam}: {n} cases", file=sys.stderr, flush=True)

    results = testing.check_golden_dir(args.dir, families=args.family, progress=progress)
    failed = [r for r in results if not r.passed and not r.disputed]
    disputed = [r for r in results if r.disputed]
    for r in failed[: args.show]:
        print(f"FAIL {r.id} {r.kernel}: {r.message}")
    for r in disputed:
        print(f"DISPUTED {r.id} {r.kernel}: {r.message}")
    refused = sum(1 for r in results if r.refused and r.passed)
    print(f"({refused} cases refused as undefined by the library, counted as passed)")
    tail = f", {len(disputed)} disputed (refused; the golden label is wrong, see above)" if disputed else ""
    print(f"{len(results) - len(failed) - len(disputed)} passed, {len(failed)} failed{tail}")
    if not failed and len(results) - len(disputed) - refused == 0:
        print("no case compared an output (every one was refused as undefined or disputed): comparing nothing is "
              "not a pass")
        return 1
    return 1 if failed else 0


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2): ``jaxpulp run: argument --batch: ...; see jaxpulp run -h``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="jaxpulp", description="Bit-exact JAX emulator of the PULP-NN mixed kernels "
                                "on GAP-8, with a cost model.")
    p.add_argument("--version", action="version", version=f"jaxpulp {jaxpulp.__version__}")
    sub = p.add_subparsers(dest="command")
    # Each command: sub.add_parser(...), set_defaults(fn=..., outputs=(dests of output paths, checked before any
    # work), on_interrupt=(args -> hint printed on Ctrl-C)). Errors: raise JaxpulpError; main() prints one line.
    k = sub.add_parser("kernels", help="list every kernel variant with its C name and constraints")
    k.add_argument("--family", default=None, help="only this family (conv, pointwise, depthwise, linear_quant, ...)")
    k.add_argument("--cost", action="store_true",
                   help="MACs/cycle of the 27 permutations (cost model) of --family conv (default), pointwise or "
                        "depthwise")
    k.add_argument("--png", default=None, help="with --cost: write a heat-map PNG here (needs matplotlib)")
    k.set_defaults(fn=_cmd_kernels, outputs=("png",))
    d = sub.add_parser("demo", help="run a few conv variants on the PULP-NN benchmark layer")
    d.add_argument("--batch", type=int_arg(1, 4096), default=8, help="inputs per call (1..4096, default 8)")
    d.set_defaults(fn=_cmd_demo)
    g = sub.add_parser("check-golden", help="run every golden case in DIR and print 'N passed, M failed'")
    g.add_argument("dir", help="folder with <family>.json / <family>.npz pairs")
    g.add_argument("--family", action="append", help="only this family (repeatable)")
    g.add_argument("--show", type=int_arg(0), default=20, help="failures to print (default 20)")
    g.set_defaults(fn=_cmd_check_golden)
    from jaxpulp import sweep
    from jaxpulp.network import cli as network_cli

    network_cli.add_subcommands(sub)  # run, report, check (they live next to their feature)
    sweep.add_subcommands(sub)  # sweep, pareto, cost-lut
    from jaxpulp.cost import compare_m7

    compare_m7.add_subcommand(sub)  # compare-m7: GAP-8 vs STM32H7, the CF'20 headline
    from jaxpulp.train import cli as train_cli

    train_cli.add_subcommands(sub)  # search (QAT + precision search on real data)
    return p


def _one_line(e: BaseException, args=None) -> str:
    """A one-line description of an exception raised while handling user input (``args``: the command's, whose
    size options an out-of-memory hint names)."""
    if isinstance(e, jaxpulp.JaxpulpError):
        return " ".join(str(e).split())
    if isinstance(e, OSError) and e.strerror:
        where = f"{e.filename!r}: " if e.filename else ""
        return f"{where}{e.strerror}"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else repr(e)
    if "RESOURCE_EXHAUSTED" in str(e) or isinstance(e, MemoryError):
        sizes = [f"--{d}" for d in ("batch", "chunk", "inputs") if hasattr(args, d)]
        return f"out of memory ({text[:200]}); use a smaller {' / '.join(sizes) if sizes else 'input'}"
    known = (OSError, ValueError, EOFError, KeyError, IndexError, MemoryError)
    import zipfile

    if isinstance(e, known + (zipfile.BadZipFile,)):
        return f"{type(e).__name__}: {text}"
    return f"{type(e).__name__}: {text} (unexpected; JAXPULP_TRACEBACK=1 shows where)"


def _named_files(args, skip) -> dict[str, str]:
    """{real path: argument name} of every existing file the command's other arguments name (globs expanded): its
    inputs, which no output may replace."""
    found: dict[str, str] = {}
    for dest, v in vars(args).items():
        if dest in skip or dest in ("fn", "outputs", "output_suffixes", "on_interrupt", "command"):
            continue
        for item in v if isinstance(v, (list, tuple)) else (v,):
            if not isinstance(item, str) or not item:
                continue
            for f in glob.glob(item) if glob.has_magic(item) else (item,):
                if os.path.isfile(f):
                    found.setdefault(os.path.realpath(f), dest)
    return found


def _check_outputs(args) -> None:
    """Every output path a command declares (``set_defaults(outputs=("out", "png"))``) must be creatable before
    any work starts, end in what it will hold (``--png``: an image format; ``output_suffixes``: {dest: suffixes}),
    differ from the command's other outputs and be none of its input files (nothing is overwritten that the
    command reads or writes elsewhere)."""
    outputs = [d for d in getattr(args, "outputs", ()) if getattr(args, d, None)]
    suffixes = dict(getattr(args, "output_suffixes", {}), png=IMAGE_SUFFIXES)
    inputs = _named_files(args, set(outputs))
    seen: dict[str, str] = {}
    for dest in outputs:
        v, opt = getattr(args, dest), "--" + dest.replace("_", "-")
        check_output_path(v, opt)
        if dest in suffixes:
            check_suffix(v, opt, suffixes[dest])
        real = os.path.realpath(v)
        if real in seen:
            raise jaxpulp.JaxpulpError(f"{opt} {v!r}: the same file as {seen[real]}; give each output its own path")
        if real in inputs:
            raise jaxpulp.JaxpulpError(f"{opt} {v!r}: is also an input of this command (argument "
                                       f"{inputs[real]!r}); writing it would destroy it: choose another path")
        seen[real] = opt


def main(argv=None) -> int:
    """Run the command line; every error on user input ends as one line on stderr and exit status 2 (130 for
    Ctrl-C). ``JAXPULP_TRACEBACK=1`` re-raises instead, for debugging."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # -h, --version (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "command", None):  # a usage error, as argparse's own: the help on stderr, exit 2
        parser.print_help(sys.stderr)
        print("jaxpulp: error: expected a command (see above)", file=sys.stderr)
        return 2
    try:
        _check_outputs(args)
        rc = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return rc
    except BrokenPipeError:  # jaxpulp report | head: the reader has gone, stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except KeyboardInterrupt:
        hint = getattr(args, "on_interrupt", None)
        print(f"interrupted{': ' + hint(args) if hint else ''}", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI never ends in a traceback
        if os.environ.get("JAXPULP_TRACEBACK"):
            raise
        print(f"error: {_one_line(e, args)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
