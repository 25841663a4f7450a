#pragma once
// Writer for GGUF version 3 (ggml's docs/gguf.md), the file format of llama.cpp:
//   "GGUF" | u32 version 3 | u64 tensor count | u64 key-value count
//   key-values: gguf string key (u64 length + bytes), u32 value type, value
//   tensor infos: name, u32 n_dims, u64 ne[n_dims] (ne[0] varies fastest), u32 ggml type,
//                 u64 offset into the data section (a multiple of the alignment)
//   zero padding to the alignment (general.alignment, default 32), then the tensor data,
//   each tensor padded to the alignment. Everything little-endian.
#include <cstdint>
#include <string>
#include <vector>

namespace loom::infer {

enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8 };
inline constexpr int kQ8Block = 32;  // q8_0: blocks of 32 values, an f16 scale + 32 int8

// Encodes n floats as `type` (for Q8_0, n % 32 == 0): the bytes ggml expects for that type.
std::vector<uint8_t> encode_tensor(const float* x, size_t n, GgmlType type);

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);
  // ne: dimensions in ggml order (ne[0] is the contiguous one); data from encode_tensor.
  void add_tensor(const std::string& name, const std::vector<uint64_t>& ne, GgmlType type,
                  std::vector<uint8_t> data);
  // Writes to path + ".tmp", fsyncs, renames to path. Throws loom::Error naming the path.
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    GgmlType type;
    std::vector<uint8_t> data;
  };
  void key(const std::string& k, uint32_t type);
  std::vector<uint8_t> kv_;  // encoded key-value pairs
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace loom::infer
