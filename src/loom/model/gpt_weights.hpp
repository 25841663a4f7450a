#pragma once
// GPTModel<T>::Impl: the weights of a model shard and the views into them that the executors
// (chunk_executor_impl.hpp) run. Included by the model and the executors only.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"
#include "loom/kernels/cpu/vocab_parallel_ce.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/moe/moe_layer.hpp"

namespace loom {
namespace gpt_internal {

// Pointers to one block's tensors inside a flat buffer (parameters or gradients), and the
// block's range of that buffer. An MoE block (GPTConfig::is_moe_block) has its router and
// experts in `moe` and no dense MLP (fc_*, mlp_* nullptr); a dense block has moe.router nullptr.
template <typename T>
struct BlockTensors {
  T *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *mlp_w,
      *mlp_b;
  size_t begin, end;
  moe::MoeTensors<T> moe;
};

// The shard's tensors; nullptr for those it does not hold.
template <typename T>
struct ModelTensors {
  T *wte, *wpe, *lnf_w, *lnf_b;
  std::vector<BlockTensors<T>> blocks;  // the shard's blocks (of all its chunks), in order
};

// storage[i]: where layout[i] lives (base + offset for a flat buffer).
template <typename T>
ModelTensors<T> bind_tensors(const std::vector<T*>& storage, const std::vector<ParamInfo>& layout,
                             const std::vector<int>& block_ids, const GPTConfig& cfg) {
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < layout.size(); ++i) at[layout[i].name] = i;
  auto get = [&](const std::string& name) -> T* {
    auto it = at.find(name);
    return it == at.end() ? nullptr : storage[it->second];
  };
  ModelTensors<T> m;
  m.wte = get("transformer.wte.weight");
  m.wpe = get("transformer.wpe.weight");
  m.lnf_w = get("transformer.ln_f.weight");
  m.lnf_b = get("transformer.ln_f.bias");
  for (int l : block_ids) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    // The block's range: from its first tensor to the end of its last, whatever its MLP holds.
    size_t begin = SIZE_MAX, end = 0;
    for (const ParamInfo& p : layout)
      if (p.name.compare(0, h.size(), h) == 0) {
        begin = std::min(begin, p.offset);
        end = std::max(end, p.offset + p.numel);
      }
    m.blocks.push_back({get(h + "ln_1.weight"), get(h + "ln_1.bias"), get(h + "attn.c_attn.weight"),
                        get(h + "attn.c_attn.bias"), get(h + "attn.c_proj.weight"),
                        get(h + "attn.c_proj.bias"), get(h + "ln_2.weight"), get(h + "ln_2.bias"),
                        get(h + "mlp.c_fc.weight"), get(h + "mlp.c_fc.bias"),
                        get(h + "mlp.c_proj.weight"), get(h + "mlp.c_proj.bias"), begin, end, {}});
    if (!cfg.is_moe_block(l)) continue;
    moe::MoeTensors<T>& x = m.blocks.back().moe;
    x.router = get(h + "mlp.router.weight");
    for (int e = 0; e < cfg.moe_experts; ++e) {
      const std::string p = h + "mlp.experts." + std::to_string(e) + ".";
      x.experts.push_back({get(p + "c_fc.weight"), get(p + "c_fc.bias"), get(p + "c_proj.weight"),
                           get(p + "c_proj.bias")});
    }
  }
  return m;
}

// Pointers to every tensor of a flat buffer laid out by `layout`.
template <typename T>
std::vector<T*> flat_storage(T* base, const std::vector<ParamInfo>& layout) {
  std::vector<T*> out;
  for (const auto& p : layout) out.push_back(base + p.offset);
  return out;
}

}  // namespace gpt_internal

template <typename T>
struct GPTModel<T>::Impl {
  GPTConfig cfg;
  ModelShard shard;
  TensorParallelGroup* tp;  // nullptr: tp 1
  std::vector<int> block_id;     // global index of each of the shard's blocks
  std::vector<int> chunk_begin;  // chunk c has the shard's blocks [chunk_begin[c], chunk_begin[c+1])
  int C, Cl, Hl, Fl;             // widths: model, local attention, local heads, local MLP
  kernels::VocabSlice vocab{0, 0, 0};  // this rank's wte rows (when it holds wte)
  std::vector<ParamInfo> layout;
  size_t n_params = 0;
  size_t prefix_end = 0;  // [0, prefix_end): wte and wpe; [head_begin, n_params): ln_f
  size_t head_begin = 0;
  AlignedBuffer<T> params, grads;  // empty once bind_params / bind_gradients has moved them
  std::vector<T*> grad_storage;    // where each layout tensor's gradient lives
  gpt_internal::ModelTensors<T> p, g;  // views into params and grad_storage
  ParamGather* gather = nullptr;       // puts a unit's parameters in place (bind_params)
  // The MoE blocks' MLP (nullptr: dense model): in training forwards and backwards with the
  // experts split over the ep group; under ep > 1 `moe_whole` runs every expert on this rank
  // for the forwards that are not collective (evaluation, generation).
  std::unique_ptr<moe::MoeLayer<T>> moe_layer, moe_whole;

  Impl(const GPTConfig& c, const ModelShard& s, TensorParallelGroup* group,
       moe::ExpertParallelGroup* ep)
      : cfg(c), shard(s), tp(group) {
    cfg.validate();
    shard.validate(cfg);
    LOOM_CHECK(shard.tp_size == 1 || (tp != nullptr && tp->size() == shard.tp_size &&
                                      tp->rank() == shard.tp_rank),
               "GPTModel: a shard of tp_size ", shard.tp_size,
               " needs a tensor-parallel group of that size with its rank ", shard.tp_rank);
    if (shard.tp_size == 1) tp = nullptr;  // tp 1 is the single-rank code path
    for (const BlockRange& r : shard.block_chunks(cfg)) {
      chunk_begin.push_back(static_cast<int>(block_id.size()));
      for (int l = r.first; l < r.last; ++l) block_id.push_back(l);
    }
    chunk_begin.push_back(static_cast<int>(block_id.size()));
    C = cfg.d_model;
    Cl = C / shard.tp_size;
    Hl = cfg.n_head / shard.tp_size;
    Fl = 4 * C / shard.tp_size;
    layout = gpt_param_layout(cfg, shard);
    n_params = layout.back().offset + layout.back().numel;
    params.resize(n_params);
    grads.resize(n_params);
    grad_storage = gpt_internal::flat_storage(grads.data(), layout);
    p = gpt_internal::bind_tensors(gpt_internal::flat_storage(params.data(), layout), layout,
                                   block_id, cfg);
    g = gpt_internal::bind_tensors(grad_storage, layout, block_id, cfg);
    if (cfg.is_moe()) {
      moe_layer = std::make_unique<moe::MoeLayer<T>>(moe::MoeConfig::of(cfg), C, ep);
      if (moe_layer->local_experts() < cfg.moe_experts)
        moe_whole = std::make_unique<moe::MoeLayer<T>>(moe::MoeConfig::of(cfg), C);
    }
    for (const auto& info : layout) {
      if (info.name == "transformer.wte.weight")
        vocab = {static_cast<int>(info.shape[0]), static_cast<int>(info.split.dim < 0 ? info.shape[0] : info.split.valid),
                 static_cast<int>(info.split.start)};
    }
    prefix_end = p.blocks.empty() ? (shard.has_head ? n_params - 2 * C : n_params) : p.blocks[0].begin;
    head_begin = shard.has_head ? n_params - 2 * C : n_params;
  }
};

}  // namespace loom
