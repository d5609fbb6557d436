import pathlib

import pytest
import torch

OMNIGLOT_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype (for gradient oracles)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
