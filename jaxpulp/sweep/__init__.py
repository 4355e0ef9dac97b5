"""Precision sweeps: every configuration's cost and memory from exact per-layer cost tables (and optionally a
quality metric on the value path), sharded over devices, streamed to resumable JSONL / Parquet, and the
Pareto front of the results.

>>> from jaxpulp.sweep import SweepSpec, run_sweep, read_rows, front_rows, parse_objectives
>>> s = run_sweep(SweepSpec(net="toy", samples=20000), "runs/toy.jsonl")    # doctest: +SKIP
>>> front = front_rows(read_rows("runs/toy.jsonl"), parse_objectives("cycles,memory_bytes"))  # doctest: +SKIP

Command line: ``jaxpulp sweep``, ``jaxpulp pareto``, ``jaxpulp cost-lut`` (see ``docs/sweeps.md``).
"""
from jaxpulp.sweep._cli import add_subcommands
from jaxpulp.sweep._driver import SweepSpec, SweepSummary, make_mesh, prepare, run_sweep
from jaxpulp.sweep._metric import Deriver, make_metric_fn
from jaxpulp.sweep._nets import load_network, toy_net
from jaxpulp.sweep._pareto import front_rows, pareto_front, parse_objectives, plot_front
from jaxpulp.sweep._results import expand_paths, read_rows, shard_path, write_parquet

__all__ = ["Deriver", "SweepSpec", "SweepSummary", "add_subcommands", "expand_paths", "front_rows", "load_network",
           "make_mesh", "make_metric_fn", "pareto_front", "parse_objectives", "plot_front", "prepare", "read_rows",
           "run_sweep", "shard_path", "toy_net", "write_parquet"]
