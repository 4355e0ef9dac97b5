"""Deployment model: whole-layer and whole-network latency as a DORY-style deployment runs it on a PULP chip.

``DeployTarget`` (memory sizes, DMA / L3 figures, schedule; ``gap8-board``, ``gap8-gvsoc``), ``Flavour``
(``dory-gap8``, ``pulp-nn-mixed``), ``tile`` (L1 tiling), ``jaxpulp.deploy.dma`` (transfer costs),
``layer_latency`` / ``network_latency`` (cycles). See docs/deploy.md.
"""
from jaxpulp.deploy.flavour import FLAVOURS, Flavour, get_flavour
from jaxpulp.deploy.latency import LayerLatency, NetworkLatency, layer_latency, network_latency
from jaxpulp.deploy.target import TARGETS, DeployTarget, get_target
from jaxpulp.deploy.tiler import Tiling, tile

__all__ = ["DeployTarget", "TARGETS", "get_target", "Flavour", "FLAVOURS", "get_flavour", "Tiling", "tile",
           "LayerLatency", "NetworkLatency", "layer_latency", "network_latency"]
