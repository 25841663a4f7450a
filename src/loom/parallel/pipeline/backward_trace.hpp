#pragma once
// Per-block backward events for the timeline trace. The model calls its GradReadyFn each time a
// group of parameters has its gradient (the LM head + ln_f, then each block from the last to the
// first, then the embeddings); the time between two calls is that group's backward. Wrapping
// the hook turns those intervals into trace events named after the group ("backward h.3").
#include <vector>

#include "loom/model/gpt.hpp"
#include "loom/model/param_layout.hpp"

namespace loom {

// `hook` itself when tracing is off; else a hook that records the events, then calls `hook` (if
// any). Make it right before backward(): the first group's event starts then. `layout` must
// outlive the returned hook.
GPT::GradReadyFn traced_backward_hook(GPT::GradReadyFn hook, const std::vector<ParamInfo>& layout);

}  // namespace loom
