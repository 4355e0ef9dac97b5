"""Every ``semantics.md §N`` the code cites resolves to a heading of docs/semantics.md.

A citation is a ``§N`` / ``§N.M`` in a source line; it belongs to the document named last before it on the same
line (``isa_cost.md §2.1``, ``library_defects.md 11``), and to semantics.md when the line names no document
(the kernel modules write bare ``§8.4`` for it). Docs in docs/ are read the same way."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ["jaxpulp", "kernels", "cluster", "tests", "benchmarks"]
TOKEN = re.compile(r"(semantics\.md|isa_cost(?:\.md)?|dma(?:_facts)?(?:\.md)?|library_defects(?:\.md)?|design\.md"
                   r"|style\.md|ecosystem(?:\.md)?)|§\s*(\d+(?:\.\d+)*[a-z]?)")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.M)


def citations(lines):
    """{section: first 'where'} of the semantics.md citations in (where, text) lines."""
    out = {}
    for where, line in lines:
        doc = "semantics.md"
        for m in TOKEN.finditer(line):
            if m.group(1):
                doc = m.group(1)
            elif doc == "semantics.md":
                out.setdefault(m.group(2), where)
    return out


def _code_lines():
    for root in SOURCES:
        for p in sorted((ROOT / root).rglob("*.py")):
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                yield f"{p.relative_to(ROOT)}:{i}", line
    for p in sorted((ROOT / "docs").glob("*.md")):
        if p.name != "semantics.md":
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                yield f"{p.relative_to(ROOT)}:{i}", line


def sections():
    return set(HEADING.findall((ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")))


def test_every_cited_section_exists():
    cited = citations(_code_lines())
    assert len(cited) > 40  # the code cites ~60 sections; far fewer means the scan itself broke
    have = sections()
    missing = {s: w for s, w in cited.items() if s not in have}
    assert not missing, f"cited in the code but not a heading of docs/semantics.md: {missing}"


def test_citation_scan_attributes_sections_to_the_named_document():
    lines = [("a", "see semantics.md §4.1, §12.3; isa_cost.md §4.4 and §2.1"), ("b", "bare §8.4 (library_defects 11)"),
             ("c", "isa_cost §1.7 only"), ("d", "(semantics.md §5-§11)")]
    assert citations(lines) == {"4.1": "a", "12.3": "a", "8.4": "b", "5": "d", "11": "d"}


def test_headings_are_found():
    have = sections()
    assert {"1", "3.1", "4.4", "7.5", "11.3", "15.4", "16"} <= have
    assert "99.9" not in have
