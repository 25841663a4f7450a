#include "loom/parallel/pipeline/backward_trace.hpp"

#include <algorithm>
#include <memory>
#include <string>

#include "loom/core/trace.hpp"

namespace loom {
namespace {

// "transformer.h.3.attn.c_attn.weight" -> "h.3"; "transformer.wte.weight" -> "wte.weight".
std::string group_name(const std::string& param) {
  std::string s = param.rfind("transformer.", 0) == 0 ? param.substr(12) : param;
  if (s.rfind("h.", 0) == 0) return s.substr(0, s.find('.', 2));
  return s;
}

}  // namespace

GPT::GradReadyFn traced_backward_hook(GPT::GradReadyFn hook, const std::vector<ParamInfo>& layout) {
  if (!trace::enabled()) return hook;
  auto last_us = std::make_shared<double>(trace::now_us());
  return [hook = std::move(hook), &layout, last_us](size_t begin, size_t end) {
    // The group is named by its first parameter (the layout is sorted by offset).
    const auto it = std::upper_bound(layout.begin(), layout.end(), begin,
                                     [](size_t b, const ParamInfo& p) { return b < p.offset; });
    const std::string name = it == layout.begin() ? "?" : group_name(std::prev(it)->name);
    trace::complete("backward " + name, "compute", *last_us);
    *last_us = trace::now_us();
    if (hook) hook(begin, end);
  };
}

}  // namespace loom
