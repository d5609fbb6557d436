"""The Python code blocks of the user guide's pages run as written.

Each page's ``.. code-block:: python`` blocks run in order, in one namespace, in a
temporary folder (pages write files), with ``../shared`` pointing at the data folder
beside the repository, where the Omniglot snippet reads from. A snippet that breaks
as the code changes fails here instead of misleading a reader.
"""

import os
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAGES = ["tasks.rst", "algorithms.rst", "persistence.rst", "devices.rst", "batch_norm.rst",
         pytest.param("index.rst", marks=pytest.mark.slow)]


def python_blocks(text):
    """The bodies of a page's ``.. code-block:: python`` directives, dedented."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if re.match(r"\s*\.\. code-block:: python\s*$", lines[i]):
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                body.append(lines[i])
                i += 1
            blocks.append(textwrap.dedent("\n".join(body)))
        else:
            i += 1
    return blocks


def test_the_extractor_finds_blocks_and_their_ends():
    page = ".. code-block:: python\n\n    a = 1\n\n    b = a + 1\n\nText.\n\n" \
           ".. code-block:: bash\n\n    ls\n"
    assert python_blocks(page) == ["\na = 1\n\nb = a + 1\n"]


@pytest.mark.parametrize("page", PAGES)
def test_user_guide_snippets_run(page, tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "docs" / page).read_text())
    assert blocks, f"{page} has no Python code block"
    workdir = tmp_path / "work"
    workdir.mkdir()
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__snippet__"}
    for number, block in enumerate(blocks, 1):
        if "load_omniglot" in block and not (SHARED / "data" / "omniglot").is_dir():
            continue  # the data is not on this machine
        exec(compile(block, f"docs/{page}, block {number}", "exec"), namespace)
    assert os.getcwd() == str(workdir)
