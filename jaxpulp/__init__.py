"""jaxpulp: a bit-exact JAX emulator of the PULP-NN mixed-precision kernels on GAP-8, with a cost model."""
from jaxpulp.errors import JaxpulpError, UnsupportedConfig
from jaxpulp.qtypes import QType

__version__ = "0.1.0"

__all__ = ["JaxpulpError", "UnsupportedConfig", "QType", "__version__"]
