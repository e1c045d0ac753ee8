// The translation unit .ci/reliability.sh runs clang-tidy on (with the repository's .clang-tidy): every
// public header, and every template instantiated, so the checks see the kernel bodies. Run once without
// ISA flags (scalar) and once with -mavx2 -mfma (scalar and AVX2); ALIBI_TIDY_EIGEN adds alibi/eigen.hpp.
// Never executed, only compiled.
#include "alibi/alibi.hpp"
#include "alibi/convert.hpp"
#if defined(ALIBI_TIDY_EIGEN)
#include "alibi/eigen.hpp"
#endif

#include <vector>

namespace {

template <class Isa>
void instantiate_for(const float* q, const float* k, const float* v, float* out) {
  alibi::AttentionShape shape;
  shape.q_len = shape.kv_len = 1;
  shape.num_heads = shape.num_kv_heads = shape.head_dim = 1;
  alibi::attention<Isa>(q, k, v, out, shape);
  // 16-bit K/V: the same kernel over another element type (streaming decode and packed paths).
  const alibi::bfloat16 k_bf16[1] = {alibi::to_bfloat16(k[0])};
  const alibi::float16 v_f16[1] = {alibi::to_float16(v[0])};
  const alibi::float16 k_f16[1] = {alibi::to_float16(k[0])};
  const alibi::bfloat16 v_bf16[1] = {alibi::to_bfloat16(v[0])};
  alibi::attention<Isa>(q, k_bf16, v_bf16, out, shape);
  alibi::attention<Isa>(q, k_f16, v_f16, out, shape);
#if defined(ALIBI_TIDY_EIGEN)
  const alibi::RowMatrixXf m = alibi::RowMatrixXf::Ones(2, 3);
  alibi::RowMatrixXf result(2, 3);
  alibi::attention<Isa>(m, m, m, result, 0.5f);
  result = alibi::attention<Isa>(m, m, m, 0.5f);
#endif
}

}  // namespace

void alibi_tidy_entry(const float* q, const float* k, const float* v, float* out, float* norms) {
  instantiate_for<alibi::isa::scalar>(q, k, v, out);
  if constexpr (alibi::isa::compiled<alibi::isa::avx2>) instantiate_for<alibi::isa::avx2>(q, k, v, out);
  if constexpr (alibi::isa::compiled<alibi::isa::avx512>) instantiate_for<alibi::isa::avx512>(q, k, v, out);
  alibi::AttentionShape shape;
  shape.kv_len = shape.num_kv_heads = shape.head_dim = 1;
  alibi::key_norms(k, shape, norms);
  const alibi::bfloat16 key_bf16[1] = {alibi::to_bfloat16(k[0])};
  alibi::key_norms(key_bf16, shape, norms);
  const std::vector<float> slopes = alibi::slopes(12);
  alibi::causal_bias(slopes[0], 3, 4, out);
#if defined(ALIBI_TIDY_EIGEN)
  const Eigen::MatrixXf bias = alibi::causal_bias(0.5f, 3, 4, 0);
  static_cast<void>(bias);
#endif
}
