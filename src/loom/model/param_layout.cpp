#include "loom/model/param_layout.hpp"

#include <algorithm>
#include <cstring>

namespace loom {

namespace {

size_t product(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

// Visits the runs of elements the local tensor shares with the whole one: fn(local_index,
// whole_index, count), and the local padding runs: pad(local_index, count). The tensor is seen
// as [outer, D, inner] around the split dimension D.
template <typename Run, typename Pad>
void for_each_run(const ParamInfo& p, Run&& fn, Pad&& pad) {
  if (p.replicated()) {
    fn(size_t{0}, size_t{0}, p.numel);
    return;
  }
  const auto& whole = p.whole_shape();
  const int d = p.split.dim;
  size_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= static_cast<size_t>(whole[i]);
  for (size_t i = d + 1; i < whole.size(); ++i) inner *= static_cast<size_t>(whole[i]);
  const size_t groups = p.split.groups;
  const size_t local_block = static_cast<size_t>(p.shape[d]) / groups;
  const size_t whole_block = static_cast<size_t>(whole[d]) / groups;
  const size_t valid = static_cast<size_t>(p.split.valid), start = static_cast<size_t>(p.split.start);
  for (size_t o = 0; o < outer; ++o)
    for (size_t g = 0; g < groups; ++g) {
      const size_t local = ((o * groups + g) * local_block) * inner;
      const size_t at = ((o * groups + g) * whole_block + start) * inner;
      fn(local, at, valid * inner);
      if (valid < local_block) pad(local + valid * inner, (local_block - valid) * inner);
    }
}

}  // namespace

size_t ParamInfo::whole_numel() const { return product(whole_shape()); }

template <typename T>
void copy_to_whole(const ParamInfo& p, const T* local, T* whole) {
  for_each_run(
      p, [&](size_t l, size_t w, size_t n) { std::memcpy(whole + w, local + l, n * sizeof(T)); },
      [](size_t, size_t) {});
}

template <typename T>
void copy_from_whole(const ParamInfo& p, const T* whole, T* local) {
  for_each_run(
      p, [&](size_t l, size_t w, size_t n) { std::memcpy(local + l, whole + w, n * sizeof(T)); },
      [&](size_t l, size_t n) { std::fill(local + l, local + l + n, T(0)); });
}

template void copy_to_whole<float>(const ParamInfo&, const float*, float*);
template void copy_to_whole<double>(const ParamInfo&, const double*, double*);
template void copy_from_whole<float>(const ParamInfo&, const float*, float*);
template void copy_from_whole<double>(const ParamInfo&, const double*, double*);

std::vector<ParamInfo> gpt_param_layout(const GPTConfig& config, const ModelShard& shard) {
  config.validate();
  shard.validate(config);
  const int64_t V = config.vocab_size, T = config.context_len, C = config.d_model;
  const int64_t E = config.moe_experts;
  const int64_t t = shard.tp_size, r = shard.tp_rank;
  std::vector<ParamInfo> table;
  size_t offset = 0;
  // A tensor whose whole shape is `whole`, cut along `dim` (-1: not cut) into t pieces, each
  // group of that dimension alike.
  auto add = [&](std::string name, std::vector<int64_t> whole, int dim = -1, int groups = 1) {
    ParamInfo p;
    p.name = std::move(name);
    p.weight_decay = whole.size() >= 2;
    p.shape = whole;
    if (dim >= 0 && t > 1) {
      const int64_t block = whole[dim] / groups / t;
      p.shape[dim] = block * groups;
      p.split = {dim, groups, r * block, block};
      p.full_shape = whole;
    }
    p.numel = product(p.shape);
    p.offset = offset;
    offset += p.numel;
    table.push_back(std::move(p));
  };
  if (shard.has_embedding || shard.has_head) {
    if (t == 1) {
      add("transformer.wte.weight", {V, C});
    } else {
      const int64_t rows = padded_vocab(static_cast<int>(V), static_cast<int>(t)) / t;
      add("transformer.wte.weight", {rows * t, C}, 0);
      ParamInfo& wte = table.back();
      wte.full_shape = {V, C};
      wte.split.valid = std::clamp<int64_t>(V - wte.split.start, 0, rows);
    }
  }
  if (shard.has_embedding) add("transformer.wpe.weight", {T, C});
  for (const BlockRange& chunk : shard.block_chunks(config)) {
    for (int l = chunk.first; l < chunk.last; ++l) {
      const std::string h = "transformer.h." + std::to_string(l) + ".";
      add(h + "ln_1.weight", {C});
      add(h + "ln_1.bias", {C});
      add(h + "attn.c_attn.weight", {C, 3 * C}, 1, 3);
      if (config.qkv_bias) add(h + "attn.c_attn.bias", {3 * C}, 0, 3);
      add(h + "attn.c_proj.weight", {C, C}, 0);
      add(h + "attn.c_proj.bias", {C});
      add(h + "ln_2.weight", {C});
      add(h + "ln_2.bias", {C});
      if (!config.is_moe_block(l)) {
        add(h + "mlp.c_fc.weight", {C, 4 * C}, 1);
        add(h + "mlp.c_fc.bias", {4 * C}, 0);
        add(h + "mlp.c_proj.weight", {4 * C, C}, 0);
        add(h + "mlp.c_proj.bias", {C});
        continue;
      }
      // Router and experts: whole on every tp rank (experts are replicated over tp).
      add(h + "mlp.router.weight", {C, E});
      for (int64_t e = 0; e < E; ++e) {
        const std::string x = h + "mlp.experts." + std::to_string(e) + ".";
        add(x + "c_fc.weight", {C, 4 * C});
        add(x + "c_fc.bias", {4 * C});
        add(x + "c_proj.weight", {4 * C, C});
        add(x + "c_proj.bias", {C});
      }
    }
  }
  if (shard.has_head) {
    add("transformer.ln_f.weight", {C});
    add("transformer.ln_f.bias", {C});
  }
  return table;
}

}  // namespace loom
