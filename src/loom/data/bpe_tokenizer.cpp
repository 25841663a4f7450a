#include "loom/data/bpe_tokenizer.hpp"

#include <fstream>
#include <limits>
#include <algorithm>

#include "loom/core/check.hpp"

namespace loom {
namespace {

// Standard base64 (RFC 4648, '=' padding). Returns false on a character outside the alphabet.
bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

}  // namespace

BpeTokenizer::BpeTokenizer(const std::string& ranks_path) {
  std::ifstream in(ranks_path);
  LOOM_CHECK(in, "gpt2 vocabulary ", ranks_path, ": cannot open");
  std::string line, bytes;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    long rank = -1;
    try {
      if (space != std::string::npos) rank = std::stol(line.substr(space + 1));
    } catch (const std::exception&) {
    }
    LOOM_CHECK(space != std::string::npos && rank >= 0 && rank < 1'000'000 &&
                   base64_decode(std::string_view(line).substr(0, space), bytes) && !bytes.empty(),
               "gpt2 vocabulary ", ranks_path, ":", line_no,
               ": expected '<base64 bytes> <rank>', got '", line.substr(0, 80), "'");
    if (static_cast<size_t>(rank) >= bytes_of_.size()) bytes_of_.resize(rank + 1);
    LOOM_CHECK(bytes_of_[rank].empty(), "gpt2 vocabulary ", ranks_path, ":", line_no,
               ": duplicate rank ", rank);
    bytes_of_[rank] = bytes;
  }
  size_t capacity = 16;
  while (capacity < 4 * bytes_of_.size()) capacity *= 2;
  table_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (size_t id = 0; id < bytes_of_.size(); ++id) {
    LOOM_CHECK(!bytes_of_[id].empty(), "gpt2 vocabulary ", ranks_path, ": rank ", id,
               " is missing (ranks must be 0..", bytes_of_.size() - 1, ")");
    LOOM_CHECK(rank_of(bytes_of_[id]) < 0, "gpt2 vocabulary ", ranks_path, ": token ", id,
               " repeats the bytes of token ", rank_of(bytes_of_[id]));
    insert_rank(bytes_of_[id], static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    LOOM_CHECK(rank_of(std::string(1, static_cast<char>(b))) >= 0, "gpt2 vocabulary ",
               ranks_path, ": byte ", b, " has no token (a byte-level BPE needs all 256)");
  }
  eot_id_ = static_cast<int32_t>(bytes_of_.size());  // <|endoftext|> follows the ranks
}

int32_t BpeTokenizer::rank_of(std::string_view bytes) const {
  const uint64_t h = std::hash<std::string_view>{}(bytes);
  const uint32_t tag = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = table_[i];
    if (slot.rank < 0) return -1;
    if (slot.tag == tag && bytes_of_[slot.rank] == bytes) return slot.rank;
  }
}

void BpeTokenizer::insert_rank(std::string_view bytes, int32_t rank) {
  const uint64_t h = std::hash<std::string_view>{}(bytes);
  size_t i = h & mask_;
  while (table_[i].rank >= 0) i = (i + 1) & mask_;
  table_[i] = Slot{static_cast<uint32_t>(h >> 32), rank};
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (const int32_t whole = rank_of(piece); whole >= 0) {
    out.push_back(whole);
    return;
  }
  // Parts are named by their first byte offset; next[i] is where part i ends (n for the last).
  // pair_rank[i] is the rank of part i joined with its right neighbour. A min-heap of
  // (rank, offset) picks the lowest rank, leftmost on ties, as tiktoken does; entries that no
  // longer match pair_rank are stale and skipped. O(n log n), so even megabyte-long pieces (runs
  // of one character) stay fast.
  constexpr int32_t kNone = std::numeric_limits<int32_t>::max();
  const size_t n = piece.size();
  using Entry = std::pair<int32_t, uint32_t>;
  // Reused per thread: most pieces are short and allocation would dominate.
  thread_local std::vector<uint32_t> next, prev;
  thread_local std::vector<int32_t> pair_rank;
  next.resize(n);
  prev.resize(n);
  pair_rank.assign(n, kNone);
  for (size_t i = 0; i < n; ++i) {
    next[i] = static_cast<uint32_t>(i + 1);
    prev[i] = static_cast<uint32_t>(i == 0 ? n : i - 1);  // n: no left neighbour
  }
  auto compute = [&](size_t i) -> int32_t {
    const size_t j = next[i];
    if (j >= n) return kNone;
    const int32_t r = rank_of(piece.substr(i, next[j] - i));
    return r < 0 ? kNone : r;
  };
  thread_local std::vector<Entry> heap;  // min-heap through std::greater
  heap.clear();
  auto push = [&](int32_t rank, uint32_t i) {
    heap.emplace_back(rank, i);
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (size_t i = 0; i + 1 < n; ++i) {
    pair_rank[i] = compute(i);
    if (pair_rank[i] != kNone) push(pair_rank[i], static_cast<uint32_t>(i));
  }
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const auto [rank, i] = heap.back();
    heap.pop_back();
    if (pair_rank[i] != rank) continue;  // stale: part i changed since this entry was pushed
    const uint32_t j = next[i];          // merge part j into part i
    next[i] = next[j];
    if (next[j] < n) prev[next[j]] = i;
    pair_rank[j] = kNone;
    pair_rank[i] = compute(i);
    if (pair_rank[i] != kNone) push(pair_rank[i], i);
    if (prev[i] < n) {
      const uint32_t p = prev[i];
      pair_rank[p] = compute(p);
      if (pair_rank[p] != kNone) push(pair_rank[p], p);
    }
  }
  for (size_t i = 0; i < n; i = next[i]) out.push_back(rank_of(piece.substr(i, next[i] - i)));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<std::string_view> pieces;
  pretokenizer_.split(text, pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  for (const auto piece : pieces) encode_piece(piece, ids);
  return ids;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (const int32_t id : ids) {
    if (id == eot_id_) {
      out += kEndOfText;
      continue;
    }
    LOOM_CHECK(id >= 0 && id < eot_id_, "gpt2 tokenizer: cannot decode id ", id, " (expected 0..",
               eot_id_, ")");
    out += bytes_of_[id];
  }
  return out;
}

}  // namespace loom
