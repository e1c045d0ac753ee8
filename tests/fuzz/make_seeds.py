#!/usr/bin/env python3
"""Writes the seed corpus of attention_fuzz.cpp (tests/fuzz/corpus/): a few small inputs, each one a
documented scenario, so a fresh fuzz run starts from every feature instead of discovering them.

The decoder reads every field with FuzzedDataProvider's integral readers, which take bytes from the END of
the input (the first byte read is the most significant of a multi-byte value). A seed is therefore the
reversed sequence of the bytes run_one() reads, in the order it reads them; this script mirrors that order.
Run it again after changing the decoder: `python3 tests/fuzz/make_seeds.py`.
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

# Flag bits of the first field (uint16). Bits 9-10 choose the K/V element type (0: float).
AVX2, MISALIGNED, RAW_VALUES, CUSTOM_SLOPES = 0x1, 0x2, 0x1C, 0x20
KEY_NORMS_EXACT, KEY_NORMS_CORRUPTED = 0x40, 0x80
KV_BFLOAT16, KV_FLOAT16 = 0x200, 0x400
# Bits 11-13: kv_pos0 (4: 1 + q_len % 7, 5: 37, 6: 2^40, 7: INT64_MAX - kv_len); bit 15: ask for lse.
KV_POS0_37, KV_POS0_2_POW_40, KV_POS0_LARGEST, LSE = 5 << 11, 6 << 11, 7 << 11, 0x8000

# Selector bytes (see the tables in attention_fuzz.cpp).
SCALE_DEFAULT, SCALE_1E30, SCALE_NEG_1 = 0, 96 + 8, 96 + 4
SKIP_DEFAULT, SKIP_ZERO, SKIP_0_1 = 0, 131, 135  # table[t % 10] for t >= 128
WINDOW_NONE = 0
QPOS0_DEFAULT = 0
# Violations (enum Violation); the second byte read decides whether the violation applies at all.
VIOLATION = {"none": 0, "out_overlaps_k": 20, "product_wraps_to_zero": 24, "slope_non_finite": 34,
             "lse_overlaps_out": 38}
# Special values (special_value table).
NAN, INF, NEG_INF, NEG_ZERO, SUBNORMAL, F16_LARGEST = 0, 1, 2, 3, 7, 12
# Magnitude selectors (160 + index into the exponent table): 2^-20 makes float16 subnormals.
EXPONENT_MINUS_20 = 160 + 6


def seed(flags, batch, q_len, kv_len, kv_heads, group, head_dim, bidirectional=False, window=WINDOW_NONE,
         q_pos0=QPOS0_DEFAULT, threads=1, scale=SCALE_DEFAULT, skip=SKIP_DEFAULT, slopes=(), violation="none",
         detail=0, magnitudes=(0, 0, 0), specials=(), rng=None):
    read = []  # bytes in the order the decoder reads them
    read += [flags >> 8, flags & 0xFF]
    read += [batch, q_len, kv_len, kv_heads - 1]
    if 6 // kv_heads > 1:
        read.append(group - 1)
    read += [head_dim - 1, 1 if bidirectional else 0, window, q_pos0, threads, scale, skip]
    heads = kv_heads * group
    if flags & CUSTOM_SLOPES:
        assert len(slopes) == heads
        read += list(slopes)
    read += [VIOLATION[violation], 1 if violation != "none" else 0, detail]
    read += list(magnitudes)
    read.append(len(specials))
    for tensor, index, value in specials:
        read += [tensor, index >> 8, index & 0xFF, value]
    q_count = batch * q_len * heads * head_dim
    kv_count = batch * kv_len * kv_heads * head_dim
    if violation == "product_wraps_to_zero":
        q_count = kv_count = 16  # stand-in tensors
    raw = flags & RAW_VALUES == RAW_VALUES
    kv16 = flags & (KV_BFLOAT16 | KV_FLOAT16) in (KV_BFLOAT16, KV_FLOAT16)
    q_bytes = 4 if raw else 1
    kv_bytes = (2 if kv16 else 4) if raw else 1
    read += [rng.randrange(256) for _ in range(q_bytes * q_count + kv_bytes * 2 * kv_count)]
    return bytes(reversed(read))


def main():
    rng = random.Random(20240605)
    seeds = {
        "causal_mha": seed(0, 1, 7, 7, 2, 1, 8, rng=rng),
        "gqa_bidirectional_window_avx2": seed(AVX2, 2, 5, 17, 2, 3, 17, bidirectional=True, window=139,
                                              q_pos0=183, rng=rng),  # window 4, q_pos0 3
        "decode_key_norms_two_threads": seed(AVX2 | KEY_NORMS_EXACT, 1, 1, 40, 1, 4, 24, threads=2, rng=rng),
        "nan_inf_specials_misaligned": seed(MISALIGNED, 1, 6, 9, 1, 2, 5, rng=rng,
                                            specials=[(1, 7, NAN), (2, 30, INF), (0, 3, NEG_ZERO), (1, 2, SUBNORMAL)]),
        "huge_scale": seed(AVX2, 1, 4, 12, 2, 1, 6, scale=SCALE_1E30, rng=rng),
        "huge_keys": seed(0, 1, 5, 5, 1, 1, 16, magnitudes=(0, 160 + 9, 0), rng=rng),  # keys ~2^60
        "custom_slopes_no_skipping": seed(CUSTOM_SLOPES | KEY_NORMS_CORRUPTED, 1, 9, 9, 1, 3, 4, skip=SKIP_ZERO,
                                          slopes=(2, 3, 4), rng=rng),
        "invalid_out_overlaps_k": seed(0, 1, 3, 4, 1, 1, 2, violation="out_overlaps_k", detail=1, rng=rng),
        "invalid_product_wraps_to_zero": seed(AVX2, 1, 1, 1, 1, 1, 1, violation="product_wraps_to_zero", rng=rng),
        "raw_values_coarse_skip": seed(RAW_VALUES | AVX2, 1, 3, 3, 1, 1, 3, skip=SKIP_0_1, scale=SCALE_NEG_1, rng=rng),
        # 16-bit K/V (issue 11); new seeds go last so the rng gives the earlier ones the same bytes.
        "bfloat16_gqa_bidirectional_window_avx2": seed(AVX2 | KV_BFLOAT16, 2, 5, 17, 2, 3, 17, bidirectional=True,
                                                       window=139, q_pos0=183, rng=rng),
        "float16_decode_key_norms_two_threads": seed(AVX2 | KV_FLOAT16 | KEY_NORMS_EXACT, 1, 1, 40, 1, 4, 24,
                                                     threads=2, rng=rng),
        "float16_raw_patterns": seed(RAW_VALUES | KV_FLOAT16, 1, 4, 6, 1, 2, 5, rng=rng),
        "bfloat16_raw_patterns_avx2": seed(RAW_VALUES | AVX2 | KV_BFLOAT16, 1, 3, 9, 1, 1, 8, rng=rng),
        "bfloat16_nan_inf_specials_misaligned": seed(MISALIGNED | KV_BFLOAT16, 1, 6, 9, 1, 2, 5, rng=rng,
                                                     specials=[(1, 7, NAN), (2, 30, INF), (2, 3, NEG_INF)]),
        "float16_subnormal_keys_and_values_avx2": seed(AVX2 | KV_FLOAT16, 1, 6, 11, 1, 2, 9, rng=rng,
                                                       magnitudes=(0, EXPONENT_MINUS_20, EXPONENT_MINUS_20),
                                                       specials=[(2, 5, F16_LARGEST)]),
        # q_count 6, kv_count 8: out starts 2 floats (8 bytes) into the 16 bytes of float16 k: rejected...
        "invalid_out_overlaps_float16_k": seed(KV_FLOAT16, 1, 3, 4, 1, 1, 2, violation="out_overlaps_k", detail=1,
                                               rng=rng),
        # ...5 floats (20 bytes) in, out is past them: a valid call (with float K/V it would overlap).
        "out_after_float16_k_in_one_block": seed(KV_FLOAT16, 1, 3, 4, 1, 1, 2, violation="out_overlaps_k", detail=4,
                                                 rng=rng),
        # Partial attention (issue 12): a shard at 37 with queries at 50 (q_pos0 byte 140: 140 % 90), the last
        # positions of the int64 range, a shard 2^40 past position 0 with the default q_pos0, and lse sharing
        # out's block.
        "lse_shard_explicit_q_pos0_avx2": seed(AVX2 | LSE | KV_POS0_37, 1, 6, 20, 2, 2, 9, q_pos0=140, rng=rng),
        "lse_shard_at_int64_end_bidirectional": seed(LSE | KV_POS0_LARGEST, 1, 4, 9, 1, 3, 5, bidirectional=True,
                                                     q_pos0=200, rng=rng),
        "lse_bfloat16_far_shard_avx2": seed(AVX2 | LSE | KV_BFLOAT16 | KV_POS0_2_POW_40, 1, 3, 30, 1, 2, 16, rng=rng),
        "invalid_lse_overlaps_out": seed(LSE, 1, 3, 4, 1, 2, 2, violation="lse_overlaps_out", detail=3, rng=rng),
    }
    corpus = os.path.join(HERE, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {corpus}")


if __name__ == "__main__":
    main()
