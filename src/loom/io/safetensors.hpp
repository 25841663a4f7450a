#pragma once
// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}            (optional; string values only)
// padded with spaces to a multiple of 8, then the data region; offsets are relative to its start.
// The reader trusts nothing: it checks the header length against the file size, every field's
// type, dtype x shape against the byte size, and that the tensors tile the data region exactly
// (no overlap, no gap, no trailing bytes, so a truncated file is always refused). Every error is a
// loom::Error naming the file and, where there is one, the tensor.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace loom {

// Bytes per element of a safetensors dtype ("F32", "I64", "BF16", ...); throws for unknown ones.
size_t safetensors_dtype_size(const std::string& dtype);

struct TensorToWrite {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel(shape) * dtype size bytes; nullptr: ask `produce`
  // When data is nullptr: called once, when the tensor's turn comes (tensors are written in
  // order), and returns its bytes, valid until the next call (a file of many tensors never needs
  // them all in memory at once).
  std::function<const void*()> produce = {};
};

// Writes (and fsyncs) a safetensors file in the given tensor order; returns the FNV-1a 64 of the
// file's bytes. Duplicate names are an error.
uint64_t write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                           const std::map<std::string, std::string>& metadata = {});

struct TensorEntry {
  std::string dtype;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte offsets into the data region
};

class SafetensorsFile {
 public:
  // `origin` names the file in error messages.
  SafetensorsFile(std::vector<uint8_t> bytes, std::string origin);
  static SafetensorsFile load(const std::string& path);

  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const std::string& origin() const { return origin_; }

  // Error "<file>: no tensor '<name>'" when absent.
  const TensorEntry& entry(const std::string& name) const;
  std::span<const uint8_t> data(const std::string& name) const;
  // Throws unless tensor `name` has this dtype and shape (the message gives both).
  void check(const std::string& name, const std::string& dtype,
             const std::vector<int64_t>& shape) const;
  // check(), then copies the tensor's bytes to `out`.
  void copy_to(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
               void* out) const;

 private:
  std::vector<uint8_t> bytes_;
  std::string origin_;
  size_t data_start_ = 0;
  std::map<std::string, TensorEntry> tensors_;
  std::map<std::string, std::string> metadata_;
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[768, 2304]"

}  // namespace loom
