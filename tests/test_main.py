"""``python -m jaxpulp`` is the ``jaxpulp`` command; ``import jaxpulp.kernels`` resolves through a real path under
jaxpulp/ (the links static tools follow), to the same files as the top-level kernels/ and cluster/."""
import os
import subprocess
import sys

import jaxpulp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_python_dash_m_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "jaxpulp", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and jaxpulp.__version__ in r.stdout + r.stderr
    bad = subprocess.run([sys.executable, "-m", "jaxpulp", "no-such-command"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr
    none = subprocess.run([sys.executable, "-m", "jaxpulp"], capture_output=True, text=True, timeout=120)
    assert none.returncode == 2 and "expected a command" in none.stderr and none.stdout == ""  # it exited 0


def test_package_links_point_at_the_top_level_folders():
    for name in ("kernels", "cluster"):
        link = os.path.join(ROOT, "jaxpulp", name)
        assert os.path.realpath(link) == os.path.realpath(os.path.join(ROOT, name))
        assert os.path.isfile(os.path.join(link, "__init__.py"))
