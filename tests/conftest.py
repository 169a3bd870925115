import pytest
import torch


@pytest.fixture
def wages() -> torch.Tensor:
    """Log-normal hourly wages (median about $25), fixed seed."""
    g = torch.Generator().manual_seed(1)
    return torch.exp(3.2 + 0.6 * torch.randn(2000, generator=g, dtype=torch.float64))
