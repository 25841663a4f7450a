#pragma once
// A small GGUF v3 reader for the export tests: an independent parse of what the writer produced
// (key-values by type, tensor infos, alignment and data bounds), failing the test on any mismatch.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "loom/io/file_io.hpp"

namespace loom::testing {

struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  const uint8_t* data = nullptr;
  size_t bytes = 0;
};

struct GgufFile {
  using Value = std::variant<uint32_t, int32_t, float, bool, std::string, std::vector<std::string>,
                             std::vector<int32_t>>;
  std::vector<uint8_t> bytes;
  uint32_t version = 0;
  std::map<std::string, Value> kv;
  std::map<std::string, GgufTensor> tensors;
  std::vector<std::string> order;  // tensor names in file order

  template <typename T>
  const T& get(const std::string& key) const {
    auto it = kv.find(key);
    if (it == kv.end() || !std::holds_alternative<T>(it->second))
      throw std::runtime_error("gguf: no key " + key + " of the expected type");
    return std::get<T>(it->second);
  }
};

// Bytes per row of ne[0] values.
inline size_t gguf_row_bytes(uint32_t type, uint64_t ne0) {
  switch (type) {
    case 0: return ne0 * 4;
    case 1: return ne0 * 2;
    case 8: return ne0 / 32 * 34;
  }
  throw std::runtime_error("gguf: unexpected tensor type " + std::to_string(type));
}

inline GgufFile read_gguf(const std::string& path) {
  GgufFile f;
  f.bytes = read_file(path);
  size_t at = 0;
  auto need = [&](size_t n) {
    if (at + n > f.bytes.size()) throw std::runtime_error("gguf: truncated at byte " + std::to_string(at));
  };
  auto take = [&]<typename T>(T*) {
    need(sizeof(T));
    T v;
    std::memcpy(&v, f.bytes.data() + at, sizeof v);
    at += sizeof v;
    return v;
  };
  auto u32 = [&] { return take(static_cast<uint32_t*>(nullptr)); };
  auto u64 = [&] { return take(static_cast<uint64_t*>(nullptr)); };
  auto str = [&] {
    const uint64_t n = u64();
    need(n);
    std::string s(reinterpret_cast<const char*>(f.bytes.data() + at), n);
    at += n;
    return s;
  };
  if (u32() != 0x46554747u) throw std::runtime_error("gguf: bad magic");
  f.version = u32();
  const uint64_t n_tensors = u64(), n_kv = u64();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = str();
    const uint32_t type = u32();
    switch (type) {
      case 4: f.kv[key] = u32(); break;
      case 5: f.kv[key] = take(static_cast<int32_t*>(nullptr)); break;
      case 6: f.kv[key] = take(static_cast<float*>(nullptr)); break;
      case 7: f.kv[key] = take(static_cast<uint8_t*>(nullptr)) != 0; break;
      case 8: f.kv[key] = str(); break;
      case 9: {
        const uint32_t elem = u32();
        const uint64_t n = u64();
        if (elem == 8) {
          std::vector<std::string> v;
          for (uint64_t j = 0; j < n; ++j) v.push_back(str());
          f.kv[key] = v;
        } else if (elem == 5) {
          std::vector<int32_t> v;
          for (uint64_t j = 0; j < n; ++j) v.push_back(take(static_cast<int32_t*>(nullptr)));
          f.kv[key] = v;
        } else {
          throw std::runtime_error("gguf: unexpected array type for " + key);
        }
        break;
      }
      default: throw std::runtime_error("gguf: unexpected value type for " + key);
    }
  }
  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string name = str();
    GgufTensor t;
    const uint32_t n_dims = u32();
    for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(u64());
    t.type = u32();
    offsets.push_back(u64());
    f.order.push_back(name);
    f.tensors[name] = t;
  }
  const size_t data_start = (at + 31) / 32 * 32;
  for (size_t i = 0; i < f.order.size(); ++i) {
    GgufTensor& t = f.tensors[f.order[i]];
    if (offsets[i] % 32 != 0) throw std::runtime_error("gguf: misaligned tensor " + f.order[i]);
    uint64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
    t.bytes = gguf_row_bytes(t.type, t.ne[0]) * rows;
    if (data_start + offsets[i] + t.bytes > f.bytes.size())
      throw std::runtime_error("gguf: tensor " + f.order[i] + " runs past the end");
    t.data = f.bytes.data() + data_start + offsets[i];
  }
  return f;
}

}  // namespace loom::testing
