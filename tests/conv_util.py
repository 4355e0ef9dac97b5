"""Shared helper of the conv tests: the plain numpy correlation every conv accumulator form is compared with."""
import numpy as np


def correlation(x, w, cfg):
    """int64 zero-padded strided correlation (B, Ho, Wo, Co) of x (B, H, W, Ci) with w (Co, Kh, Kw, Ci), wrapped to
    int32 like the core's accumulator (``cfg``: its pad, stride, kernel and output size)."""
    t, b, left, r = cfg.pad
    sy, sx = cfg.stride
    xp = np.pad(np.asarray(x, np.int64), ((0, 0), (t, b), (left, r), (0, 0)))
    out = np.zeros((x.shape[0], cfg.Ho, cfg.Wo, cfg.Co), np.int64)
    for ky in range(cfg.Kh):
        for kx in range(cfg.Kw):
            view = xp[:, ky:ky + (cfg.Ho - 1) * sy + 1:sy, kx:kx + (cfg.Wo - 1) * sx + 1:sx]
            out += np.einsum("bhwc,oc->bhwo", view, np.asarray(w, np.int64)[:, ky, kx])
    return ((out + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
