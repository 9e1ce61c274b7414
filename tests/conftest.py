"""Shared test helpers."""

import os

import pytest
import torch

from vatcodec.model.config import get_config
from vatcodec.model.tokenizer import VAT


def tiny_model(seed: int = 0) -> VAT:
    """An untrained vat-tiny whose occupancy field surely has a surface in the cube.

    An untrained decoder's logits hover on one side of zero, almost the same everywhere. Large plane tokens make
    the planes vary in space, a scaled last layer turns that into logits of both signs, and a bias centres them.
    """
    torch.manual_seed(seed)
    model = VAT(get_config("vat-tiny")).eval()
    with torch.no_grad():
        model.decoder.plane_tokens_TD.normal_(0.0, 3.0)
        model.decoder.mlp[-1].weight.mul_(20.0)
        probe_BM3 = torch.rand(1, 4096, 3, generator=torch.Generator().manual_seed(0)) - 0.5
        field = model.decode(model.encode(torch.zeros(1, 64, 6)))
        model.decoder.mlp[-1].bias.sub_(field(probe_BM3).median())
    return model


def pytest_configure(config):
    """Under pytest-xdist every worker keeps to one thread: torch's threads stall when another process holds a core.

    OMP_NUM_THREADS carries the same to the commands tests run in this process and in subprocesses; tests of the
    thread policy set or delete it themselves.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """CLI tests run commands in this process, and commands set torch's thread count (`vatcodec.threads`)."""
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok():
    """The tiny tokenizer, one per test module (modules may define their own)."""
    return tiny_model()


@pytest.fixture(scope="module")
def prior(tok):
    """An untrained tiny next-scale prior for `tok`: the context coder's probability model in tests."""
    from tests.test_generator import tiny_generator
    from vatcodec.codec.context import ContextPrior

    return ContextPrior(tiny_generator(tok))


def indices_of(tok, prior, seed: int) -> list:
    """Random indices for every scale of the prior's schedule (numpy arrays, one per scale)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, tok.cfg.codebook_size, (n,), generator=g).numpy() for n in prior.counts]
