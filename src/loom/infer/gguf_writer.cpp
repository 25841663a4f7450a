#include "loom/infer/gguf_writer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "loom/core/check.hpp"
#include "loom/infer/half.hpp"
#include "loom/io/file_io.hpp"

namespace loom::infer {

namespace {

constexpr uint64_t kAlignment = 32;
enum ValueType : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

template <typename T>
void put(std::vector<uint8_t>& out, T v) {  // little-endian hosts only (x86-64, arm64)
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

uint64_t padded(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

std::vector<uint8_t> encode_tensor(const float* x, size_t n, GgmlType type) {
  std::vector<uint8_t> out;
  switch (type) {
    case GgmlType::F32:
      out.resize(n * 4);
      std::memcpy(out.data(), x, n * 4);
      break;
    case GgmlType::F16:
      out.reserve(n * 2);
      for (size_t i = 0; i < n; ++i) put<uint16_t>(out, float_to_half(x[i]));
      break;
    case GgmlType::Q8_0: {
      LOOM_CHECK(n % kQ8Block == 0, "q8_0: ", n, " values are not whole blocks of ", kQ8Block);
      out.reserve(n / kQ8Block * (2 + kQ8Block));
      for (size_t b = 0; b < n; b += kQ8Block) {
        float amax = 0;
        for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(x[b + i]));
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        put<uint16_t>(out, float_to_half(d));
        for (int i = 0; i < kQ8Block; ++i) put<int8_t>(out, static_cast<int8_t>(std::lround(x[b + i] * id)));
      }
      break;
    }
  }
  return out;
}

void GgufWriter::key(const std::string& k, uint32_t type) {
  put_string(kv_, k);
  put<uint32_t>(kv_, type);
  ++n_kv_;
}

void GgufWriter::add_string(const std::string& k, const std::string& v) {
  key(k, kString);
  put_string(kv_, v);
}
void GgufWriter::add_u32(const std::string& k, uint32_t v) {
  key(k, kU32);
  put(kv_, v);
}
void GgufWriter::add_f32(const std::string& k, float v) {
  key(k, kF32);
  put(kv_, v);
}
void GgufWriter::add_bool(const std::string& k, bool v) {
  key(k, kBool);
  put<uint8_t>(kv_, v ? 1 : 0);
}
void GgufWriter::add_strings(const std::string& k, const std::vector<std::string>& v) {
  key(k, kArray);
  put<uint32_t>(kv_, kString);
  put<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_string(kv_, s);
}
void GgufWriter::add_i32s(const std::string& k, const std::vector<int32_t>& v) {
  key(k, kArray);
  put<uint32_t>(kv_, kI32);
  put<uint64_t>(kv_, v.size());
  for (int32_t x : v) put(kv_, x);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<uint64_t>& ne,
                            GgmlType type, std::vector<uint8_t> data) {
  tensors_.push_back({name, ne, type, std::move(data)});
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> head;
  head.insert(head.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, n_kv_);
  head.insert(head.end(), kv_.begin(), kv_.end());
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put(head, d);
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += padded(t.data.size());
  }
  head.resize(padded(head.size()), 0);

  // Written under a temporary name and renamed: an interrupted export leaves no partial file.
  const std::string tmp = path + ".tmp";
  try {
    SyncedFile f(tmp);
    f.write(head.data(), head.size());
    const std::vector<uint8_t> zeros(kAlignment, 0);
    for (const Tensor& t : tensors_) {
      f.write(t.data.data(), t.data.size());
      f.write(zeros.data(), padded(t.data.size()) - t.data.size());
    }
    f.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  LOOM_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename ", tmp,
             " into place (", std::strerror(errno), ")");
}

}  // namespace loom::infer
