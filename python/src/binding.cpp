// The alibi_attention._core extension: thin pybind11 wrappers around alibi::dispatch, so one build runs the
// widest kernel of whatever CPU imports it. Compiled without ISA flags (alibi/dispatch.hpp's requirement).
//
// The Python layer (alibi_attention/__init__.py) turns torch tensors into NumPy views, applies defaults and
// gives friendly errors; every function here still checks dtype, contiguity and sizes itself, because a
// wrong pointer or extent would otherwise be a read outside a buffer rather than an exception.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <alibi/convert.hpp>
#include <alibi/dispatch.hpp>
#include <alibi/slopes.hpp>
#include <alibi/version.hpp>

namespace py = pybind11;

namespace {

// Element type of K and V, as the Python layer names it.
enum class KvKind : int { float32 = 0, bfloat16 = 1, float16 = 2 };

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw std::invalid_argument(name + " " + what);
}

// dtype check: `kind` 'f' or 'u'/'i' and item size, native byte order, C-contiguous.
void check_array(const py::array& a, const std::string& name, char kind, py::ssize_t itemsize) {
  const py::dtype dt = a.dtype();
  if (dt.kind() != kind || dt.itemsize() != itemsize || (dt.byteorder() != '=' && dt.byteorder() != '|'))
    throw py::type_error(name + " has the wrong dtype");
  if (!(a.flags() & py::array::c_style)) bad(name, "must be C-contiguous");
}

void check_float(const py::array& a, const std::string& name) {
  check_array(a, name, 'f', 4);
}

void check_writable(const py::array& a, const std::string& name) {
  if (!a.writeable()) bad(name, "must be writable");
}

void check_kv(const py::array& a, const std::string& name, KvKind kind) {
  switch (kind) {
    case KvKind::float32:
      return check_array(a, name, 'f', 4);
    case KvKind::bfloat16:
      return check_array(a, name, 'u', 2);
    case KvKind::float16:
      return check_array(a, name, 'f', 2);
  }
  bad("kv_kind", "is unknown");
}

// body(KV{}) for the element type `kind` names (float, alibi::bfloat16 or alibi::float16).
template <class Body>
void with_kv_type(KvKind kind, Body&& body) {
  switch (kind) {
    case KvKind::float32:
      return body(float{});
    case KvKind::bfloat16:
      return body(alibi::bfloat16{});
    case KvKind::float16:
      return body(alibi::float16{});
  }
  bad("kv_kind", "is unknown");
}

void check_dims(const py::array& a, const std::string& name, const std::vector<py::ssize_t>& dims) {
  bool same = a.ndim() == static_cast<py::ssize_t>(dims.size());
  for (std::size_t i = 0; same && i < dims.size(); ++i) same = a.shape(static_cast<py::ssize_t>(i)) == dims[i];
  if (!same) bad(name, "has the wrong shape");
}

int to_int(py::ssize_t value, const std::string& name) {
  if (value > INT32_MAX) bad(name, "is too large");
  return static_cast<int>(value);
}

// An optional output: None or a float32 array (checked by the caller's shape rules).
float* optional_output(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<float*>(py::cast<py::array>(a).mutable_data());
}

// AttentionOptions field by field, from the keywords the Python layer passes on (defaults already applied:
// scale 0 = 1/sqrt(head_dim), q_pos0 -1 = the last q_len key positions, window 0 = unlimited).
struct Options {
  bool causal = true;
  float scale = 0.0f;
  py::object slopes = py::none();  // None or float32 [num_heads]
  std::int64_t window = 0;
  std::int64_t q_pos0 = -1;
  std::int64_t kv_pos0 = 0;
  int num_threads = 0;
  float skip_tolerance = 0x1p-24f;
  py::object key_norms = py::none();  // None or float32, shaped by the caller

  alibi::AttentionOptions to_alibi(py::ssize_t num_heads) const {
    alibi::AttentionOptions o;
    o.mask = causal ? alibi::Mask::causal : alibi::Mask::bidirectional;
    o.scale = scale;
    if (!slopes.is_none()) {
      const auto s = py::cast<py::array>(slopes);
      check_float(s, "slopes");
      check_dims(s, "slopes", {num_heads});
      o.slopes = static_cast<const float*>(s.data());
    }
    o.window = window;
    o.q_pos0 = q_pos0;
    o.kv_pos0 = kv_pos0;
    o.num_threads = num_threads;
    o.skip_tolerance = skip_tolerance;
    if (!key_norms.is_none()) {
      const auto n = py::cast<py::array>(key_norms);
      check_float(n, "key_norms");
      o.key_norms = static_cast<const float*>(n.data());
    }
    return o;
  }
};

// q, out: [batch, q_len, heads, dim]; k, v: [batch, kv_len, kv_heads, dim]; lse: None or [batch, q_len, heads].
void attention(const py::array& q, const py::array& k, const py::array& v, py::array out, const py::object& lse,
               int kv_kind, const Options& options) {
  const auto kind = static_cast<KvKind>(kv_kind);
  check_float(q, "q");
  check_kv(k, "k", kind);
  check_kv(v, "v", kind);
  check_float(out, "out");
  check_writable(out, "out");
  if (q.ndim() != 4) bad("q", "must have 4 dimensions [batch, seq, heads, head_dim]");
  if (k.ndim() != 4) bad("k", "must have 4 dimensions [batch, seq, kv_heads, head_dim]");
  check_dims(k, "k", {q.shape(0), k.shape(1), k.shape(2), q.shape(3)});
  check_dims(v, "v", {k.shape(0), k.shape(1), k.shape(2), k.shape(3)});
  check_dims(out, "out", {q.shape(0), q.shape(1), q.shape(2), q.shape(3)});
  alibi::AttentionShape shape;
  shape.batch = to_int(q.shape(0), "batch");
  shape.q_len = q.shape(1);
  shape.kv_len = k.shape(1);
  shape.num_heads = to_int(q.shape(2), "heads");
  shape.num_kv_heads = to_int(k.shape(2), "kv_heads");
  shape.head_dim = to_int(q.shape(3), "head_dim");
  alibi::AttentionOptions o = options.to_alibi(q.shape(2));
  if (!options.key_norms.is_none())
    check_dims(py::cast<py::array>(options.key_norms), "key_norms", {k.shape(0), k.shape(1), k.shape(2)});
  if (!lse.is_none()) {
    const auto l = py::cast<py::array>(lse);
    check_float(l, "lse");
    check_writable(l, "lse");
    check_dims(l, "lse", {q.shape(0), q.shape(1), q.shape(2)});
    o.lse = optional_output(lse);
  }
  with_kv_type(kind, [&](auto element) {
    using KV = decltype(element);
    const auto* qp = static_cast<const float*>(q.data());
    const auto* kp = static_cast<const KV*>(k.data());
    const auto* vp = static_cast<const KV*>(v.data());
    auto* op = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release released;
    alibi::dispatch::attention(qp, kp, vp, op, shape, o);
  });
}

// Gradients of attention (fp32 K/V); each of dq, dk, dv, dslopes is None (not computed) or an output.
void attention_backward(const py::array& q, const py::array& k, const py::array& v, const py::array& out,
                        const py::array& lse, const py::array& dout, const py::object& dq, const py::object& dk,
                        const py::object& dv, const py::object& dslopes, const Options& options) {
  check_float(q, "q");
  check_float(k, "k");
  check_float(v, "v");
  check_float(out, "out");
  check_float(lse, "lse");
  check_float(dout, "dout");
  if (q.ndim() != 4) bad("q", "must have 4 dimensions [batch, seq, heads, head_dim]");
  if (k.ndim() != 4) bad("k", "must have 4 dimensions [batch, seq, kv_heads, head_dim]");
  const std::vector<py::ssize_t> q_dims{q.shape(0), q.shape(1), q.shape(2), q.shape(3)};
  const std::vector<py::ssize_t> k_dims{q.shape(0), k.shape(1), k.shape(2), q.shape(3)};
  check_dims(k, "k", k_dims);
  check_dims(v, "v", k_dims);
  check_dims(out, "out", q_dims);
  check_dims(dout, "dout", q_dims);
  check_dims(lse, "lse", {q.shape(0), q.shape(1), q.shape(2)});
  const auto grad = [](const py::object& g, const char* name, const std::vector<py::ssize_t>& dims) -> float* {
    if (g.is_none()) return nullptr;
    const auto a = py::cast<py::array>(g);
    check_float(a, name);
    check_writable(a, name);
    check_dims(a, name, dims);
    return optional_output(g);
  };
  alibi::AttentionGrads grads;
  grads.dq = grad(dq, "dq", q_dims);
  grads.dk = grad(dk, "dk", k_dims);
  grads.dv = grad(dv, "dv", k_dims);
  grads.dslopes = grad(dslopes, "dslopes", {q.shape(2)});
  alibi::AttentionShape shape;
  shape.batch = to_int(q.shape(0), "batch");
  shape.q_len = q.shape(1);
  shape.kv_len = k.shape(1);
  shape.num_heads = to_int(q.shape(2), "heads");
  shape.num_kv_heads = to_int(k.shape(2), "kv_heads");
  shape.head_dim = to_int(q.shape(3), "head_dim");
  const alibi::AttentionOptions o = options.to_alibi(q.shape(2));
  const auto* qp = static_cast<const float*>(q.data());
  const auto* kp = static_cast<const float*>(k.data());
  const auto* vp = static_cast<const float*>(v.data());
  const auto* op = static_cast<const float*>(out.data());
  const auto* lp = static_cast<const float*>(lse.data());
  const auto* dp = static_cast<const float*>(dout.data());
  py::gil_scoped_release released;
  alibi::dispatch::attention_backward(qp, kp, vp, op, lp, dp, grads, shape, o);
}

// The ragged-batch description shared by the varlen and paged calls; checks that the offsets and lengths
// stay inside q (and, for varlen, k) before the library reads through them.
alibi::SeqBatch seq_batch(const py::array& q, const py::array& q_offsets, const py::array& kv_lens,
                          py::ssize_t kv_heads) {
  check_array(q_offsets, "q_offsets", 'i', 8);
  check_array(kv_lens, "kv_lens", 'i', 8);
  if (q_offsets.ndim() != 1 || q_offsets.shape(0) < 1) bad("q_offsets", "must be 1-dimensional, num_seqs + 1 long");
  const py::ssize_t num_seqs = q_offsets.shape(0) - 1;
  check_dims(kv_lens, "kv_lens", {num_seqs});
  const auto* offsets = static_cast<const std::int64_t*>(q_offsets.data());
  if (offsets[num_seqs] != q.shape(0)) bad("q_offsets", "must end at q.shape[0] (the total query rows)");
  alibi::SeqBatch batch;
  batch.num_seqs = num_seqs;
  batch.q_offsets = offsets;
  batch.kv_lens = static_cast<const std::int64_t*>(kv_lens.data());
  batch.num_heads = to_int(q.shape(1), "heads");
  batch.num_kv_heads = to_int(kv_heads, "kv_heads");
  batch.head_dim = to_int(q.shape(2), "head_dim");
  return batch;
}

void check_ragged_outputs(const py::array& q, py::array& out, const py::object& lse, alibi::AttentionOptions& o) {
  check_float(out, "out");
  check_writable(out, "out");
  check_dims(out, "out", {q.shape(0), q.shape(1), q.shape(2)});
  if (!lse.is_none()) {
    const auto l = py::cast<py::array>(lse);
    check_float(l, "lse");
    check_writable(l, "lse");
    check_dims(l, "lse", {q.shape(0), q.shape(1)});
    o.lse = optional_output(lse);
  }
}

// q, out: [total_q, heads, dim]; k, v: [total_kv, kv_heads, dim] packed by sequence.
void attention_varlen(const py::array& q, const py::array& k, const py::array& v, py::array out, const py::object& lse,
                      const py::array& q_offsets, const py::array& kv_lens, int kv_kind, const Options& options) {
  const auto kind = static_cast<KvKind>(kv_kind);
  check_float(q, "q");
  check_kv(k, "k", kind);
  check_kv(v, "v", kind);
  if (q.ndim() != 3) bad("q", "must have 3 dimensions [total_q, heads, head_dim]");
  if (k.ndim() != 3) bad("k", "must have 3 dimensions [total_kv, kv_heads, head_dim]");
  check_dims(k, "k", {k.shape(0), k.shape(1), q.shape(2)});
  check_dims(v, "v", {k.shape(0), k.shape(1), k.shape(2)});
  const alibi::SeqBatch batch = seq_batch(q, q_offsets, kv_lens, k.shape(1));
  std::int64_t total_kv = 0;
  for (std::int64_t s = 0; s < batch.num_seqs; ++s) {
    if (batch.kv_lens[s] < 0 || batch.kv_lens[s] > k.shape(0) - total_kv)
      bad("kv_lens", "must be >= 0 and sum to k.shape[0] (the total key rows)");
    total_kv += batch.kv_lens[s];
  }
  if (total_kv != k.shape(0)) bad("kv_lens", "must sum to k.shape[0] (the total key rows)");
  alibi::AttentionOptions o = options.to_alibi(q.shape(1));
  if (!options.key_norms.is_none())
    check_dims(py::cast<py::array>(options.key_norms), "key_norms", {k.shape(0), k.shape(1)});
  check_ragged_outputs(q, out, lse, o);
  with_kv_type(kind, [&](auto element) {
    using KV = decltype(element);
    const auto* qp = static_cast<const float*>(q.data());
    const auto* kp = static_cast<const KV*>(k.data());
    const auto* vp = static_cast<const KV*>(v.data());
    auto* op = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release released;
    alibi::dispatch::attention_varlen(qp, kp, vp, op, batch, o);
  });
}

// k_pages, v_pages: [num_pages, page_size, kv_heads, dim]; block_table: int32 [num_seqs, max_pages_per_seq].
void attention_paged(const py::array& q, const py::array& k_pages, const py::array& v_pages,
                     const py::array& block_table, py::array out, const py::object& lse, const py::array& q_offsets,
                     const py::array& kv_lens, int kv_kind, const Options& options) {
  const auto kind = static_cast<KvKind>(kv_kind);
  check_float(q, "q");
  check_kv(k_pages, "k_pages", kind);
  check_kv(v_pages, "v_pages", kind);
  check_array(block_table, "block_table", 'i', 4);
  if (q.ndim() != 3) bad("q", "must have 3 dimensions [total_q, heads, head_dim]");
  if (k_pages.ndim() != 4) bad("k_pages", "must have 4 dimensions [num_pages, page_size, kv_heads, head_dim]");
  check_dims(k_pages, "k_pages", {k_pages.shape(0), k_pages.shape(1), k_pages.shape(2), q.shape(2)});
  check_dims(v_pages, "v_pages", {k_pages.shape(0), k_pages.shape(1), k_pages.shape(2), k_pages.shape(3)});
  const alibi::SeqBatch batch = seq_batch(q, q_offsets, kv_lens, k_pages.shape(2));
  if (block_table.ndim() != 2 || block_table.shape(0) != batch.num_seqs)
    bad("block_table", "must have shape [num_seqs, max_pages_per_seq]");
  alibi::AttentionOptions o = options.to_alibi(q.shape(1));
  if (!options.key_norms.is_none())
    check_dims(py::cast<py::array>(options.key_norms), "key_norms",
               {k_pages.shape(0), k_pages.shape(1), k_pages.shape(2)});
  check_ragged_outputs(q, out, lse, o);
  with_kv_type(kind, [&](auto element) {
    using KV = decltype(element);
    alibi::PagedKV<KV> cache;
    cache.k_pages = static_cast<const KV*>(k_pages.data());
    cache.v_pages = static_cast<const KV*>(v_pages.data());
    cache.num_pages = k_pages.shape(0);
    cache.page_size = to_int(k_pages.shape(1), "page_size");
    cache.block_table = static_cast<const std::int32_t*>(block_table.data());
    cache.max_pages_per_seq = block_table.shape(1);
    const auto* qp = static_cast<const float*>(q.data());
    auto* op = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release released;
    alibi::dispatch::attention_paged(qp, cache, op, batch, o);
  });
}

// out_*: [..., head_dim]; lse_*: [...] (out's shape without its last dimension). out and lse may alias a
// side (merging in place).
void merge_partials(const py::array& out_a, const py::array& lse_a, const py::array& out_b, const py::array& lse_b,
                    py::array out, py::array lse) {
  check_float(out_a, "out_a");
  check_float(lse_a, "lse_a");
  check_float(out_b, "out_b");
  check_float(lse_b, "lse_b");
  check_float(out, "out");
  check_float(lse, "lse");
  check_writable(out, "out");
  check_writable(lse, "lse");
  if (out_a.ndim() < 1) bad("out_a", "must have a last dimension (head_dim)");
  std::vector<py::ssize_t> dims(out_a.shape(), out_a.shape() + out_a.ndim());
  check_dims(out_b, "out_b", dims);
  check_dims(out, "out", dims);
  const py::ssize_t head_dim = dims.back();
  dims.pop_back();
  check_dims(lse_a, "lse_a", dims);
  check_dims(lse_b, "lse_b", dims);
  check_dims(lse, "lse", dims);
  const auto* oa = static_cast<const float*>(out_a.data());
  const auto* la = static_cast<const float*>(lse_a.data());
  const auto* ob = static_cast<const float*>(out_b.data());
  const auto* lb = static_cast<const float*>(lse_b.data());
  auto* op = static_cast<float*>(out.mutable_data());
  auto* lp = static_cast<float*>(lse.mutable_data());
  const py::ssize_t rows = lse_a.size();
  const int d = to_int(head_dim, "head_dim");
  py::gil_scoped_release released;
  alibi::dispatch::merge_partials(oa, la, ob, lb, op, lp, rows, d);
}

// float32 -> bfloat16 bits (round to nearest even) and back, for NumPy, which has no bfloat16.
py::array_t<std::uint16_t> to_bfloat16(const py::array& x) {
  check_float(x, "x");
  py::array_t<std::uint16_t> result(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const auto* src = static_cast<const float*>(x.data());
  auto* dst = reinterpret_cast<alibi::bfloat16*>(result.mutable_data());
  alibi::convert(src, dst, static_cast<std::size_t>(x.size()));
  return result;
}

py::array_t<float> from_bfloat16(const py::array& x) {
  check_array(x, "x", 'u', 2);
  py::array_t<float> result(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const auto* src = static_cast<const alibi::bfloat16*>(x.data());
  alibi::convert(src, result.mutable_data(), static_cast<std::size_t>(x.size()));
  return result;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "alibi attention kernels (alibi::dispatch); use the alibi_attention package, not this module";
  m.attr("version") = ALIBI_VERSION_STRING;
  py::class_<Options>(m, "Options")
      .def(py::init<>())
      .def_readwrite("causal", &Options::causal)
      .def_readwrite("scale", &Options::scale)
      .def_readwrite("slopes", &Options::slopes)
      .def_readwrite("window", &Options::window)
      .def_readwrite("q_pos0", &Options::q_pos0)
      .def_readwrite("kv_pos0", &Options::kv_pos0)
      .def_readwrite("num_threads", &Options::num_threads)
      .def_readwrite("skip_tolerance", &Options::skip_tolerance)
      .def_readwrite("key_norms", &Options::key_norms);
  m.def("isa_name", [] { return std::string(alibi::dispatch::isa_name()); });
  m.def(
      "slopes", [](int n, float max_bias) { return alibi::slopes(n, max_bias); }, py::arg("n"), py::arg("max_bias"));
  m.def("attention", &attention);
  m.def("attention_backward", &attention_backward);
  m.def("attention_varlen", &attention_varlen);
  m.def("attention_paged", &attention_paged);
  m.def("merge_partials", &merge_partials);
  m.def("to_bfloat16", &to_bfloat16);
  m.def("from_bfloat16", &from_bfloat16);
}
