#include "loom/model/moe/moe_binding.hpp"

#include <string>

#include "loom/core/check.hpp"

namespace loom::moe {

template <typename T>
MoeTensors<T> bind_moe_tensors(const std::vector<ParamInfo>& layout, int layer, T* base, int first,
                               int count) {
  const std::string h = "transformer.h." + std::to_string(layer) + ".mlp.";
  auto at = [&](const std::string& name) {
    for (const ParamInfo& p : layout)
      if (p.name == name) return base + p.offset;
    LOOM_FAIL("moe: the parameter buffer has no ", name);
  };
  MoeTensors<T> t;
  t.router = at(h + "router.weight");
  for (int e = first; e < first + count; ++e) {
    const std::string x = h + "experts." + std::to_string(e) + ".";
    t.experts.push_back({at(x + "c_fc.weight"), at(x + "c_fc.bias"), at(x + "c_proj.weight"),
                         at(x + "c_proj.bias")});
  }
  return t;
}

template MoeTensors<float> bind_moe_tensors<float>(const std::vector<ParamInfo>&, int, float*, int, int);
template MoeTensors<double> bind_moe_tensors<double>(const std::vector<ParamInfo>&, int, double*, int,
                                                     int);
template MoeTensors<const float> bind_moe_tensors<const float>(const std::vector<ParamInfo>&, int,
                                                               const float*, int, int);
template MoeTensors<const double> bind_moe_tensors<const double>(const std::vector<ParamInfo>&, int,
                                                                 const double*, int, int);

}  // namespace loom::moe
