"""Sphinx configuration of the sklmeta documentation.

Build (from the repository root; see docs/README.md)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html   # ~100 s
    python -m sphinx -W --keep-going -b html -D plot_gallery=0 docs docs/_build/html
                                        # ~20 s: renders the examples without running them

Without internet access set ``SKLMETA_DOCS_OFFLINE=1``: intersphinx then loads no
inventories (references to scikit-learn, PyTorch, NumPy and Python objects are left as
plain text instead of links), since a failed inventory download is a warning, which
``-W`` turns into an error.
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before sphinx-gallery or an example imports pyplot

import sklmeta  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "sphinxext"))

# -- Project -------------------------------------------------------------------------
project = "sklmeta"
author = "the sklmeta developers"
copyright = "the sklmeta developers, BSD-3-Clause"
version = release = sklmeta.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "README.md",  # the build instructions, included by building.md
    "bench-results",  # raw benchmark outputs, referred to by performance.md as files
    "sphinxext",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
]

# -- HTML ----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklmeta {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_sidebars = {"index": []}
html_show_sourcelink = True

# -- autodoc, autosummary, numpydoc -------------------------------------------------
autosummary_generate = True  # one page per object, in generated/ (see api.rst)
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # types are in the numpydoc sections
numpydoc_show_class_members = False  # the class templates list the members
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_validation_checks = set()  # a clean build, not a docstring lint
numpydoc_xref_param_type = False

# -- intersphinx -----------------------------------------------------------------------
# SKLMETA_DOCS_OFFLINE=1 (any value but "", "0", "false", "no") for machines without
# internet access: intersphinx stays enabled but loads no inventory, so nothing is
# fetched and cross-project references render as plain text.
OFFLINE = os.environ.get("SKLMETA_DOCS_OFFLINE", "").strip().lower() not in (
    "", "0", "false", "no")
intersphinx_mapping = {} if OFFLINE else {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
}
intersphinx_timeout = 30

# -- MyST (the Markdown pages) ---------------------------------------------------------
myst_heading_anchors = 3  # GitHub-style #anchors for the pages' headings

# -- sphinx-gallery ------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/.*\.py",  # run every example, not only plot_*.py
    # every example runs as `python example.py --quick`: the short version
    "reset_argv": "sklmeta_docs.reset_argv",
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("sklmeta",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"sklmeta": None},
    "remove_config_comments": True,
    "show_memory": False,
}
# plot_gallery ("True" by default) runs the examples; -D plot_gallery=0 renders them
# without running them (a fast local build).

# -- Checks --------------------------------------------------------------------------
API_MODULES = [
    "sklmeta",
    "sklmeta.tasks",
    "sklmeta.datasets",
    "sklmeta.networks",
    "sklmeta.metrics",
    "sklmeta.pipeline",
    "sklmeta.persistence",
    "sklmeta.algorithms",
    "sklmeta.plot",
    "sklmeta.model_selection",
    "sklmeta.base",
]
# public modules whose names are documented as re-exported by sklmeta (sklmeta.X)
REEXPORTED_MODULES = ["sklmeta.maml", "sklmeta.presets", "sklmeta.pretrain", "sklmeta.reptile"]


def _check_api(app):
    """Every name of these modules' ``__all__`` must be in api.rst (else a warning)."""
    from sklmeta_docs import check_api_reference

    check_api_reference(app, API_MODULES, REEXPORTED_MODULES)


def setup(app):
    from sklmeta_docs import document_reexported_data, link_sklearn_targets

    app.connect("builder-inited", _check_api)
    app.connect("missing-reference", link_sklearn_targets)
    # before numpydoc (priority 500) rewrites the docstring
    app.connect("autodoc-process-docstring", document_reexported_data, priority=400)
