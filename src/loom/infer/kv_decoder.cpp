#include "loom/infer/kv_decoder.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "loom/core/check.hpp"
#include "loom/infer/cached_attention.hpp"
#include "loom/kernels/cpu/embedding.hpp"
#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/layernorm.hpp"
#include "loom/kernels/cpu/residual.hpp"
#include "loom/model/moe/moe_binding.hpp"
#include "loom/model/moe/moe_layer.hpp"

namespace loom::infer {

using namespace kernels;

namespace {

struct Block {
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  DecoderLinear qkv, proj, fc, mlp;  // fc, mlp: a dense block's
  moe::MoeTensors<const float> moe;  // an MoE block's router and experts (router nullptr: dense)
};

// Parameter `name` of the model (its Hugging Face name), or nullptr when the layout has none.
const float* param(const GPT& model, const std::string& name, bool required = true) {
  for (const ParamInfo& p : model.layout())
    if (p.name == name) return model.params() + p.offset;
  LOOM_CHECK(!required, "KVDecoder: the model has no parameter ", name);
  return nullptr;
}

}  // namespace

struct KVDecoder::Impl {
  const GPT& model;
  GPTConfig cfg;
  WeightType type;
  const float *wte, *wpe, *lnf_w, *lnf_b;
  std::vector<Block> blocks;
  DecoderLinear head;

  // Cache: per layer, k and v of (n_seqs, capacity, C).
  int n_seqs = 0, capacity = 0;
  std::vector<AlignedBuffer<float>> k_cache, v_cache;
  std::vector<int> lengths;

  // Scratch for R rows, grown on demand.
  size_t cap_rows = 0;
  AlignedBuffer<float> x, ln, mean, rstd, qkv, att, branch, fc, logits;
  std::vector<float> att_scratch;
  std::unique_ptr<moe::MoeLayer<float>> moe_layer;  // nullptr: dense model
  moe::MoeBuffers<float> moe_buf;

  Impl(const GPT& m, WeightType t) : model(m), cfg(m.config()), type(t) {
    const int C = cfg.d_model;
    wte = param(m, "transformer.wte.weight");
    wpe = param(m, "transformer.wpe.weight");
    lnf_w = param(m, "transformer.ln_f.weight");
    lnf_b = param(m, "transformer.ln_f.bias");
    for (int l = 0; l < cfg.n_layer; ++l) {
      const std::string h = "transformer.h." + std::to_string(l) + ".";
      auto linear = [&](const std::string& name, int in, int out, bool bias = true) {
        return DecoderLinear::conv1d(param(m, h + name + ".weight"),
                                     param(m, h + name + ".bias", bias), in, out, t);
      };
      const bool moe = cfg.is_moe_block(l);
      blocks.push_back({param(m, h + "ln_1.weight"), param(m, h + "ln_1.bias"),
                        param(m, h + "ln_2.weight"), param(m, h + "ln_2.bias"),
                        linear("attn.c_attn", C, 3 * C, cfg.qkv_bias), linear("attn.c_proj", C, C),
                        moe ? DecoderLinear() : linear("mlp.c_fc", C, 4 * C),
                        moe ? DecoderLinear() : linear("mlp.c_proj", 4 * C, C), {}});
      if (moe) {
        LOOM_CHECK(t == WeightType::F32, "KVDecoder: a mixture-of-experts model decodes with f32 "
                   "weights only, got ", name(t));
        blocks.back().moe = moe::bind_moe_tensors(m.layout(), l, m.params(), 0, cfg.moe_experts);
      }
    }
    if (cfg.is_moe()) moe_layer = std::make_unique<moe::MoeLayer<float>>(moe::MoeConfig::of(cfg), C);
    head = DecoderLinear::lm_head(wte, cfg.vocab_size, C, t);
  }

  void ensure_rows(size_t R) {
    if (R <= cap_rows) return;
    cap_rows = R;
    const size_t C = cfg.d_model;
    for (auto* b : {&x, &ln, &att, &branch}) b->resize(R * C);
    mean.resize(R);
    rstd.resize(R);
    qkv.resize(R * 3 * C);
    fc.resize(R * 4 * C);
  }

  float* k_at(int l, int s, int pos) {
    return k_cache[l].data() + (static_cast<size_t>(s) * capacity + pos) * cfg.d_model;
  }
  float* v_at(int l, int s, int pos) {
    return v_cache[l].data() + (static_cast<size_t>(s) * capacity + pos) * cfg.d_model;
  }

  // x[r] = wte[token] + wpe[position]
  void embed(std::span<const int32_t> tokens, const std::vector<int>& pos) {
    const int C = cfg.d_model;
    const Int8Matrix* q = head.int8();
    for (size_t r = 0; r < tokens.size(); ++r) {
      float* row = x.data() + r * C;
      if (q != nullptr)
        dequantize_row(row, *q, tokens[r]);
      else
        std::copy(wte + static_cast<size_t>(tokens[r]) * C, wte + static_cast<size_t>(tokens[r] + 1) * C, row);
      residual_forward(row, row, wpe + static_cast<size_t>(pos[r]) * C, C);
    }
  }

  const float* forward(std::span<const int> seqs, std::span<const int32_t> tokens,
                       std::span<const uint8_t> want) {
    const int R = static_cast<int>(tokens.size()), C = cfg.d_model, V = cfg.vocab_size;
    LOOM_CHECK(seqs.size() == tokens.size() && want.size() == tokens.size(),
               "KVDecoder::forward: seqs, tokens and want_logits differ in length");
    LOOM_CHECK(R > 0, "KVDecoder::forward: no rows");
    check_tokens(tokens.data(), R, V, "tokens");
    // Positions of the rows; checked before anything is written to the cache.
    std::vector<int> pos(R), next = lengths;
    for (int r = 0; r < R; ++r) {
      const int s = seqs[r];
      LOOM_CHECK(s >= 0 && s < n_seqs, "KVDecoder::forward: sequence ", s, " outside [0, ",
                 n_seqs, ")");
      LOOM_CHECK(next[s] < capacity, "KVDecoder::forward: sequence ", s, " is full (",
                 capacity, " tokens)");
      pos[r] = next[s]++;
    }
    ensure_rows(R);
    embed(tokens, pos);
    std::vector<CachedRow> rows(R);
    const size_t RC = static_cast<size_t>(R) * C;
    for (int l = 0; l < cfg.n_layer; ++l) {
      const Block& b = blocks[l];
      layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), b.ln1_w, b.ln1_b, R, C);
      b.qkv.forward(qkv.data(), ln.data(), R);
      for (int r = 0; r < R; ++r) {  // append k, v to the cache, then attend over it
        const float* row = qkv.data() + static_cast<size_t>(r) * 3 * C;
        std::memcpy(k_at(l, seqs[r], pos[r]), row + C, C * sizeof(float));
        std::memcpy(v_at(l, seqs[r], pos[r]), row + 2 * C, C * sizeof(float));
        rows[r] = {k_at(l, seqs[r], 0), v_at(l, seqs[r], 0), pos[r] + 1};
      }
      cached_attention_forward(att.data(), qkv.data(), rows, C, cfg.n_head, C, att_scratch);
      b.proj.forward(branch.data(), att.data(), R);
      residual_forward(x.data(), x.data(), branch.data(), RC);
      layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), b.ln2_w, b.ln2_b, R, C);
      if (b.moe.router) {  // generation is dropless: every row gets its top_k experts
        moe_layer->forward(branch.data(), ln.data(), R, b.moe, moe_buf, /*dropless=*/true);
      } else {
        b.fc.forward(fc.data(), ln.data(), R);
        gelu_forward(fc.data(), fc.data(), RC * 4);
        b.mlp.forward(branch.data(), fc.data(), R);
      }
      residual_forward(x.data(), x.data(), branch.data(), RC);
    }
    lengths = next;
    // Final LayerNorm and LM head only for the rows whose logits are wanted.
    int W = 0;
    for (int r = 0; r < R; ++r)
      if (want[r]) std::copy(x.data() + static_cast<size_t>(r) * C, x.data() + static_cast<size_t>(r + 1) * C, att.data() + static_cast<size_t>(W++) * C);
    if (W == 0) return nullptr;
    layernorm_forward(ln.data(), mean.data(), rstd.data(), att.data(), lnf_w, lnf_b, W, C);
    if (logits.size() < static_cast<size_t>(W) * V) logits.resize(static_cast<size_t>(W) * V);
    head.forward(logits.data(), ln.data(), W);
    return logits.data();
  }
};

KVDecoder::KVDecoder(const GPT& model, WeightType weights)
    : impl_(std::make_unique<Impl>(model, weights)) {}
KVDecoder::~KVDecoder() = default;

const GPTConfig& KVDecoder::config() const { return impl_->cfg; }
WeightType KVDecoder::weight_type() const { return impl_->type; }

void KVDecoder::start(int n_seqs, int capacity) {
  Impl& m = *impl_;
  LOOM_CHECK(n_seqs > 0, "KVDecoder::start: n_seqs must be > 0, got ", n_seqs);
  LOOM_CHECK(capacity > 0 && capacity <= m.cfg.context_len, "KVDecoder::start: capacity ",
             capacity, " must be in [1, context_len = ", m.cfg.context_len, "]");
  m.n_seqs = n_seqs;
  m.capacity = capacity;
  m.lengths.assign(n_seqs, 0);
  m.k_cache.resize(m.cfg.n_layer);
  m.v_cache.resize(m.cfg.n_layer);
  const size_t n = static_cast<size_t>(n_seqs) * capacity * m.cfg.d_model;
  for (int l = 0; l < m.cfg.n_layer; ++l) {
    if (m.k_cache[l].size() != n) m.k_cache[l].resize(n);
    if (m.v_cache[l].size() != n) m.v_cache[l].resize(n);
  }
}

void KVDecoder::reset(int seq) {
  LOOM_CHECK(seq >= 0 && seq < impl_->n_seqs, "KVDecoder::reset: no sequence ", seq);
  impl_->lengths[seq] = 0;
}

int KVDecoder::length(int seq) const { return impl_->lengths.at(seq); }

const float* KVDecoder::forward(std::span<const int> seqs, std::span<const int32_t> tokens,
                                std::span<const uint8_t> want_logits) {
  return impl_->forward(seqs, tokens, want_logits);
}

}  // namespace loom::infer
