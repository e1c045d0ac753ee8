"""The float64 oracle: softmax(scale * Q K^T + bias) V written out in torch, bias from integer distances."""

import math

import torch


def alibi_slopes(n, max_bias=8.0):
    """The paper's rule (get_slopes of its reference code, generalised by max_bias), in float64."""
    p = 1 << (n.bit_length() - 1)
    first = [2.0 ** (-max_bias * (h + 1) / p) for h in range(p)]
    rest = [2.0 ** (-(max_bias / 2) * (2 * i + 1) / p) for i in range(n - p)]
    return first + rest


def reference(q, k, v, *, causal=True, slopes=None, scale=None, window=0, q_pos0=None, kv_pos0=0):
    """(out, lse) in float64 for [batch, seq, heads, dim] tensors; differentiable in q, k, v, slopes.

    A row that sees no key gives zeros and lse -inf, as the library defines it.
    """
    q, k, v = (x.to(torch.float64) for x in (q, k, v))
    batch, q_len, heads, dim = q.shape
    kv_len, kv_heads = k.shape[1], k.shape[2]
    group = heads // kv_heads
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    if slopes is None:
        slopes = torch.tensor(alibi_slopes(heads), dtype=torch.float64)
    elif not isinstance(slopes, torch.Tensor):
        slopes = torch.tensor(list(slopes), dtype=torch.float64)
    slopes = slopes.to(torch.float64)
    if scale is None:
        scale = 1.0 / math.sqrt(dim)
    if q_pos0 is None or q_pos0 == -1:
        q_pos0 = kv_pos0 + kv_len - q_len
    p = torch.arange(q_len, dtype=torch.int64)[:, None] + q_pos0
    j = torch.arange(kv_len, dtype=torch.int64)[None, :] + kv_pos0
    distance = p - j  # exact integers
    visible = distance >= 0 if causal else torch.ones_like(distance, dtype=torch.bool)
    if window > 0:
        visible &= (distance < window) if causal else (distance.abs() < window)
    signed = distance if causal else distance.abs()
    bias = -slopes[:, None, None] * signed.to(torch.float64)[None]  # [heads, q_len, kv_len]
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale + bias[None]
    logits = logits.masked_fill(~visible[None, None], float("-inf"))
    lse = torch.logsumexp(logits, dim=-1)  # [batch, heads, q_len]
    finite = torch.isfinite(lse)
    weights = torch.exp(logits - torch.where(finite, lse, torch.zeros_like(lse))[..., None])
    weights = torch.where(finite[..., None], weights, torch.zeros_like(weights))
    out = torch.einsum("bhqk,bkhd->bqhd", weights, v)
    return out, lse.permute(0, 2, 1)
