"""Ragged (varlen) and paged calls, and merge_partials, against dense calls and the oracle."""

import numpy as np
import pytest
import torch

import alibi_attention as aa
from conftest import make_qkv
from oracle import reference


def ragged(rng, q_lens, kv_lens, heads=4, kv_heads=2, dim=8):
    q = rng.standard_normal((sum(q_lens), heads, dim)).astype(np.float32)
    k = rng.standard_normal((sum(kv_lens), kv_heads, dim)).astype(np.float32)
    v = rng.standard_normal((sum(kv_lens), kv_heads, dim)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int64)
    return q, k, v, offsets


Q_LENS, KV_LENS = [5, 1, 0, 9, 3], [5, 17, 4, 9, 30]


@pytest.mark.parametrize("options", [dict(), dict(causal=False, window=6), dict(scale=0.5, slopes=[.1, .2, .3, .4])])
def test_varlen_is_the_dense_call_per_sequence(rng, options):
    q, k, v, offsets = ragged(rng, Q_LENS, KV_LENS)
    out, lse = aa.attention_varlen(q, k, v, offsets, KV_LENS, return_lse=True, **options)
    assert out.shape == q.shape and lse.shape == q.shape[:2]
    kv_start = np.concatenate([[0], np.cumsum(KV_LENS)])
    for s in range(len(Q_LENS)):
        qs = q[offsets[s]:offsets[s + 1]][None]
        ks, vs = (x[kv_start[s]:kv_start[s + 1]][None] for x in (k, v))
        dense, dense_lse = aa.attention(np.ascontiguousarray(qs), np.ascontiguousarray(ks), np.ascontiguousarray(vs),
                                        return_lse=True, **options)
        np.testing.assert_array_equal(out[offsets[s]:offsets[s + 1]], dense[0])
        np.testing.assert_array_equal(lse[offsets[s]:offsets[s + 1]], dense_lse[0])
        if qs.shape[1]:
            ref, _ = reference(torch.from_numpy(qs), torch.from_numpy(ks), torch.from_numpy(vs), **options)
            np.testing.assert_allclose(dense[0], ref[0].numpy(), atol=2e-5)


@pytest.mark.parametrize("kv_dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("page_size", [1, 4, 16])
def test_paged_equals_varlen(rng, kv_dtype, page_size):
    q, k, v, offsets = ragged(rng, Q_LENS, KV_LENS)
    if kv_dtype == "float16":
        k, v = k.astype(np.float16), v.astype(np.float16)
    elif kv_dtype == "bfloat16":
        k, v = aa.to_bfloat16(k), aa.to_bfloat16(v)
    pages_per_seq = [-(-n // page_size) for n in KV_LENS]
    num_pages = sum(pages_per_seq) + 3
    order = rng.permutation(num_pages)  # pages scattered through the pool
    k_pages = np.zeros((num_pages, page_size) + k.shape[1:], k.dtype)
    v_pages = np.zeros_like(k_pages)
    table = np.full((len(KV_LENS), max(pages_per_seq)), -7, np.int32)  # entries past the end: never read
    used, start = 0, 0
    for s, n in enumerate(KV_LENS):
        for j in range(n):
            page = order[used + j // page_size]
            table[s, j // page_size] = page
            k_pages[page, j % page_size] = k[start + j]
            v_pages[page, j % page_size] = v[start + j]
        used += pages_per_seq[s]
        start += n
    out, lse = aa.attention_paged(q, k_pages, v_pages, table, offsets, KV_LENS, return_lse=True)
    want, want_lse = aa.attention_varlen(q, k, v, offsets, KV_LENS, return_lse=True)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(lse, want_lse)
    # Torch tensors in, tensors out.
    tk = (lambda x: torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)) if kv_dtype == "bfloat16" else torch.from_numpy
    out_t = aa.attention_paged(torch.from_numpy(q), tk(k_pages), tk(v_pages), torch.from_numpy(table),
                               torch.from_numpy(offsets), torch.tensor(KV_LENS))
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), want)


def test_paged_rejects_a_page_outside_the_pool(rng):
    q, k, v, offsets = ragged(rng, [2], [5])
    k_pages = np.zeros((2, 4, 2, 8), np.float32)
    with pytest.raises(ValueError, match="block_table"):
        aa.attention_paged(q, k_pages, k_pages, np.array([[0, 5]], np.int32), offsets, [5])
    with pytest.raises(ValueError, match="kv_lens"):
        aa.attention_varlen(q, k, v, offsets, [4])


@pytest.mark.parametrize("causal", [True, False])
def test_merge_partials_of_two_shards_is_the_whole(rng, causal):
    q, k, v = make_qkv(rng, 2, 10, 40, 4, 2, 8)
    q_pos0 = 30
    whole, whole_lse = aa.attention(q, k, v, causal=causal, q_pos0=q_pos0, return_lse=True)
    split = 17
    a, lse_a = aa.attention(q, np.ascontiguousarray(k[:, :split]), np.ascontiguousarray(v[:, :split]),
                            causal=causal, q_pos0=q_pos0, kv_pos0=0, return_lse=True)
    b, lse_b = aa.attention(q, np.ascontiguousarray(k[:, split:]), np.ascontiguousarray(v[:, split:]),
                            causal=causal, q_pos0=q_pos0, kv_pos0=split, return_lse=True)
    out, lse = aa.merge_partials(a, lse_a, b, lse_b)
    np.testing.assert_allclose(out, whole, atol=2e-6)
    np.testing.assert_allclose(lse, whole_lse, rtol=1e-6, atol=1e-6)
    # Order does not matter; a side that saw no key is left out; tensors give tensors.
    out2, _ = aa.merge_partials(b, lse_b, a, lse_a)
    np.testing.assert_allclose(out2, out, atol=1e-6)
    empty_lse = np.full_like(lse_a, -np.inf)
    same, same_lse = aa.merge_partials(a, lse_a, np.zeros_like(a), empty_lse)
    np.testing.assert_array_equal(same, a)
    np.testing.assert_array_equal(same_lse, lse_a)
    out_t, lse_t = aa.merge_partials(*(torch.from_numpy(x) for x in (a, lse_a, b, lse_b)))
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), out)


def test_merge_partials_shapes_are_checked(rng):
    a = np.zeros((3, 8), np.float32)
    with pytest.raises(ValueError, match="lse_a"):
        aa.merge_partials(a, np.zeros(4, np.float32), a, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="out_b"):
        aa.merge_partials(a, np.zeros(3, np.float32), np.zeros((3, 4), np.float32), np.zeros(3, np.float32))
