#include "loom/train/memory_model.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom {

namespace {

// One tensor of the model's activation buffer: n elements rounded up to 64 (its Carver).
double carved(double n) { return static_cast<double>((static_cast<size_t>(n) + 63) / 64 * 64); }

// Parameters of the GEMM weights that bf16 converts (and caches per step): the four matrices of
// each block and the tied embedding (the LM head).
double gemm_weight_params(const GPTConfig& c) {
  const double C = c.d_model;
  return c.n_layer * 12.0 * C * C + static_cast<double>(c.vocab_size) * C;
}

}  // namespace

std::vector<MemoryItem> predict_memory(const MemoryOptions& o) {
  LOOM_CHECK(o.batch > 0 && o.seq > 0 && o.seq <= o.model.context_len,
             "memory: batch must be > 0 and seq in [1, context_len]");
  LOOM_CHECK(o.world >= 1 && o.zero >= 0 && o.zero <= 2, "memory: bad world size or ZeRO stage");
  const GPTConfig& c = o.model;
  const double P = static_cast<double>(c.num_params());
  const double N = static_cast<double>(o.batch) * o.seq, C = c.d_model, V = c.vocab_size;
  const double H = c.n_head, T = o.seq, L = c.n_layer;
  const double NT = N * T;  // rows x keys: B*T*T, one (T,T) matrix per sequence
  const bool sharded = o.world > 1 && o.zero > 0;
  const double f = 4;  // bytes per float

  std::vector<MemoryItem> v;
  v.push_back({"model state", "parameters (f32)", f * P});
  // ZeRO-2 reduce-scatters the gradients, but GPTModel owns one full flat gradient buffer that
  // backward writes, so a rank still holds every gradient.
  v.push_back({"model state", "gradients (f32)", f * P});
  v.push_back({"model state", sharded ? "AdamW moments (f32, this rank's shard)"
                                      : "AdamW moments (f32)",
               2 * f * (sharded ? P / o.world : P)});

  // Activations kept for backward (per block, x L) and the shared backward scratch. Under
  // recomputation the blocks share what backward recomputes: kFull every block activation but
  // the block's output (the next block's input), kSelective the attention probabilities.
  const double kept = o.recompute == Recompute::kFull ? 1 : L;  // sets of block activations
  const double att_kept = o.recompute == Recompute::kNone ? L : 1;
  const double per_block_stats = 4 * carved(N);  // ln_1, ln_2 mean and rstd
  v.push_back({"activations", "residual stream (embeddings, mid, block outputs)",
               f * (carved(N * C) + (L + kept) * carved(N * C))});
  v.push_back({"activations", "layernorm outputs and statistics",
               f * (kept * (2 * carved(N * C) + per_block_stats) + carved(N * C) + 2 * carved(N))});
  v.push_back({"activations", "qkv", f * kept * carved(3 * N * C)});
  v.push_back({"activations", "attention probabilities (B,H,T,T)", f * att_kept * carved(NT * H)});
  v.push_back({"activations", "attention output", f * kept * carved(N * C)});
  v.push_back({"activations", "mlp (c_fc output, GELU output)", f * kept * 2 * carved(4 * N * C)});
  v.push_back({"activations", "logits (B*T*V) and losses", f * (carved(N * V) + 2 * carved(N))});
  v.push_back({"activations", "backward scratch (shared by the blocks)",
               f * (4 * carved(N * C) + carved(3 * N * C) + carved(4 * N * C) +
                    carved(o.threads * 2.0 * T * T))});
  if (c.dropout > 0) {
    v.push_back({"activations", "dropout masks (uint8)",
                 carved(N * C) + L * (carved(NT * H) + 2 * carved(N * C))});
  }

  if (o.precision == kernels::MatmulPrecision::kBF16) {
    v.push_back({"bf16", "bf16 weight copies (once per step)", 2 * gemm_weight_params(c)});
    // The calling thread's operand buffers: the output gradient rounded once for both backward
    // products (the largest is the logits' gradient, rows padded to 64), the A operand of other
    // products (at most a c_fc output, N x 4C) and their B operand (the LM head's input, N x C).
    const double padded_vocab_row = std::ceil(V / 64) * 64;
    v.push_back({"bf16", "bf16 operand scratch",
                 2 * (N * std::max(padded_vocab_row, 4 * C) + 4 * N * C + N * C)});
  }
  if (o.world > 1) {
    // The ring algorithms send to one neighbour and receive from the other: two channels.
    v.push_back({"communication", "shm ring channels (send + receive)",
                 2.0 * static_cast<double>(o.shm_channel_bytes)});
  }
  v.erase(std::remove_if(v.begin(), v.end(), [](const MemoryItem& i) { return i.bytes <= 0; }),
          v.end());
  return v;
}

double total_bytes(const std::vector<MemoryItem>& items) {
  double t = 0;
  for (const auto& i : items) t += i.bytes;
  return t;
}

}  // namespace loom
