import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Unit tests use tiny models, which run fastest on one thread (OpenMP threads stall on a
    busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
