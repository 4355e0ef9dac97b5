"""The PULP-NN mixed kernel families (installed as ``jaxpulp.kernels``)."""
