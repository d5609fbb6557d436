"""Helpers of the documentation build (imported by ``docs/conf.py``).

They live in a module, not in ``conf.py``, because Sphinx caches the configuration
with pickle: sphinx-gallery takes callables as importable names
(``"sklmeta_docs.reset_argv"``), and a function defined in ``conf.py`` could not be
cached (an "unpickable configuration value" warning, an error under ``-W``).
"""

import importlib
import re
from pathlib import Path


def reset_argv(gallery_conf, script_vars):
    """Command-line arguments of every gallery example: the short ``--quick`` run."""
    return ["--quick"]


def _documented_names(api_rst):
    """``{module: set of names}`` listed in the autosummary tables of ``api.rst``."""
    names, module, in_table = {}, None, False
    for line in Path(api_rst).read_text(encoding="utf-8").splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
            continue
        if re.match(r"\s*\.\. autosummary::", line):
            in_table = True
            continue
        if in_table:
            entry = re.match(r"\s+(~?[\w.]+)\s*$", line)
            if entry:
                names.setdefault(module, set()).add(entry.group(1).lstrip("~"))
            elif line.strip() and not line.strip().startswith(":"):
                in_table = False
    return names


def check_api_reference(app, modules, reexported=()):
    """Warn (an error under ``-W``) for every public name missing from ``api.rst``.

    A public name is one in a module's ``__all__``; ``modules`` lists the modules the
    reference covers, ``reexported`` the public modules whose names are documented
    where the package re-exports them (``sklmeta.maml``: as ``sklmeta.MAMLRegressor``).
    A module that cannot be imported is reported, and so is a public submodule of the
    package that is in neither list.
    """
    import pkgutil

    from sphinx.util import logging

    logger = logging.getLogger("sklmeta_docs")
    api_rst = Path(app.srcdir) / "api.rst"
    documented = _documented_names(api_rst)
    package = importlib.import_module(modules[0])
    for info in pkgutil.iter_modules(package.__path__, prefix=package.__name__ + "."):
        public = not info.name.rsplit(".", 1)[1].startswith("_")
        if public and info.name not in modules and info.name not in reexported:
            logger.warning("api.rst: the public module %s is not in the API reference "
                           "(docs/conf.py, API_MODULES)", info.name, location=str(api_rst))
    for name in reexported:
        module = importlib.import_module(name)
        missing = [n for n in getattr(module, "__all__", ())
                   if n not in documented.get(package.__name__, set())]
        if missing:
            logger.warning("api.rst: %s of %s are not documented as %s.<name>",
                           ", ".join(missing), name, package.__name__, location=str(api_rst))
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            logger.warning("api.rst: the module %s cannot be imported: %s", name, exc,
                           location=str(api_rst))
            continue
        listed = documented.get(name, set())
        missing = [n for n in getattr(module, "__all__", ()) if n not in listed]
        if missing:
            logger.warning("api.rst: public names of %s missing from the API reference: %s",
                           name, ", ".join(missing), location=str(api_rst))


#: scikit-learn's own labels and glossary terms that the docstrings sklmeta inherits
#: from scikit-learn (``set_fit_request``, ``get_metadata_routing``, the methods of
#: ``Pipeline``) refer to: (domain:type, target) -> page of scikit-learn's site.
SKLEARN_TARGETS = {
    ("std:ref", "metadata_routing"): "metadata_routing.html",
    ("std:term", "meta-estimator"): "glossary.html#term-meta-estimator",
}
SKLEARN_URL = "https://scikit-learn.org/stable/"


def link_sklearn_targets(app, env, node, contnode):
    """``missing-reference`` handler: link :data:`SKLEARN_TARGETS` to scikit-learn's site.

    Intersphinx resolves them first when its inventories are loaded; this serves
    the offline build (``SKLMETA_DOCS_OFFLINE=1``) and any target intersphinx misses,
    with the same destination, so no warning needs to be silenced.
    """
    from docutils import nodes

    key = (f"{node.get('refdomain', '')}:{node.get('reftype', '')}",
           node.get("reftarget", "").lower())
    page = SKLEARN_TARGETS.get(key)
    if page is None:
        return None
    ref = nodes.reference("", "", internal=False, refuri=SKLEARN_URL + page,
                          reftitle=f"scikit-learn: {node.get('reftarget')}")
    ref.append(contnode)
    return ref


def document_reexported_data(app, what, name, obj, options, lines):
    """``autodoc-process-docstring`` handler: the ``#:`` comment of re-exported constants.

    A constant such as ``sklmeta.datasets.OMNIGLOT_URL`` is documented by a ``#:``
    comment where it is defined (``sklmeta.datasets._omniglot``), which autodoc does
    not find from the public module, so it shows the docstring of the value's type
    (``str``'s). Take the comment from the private submodules of the public module
    instead, or show no text rather than the type's docstring.
    """
    import sys

    from sphinx.pycode import ModuleAnalyzer, PycodeError

    if what != "data" or "." not in name:
        return
    type_doc = (type(obj).__doc__ or "").strip().splitlines()
    if not lines or not type_doc or lines[0].strip() != type_doc[0].strip():
        return
    package, attr = name.rsplit(".", 1)
    for module_name in sorted(m for m in sys.modules if m.startswith(package + "._")):
        try:
            comments = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in comments:
            lines[:] = list(comments["", attr])
            return
    lines[:] = []
