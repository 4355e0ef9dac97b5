"""The PULP cluster as a frozen, hashable configuration (a static jit argument)."""
from __future__ import annotations

import dataclasses

from jaxpulp.errors import JaxpulpError


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A PULP cluster (defaults: GAP-8).

    num_cores: cores that run the kernel (the library assumes a power of two).
    l1_bytes / l2_bytes: shared L1 TCDM and L2 sizes in bytes (GAP-8: 64 kB / 512 kB).
    freq_hz: cluster clock in Hz (GAP-8 nominal 175 MHz; DORY's board figures use 100 MHz).
    """

    num_cores: int = 8
    l1_bytes: int = 64 * 1024
    l2_bytes: int = 512 * 1024
    freq_hz: float = 175e6

    def __post_init__(self):
        n = self.num_cores
        if not isinstance(n, int) or n < 1 or n & (n - 1):
            raise JaxpulpError(f"num_cores={n!r}: expected a power of two >= 1 (the library uses masks and log2)")
        for name in ("l1_bytes", "l2_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise JaxpulpError(f"{name}={v!r}: expected a positive number of bytes")
        if not self.freq_hz > 0:
            raise JaxpulpError(f"freq_hz={self.freq_hz!r}: expected a positive frequency in Hz")


GAP8 = Cluster()
GAP8_1CORE = Cluster(num_cores=1)
