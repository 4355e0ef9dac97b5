"""The 8-core PULP cluster: configuration, each family's work split, vmap over core ids (``jaxpulp.cluster``)."""
