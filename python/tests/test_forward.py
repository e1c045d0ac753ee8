"""Forward attention on NumPy arrays and torch tensors against the float64 oracle."""

import math

import numpy as np
import pytest
import torch

import alibi_attention as aa
from conftest import make_qkv
from oracle import alibi_slopes, reference


def check(out, lse, q, k, v, **options):
    """out (and lse, if given) within fp32 accuracy of the float64 oracle."""
    ref_out, ref_lse = reference(torch.from_numpy(np.asarray(q)), torch.as_tensor(np.asarray(k)),
                                 torch.as_tensor(np.asarray(v)), **options)
    out = torch.as_tensor(np.asarray(out), dtype=torch.float64)
    tol = 2e-5 * max(1.0, float(ref_out.abs().max()))
    assert float((out - ref_out).abs().max()) <= tol
    if lse is not None:
        lse = torch.as_tensor(np.asarray(lse), dtype=torch.float64)
        assert torch.equal(torch.isfinite(lse), torch.isfinite(ref_lse))
        finite = torch.isfinite(ref_lse)
        if bool(finite.any()):
            assert float((lse[finite] - ref_lse[finite]).abs().max()) <= 2e-5 * max(
                1.0, float(ref_lse[finite].abs().max()))
        assert bool((lse[~finite] == -math.inf).all())


def test_slopes_match_the_paper():
    for n in (1, 2, 3, 4, 5, 8, 12, 16, 32, 40):
        s = aa.slopes(n)
        assert s.dtype == np.float32 and s.shape == (n,)
        np.testing.assert_allclose(s, alibi_slopes(n), rtol=1e-7)
    np.testing.assert_array_equal(aa.slopes(8), [2.0**-i for i in range(1, 9)])
    np.testing.assert_allclose(aa.slopes(4, max_bias=4.0), alibi_slopes(4, 4.0), rtol=1e-7)
    np.testing.assert_allclose(aa.slopes(4, 16), alibi_slopes(4, 16.0), rtol=1e-7)


def test_isa_name():
    assert aa.isa_name() in ("scalar", "avx2", "avx512")


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (6, 1)])
def test_numpy_matches_oracle(rng, causal, heads, kv_heads):
    q, k, v = make_qkv(rng, 2, 37, 37, heads, kv_heads, 24)
    out, lse = aa.attention(q, k, v, causal=causal, return_lse=True)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == q.shape
    assert isinstance(lse, np.ndarray) and lse.dtype == np.float32 and lse.shape == (2, 37, heads)
    check(out, lse, q, k, v, causal=causal)


def test_default_is_causal_without_lse(rng):
    q, k, v = make_qkv(rng, 1, 20, 20, 2, 2, 8)
    out = aa.attention(q, k, v)
    assert isinstance(out, np.ndarray)
    check(out, None, q, k, v, causal=True)
    assert not np.allclose(out, aa.attention(q, k, v, causal=False))


def test_torch_tensors_give_tensors(rng):
    q, k, v = make_qkv(rng, 2, 16, 30, 4, 2, 16)
    qt, kt, vt = (torch.from_numpy(x) for x in (q, k, v))
    out, lse = aa.attention(qt, kt, vt, return_lse=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == qt.shape
    assert isinstance(lse, torch.Tensor) and lse.dtype == torch.float32 and lse.shape == (2, 16, 4)
    check(out, lse, q, k, v)
    np.testing.assert_array_equal(out.numpy(), aa.attention(q, k, v))
    # Tensors that require grad are read too (the plain call does not track them).
    out2 = aa.attention(qt.clone().requires_grad_(), kt, vt)
    assert not out2.requires_grad
    assert torch.equal(out2, out)


def test_zero_copy_inputs_are_not_modified(rng):
    q, k, v = make_qkv(rng, 1, 8, 8, 2, 2, 4)
    copies = [x.copy() for x in (q, k, v)]
    aa.attention(q, k, v)
    for x, c in zip((q, k, v), copies):
        np.testing.assert_array_equal(x, c)


@pytest.mark.parametrize("options", [
    dict(scale=0.37),
    dict(scale=-0.5),
    dict(slopes=[0.5, -0.25, 0.0, 1.5]),
    dict(slopes=np.array([0.3, 0.2, 0.1, 0.05], dtype=np.float64)),
    dict(window=5),
    dict(window=5, causal=False),
    dict(window=1),
    dict(q_pos0=0),
    dict(q_pos0=7),
    dict(q_pos0=-1),
    dict(q_pos0=100),
    dict(kv_pos0=50),
    dict(kv_pos0=50, q_pos0=3),
    dict(kv_pos0=10, q_pos0=80, causal=False),
    dict(skip_tolerance=0.0),
    dict(skip_tolerance=1e-3),
    dict(num_threads=1),
    dict(num_threads=3),
])
def test_every_option_matches_oracle(rng, options):
    q, k, v = make_qkv(rng, 2, 13, 29, 4, 2, 16)
    out, lse = aa.attention(q, k, v, return_lse=True, **options)
    oracle_options = {key: value for key, value in options.items()
                      if key not in ("skip_tolerance", "num_threads")}
    if options.get("skip_tolerance", 0.0) > 1e-6:
        # Skipping may drop up to the tolerance of each row's mass.
        ref, _ = reference(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v))
        assert float((torch.from_numpy(out).double() - ref).abs().max()) <= 4e-3
    else:
        check(out, lse, q, k, v, **oracle_options)


def test_slopes_tensor_and_num_threads_bitwise(rng):
    q, k, v = make_qkv(rng, 1, 40, 40, 4, 4, 32)
    s = torch.tensor([0.1, 0.2, 0.3, 0.4])
    a = aa.attention(q, k, v, slopes=s, num_threads=1)
    b = aa.attention(q, k, v, slopes=s.numpy(), num_threads=2)
    c = aa.attention(q, k, v, slopes=[0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    check(a, None, q, k, v, slopes=[0.1, 0.2, 0.3, 0.4])


def test_decode_and_rows_without_keys(rng):
    q, k, v = make_qkv(rng, 2, 1, 50, 4, 4, 8)  # one new token against a cache: the last position
    out, lse = aa.attention(q, k, v, return_lse=True)
    check(out, lse, q, k, v)
    q, k, v = make_qkv(rng, 1, 10, 4, 2, 2, 8)  # more queries than keys: the first rows see nothing
    out, lse = aa.attention(q, k, v, return_lse=True)
    assert np.all(out[0, :6] == 0) and np.all(lse[0, :6] == -np.inf)
    check(out, lse, q, k, v)


def test_sliding_window_semantics(rng):
    # window w: the query at p sees p - w + 1 .. p; with w = 1 the output is v at the same position.
    q, k, v = make_qkv(rng, 1, 12, 12, 2, 2, 4)
    out = aa.attention(q, k, v, window=1)
    np.testing.assert_allclose(out, v, rtol=1e-6, atol=1e-6)


def test_scale_is_applied_before_the_bias(rng):
    q, k, v = make_qkv(rng, 1, 9, 9, 2, 2, 4)
    check(aa.attention(q, k, v, scale=2.0), None, q, k, v, scale=2.0)


def test_empty_shapes():
    q = np.zeros((0, 5, 2, 4), np.float32)
    k = np.zeros((0, 5, 2, 4), np.float32)
    assert aa.attention(q, k, k).shape == (0, 5, 2, 4)
    q = np.zeros((1, 3, 2, 4), np.float32)
    k = np.zeros((1, 0, 2, 4), np.float32)
    out, lse = aa.attention(q, k, k, return_lse=True)
    assert np.all(out == 0) and np.all(lse == -np.inf)


# ---- 16-bit K/V ----------------------------------------------------------------------------------------

def test_bfloat16_round_trip():
    x = np.array([1.0, 1.00390625, 1.01171875, -2.5, 3.0e38, 0.0], np.float32)
    bits = aa.to_bfloat16(x)
    assert bits.dtype == np.uint16
    back = aa.from_bfloat16(bits)
    # Same rounding as torch's (round to nearest even).
    expected = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(back, expected)
    np.testing.assert_array_equal(bits, torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16bit_kv_numpy(rng, dtype):
    q, k, v = make_qkv(rng, 2, 17, 33, 4, 2, 16)
    if dtype == "float16":
        k16, v16 = k.astype(np.float16), v.astype(np.float16)
        kw, vw = k16.astype(np.float32), v16.astype(np.float32)
    else:
        k16, v16 = aa.to_bfloat16(k), aa.to_bfloat16(v)
        kw, vw = aa.from_bfloat16(k16), aa.from_bfloat16(v16)
    out, lse = aa.attention(q, k16, v16, return_lse=True)
    # Exactly the fp32 attention of the widened values.
    out32, lse32 = aa.attention(q, kw, vw, return_lse=True)
    np.testing.assert_array_equal(out, out32)
    np.testing.assert_array_equal(lse, lse32)
    check(out, lse, q, kw, vw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16bit_kv_torch(rng, dtype):
    q, k, v = make_qkv(rng, 1, 21, 21, 4, 4, 8)
    qt = torch.from_numpy(q)
    kt, vt = torch.from_numpy(k).to(dtype), torch.from_numpy(v).to(dtype)
    out = aa.attention(qt, kt, vt, causal=False, window=6)
    assert isinstance(out, torch.Tensor)
    assert torch.equal(out, aa.attention(qt, kt.float(), vt.float(), causal=False, window=6))
    check(out.numpy(), None, q, kt.float().numpy(), vt.float().numpy(), causal=False, window=6)


def test_ml_dtypes_style_bfloat16_view(rng):
    # A uint16 view of torch's bfloat16 bits is what NumPy users hold.
    q, k, v = make_qkv(rng, 1, 5, 5, 2, 2, 8)
    kb = torch.from_numpy(k).to(torch.bfloat16)
    vb = torch.from_numpy(v).to(torch.bfloat16)
    out_np = aa.attention(q, kb.view(torch.int16).numpy().view(np.uint16), vb.view(torch.int16).numpy().view(np.uint16))
    out_t = aa.attention(torch.from_numpy(q), kb, vb)
    np.testing.assert_array_equal(out_np, out_t.numpy())
