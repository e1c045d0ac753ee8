import numpy as np
import pytest
import torch

# Debian's torch runs single-threaded by default on this machine class; the tests never depend on it.
torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def make_qkv(rng, batch, q_len, kv_len, heads, kv_heads, dim, scale=1.0):
    q = (rng.standard_normal((batch, q_len, heads, dim)) * scale).astype(np.float32)
    k = (rng.standard_normal((batch, kv_len, kv_heads, dim)) * scale).astype(np.float32)
    v = rng.standard_normal((batch, kv_len, kv_heads, dim)).astype(np.float32)
    return q, k, v
