"""Every python snippet in README.md and docs/*.md runs (issue 10: docs that do not run).

Snippets of one file run in order in one namespace (later ones build on earlier ones). A snippet that needs
files outside the package is tagged in the document itself (```` ```python needs-files ````, with a comment
saying why) and is compiled only; an untagged snippet that fails is a failure, never a skip."""
from __future__ import annotations

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.M | re.S)


def snippets(path):
    with open(path) as f:
        text = f.read()
    return [(m.group(1).split(), m.group(2), text[:m.start()].count("\n") + 1) for m in FENCE.finditer(text)]


def test_docs_have_python_snippets():
    found = {os.path.relpath(p, ROOT): len(snippets(p)) for p in DOCS}
    assert found["README.md"] >= 2 and found[os.path.join("docs", "sweeps.md")] >= 2, found


@pytest.mark.parametrize("path", [p for p in DOCS if snippets(p)], ids=lambda p: os.path.relpath(p, ROOT))
def test_snippets_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__doc_snippet__"}
    for tags, code, line in snippets(path):
        unknown = set(tags) - {"needs-files"}
        assert not unknown, f"{path}:{line}: unknown snippet tag(s) {unknown}"
        compiled = compile(code, f"{path}:{line}", "exec")
        if "needs-files" in tags:
            continue  # tagged in the document: compiled, not run
        exec(compiled, ns)  # noqa: S102 - the project's own documentation
