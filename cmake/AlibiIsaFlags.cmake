# Compile flags for each ISA the project builds its own tests and benchmarks for. Never applied to the
# alibi::alibi interface target: consumers pick their own flags.
set(ALIBI_FLAGS_scalar "")
# avx2 includes F16C (every AVX2 CPU has it): float16 K/V convert in one instruction.
set(ALIBI_FLAGS_avx2 -mavx2 -mfma -mf16c)
set(ALIBI_FLAGS_avx512 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma)
set(ALIBI_ISAS scalar avx2 avx512)
