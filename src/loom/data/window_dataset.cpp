#include "loom/data/window_dataset.hpp"

#include <algorithm>
#include <filesystem>

#include "loom/core/check.hpp"
#include "loom/data/token_shard.hpp"

namespace loom {

struct WindowDataset::Impl {
  std::vector<TokenShard> shards;
  std::vector<size_t> starts;  // starts[i]: global index of shard i's first token; back() = total
  int context_len = 0;
  int stride = 0;
  size_t num_windows = 0;
};

WindowDataset::WindowDataset(const std::vector<std::string>& shard_paths, int context_len,
                             int stride, int vocab_size)
    : impl_(std::make_unique<Impl>()) {
  LOOM_CHECK(context_len > 0, "window dataset: context_len must be > 0, got ", context_len);
  LOOM_CHECK(stride > 0, "window dataset: stride must be > 0, got ", stride);
  LOOM_CHECK(!shard_paths.empty(), "window dataset: no shard files given");
  impl_->context_len = context_len;
  impl_->stride = stride;
  size_t total = 0;
  for (const auto& path : shard_paths) {
    impl_->shards.emplace_back(path, vocab_size);
    impl_->starts.push_back(total);
    total += impl_->shards.back().size();
  }
  impl_->starts.push_back(total);
  // A window needs context_len + 1 tokens (the last target is the token after the last input).
  const size_t span = static_cast<size_t>(context_len) + 1;
  LOOM_CHECK(total >= span, "window dataset: shards ", shard_paths.front(),
             shard_paths.size() > 1 ? " ..." : "", " hold ", total,
             " tokens, fewer than context_len + 1 = ", span);
  impl_->num_windows = (total - span) / static_cast<size_t>(stride) + 1;
}

WindowDataset::~WindowDataset() = default;

size_t WindowDataset::size() const { return impl_->num_windows; }

size_t WindowDataset::num_tokens() const { return impl_->starts.back(); }

void WindowDataset::get(size_t index, int32_t* inputs, int32_t* targets) const {
  LOOM_CHECK(index < impl_->num_windows, "window dataset: index ", index, " out of range (",
             impl_->num_windows, " windows)");
  const size_t n = static_cast<size_t>(impl_->context_len);
  size_t pos = index * static_cast<size_t>(impl_->stride);
  // Shard holding `pos`: the last one whose start is <= pos (empty shards are skipped naturally).
  size_t s = static_cast<size_t>(
      std::upper_bound(impl_->starts.begin(), impl_->starts.end() - 1, pos) -
      impl_->starts.begin() - 1);
  for (size_t i = 0; i <= n;) {
    const auto tokens = impl_->shards[s].tokens();
    const size_t offset = pos - impl_->starts[s];
    if (offset >= tokens.size()) {  // past this shard: continue in the next one
      ++s;
      continue;
    }
    const size_t take = std::min(tokens.size() - offset, n + 1 - i);
    for (size_t k = 0; k < take; ++k) {
      const int32_t t = tokens[offset + k];
      if (i + k < n) inputs[i + k] = t;
      if (i + k > 0) targets[i + k - 1] = t;
    }
    i += take;
    pos += take;
  }
}

std::vector<std::string> find_shards(const std::string& dir, const std::string& split) {
  namespace fs = std::filesystem;
  LOOM_CHECK(split == "train" || split == "val", "find_shards: split must be train or val, got '",
             split, "'");
  std::error_code ec;
  LOOM_CHECK(fs::is_directory(dir, ec), "find_shards: ", dir, " is not a directory");
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.ends_with(".bin") &&
        name.find(split) != std::string::npos) {
      paths.push_back(entry.path().string());
    }
  }
  LOOM_CHECK(!paths.empty(), "find_shards: no ", split, " shards (*", split, "*.bin) in ", dir,
             " (make them with: loom tokenize --input <text> --out_dir ", dir, ")");
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace loom
