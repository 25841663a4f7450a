#include "loom/infer/gpt2_vocab.hpp"

#include <array>
#include <climits>
#include <unordered_map>

#include "loom/core/check.hpp"

namespace loom::infer {

namespace {

// bytes_to_unicode: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF keep their code point; the others,
// in increasing order, get U+0100, U+0101, ...
const std::array<std::string, 256>& byte_strings() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const int cp = keep ? b : next++;
      // UTF-8 of a code point below 0x800.
      if (cp < 0x80)
        t[b] = std::string(1, static_cast<char>(cp));
      else
        t[b] = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
    return t;
  }();
  return table;
}

// The two parts BPE (with ranks below `limit`) ends in for `bytes`; empty if not exactly two.
std::vector<std::string> bpe_parts(const std::string& bytes, int limit,
                                   const std::unordered_map<std::string, int>& rank) {
  std::vector<std::string> parts;
  for (char c : bytes) parts.emplace_back(1, c);
  while (parts.size() > 2) {
    int best = INT_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = rank.find(parts[i] + parts[i + 1]);
      if (it != rank.end() && it->second < limit && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == INT_MAX) return {};
    parts[at] += parts[at + 1];
    parts.erase(parts.begin() + at + 1);
  }
  return parts;
}

}  // namespace

std::string bytes_to_unicode(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) out += byte_strings()[b];
  return out;
}

Gpt2Vocab gpt2_vocab(const Tokenizer& tokenizer, int vocab_size) {
  const int n = tokenizer.vocab_size();
  LOOM_CHECK(vocab_size >= n, "the model's vocab_size ", vocab_size, " is smaller than tokenizer ",
             tokenizer.name(), "'s ", n, " ids");
  Gpt2Vocab v;
  v.eot_id = tokenizer.eot_id();
  std::vector<std::string> bytes(n);
  std::unordered_map<std::string, int> rank;
  for (int id = 0; id < n; ++id) {
    if (id == v.eot_id) continue;
    const int32_t one = id;
    bytes[id] = tokenizer.decode({&one, 1});
    LOOM_CHECK(!bytes[id].empty() && rank.emplace(bytes[id], id).second, "tokenizer ",
               tokenizer.name(), ": token ", id, " is empty or repeats an earlier token");
  }
  for (int id = 0; id < vocab_size; ++id) {
    if (id == v.eot_id) {
      v.tokens.emplace_back(kEndOfText);
      v.kinds.push_back(TokenKind::Control);
    } else if (id >= n) {
      v.tokens.push_back("<|pad_" + std::to_string(id) + "|>");
      v.kinds.push_back(TokenKind::Unused);
    } else {
      v.tokens.push_back(bytes_to_unicode(bytes[id]));
      v.kinds.push_back(TokenKind::Normal);
      if (bytes[id].size() < 2) continue;
      const auto parts = bpe_parts(bytes[id], id, rank);
      LOOM_CHECK(parts.size() == 2, "tokenizer ", tokenizer.name(), ": token ", id,
                 " is not the merge of two lower-ranked tokens (not a byte-level BPE vocabulary)");
      v.merges.push_back(bytes_to_unicode(parts[0]) + " " + bytes_to_unicode(parts[1]));
    }
  }
  return v;
}

}  // namespace loom::infer
