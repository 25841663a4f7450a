#include "loom/data/byte_tokenizer.hpp"

#include "loom/core/check.hpp"

namespace loom {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (const int32_t id : ids) {
    LOOM_CHECK(id >= 0 && id <= eot_id(), "byte tokenizer: cannot decode id ", id,
               " (expected 0..", eot_id(), ")");
    if (id == eot_id()) {
      out += kEndOfText;
    } else {
      out.push_back(static_cast<char>(id));
    }
  }
  return out;
}

}  // namespace loom
