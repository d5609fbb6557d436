"""The displays' doctests draw: without matplotlib (the [plot] extra) they are
skipped, and with it they draw off-screen (Agg) and leave no figure open."""

import pathlib

import pytest

_HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        skip = pytest.mark.skip(reason="the sklmeta.plot doctests need matplotlib")
        for item in items:
            # this hook sees the whole session's items: mark this package's only
            if _HERE in pathlib.Path(item.path).parents:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _agg_backend():
    try:
        import matplotlib
    except ImportError:
        yield
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")
