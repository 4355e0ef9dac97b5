"""Which PULP-NN kernel each layer becomes, as a kernel configuration (``jaxpulp.kernels.config``).

``kernel_config(layer)`` returns the frozen config the kernel module runs (its ``c_name`` is the C function);
``kernel_choice(layer)`` also says why (e.g. a 1x1 layer that cannot use ``pulp_nn_pointwise_*`` because the
library's pointwise kernel is undefined for its shape falls back to ``pulp_nn_conv_*``, as DORY does for
strided 1x1 layers).
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

from jaxpulp.cluster.config import GAP8, Cluster
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.kernels import config as kc
from jaxpulp.network import kinds
from jaxpulp.network.graph import Layer

KernelConfig = (kc.ConvConfig | kc.LinearConfig | kc.MaxPoolConfig | kc.AvgPoolConfig | kc.AddConfig
                | kc.AddLegacyConfig)


class KernelChoice(NamedTuple):
    cfg: KernelConfig
    reason: str


def _conv_fields(lay: Layer, semantics: str) -> dict:
    H, W, C = lay.in_shape
    Ho, Wo, Co = lay.out_shape
    return dict(in_type=lay.in_type, out_type=lay.out_type, w_type=lay.w_type, H=H, W=W, Ci=C, Co=Co,
                Kh=lay.kernel[0], Kw=lay.kernel[1], stride=lay.stride, pad=lay.pad, relu=lay.relu, bn=lay.bn,
                bias=lay.bias, Ho=Ho, Wo=Wo, semantics=semantics)


def _pointwise_quirk(cfg, cluster: Cluster) -> str | None:
    """Why ``pulp_nn_pointwise_*`` would not compute this layer's intended values, or None. Its leftover pixel
    (the odd last column of a core's row range, semantics.md §5.3) reads signed 8-bit input as unsigned (§7.2)
    and sub-byte input as raw bytes (§7.1), and reads the bias as int8 (§7.3); pairs are exact."""
    from jaxpulp.cluster import split

    left = any(r.leftover and r.rows > 0 for r in (split.conv_split(c, cfg.Ho, cfg.Wo, cluster.num_cores)
                                                   for c in range(cluster.num_cores)))
    if not left:
        return None
    if cfg.in_type.bits != 8:
        return "its leftover pixels would read the packed sub-byte input as 8-bit values (semantics.md §7.1)"
    if cfg.in_type.signed:
        return "its leftover pixels would read the signed input as unsigned (semantics.md §7.2)"
    if cfg.bias:
        return "its leftover pixels would read the bias as int8 (semantics.md §7.3)"
    return None


def _with_bn_bits(cfg, lay: Layer):
    if lay.bn_bits != 32:
        if "bn_bits" not in {f.name for f in cfg.__dataclass_fields__.values()}:
            raise JaxpulpError(f"layer {lay.name!r}: bn_bits={lay.bn_bits} is not supported by {cfg.c_name}")
        cfg = cfg.replace(bn_bits=lay.bn_bits)
    return cfg


def kernel_choice(lay: Layer, semantics: str = "library", cluster: Cluster = GAP8) -> KernelChoice:
    """The kernel configuration of ``lay`` and the reason for the choice. Raises ``UnsupportedConfig`` (naming the
    layer and the library rule) when no PULP-NN kernel defines this layer."""
    if not isinstance(lay, Layer):
        raise JaxpulpError(f"lay={lay!r:.80}: expected a jaxpulp.network.Layer")
    if not isinstance(cluster, Cluster):
        raise JaxpulpError(f"cluster={cluster!r:.80}: expected a jaxpulp.cluster.config.Cluster (e.g. "
                           "jaxpulp.cluster.config.GAP8)")
    if semantics not in kc.SEMANTICS:
        raise JaxpulpError(f"semantics={semantics!r:.80}: expected one of {kc.SEMANTICS}")
    return _kernel_choice(lay, semantics, cluster)


@functools.cache
def _kernel_choice(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    choice = _choose(lay, semantics, cluster)
    try:
        kernel_module(choice.cfg).check(choice.cfg, cluster)
    except UnsupportedConfig as e:
        hint = _network_hint(choice.cfg, semantics, cluster)
        msg = str(e).rstrip(". ") + hint if hint else str(e)
        raise UnsupportedConfig(e.rule, f"layer {lay.name!r} as {choice.cfg.c_name}: {msg}") from e
    return choice


def _network_hint(cfg, semantics: str, cluster: Cluster) -> str:
    """The kernels' hint ``semantics='ideal'`` is a kernel-config option; at network level the value path is what
    computes the intended arithmetic. Said only when the ideal semantics does define this layer."""
    if semantics != "library":
        return ""
    try:
        kernel_module(cfg).check(cfg.replace(semantics="ideal"), cluster)
    except UnsupportedConfig:
        return ""
    return (". At network level, the value path computes this layer's intended arithmetic: run(net, x, "
            "path='values') or jaxpulp run / check --path values")


def _choose(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    return kinds.of(lay).hook("choose")(lay, semantics, cluster)


# ----------------------------------------------------------------- the ``choose`` hooks of jaxpulp.network.kinds


def choose_conv(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    """A conv layer: ``pulp_nn_pointwise_*`` for 1x1 / stride 1 / no padding where it computes the layer exactly,
    else ``pulp_nn_conv_*``."""
    f = _conv_fields(lay, semantics)
    if lay.kernel == (1, 1) and lay.stride == (1, 1) and lay.pad == (0, 0, 0, 0):
        from jaxpulp.kernels import pointwise

        cfg = _with_bn_bits(kc.PointwiseConfig(**f), lay)
        quirk = _pointwise_quirk(cfg, cluster)
        try:
            pointwise.check(cfg, cluster)
        except UnsupportedConfig as e:
            quirk = f"pointwise is undefined here ({e.rule})"
        if quirk is None:
            return KernelChoice(cfg, "1x1, stride 1, no padding: the pointwise kernel (no im2col)")
        return KernelChoice(_with_bn_bits(kc.ConvConfig(**f), lay), f"1x1 but {quirk}: the conv kernel "
                            "instead, which computes this layer exactly")
    return KernelChoice(_with_bn_bits(kc.ConvConfig(**f), lay), "im2col + 4x2 matmul")


def choose_depthwise(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    return KernelChoice(_with_bn_bits(kc.DepthwiseConfig(**_conv_fields(lay, semantics)), lay),
                        "depthwise, channel groups over cores")


def choose_linear(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    H, W, C = lay.in_shape
    assert lay.w_type is not None  # weighted kinds: checked by Layer
    cfg = kc.LinearConfig(lay.in_type, lay.out_type, lay.w_type, N=H * W * C, M=lay.out_shape[2],
                          relu=lay.relu, bn=lay.bn, bias=lay.bias, semantics=semantics)
    return KernelChoice(cfg if lay.out_type.bits == 32 else _with_bn_bits(cfg, lay),
                        "fully connected, neurons over cores")


def _pool_fields(lay: Layer, semantics: str) -> dict[str, Any]:
    H, W, C = lay.in_shape
    Ho, Wo, _ = lay.out_shape
    return dict(in_type=lay.in_type, out_type=lay.out_type, H=H, W=W, C=C, Kh=lay.kernel[0], Kw=lay.kernel[1],
                stride=lay.stride, pad=lay.pad, Ho=Ho, Wo=Wo, semantics=semantics)


def choose_maxpool(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    return KernelChoice(kc.MaxPoolConfig(**_pool_fields(lay, semantics)), "two-pass in-place max pooling")


def choose_avgpool(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    return KernelChoice(kc.AvgPoolConfig(**_pool_fields(lay, semantics), requant=lay.requant), "average pooling")


def choose_add(lay: Layer, semantics: str, cluster: Cluster) -> KernelChoice:
    H, W, C = lay.in_shape
    assert lay.in2_type is not None  # add layers: checked by Layer
    return KernelChoice(kc.AddConfig(lay.in_type, lay.in2_type, lay.out_type, H=H, W=W, C=C,
                                     requant=lay.requant, semantics=semantics), "requantising add")


def kernel_config(lay: Layer, semantics: str = "library", cluster: Cluster = GAP8):
    """The kernel configuration (``.c_name`` = the C function) ``lay`` runs as."""
    return kernel_choice(lay, semantics, cluster).cfg


def kernel_module(cfg):
    """The ``jaxpulp.kernels`` module that runs ``cfg``."""
    from jaxpulp.kernels import catalog

    return catalog.family_module(cfg.family)
