#include "loom/kernels/cpu/matmul_onednn.hpp"

#include <cstdint>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

namespace loom::kernels::onednn {

namespace {

using dnnl::memory;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Key {
  int M, N, K, lda, ldb, ldc;
  bool bf16, ta, tb;
  float alpha, beta;
  bool operator==(const Key& o) const { return std::memcmp(this, &o, sizeof(Key)) == 0; }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    // FNV-1a over the bytes (Key is zero-initialised before filling, so padding is 0).
    const auto* p = reinterpret_cast<const unsigned char*>(&k);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(Key); ++i) h = (h ^ p[i]) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

// A primitive with its memory objects and execution arguments; each call only swaps the data
// pointers in (no allocation per call: the attention issues thousands of small products).
struct Entry {
  dnnl::matmul prim;
  memory a, b, c, scratchpad;
  size_t scratch_bytes = 0;
  std::unordered_map<int, memory> args;
};

// A (M,K) / B (K,N) / C (M,N) descriptors; a transposed operand is its stored layout read with
// swapped strides.
memory::desc operand_desc(int rows, int cols, int ld, bool trans, memory::data_type dt) {
  const memory::dims strides = trans ? memory::dims{1, ld} : memory::dims{ld, 1};
  return memory::desc({rows, cols}, dt, strides);
}

Entry make_entry(const Key& k) {
  const auto dt = k.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  const auto a_md = operand_desc(k.M, k.K, k.lda, k.ta, dt);
  const auto b_md = operand_desc(k.K, k.N, k.ldb, k.tb, dt);
  const auto c_md = operand_desc(k.M, k.N, k.ldc, false, memory::data_type::f32);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (k.alpha != 1.0f) attr.set_output_scales(0, {k.alpha});
  if (k.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(k.beta);
    attr.set_post_ops(ops);
  }
  auto& eng = cpu_engine();
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, eng);
  const auto pad_md = pd.scratchpad_desc();
  Entry e{dnnl::matmul(pd), memory(a_md, eng, nullptr), memory(b_md, eng, nullptr),
          memory(c_md, eng, nullptr), memory(pad_md, eng, nullptr), pad_md.get_size(), {}};
  e.args = {{DNNL_ARG_SRC, e.a},
            {DNNL_ARG_WEIGHTS, e.b},
            {DNNL_ARG_DST, e.c},
            {DNNL_ARG_SCRATCHPAD, e.scratchpad}};
  return e;
}

}  // namespace

void matmul(bool bf16, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void* A,
            int lda, const void* B, int ldb, float beta, float* C, int ldc) {
  // Per-thread state: the attention issues products from every OpenMP thread at once; oneDNN
  // runs a primitive single-threaded when called inside a parallel region.
  thread_local std::unordered_map<Key, Entry, KeyHash> cache;
  thread_local std::vector<unsigned char> scratch;
  thread_local dnnl::stream stream(cpu_engine());
  Key key;
  std::memset(&key, 0, sizeof key);
  key.M = M, key.N = N, key.K = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
  key.bf16 = bf16, key.ta = trans_a, key.tb = trans_b, key.alpha = alpha, key.beta = beta;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make_entry(key)).first;
  Entry& e = it->second;
  if (scratch.size() < e.scratch_bytes) scratch.resize(e.scratch_bytes);
  e.a.set_data_handle(const_cast<void*>(A));
  e.b.set_data_handle(const_cast<void*>(B));
  e.c.set_data_handle(C);
  e.scratchpad.set_data_handle(scratch.data());
  e.prim.execute(stream, e.args);
  stream.wait();
}

bool cpu_has_bf16() {
  // ISA values are bit sets: every newer ISA contains avx512_core_bf16's bits.
  const int isa = static_cast<int>(dnnl::get_effective_cpu_isa());
  return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

}  // namespace loom::kernels::onednn
