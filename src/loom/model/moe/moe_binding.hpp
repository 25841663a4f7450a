#pragma once
// Points an MoE layer's tensors into a flat buffer laid out by gpt_param_layout (parameters or,
// at the same offsets, gradients): for the block that runs the layer.
#include <vector>

#include "loom/model/moe/moe_layer.hpp"
#include "loom/model/param_layout.hpp"

namespace loom::moe {

// Block `layer`'s router and experts first .. first + count - 1, found by name in `layout` (an
// error naming the missing tensor if the buffer does not hold them).
template <typename T>
MoeTensors<T> bind_moe_tensors(const std::vector<ParamInfo>& layout, int layer, T* base, int first,
                               int count);

}  // namespace loom::moe
