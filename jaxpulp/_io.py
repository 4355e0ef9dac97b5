"""Safe output files for the command line: paths checked before any work, files written whole or not at all."""
from __future__ import annotations

import contextlib
import os
import tempfile

from jaxpulp.errors import JaxpulpError


def check_output_path(path: str, arg: str) -> None:
    """Raise unless ``path`` can be created: its folder exists and is writable and ``path`` is not a folder.
    ``arg`` names the option (e.g. ``--png``) or, ending in "=", the argument (``png=``) in the message."""
    where = f"{arg}{path!r}" if arg.endswith("=") else f"{arg} {path!r}"
    if not isinstance(path, str) or not path.strip():
        raise JaxpulpError(f"{where}: expected a file path")
    if os.path.isdir(path):
        raise JaxpulpError(f"{where}: is a folder, expected a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise JaxpulpError(f"{where}: folder {folder!r} does not exist (create it first)")
    if not os.access(folder, os.W_OK):
        raise JaxpulpError(f"{where}: folder {folder!r} is not writable")
    try:  # os.access says yes to root even where no file can be made (/proc, a read-only mount): try one
        fd, probe = tempfile.mkstemp(prefix=".jaxpulp-probe-", dir=folder)
    except OSError as e:
        raise JaxpulpError(f"{where}: cannot create a file in folder {folder!r} ({e.strerror})") from None
    os.close(fd)
    os.remove(probe)


# What ``--png`` may end in: the formats matplotlib's Agg, PDF, PS and SVG back ends write.
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def check_suffix(path: str, arg: str, suffixes: tuple[str, ...]) -> None:
    """Raise unless ``path`` ends in one of ``suffixes`` (case-insensitive)."""
    if not path.lower().endswith(suffixes):
        raise JaxpulpError(f"{arg} {path!r}: expected a file name ending in {' / '.join(suffixes)}")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path next to ``path`` (same extension); on success it replaces ``path``, on an
    exception it is removed, so ``path`` is never left half-written."""
    stem, ext = os.path.splitext(path)
    tmp = f"{stem}.tmp{os.getpid()}{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def int_arg(lo: int, hi: int | None = None, what: str = ""):
    """An argparse ``type``: an int in [lo, hi] (hi None: unbounded), with a message naming the range."""
    import argparse

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r}: expected an integer{what}") from None
        if v < lo or (hi is not None and v > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"{s!r}: expected an integer {rng}{what}")
        return v

    parse.__name__ = "int"
    return parse
