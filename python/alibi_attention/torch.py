"""Differentiable ALiBi attention for PyTorch: forward and backward by the alibi C++ library.

``attention(q, k, v, **keywords)`` takes :func:`alibi_attention.attention`'s arguments (CPU tensors) and
is a ``torch.autograd.Function``: gradients flow to ``q``, ``k``, ``v`` and, when ``slopes`` is a float32
``[heads]`` tensor that requires grad, to the slopes. The backward is ``alibi::attention_backward``
(FlashAttention-2's recomputation from the saved log-sum-exp, no ``q_len x kv_len`` matrix).

16-bit K/V: the forward reads them in place; the backward widens them to float32 (exactly) and returns
their gradients rounded to their dtype. The returned ``lse`` is not differentiable.
"""

import torch

import alibi_attention as _pkg
from alibi_attention import _core

__all__ = ["attention"]


def attention(q, k, v, *, causal=True, slopes=None, scale=None, window=0, q_pos0=None, num_threads=0,
              skip_tolerance=None, return_lse=False, kv_pos0=0, key_norms=None):
    """:func:`alibi_attention.attention` on tensors, differentiable for q, k, v and a float32 slopes tensor."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__module__}.{type(x).__qualname__}")
    slope_tensor = None
    if isinstance(slopes, torch.Tensor) and slopes.requires_grad:
        if slopes.dtype != torch.float32:
            raise TypeError(f"slopes must be a torch.float32 tensor to receive a gradient, got {slopes.dtype}")
        if slopes.device.type != "cpu":
            raise ValueError(f"slopes must be on the CPU, got device {slopes.device}")
        slope_tensor = slopes
    keywords = dict(causal=causal, slopes=slopes, scale=scale, window=window, q_pos0=q_pos0,
                    num_threads=num_threads, skip_tolerance=skip_tolerance, kv_pos0=kv_pos0, key_norms=key_norms)
    return_lse = _pkg._bool_arg(return_lse, "return_lse")
    out, lse = _Attention.apply(q, k, v, slope_tensor, keywords)
    return (out, lse) if return_lse else out


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, slope_tensor, keywords):
        out, lse = _pkg.attention(q, k, v, return_lse=True, **keywords)
        heads = q.shape[2]
        # The options again, as the backward must see exactly the forward's.
        ctx.options = _pkg._options(heads, keywords["causal"], keywords["slopes"], keywords["scale"],
                                    keywords["window"], keywords["q_pos0"], keywords["kv_pos0"],
                                    keywords["num_threads"], keywords["skip_tolerance"], None, None, None)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.has_slope_tensor = slope_tensor is not None
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        need_q, need_k, need_v, need_slopes = ctx.needs_input_grad[:4]
        dq = torch.empty(q.shape, dtype=torch.float32) if need_q else None
        dk = torch.empty(k.shape, dtype=torch.float32) if need_k else None
        dv = torch.empty(v.shape, dtype=torch.float32) if need_v else None
        dslopes = torch.empty(q.shape[2], dtype=torch.float32) if need_slopes else None
        if dout is None:
            dout = torch.zeros(out.shape, dtype=torch.float32)

        def arr(t):
            return None if t is None else t.detach().to(torch.float32).contiguous().numpy()

        # The library's backward takes fp32 K/V; widening bfloat16/float16 is exact, so these are the
        # gradients of the forward that ran.
        _core.attention_backward(arr(q), arr(k), arr(v), arr(out), arr(lse), arr(dout), arr(dq), arr(dk), arr(dv),
                                 arr(dslopes), ctx.options)
        if dk is not None and dk.dtype != k.dtype:
            dk = dk.to(k.dtype)
        if dv is not None and dv.dtype != v.dtype:
            dv = dv.to(v.dtype)
        return dq, dk, dv, dslopes, None
