#pragma once
// ParamGather: where a model's parameters come from when its rank does not hold them all. Under
// ZeRO-3 (parallel/zero3_params) each data-parallel rank keeps a shard of every parameter and
// gathers a unit's whole parameters into a working buffer just before an executor runs it.
//
// Units: the shard's blocks (their index among the shard's blocks, 0-based) and kEnds, the
// tensors outside the blocks (wte, wpe, ln_f: the embedding, and ln_f with the LM head tied to
// wte). An executor calls use() before each unit's forward and before its backward; the pointers
// the model's tensors were bound to (GPTModel::bind_params) then hold the unit's parameters.
namespace loom {

class ParamGather {
 public:
  static constexpr int kEnds = -1;  // wte, wpe and ln_f
  static constexpr int kNone = -2;  // no unit follows

  virtual ~ParamGather() = default;
  // `unit` runs now: its parameters are in place on return. `next` is the unit the executor
  // runs after it (kNone when none), whose gather may start now, while `unit` computes.
  // Collective over the group the parameters are sharded over: every rank makes the same calls.
  virtual void use(int unit, int next) = 0;
};

}  // namespace loom
