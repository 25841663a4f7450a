#include "loom/model/activation_plan.hpp"

#include "loom/core/check.hpp"
#include "loom/kernels/cpu/attention.hpp"
#include "loom/model/model_shard.hpp"
#include "loom/model/moe/moe_layer.hpp"

namespace loom {

ActivationBytes activation_plan(const GPTConfig& config, const ActivationShape& s) {
  LOOM_CHECK(s.batch > 0 && s.seq > 0 && s.seq <= config.context_len && s.blocks >= 0 &&
                 s.threads > 0,
             "activation plan: batch ", s.batch, ", seq ", s.seq, " (context_len ",
             config.context_len, "), blocks ", s.blocks, ", threads ", s.threads);
  check_tp_divides_heads(config, s.tp, "--tp");
  LOOM_CHECK(!(s.split_backward && s.recompute == Recompute::kFull),
             "activation plan: recompute full cannot run with the split backward");
  LOOM_CHECK(!s.sequence_parallel ||
                 (s.tp > 1 && s.seq % s.tp == 0 && !s.split_backward),
             "activation plan: sequence parallelism needs tp > 1 dividing seq and no split "
             "backward, got tp ", s.tp, ", seq ", s.seq,
             s.split_backward ? " with the split backward" : "");
  const size_t N = static_cast<size_t>(s.batch) * s.seq;  // rows
  const size_t NT = N * s.seq;                             // rows x keys
  const size_t Ns = s.sequence_parallel ? N / s.tp : N;    // rows of the sequence-split regions
  const size_t C = config.d_model, Cl = C / s.tp, Hl = config.n_head / s.tp, Fl = 4 * C / s.tp;
  const size_t Vl = s.tp > 1 ? padded_vocab(config.vocab_size, s.tp) / s.tp : config.vocab_size;
  const size_t e = s.elem_bytes;
  auto bytes = [e](size_t n) { return carved_elems(n) * e; };
  const bool drop = config.dropout > 0;

  // One block's recomputable activations: the linear layers' inputs and outputs (ln_1, mid, ln_2
  // in the sequence-split region: the column-parallel layers gather their LayerNorm's output
  // again in backward), and the LayerNorm statistics; the attention probabilities apart.
  const size_t linear = 3 * bytes(Ns * C) + bytes(N * 3 * Cl) + bytes(N * Cl) + 2 * bytes(N * Fl);
  const size_t stats = 4 * bytes(Ns);
  const size_t att = bytes(NT * Hl);

  ActivationBytes a;
  a.blocks = s.blocks;
  a.split_backward = s.split_backward;
  a.stage_input = bytes(Ns * C);
  a.embedding_mask = drop && s.embedding ? carved_elems(Ns * C) : 0;
  a.masks_per_block = drop ? carved_elems(NT * Hl) + 2 * carved_elems(Ns * C) : 0;
  const size_t block_output = bytes(Ns * C);
  switch (s.recompute) {
    case Recompute::kNone:
      a.kept_per_block = linear + block_output;
      a.b_only_per_block = stats + att;
      break;
    case Recompute::kSelective:
      a.kept_per_block = linear + block_output;
      a.b_only_per_block = stats;
      a.recomputed = att;
      break;
    case Recompute::kFull:
      a.kept_per_block = block_output;
      a.recomputed = linear + stats + att;
      break;
  }
  if (s.head) {
    a.head = bytes(N * C) + 2 * bytes(Ns) + 2 * bytes(N) + (s.tp > 1 ? bytes(3 * N) : 0);
    a.logits = bytes(N * Vl);
  } else if (s.sequence_parallel) {
    a.stage_output = bytes(N * C);
  }
  for (int l = s.first_block; l < s.first_block + s.blocks; ++l) a.moe_blocks += config.is_moe_block(l);
  if (a.moe_blocks > 0)
    a.moe_per_block = moe::moe_buffer_bytes(moe::MoeConfig::of(config), config.d_model, N, e);
  const size_t att_scratch = kernels::attention_scratch_size(
      {1, s.seq, static_cast<int>(Cl), static_cast<int>(Hl)}, s.threads);
  // dres (the residual stream's gradient), dln, dqkv, datty, dfc, dbranch, the attention's
  // scratch; sequence parallelism: dres in the split region, and a block's LayerNorm weight
  // gradients (4C), summed over the tp ranks before they are added.
  a.scratch = bytes(Ns * C) + 2 * bytes(N * C) + bytes(N * 3 * Cl) + bytes(N * Cl) +
              bytes(N * Fl) + bytes(att_scratch) + (s.sequence_parallel ? bytes(4 * C) : 0);
  return a;
}

}  // namespace loom
