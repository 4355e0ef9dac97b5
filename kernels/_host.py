"""What the host CPU offers that the value path's formulation rules (``conv.int8_form``) depend on: read once,
from ``/proc/cpuinfo``. The rules' measurements name the CPU they were made on; this says which of them applies."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

# x86 flags (Linux's names) of int8 dot-product instructions: XLA:CPU's int8 convolutions and GEMMs (YNNPACK) run
# on them at several times the float32 rate (a 2-core Intel Xeon with AMX: int8 GEMM 1,479 GMAC/s, float32 148);
# without them at about the float32 rate (a 2-core AMD EPYC with AVX2 only: 95 vs 92 GMAC/s, 1024^3).
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_dot_from_cpuinfo(text: str) -> bool | None:
    """Whether the ``flags`` line of ``/proc/cpuinfo`` text names an int8 dot-product instruction set
    (``INT8_DOT_FLAGS``); None when the text has no ``flags`` line (not x86 Linux, or unreadable)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags = set(value.split())
            return any(f in flags for f in INT8_DOT_FLAGS)
    return None


@functools.cache
def int8_dot() -> bool | None:
    """Whether this host is an x86 CPU with int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX); None
    where unknown (not x86, no readable ``/proc/cpuinfo``)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    return int8_dot_from_cpuinfo(text)


def lacks_int8_dot() -> bool:
    """Whether this host is known to be an x86 CPU without int8 dot-product instructions (``int8_dot`` False): the
    switch of the value path's formulation rules; unknown hosts count as having them (the rules measured there)."""
    return int8_dot() is False
