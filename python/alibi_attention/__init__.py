"""ALiBi attention on the CPU for NumPy arrays and PyTorch tensors: the alibi C++ library's kernels.

One build runs the widest kernel of whatever CPU imports it (``alibi::dispatch``; :func:`isa_name` says
which, ``ALIBI_ISA=scalar|avx2|avx512`` caps it). Layout, as the C++ library's::

    q, out: [batch, q_len, heads, head_dim]       float32
    k, v:   [batch, kv_len, kv_heads, head_dim]   float32, float16 or bfloat16 (kv_heads divides heads)
    lse:    [batch, q_len, heads]                 float32

NumPy has no bfloat16: pass bfloat16 K/V as a ``uint16`` array of the raw bits (``x.view(np.uint16)`` of
any bfloat16 buffer; :func:`to_bfloat16` rounds float32 to such an array). A NumPy dtype named
``bfloat16`` (ml_dtypes') is read the same way. ``numpy.float16`` is IEEE half precision.

Torch tensors (CPU, contiguous) are read in place and the result is a tensor; arrays give arrays. The GIL
is released while a kernel runs. ``alibi_attention.torch.attention`` is the differentiable version.
"""

import importlib
import math
import numbers
import operator
import sys

import numpy as np

from . import _core

__version__ = _core.version
__all__ = [
    "attention",
    "attention_paged",
    "attention_varlen",
    "from_bfloat16",
    "isa_name",
    "merge_partials",
    "slopes",
    "to_bfloat16",
]

# Element type codes of K/V understood by _core.
_KV_FLOAT32, _KV_BFLOAT16, _KV_FLOAT16 = 0, 1, 2


def isa_name():
    """The kernel this CPU runs: ``"scalar"``, ``"avx2"`` or ``"avx512"``."""
    return _core.isa_name()


def slopes(n, max_bias=8.0):
    """The paper's ALiBi slopes for ``n`` heads (``1/2, 1/4, ..., 1/256`` for 8 heads at ``max_bias=8``).

    Returns a float32 NumPy array of shape ``[n]``; ``max_bias`` generalises the rule as ggml does.
    """
    n = _int_arg(n, "n")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    max_bias = _real_arg(max_bias, "max_bias")
    if not (math.isfinite(max_bias) and max_bias > 0):
        raise ValueError(f"max_bias must be finite and > 0, got {max_bias}")
    return np.asarray(_core.slopes(n, max_bias), dtype=np.float32)


def to_bfloat16(x):
    """float32 array -> bfloat16 bits as a ``uint16`` array (round to nearest even), for NumPy K/V."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return _core.to_bfloat16(x)


def from_bfloat16(x):
    """bfloat16 bits (``uint16`` array) -> float32 array, exactly."""
    x = np.asarray(x)
    if x.dtype != np.uint16:
        raise TypeError(f"x must be a uint16 array of bfloat16 bits, got dtype {x.dtype}")
    return _core.from_bfloat16(np.ascontiguousarray(x))


def attention(q, k, v, *, causal=True, slopes=None, scale=None, window=0, q_pos0=None, num_threads=0,
              skip_tolerance=None, return_lse=False, kv_pos0=0, key_norms=None):
    """Fused ALiBi attention: ``softmax(scale * q k^T + bias) v`` per head, bias ``-m_h * (p - j)``.

    Args:
        q: ``[batch, q_len, heads, head_dim]`` float32 (NumPy array or CPU tensor, C-contiguous).
        k, v: ``[batch, kv_len, kv_heads, head_dim]``, the same dtype: float32, float16 or bfloat16 (NumPy:
            ``uint16`` bits). Query head ``h`` reads kv head ``h // (heads // kv_heads)``.
        causal: ``True``: key ``j`` visible to the query at ``p`` iff ``j <= p``, bias ``-m (p - j)``.
            ``False``: every key, bias ``-m |p - j|`` (symmetric ALiBi).
        slopes: ``[heads]`` slopes ``m_h`` (any finite values); ``None``: ``slopes(heads)``.
        scale: applied to ``q.k`` before the bias is added; ``None``: ``1 / sqrt(head_dim)``.
        window: ``0``: unlimited; ``w > 0``: keys with ``p - j < w`` (causal) or ``|p - j| < w`` only.
        q_pos0: key position of query row 0; ``None`` (or -1): ``kv_pos0 + kv_len - q_len``, the queries
            are the last ``q_len`` positions (prefill, KV-cache decode). Rows at negative positions see
            no key under the causal mask.
        num_threads: ``0``: all hardware threads; ``1``: the calling thread. Same bits for any value.
        skip_tolerance: ALiBi block skipping, the largest softmax mass a row may drop relative to its
            largest term; ``None``: ``2**-24`` (below fp32 resolution); ``0`` disables skipping.
        return_lse: also return ``lse``, ``[batch, q_len, heads]`` float32: each row's log-sum-exp of its
            logits over the keys it sees (``-inf`` for none), for :func:`merge_partials`.
        kv_pos0: position of key row 0 (k, v a shard of a longer sequence; bias, mask and window use
            absolute positions).
        key_norms: optional ``[batch, kv_len, kv_heads]`` float32 upper bounds on ``|k|``, so skipping
            never reads the keys it skips.

    Returns:
        ``out`` (q's shape, float32, array or tensor like ``q``), or ``(out, lse)`` with ``return_lse``.
        A row that sees no key gets zeros.

    Raises:
        TypeError: an argument of the wrong type or dtype. ValueError: a wrong shape, rank, device,
        layout or value (the C++ library's ``std::invalid_argument``); the message names the argument.
    """
    qa, kind = _view(q, "q", 4, "[batch, seq, heads, head_dim]", _Q_DTYPES)
    ka, kv_kind = _kv_view(k, "k", 4, "[batch, seq, kv_heads, head_dim]")
    va, v_kind = _kv_view(v, "v", 4, "[batch, seq, kv_heads, head_dim]")
    _same_kv_dtype(k, v, kv_kind, v_kind, "k", "v")
    batch, q_len, heads, head_dim = qa.shape
    if ka.shape[0] != batch:
        raise ValueError(f"k has batch {ka.shape[0]}, q has {batch}")
    if ka.shape[3] != head_dim:
        raise ValueError(f"k has head_dim {ka.shape[3]}, q has {head_dim}")
    if va.shape != ka.shape:
        raise ValueError(f"v must have k's shape {tuple(ka.shape)}, got {tuple(va.shape)}")
    _check_heads(heads, ka.shape[2], "k")
    options = _options(heads, causal, slopes, scale, window, q_pos0, kv_pos0, num_threads, skip_tolerance,
                       key_norms, (batch, ka.shape[1], ka.shape[2]), "[batch, kv_len, kv_heads]")
    return_lse = _bool_arg(return_lse, "return_lse")
    out, out_a = _empty(kind, qa.shape)
    lse, lse_a = _empty(kind, qa.shape[:3]) if return_lse else (None, None)
    _core.attention(qa, ka, va, out_a, lse_a, kv_kind, options)
    return (out, lse) if return_lse else out


def attention_varlen(q, k, v, q_offsets, kv_lens, *, causal=True, slopes=None, scale=None, window=0,
                     num_threads=0, skip_tolerance=None, return_lse=False, key_norms=None):
    """Attention over a ragged batch (FlashAttention's ``cu_seqlens``), each sequence on its own.

    ``q``: ``[total_q, heads, head_dim]``, sequence ``s`` owning rows ``q_offsets[s]:q_offsets[s + 1]``;
    ``k``, ``v``: ``[total_kv, kv_heads, head_dim]``, the sequences' keys one after another,
    ``kv_lens[s]`` each (summing to ``total_kv``). A sequence's queries are the last positions of its
    keys (prefill, chunked prefill and decode mix freely). ``q_offsets`` (``num_seqs + 1`` values from 0
    to ``total_q``) and ``kv_lens`` are integer sequences, arrays or tensors. The keywords are
    :func:`attention`'s (no ``q_pos0``/``kv_pos0``); ``lse`` is ``[total_q, heads]``; ``key_norms``
    ``[total_kv, kv_heads]``. Each sequence's result is bitwise that of :func:`attention` on it alone.
    """
    qa, kind = _view(q, "q", 3, "[total_q, heads, head_dim]", _Q_DTYPES)
    ka, kv_kind = _kv_view(k, "k", 3, "[total_kv, kv_heads, head_dim]")
    va, v_kind = _kv_view(v, "v", 3, "[total_kv, kv_heads, head_dim]")
    _same_kv_dtype(k, v, kv_kind, v_kind, "k", "v")
    if ka.shape[2] != qa.shape[2]:
        raise ValueError(f"k has head_dim {ka.shape[2]}, q has {qa.shape[2]}")
    if va.shape != ka.shape:
        raise ValueError(f"v must have k's shape {tuple(ka.shape)}, got {tuple(va.shape)}")
    _check_heads(qa.shape[1], ka.shape[1], "k")
    offsets, lens = _seq_arrays(q_offsets, kv_lens, qa.shape[0])
    if int(lens.sum()) != ka.shape[0]:
        raise ValueError(f"kv_lens must sum to k.shape[0] = {ka.shape[0]}, got {int(lens.sum())}")
    options = _options(qa.shape[1], causal, slopes, scale, window, None, 0, num_threads, skip_tolerance,
                       key_norms, tuple(ka.shape[:2]), "[total_kv, kv_heads]")
    return _ragged_call(kind, qa, return_lse,
                        lambda out_a, lse_a: _core.attention_varlen(qa, ka, va, out_a, lse_a, offsets, lens,
                                                                    kv_kind, options))


def attention_paged(q, k_pages, v_pages, block_table, q_offsets, kv_lens, *, causal=True, slopes=None,
                    scale=None, window=0, num_threads=0, skip_tolerance=None, return_lse=False, key_norms=None):
    """:func:`attention_varlen` with the keys in a paged cache (vLLM's block tables).

    ``k_pages``, ``v_pages``: ``[num_pages, page_size, kv_heads, head_dim]``; ``block_table``: integers
    ``[num_seqs, max_pages_per_seq]``: key ``j`` of sequence ``s`` is slot ``j % page_size`` of page
    ``block_table[s, j // page_size]``. Entries past a sequence's last page are never read.
    ``key_norms``, if given, follows the pages: ``[num_pages, page_size, kv_heads]``. Bitwise equal to
    :func:`attention_varlen` on the same keys gathered, for any page size.
    """
    qa, kind = _view(q, "q", 3, "[total_q, heads, head_dim]", _Q_DTYPES)
    ka, kv_kind = _kv_view(k_pages, "k_pages", 4, "[num_pages, page_size, kv_heads, head_dim]")
    va, v_kind = _kv_view(v_pages, "v_pages", 4, "[num_pages, page_size, kv_heads, head_dim]")
    _same_kv_dtype(k_pages, v_pages, kv_kind, v_kind, "k_pages", "v_pages")
    if ka.shape[3] != qa.shape[2]:
        raise ValueError(f"k_pages has head_dim {ka.shape[3]}, q has {qa.shape[2]}")
    if va.shape != ka.shape:
        raise ValueError(f"v_pages must have k_pages' shape {tuple(ka.shape)}, got {tuple(va.shape)}")
    _check_heads(qa.shape[1], ka.shape[2], "k_pages")
    offsets, lens = _seq_arrays(q_offsets, kv_lens, qa.shape[0])
    table = _int_array(block_table, "block_table", np.int32)
    if table.ndim != 2 or table.shape[0] != lens.shape[0]:
        raise ValueError(f"block_table must have shape [num_seqs = {lens.shape[0]}, max_pages_per_seq], "
                         f"got {tuple(table.shape)}")
    options = _options(qa.shape[1], causal, slopes, scale, window, None, 0, num_threads, skip_tolerance,
                       key_norms, tuple(ka.shape[:3]), "[num_pages, page_size, kv_heads]")
    return _ragged_call(kind, qa, return_lse,
                        lambda out_a, lse_a: _core.attention_paged(qa, ka, va, table, out_a, lse_a, offsets, lens,
                                                                   kv_kind, options))


def merge_partials(out_a, lse_a, out_b, lse_b):
    """Exact merge of two partial attentions over disjoint key sets (e.g. two ``kv_pos0`` shards).

    ``out_*``: ``[..., head_dim]`` float32; ``lse_*``: ``out``'s shape without ``head_dim``, as
    :func:`attention` returns them with ``return_lse=True``. Returns ``(out, lse)`` of the union of the two
    key sets (a side whose ``lse`` is ``-inf`` saw no key and is left out), arrays or tensors like ``out_a``.
    """
    oa, kind = _view(out_a, "out_a", None, "[..., head_dim]", _Q_DTYPES)
    la, _ = _view(lse_a, "lse_a", None, "[...]", _Q_DTYPES)
    ob, _ = _view(out_b, "out_b", None, "[..., head_dim]", _Q_DTYPES)
    lb, _ = _view(lse_b, "lse_b", None, "[...]", _Q_DTYPES)
    if oa.ndim < 1:
        raise ValueError("out_a must have at least 1 dimension (head_dim)")
    if ob.shape != oa.shape:
        raise ValueError(f"out_b must have out_a's shape {tuple(oa.shape)}, got {tuple(ob.shape)}")
    for name, x in (("lse_a", la), ("lse_b", lb)):
        if x.shape != oa.shape[:-1]:
            raise ValueError(f"{name} must have shape {tuple(oa.shape[:-1])} (out_a's without head_dim), "
                             f"got {tuple(x.shape)}")
    out, out_arr = _empty(kind, oa.shape)
    lse, lse_arr = _empty(kind, oa.shape[:-1])
    _core.merge_partials(oa, la, ob, lb, out_arr, lse_arr)
    return out, lse


# ---- argument handling ---------------------------------------------------------------------------------

_Q_DTYPES = ("float32",)


def _torch():
    """torch if the program imported it (never imported here: NumPy users need not have it)."""
    return sys.modules.get("torch")


def _is_tensor(x):
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _kind_name(x):
    return f"{type(x).__module__}.{type(x).__qualname__}"


def _view(x, name, ndim, layout, dtypes):
    """A C-contiguous NumPy view of ``x`` (no copy) and its kind ("numpy" or "torch")."""
    if _is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name} must be on the CPU, got device {x.device}")
        dtype = str(x.dtype).replace("torch.", "")
        if dtype not in dtypes:
            raise TypeError(f"{name} must be a {' / '.join('torch.' + d for d in dtypes)} tensor, got {x.dtype}")
        if not x.is_contiguous():
            raise ValueError(f"{name} must be contiguous (call .contiguous())")
        x = x.detach()
        a = x.view(_torch().int16).numpy().view(np.uint16) if dtype == "bfloat16" else x.numpy()
        kind = "torch"
    elif isinstance(x, np.ndarray):
        dtype = "bfloat16" if x.dtype == np.uint16 or x.dtype.name == "bfloat16" else x.dtype.name
        if dtype not in dtypes or not x.dtype.isnative:
            allowed = " / ".join("uint16 (bfloat16 bits)" if d == "bfloat16" else d for d in dtypes)
            raise TypeError(f"{name} must be a {allowed} array, got dtype {x.dtype}")
        if not x.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray)")
        a = x.view(np.uint16) if dtype == "bfloat16" else x
        kind = "numpy"
    else:
        raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor, got {_kind_name(x)}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {layout}, got shape {tuple(a.shape)}")
    return a, kind


def _kv_view(x, name, ndim, layout):
    a, _ = _view(x, name, ndim, layout, ("float32", "float16", "bfloat16"))
    code = {np.dtype(np.float32): _KV_FLOAT32, np.dtype(np.uint16): _KV_BFLOAT16,
            np.dtype(np.float16): _KV_FLOAT16}[a.dtype]
    return a, code


def _same_kv_dtype(k, v, k_code, v_code, k_name, v_name):
    if k_code != v_code:
        raise TypeError(f"{k_name} and {v_name} must have the same dtype, got {k.dtype} and {v.dtype}")


def _check_heads(heads, kv_heads, k_name):
    if heads < 1 or kv_heads < 1 or heads % kv_heads != 0:
        raise ValueError(f"{k_name}'s kv_heads ({kv_heads}) must divide q's heads ({heads}), both >= 1")


def _empty(kind, shape):
    """A new float32 result of the given kind, and its NumPy view."""
    if kind == "torch":
        t = _torch().empty(tuple(shape), dtype=_torch().float32)
        return t, t.numpy()
    a = np.empty(tuple(shape), dtype=np.float32)
    return a, a


def _ragged_call(kind, qa, return_lse, call):
    return_lse = _bool_arg(return_lse, "return_lse")
    out, out_a = _empty(kind, qa.shape)
    lse, lse_a = _empty(kind, qa.shape[:2]) if return_lse else (None, None)
    call(out_a, lse_a)
    return (out, lse) if return_lse else out


def _int_arg(x, name):
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {x!r}")
    try:
        return operator.index(x)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {_kind_name(x)}") from None


def _real_arg(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_kind_name(x)}")
    return float(x)


def _bool_arg(x, name):
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_kind_name(x)}")
    return bool(x)


def _int_array(x, name, dtype):
    """Integers (sequence, array or CPU tensor) as a contiguous NumPy array of ``dtype`` (a small copy)."""
    if _is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name} must be on the CPU, got device {x.device}")
        x = x.detach().numpy()
    a = np.asarray(x)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"{name} holds values outside {np.dtype(dtype).name}")
    return np.ascontiguousarray(a, dtype=dtype)


def _seq_arrays(q_offsets, kv_lens, total_q):
    offsets = _int_array(q_offsets, "q_offsets", np.int64)
    lens = _int_array(kv_lens, "kv_lens", np.int64)
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"q_offsets must be 1-dimensional with num_seqs + 1 >= 1 values, got shape {offsets.shape}")
    if lens.ndim != 1 or lens.shape[0] != offsets.shape[0] - 1:
        raise ValueError(f"kv_lens must be 1-dimensional with num_seqs = {offsets.shape[0] - 1} values, "
                         f"got shape {lens.shape}")
    if offsets[0] != 0 or offsets[-1] != total_q:
        raise ValueError(f"q_offsets must start at 0 and end at q.shape[0] = {total_q}, "
                         f"got {offsets[0]} .. {offsets[-1]}")
    if (lens < 0).any():
        raise ValueError("kv_lens must be >= 0")
    return offsets, lens


def _slopes_array(x, heads):
    if _is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"slopes must be on the CPU, got device {x.device}")
        x = x.detach().to(_torch().float32).numpy()
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"slopes must be None or {heads} real numbers, got {_kind_name(x)}") from None
    if a.shape != (heads,):
        raise ValueError(f"slopes must have shape [heads] = ({heads},), got {a.shape}")
    return np.ascontiguousarray(a)


def _options(heads, causal, slopes, scale, window, q_pos0, kv_pos0, num_threads, skip_tolerance, key_norms,
             norms_shape, norms_layout):
    """The C++ AttentionOptions, field by field, with Python's ``None`` defaults made explicit."""
    o = _core.Options()
    o.causal = _bool_arg(causal, "causal")
    if slopes is not None:
        o.slopes = _slopes_array(slopes, heads)
    if scale is not None:
        scale = _real_arg(scale, "scale")
        if not math.isfinite(scale) or scale == 0.0:
            # The C++ library reads 0 as "the default"; here None says that, so 0 is refused, not reinterpreted.
            raise ValueError(f"scale must be finite and nonzero (None: 1/sqrt(head_dim)), got {scale}")
        o.scale = scale
    o.window = _int_arg(window, "window")
    if o.window < 0:
        raise ValueError(f"window must be >= 0 (0: unlimited), got {o.window}")
    if q_pos0 is not None:
        o.q_pos0 = _int_arg(q_pos0, "q_pos0")
        if o.q_pos0 < -1:
            raise ValueError(f"q_pos0 must be >= 0 (None or -1: the last q_len positions), got {o.q_pos0}")
    o.kv_pos0 = _int_arg(kv_pos0, "kv_pos0")
    if o.kv_pos0 < 0:
        raise ValueError(f"kv_pos0 must be >= 0, got {o.kv_pos0}")
    o.num_threads = _int_arg(num_threads, "num_threads")
    if o.num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0: all hardware threads), got {o.num_threads}")
    if skip_tolerance is not None:
        skip_tolerance = _real_arg(skip_tolerance, "skip_tolerance")
        if not (math.isfinite(skip_tolerance) and skip_tolerance >= 0):
            raise ValueError(f"skip_tolerance must be finite and >= 0 (0 disables skipping), got {skip_tolerance}")
        o.skip_tolerance = skip_tolerance
    if key_norms is not None:
        norms, _ = _view(key_norms, "key_norms", len(norms_shape), norms_layout, _Q_DTYPES)
        if tuple(norms.shape) != tuple(norms_shape):
            raise ValueError(f"key_norms must have shape {norms_layout} = {tuple(norms_shape)}, "
                             f"got {tuple(norms.shape)}")
        o.key_norms = norms
    return o


def __getattr__(name):
    # `alibi_attention.torch` without importing torch for NumPy-only users.
    if name == "torch":
        return importlib.import_module(__name__ + ".torch")
    raise AttributeError(f"module 'alibi_attention' has no attribute {name!r}")
