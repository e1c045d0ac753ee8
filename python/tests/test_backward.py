"""alibi_attention.torch.attention: gradients against torch autograd of the float64 formula."""

import numpy as np
import pytest
import torch

import alibi_attention as aa
import alibi_attention.torch as aat
from conftest import make_qkv
from oracle import alibi_slopes, reference


def leaves(rng, batch, q_len, kv_len, heads, kv_heads, dim, kv_dtype=torch.float32):
    q, k, v = make_qkv(rng, batch, q_len, kv_len, heads, kv_heads, dim)
    return (torch.from_numpy(q).requires_grad_(), torch.from_numpy(k).to(kv_dtype).requires_grad_(),
            torch.from_numpy(v).to(kv_dtype).requires_grad_())


def grads_of(fn, inputs, weights):
    for x in inputs:
        x.grad = None
    out = fn()
    (out.double() * weights).sum().backward()
    return out, [x.grad.clone() if x.grad is not None else None for x in inputs]


def assert_close(got, want, rel=1e-4):
    got, want = got.double(), want.double()
    assert got.shape == want.shape
    tol = rel * max(1.0, float(want.abs().max()))
    assert float((got - want).abs().max()) <= tol, float((got - want).abs().max())


@pytest.mark.parametrize("options", [
    dict(),
    dict(causal=False),
    dict(window=4),
    dict(window=4, causal=False),
    dict(scale=0.3),
    dict(q_pos0=2),
    dict(kv_pos0=40, q_pos0=45),
    dict(skip_tolerance=0.0, num_threads=1),
])
@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 1)])
def test_gradients_match_float64_autograd(rng, options, heads, kv_heads):
    q, k, v = leaves(rng, 2, 11, 19, heads, kv_heads, 8)
    s = torch.tensor(aa.slopes(heads), requires_grad=True)
    weights = torch.from_numpy(rng.standard_normal((2, 11, heads, 8)))
    out, (dq, dk, dv, ds) = grads_of(lambda: aat.attention(q, k, v, slopes=s, **options), [q, k, v, s], weights)
    oracle_options = {key: value for key, value in options.items() if key not in ("skip_tolerance", "num_threads")}
    q64, k64, v64, s64 = (x.detach().double().requires_grad_() for x in (q, k, v, s))
    ref, _ = reference(q64, k64, v64, slopes=s64, **oracle_options)
    (ref * weights).sum().backward()
    assert_close(out, ref)
    assert_close(dq, q64.grad)
    assert_close(dk, k64.grad)
    assert_close(dv, v64.grad)
    assert_close(ds, s64.grad)


def test_default_slopes_and_partial_requires_grad(rng):
    q, k, v = leaves(rng, 1, 16, 16, 2, 2, 8)
    k.requires_grad_(False)
    weights = torch.from_numpy(rng.standard_normal((1, 16, 2, 8)))
    out, (dq, dk, dv) = grads_of(lambda: aat.attention(q, k, v), [q, k, v], weights)
    assert dk is None
    q64, v64 = (x.detach().double().requires_grad_() for x in (q, v))
    ref, _ = reference(q64, k.double(), v64)
    (ref * weights).sum().backward()
    assert_close(dq, q64.grad)
    assert_close(dv, v64.grad)


def test_slopes_without_grad_give_no_slope_gradient(rng):
    q, k, v = leaves(rng, 1, 8, 8, 2, 2, 4)
    s = torch.tensor([0.5, 0.25])  # a tensor that does not require grad: a constant
    aat.attention(q, k, v, slopes=s).sum().backward()
    assert s.grad is None and q.grad is not None
    q.grad = None
    aat.attention(q, k, v, slopes=[0.5, 0.25]).sum().backward()
    assert q.grad is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16bit_kv_gradients(rng, dtype):
    q, k, v = leaves(rng, 1, 12, 12, 4, 2, 8, kv_dtype=dtype)
    weights = torch.from_numpy(rng.standard_normal((1, 12, 4, 8)))
    out, (dq, dk, dv) = grads_of(lambda: aat.attention(q, k, v), [q, k, v], weights)
    assert dk.dtype == dtype and dv.dtype == dtype
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref, _ = reference(q64, k64, v64)
    (ref * weights).sum().backward()
    assert_close(out, ref)
    assert_close(dq, q64.grad)
    assert_close(dk, k64.grad, rel=1e-2)  # rounded to the 16-bit dtype
    assert_close(dv, v64.grad, rel=1e-2)


def test_return_lse_and_gradcheck_style_consistency(rng):
    q, k, v = leaves(rng, 1, 6, 6, 2, 2, 4)
    out, lse = aat.attention(q, k, v, return_lse=True)
    assert out.requires_grad and not lse.requires_grad
    _, ref_lse = reference(q.detach(), k.detach(), v.detach())
    assert_close(lse, ref_lse)
    # The autograd function's forward is the plain call's.
    assert torch.equal(out.detach(), aa.attention(q.detach(), k.detach(), v.detach()))


def test_torch_gradcheck_float64_oracle_agrees_with_finite_differences():
    # The oracle itself: its autograd gradient against finite differences (slopes included).
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 5, 1, 3, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 5, 1, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(alibi_slopes(2), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *x: reference(*x[:3], slopes=x[3], window=3)[0], (q, k, v, s))


def test_training_step_reduces_the_loss(rng):
    # A few steps of gradient descent on q, k, v and the slopes through the library's backward.
    q, k, v = leaves(rng, 1, 16, 16, 2, 2, 8)
    s = torch.tensor(aa.slopes(2), requires_grad=True)
    target = torch.from_numpy(rng.standard_normal((1, 16, 2, 8)).astype(np.float32))
    params = [q, k, v, s]
    optimizer = torch.optim.SGD(params, lr=0.5)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = ((aat.attention(q, k, v, slopes=s) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
