#include "loom/io/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <tuple>

#include "loom/core/check.hpp"
#include "loom/core/json_input.hpp"
#include "loom/core/checksum.hpp"
#include "loom/io/file_io.hpp"

namespace loom {

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8}, {"F64", 8}};
  const auto it = sizes.find(dtype);
  LOOM_CHECK(it != sizes.end(), "unknown safetensors dtype '", dtype, "'");
  return it->second;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// numel * elem_size, or false on a negative dimension or overflow.
bool byte_size(const std::vector<int64_t>& shape, size_t elem_size, size_t* out) {
  size_t n = elem_size;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > SIZE_MAX / static_cast<size_t>(d)) return false;
    n *= static_cast<size_t>(d);
  }
  *out = n;
  return true;
}

}  // namespace

uint64_t write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<size_t> sizes;
  size_t offset = 0;
  for (const auto& t : tensors) {
    LOOM_CHECK(t.name != "__metadata__" && !header.contains(t.name), path,
               ": duplicate or reserved tensor name '", t.name, "'");
    size_t bytes = 0;
    LOOM_CHECK(byte_size(t.shape, safetensors_dtype_size(t.dtype), &bytes), path, ": tensor '",
               t.name, "' has an invalid shape ", shape_str(t.shape));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  Fnv1a64 hash;
  SyncedFile f(path);
  auto put = [&](const void* p, size_t n) {
    f.write(p, n);
    hash.update(p, n);
  };
  put(len, 8);
  put(text.data(), text.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    put(tensors[i].data ? tensors[i].data : tensors[i].produce(), sizes[i]);
  f.close();
  return hash.value();
}

SafetensorsFile SafetensorsFile::load(const std::string& path) {
  return SafetensorsFile(read_file(path), path);
}

SafetensorsFile::SafetensorsFile(std::vector<uint8_t> bytes, std::string origin)
    : bytes_(std::move(bytes)), origin_(std::move(origin)) {
  const std::string& f = origin_;
  LOOM_CHECK(bytes_.size() >= 8, f, ": not a safetensors file: ", bytes_.size(),
             " bytes, fewer than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes_[i]) << (8 * i);
  LOOM_CHECK(n <= bytes_.size() - 8, f, ": header length ", n, " exceeds the file (",
             bytes_.size(), " bytes): truncated or not a safetensors file");
  data_start_ = 8 + static_cast<size_t>(n);
  const size_t data_size = bytes_.size() - data_start_;

  const auto header = parse_json(
      std::string_view(reinterpret_cast<const char*>(bytes_.data()) + 8, static_cast<size_t>(n)),
      f + ": header");
  LOOM_CHECK(header.is_object(), f, ": header is not a JSON object");
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      LOOM_CHECK(v.is_object(), f, ": __metadata__ is not an object");
      for (const auto& [k, s] : v.items()) {
        LOOM_CHECK(s.is_string(), f, ": __metadata__ value '", k, "' is not a string");
        metadata_[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string where = f + ": tensor '" + name + "'";
    LOOM_CHECK(v.is_object() && v.size() == 3 && v.contains("dtype") && v.contains("shape") &&
                   v.contains("data_offsets"),
               where, ": expected exactly the fields dtype, shape, data_offsets");
    TensorEntry e;
    LOOM_CHECK(v["dtype"].is_string(), where, ": dtype is not a string");
    e.dtype = v["dtype"].get<std::string>();
    size_t elem = 0;
    try {
      elem = safetensors_dtype_size(e.dtype);
    } catch (const Error& err) {
      LOOM_FAIL(where, ": ", err.what());
    }
    LOOM_CHECK(v["shape"].is_array(), where, ": shape is not an array");
    for (const auto& d : v["shape"]) {
      LOOM_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= INT64_MAX, where,
                 ": shape has an entry that is not a non-negative integer");
      e.shape.push_back(d.get<int64_t>());
    }
    const auto& off = v["data_offsets"];
    LOOM_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                   off[1].is_number_unsigned(),
               where, ": data_offsets is not a pair of non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    LOOM_CHECK(b <= en && en <= data_size, where, ": data_offsets [", b, ", ", en,
               "] outside the data region of ", data_size, " bytes (file truncated?)");
    e.begin = static_cast<size_t>(b);
    e.end = static_cast<size_t>(en);
    size_t expected = 0;
    LOOM_CHECK(byte_size(e.shape, elem, &expected) && expected == e.end - e.begin, where, ": ",
               e.dtype, " ", shape_str(e.shape), " does not match its ", e.end - e.begin,
               " bytes of data");
    tensors_.emplace(name, std::move(e));
  }
  // The tensors must tile the data region: sorted by offset, each starts where the last ended.
  std::vector<std::tuple<size_t, size_t, const std::string*>> order;  // begin, end, name
  for (const auto& [name, e] : tensors_) order.emplace_back(e.begin, e.end, &name);
  std::sort(order.begin(), order.end());
  size_t pos = 0;
  for (const auto& [begin, end, name] : order) {
    LOOM_CHECK(begin == pos, f, ": tensor '", *name, "' starts at byte ", begin, " of the data but ",
               begin < pos ? "the previous tensor ends at " : "there is a gap from ", pos);
    pos = end;
  }
  LOOM_CHECK(pos == data_size, f, ": ", data_size - pos,
             " bytes after the last tensor (corrupted file)");
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = tensors_.find(name);
  LOOM_CHECK(it != tensors_.end(), origin_, ": no tensor '", name, "'");
  return it->second;
}

std::span<const uint8_t> SafetensorsFile::data(const std::string& name) const {
  const TensorEntry& e = entry(name);
  return {bytes_.data() + data_start_ + e.begin, e.end - e.begin};
}

void SafetensorsFile::check(const std::string& name, const std::string& dtype,
                            const std::vector<int64_t>& shape) const {
  const TensorEntry& e = entry(name);
  LOOM_CHECK(e.dtype == dtype && e.shape == shape, origin_, ": tensor '", name, "' is ", e.dtype,
             " ", shape_str(e.shape), ", expected ", dtype, " ", shape_str(shape));
}

void SafetensorsFile::copy_to(const std::string& name, const std::string& dtype,
                              const std::vector<int64_t>& shape, void* out) const {
  check(name, dtype, shape);
  const auto d = data(name);
  if (!d.empty()) std::memcpy(out, d.data(), d.size());
}

}  // namespace loom
