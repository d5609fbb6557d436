"""Loaders for public few-shot learning data.

:func:`load_omniglot` reads the Omniglot release layout from folders or zip files;
:func:`fetch_omniglot` downloads the official zip files once into scikit-learn's data
folder and loads them.
"""

from ._omniglot import OMNIGLOT_SUBSETS, OMNIGLOT_URL, fetch_omniglot, load_omniglot

__all__ = ["load_omniglot", "fetch_omniglot", "OMNIGLOT_URL", "OMNIGLOT_SUBSETS"]
