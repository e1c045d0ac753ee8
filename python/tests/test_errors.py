"""Bad inputs raise TypeError / ValueError naming the argument; nothing crashes."""

import numpy as np
import pytest
import torch

import alibi_attention as aa
import alibi_attention.torch as aat


def qkv(batch=1, q_len=4, kv_len=4, heads=2, kv_heads=2, dim=8):
    return (np.ones((batch, q_len, heads, dim), np.float32), np.ones((batch, kv_len, kv_heads, dim), np.float32),
            np.ones((batch, kv_len, kv_heads, dim), np.float32))


def raises(exc, name, fn, *args, **kwargs):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert name in str(info.value), str(info.value)


def test_wrong_types():
    q, k, v = qkv()
    raises(TypeError, "q", aa.attention, q.tolist(), k, v)
    raises(TypeError, "k", aa.attention, q, "k", v)
    raises(TypeError, "q", aa.attention, q.astype(np.float64), k, v)
    raises(TypeError, "q", aa.attention, q.astype(np.float16), k, v)
    raises(TypeError, "k", aa.attention, q, k.astype(np.float64), v)
    raises(TypeError, "v", aa.attention, q, k, v.astype(np.int32))
    raises(TypeError, "k", aa.attention, q, k.astype(np.float16), v)  # k and v of different dtypes
    raises(TypeError, "q", aa.attention, q.astype(">f4"), k, v)
    raises(TypeError, "causal", aa.attention, q, k, v, causal=1)
    raises(TypeError, "scale", aa.attention, q, k, v, scale="0.5")
    raises(TypeError, "window", aa.attention, q, k, v, window=2.5)
    raises(TypeError, "q_pos0", aa.attention, q, k, v, q_pos0=1.0)
    raises(TypeError, "num_threads", aa.attention, q, k, v, num_threads=None)
    raises(TypeError, "skip_tolerance", aa.attention, q, k, v, skip_tolerance="x")
    raises(TypeError, "return_lse", aa.attention, q, k, v, return_lse=None)
    raises(TypeError, "slopes", aa.attention, q, k, v, slopes=["a", "b"])
    raises(TypeError, "n", aa.slopes, 2.0)
    raises(TypeError, "q", aa.attention, torch.ones(1, 4, 2, 8, dtype=torch.float64), k, v)
    raises(TypeError, "k", aa.attention, torch.from_numpy(q), torch.ones(1, 4, 2, 8, dtype=torch.int32), v)
    with pytest.raises(TypeError):
        aa.attention(q, k, v, True)  # the options are keyword-only


def test_wrong_values_and_shapes():
    q, k, v = qkv()
    raises(ValueError, "q", aa.attention, q[0], k, v)
    raises(ValueError, "k", aa.attention, q, k[0], v)
    raises(ValueError, "v", aa.attention, q, k, v[:, :3])
    raises(ValueError, "head_dim", aa.attention, q, *qkv(dim=4)[1:])
    raises(ValueError, "batch", aa.attention, q, np.ones((2, 4, 2, 8), np.float32), np.ones((2, 4, 2, 8), np.float32))
    raises(ValueError, "kv_heads", aa.attention, *qkv(heads=3, kv_heads=2))
    raises(ValueError, "q", aa.attention, np.ones((1, 4, 2, 16), np.float32)[..., ::2], k, v)  # non-contiguous
    raises(ValueError, "k", aa.attention, q, np.asfortranarray(np.ones((1, 4, 2, 8), np.float32)), v)
    raises(ValueError, "slopes", aa.attention, q, k, v, slopes=[0.5])
    raises(ValueError, "slopes", aa.attention, q, k, v, slopes=[0.5, float("nan")])
    raises(ValueError, "scale", aa.attention, q, k, v, scale=float("inf"))
    raises(ValueError, "scale", aa.attention, q, k, v, scale=0.0)
    raises(ValueError, "window", aa.attention, q, k, v, window=-1)
    raises(ValueError, "q_pos0", aa.attention, q, k, v, q_pos0=-2)
    raises(ValueError, "kv_pos0", aa.attention, q, k, v, kv_pos0=-1)
    raises(ValueError, "num_threads", aa.attention, q, k, v, num_threads=-1)
    raises(ValueError, "skip_tolerance", aa.attention, q, k, v, skip_tolerance=-1.0)
    raises(ValueError, "n", aa.slopes, 0)
    raises(ValueError, "max_bias", aa.slopes, 4, max_bias=0.0)
    raises(ValueError, "key_norms", aa.attention, q, k, v, key_norms=np.ones((1, 3, 2), np.float32))


def test_torch_device_contiguity_and_autograd_arguments():
    q, k, v = (torch.from_numpy(x) for x in qkv())
    raises(ValueError, "q", aa.attention, q.transpose(1, 2), k, v)
    raises(ValueError, "q", aat.attention, torch.ones(1, 2, 4, 8).transpose(1, 2), k, v)
    if hasattr(torch, "device"):
        meta = torch.ones(1, 4, 2, 8, device="meta")
        raises(ValueError, "q", aa.attention, meta, k, v)
    raises(TypeError, "q", aat.attention, q.numpy(), k, v)
    s = torch.tensor([0.5, 0.25], dtype=torch.float64, requires_grad=True)
    raises(TypeError, "slopes", aat.attention, q, k, v, slopes=s)


def test_cpp_invalid_argument_becomes_value_error():
    # Checked only by the C++ library (std::invalid_argument): a varlen q_offsets that decreases.
    q = np.ones((4, 2, 8), np.float32)
    k = np.ones((4, 2, 8), np.float32)
    with pytest.raises(ValueError, match="q_offsets"):
        aa.attention_varlen(q, k, k, [0, 3, 1, 4], [1, 1, 2])


def test_errors_write_nothing_and_leave_the_module_usable():
    q, k, v = qkv()
    with pytest.raises(ValueError):
        aa.attention(q, k, v, window=-3)
    assert aa.attention(q, k, v).shape == q.shape
