"""``python -m jaxpulp ...``: the ``jaxpulp`` command line (``jaxpulp.cli.main``)."""
from jaxpulp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
