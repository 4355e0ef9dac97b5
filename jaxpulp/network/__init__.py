"""Whole networks: the graph IR, ONNX import (DORY/QuantLab, NEMO, Deeploy), batched bit-exact execution, per-layer
reports and memory checks, golden conformance.

    from jaxpulp.network import load_onnx, run
    net = load_onnx("model.onnx")            # needs the 'onnx' extra
    out = run(net, x_batch).outputs          # packed path: every layer a PULP-NN kernel on packed memory

Modules: ``graph`` (Layer, Network, TensorSpec), ``kinds`` (one record of facts per layer kind), ``mapping``
(layer -> kernel config), ``execute`` (execution: ``run``, ``run_values``), ``onnx_import``, ``report`` (tables,
CSV/JSON, bar chart, memory), ``conformance`` (golden checks), ``goldens`` (DORY txt / Deeploy npz readers),
``reference`` (numpy int64 twin), ``store`` (save/load), ``zoo`` (built-ins).
"""
from jaxpulp.network.execute import RunResult, run, run_values
from jaxpulp.network.graph import Layer, Network, TensorSpec
from jaxpulp.network.onnx_import import load_onnx

__all__ = ["Layer", "Network", "TensorSpec", "load_onnx", "run", "run_values", "RunResult"]
