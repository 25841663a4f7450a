// GPTModel: the weights of a shard, their initialisation and their gradients' storage.
#include "loom/model/gpt.hpp"

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "loom/kernels/cpu/parallel.hpp"
#include "loom/model/gpt_weights.hpp"

namespace loom {

template <typename T>
GPTModel<T>::GPTModel(const GPTConfig& config, const ModelShard& shard, TensorParallelGroup* tp,
                      moe::ExpertParallelGroup* ep)
    : impl_(std::make_unique<Impl>(config, shard, tp, ep)) {
  std::memset(impl_->params.data(), 0, impl_->n_params * sizeof(T));
  zero_grad();
}

template <typename T>
GPTModel<T>::~GPTModel() = default;

template <typename T>
const GPTConfig& GPTModel<T>::config() const { return impl_->cfg; }
template <typename T>
const ModelShard& GPTModel<T>::shard() const { return impl_->shard; }
template <typename T>
const std::vector<ParamInfo>& GPTModel<T>::layout() const { return impl_->layout; }
template <typename T>
size_t GPTModel<T>::num_params() const { return impl_->n_params; }
template <typename T>
T* GPTModel<T>::params() { return impl_->params.data(); }
template <typename T>
const T* GPTModel<T>::params() const { return impl_->params.data(); }
template <typename T>
T* GPTModel<T>::grads() { return impl_->grads.data(); }
template <typename T>
const T* GPTModel<T>::grads() const { return impl_->grads.data(); }
template <typename T>
int GPTModel<T>::local_vocab() const { return impl_->vocab.Vl; }

template <typename T>
void GPTModel<T>::init_weights(uint64_t seed, T* out) {
  Impl& m = *impl_;
  T* const params = out != nullptr ? out : m.params.data();
  LOOM_CHECK(params != nullptr, "init_weights: the parameters are bound elsewhere (bind_params); "
             "pass the buffer to fill");
  Rng rng(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * m.cfg.n_layer);
  std::map<std::string, const ParamInfo*> mine;
  for (const ParamInfo& info : m.layout) mine[info.name] = &info;
  std::vector<T> whole;
  // The whole model's tensors in order, so every shard draws the same stream.
  for (const ParamInfo& info : gpt_param_layout(m.cfg)) {
    const auto it = mine.find(info.name);
    const ParamInfo* local = it == mine.end() ? nullptr : it->second;
    const auto ends_with = [&](const std::string& s) {
      return info.name.size() >= s.size() &&
             info.name.compare(info.name.size() - s.size(), s.size(), s) == 0;
    };
    if (info.shape.size() >= 2) {
      const double std = ends_with("c_proj.weight") ? residual_std : 0.02;
      // Drawn straight into place when this rank holds the whole tensor.
      const bool in_place = local != nullptr && local->replicated();
      T* w = in_place ? params + local->offset : (whole.resize(info.numel), whole.data());
      for (size_t i = 0; i < info.numel; ++i) w[i] = static_cast<T>(std * rng.normal());
      if (local != nullptr && !in_place) copy_from_whole(*local, whole.data(), params + local->offset);
    } else if (local != nullptr) {
      // LayerNorm gains start at 1; biases (including LayerNorm biases) at 0.
      T* w = params + local->offset;
      std::fill(w, w + local->numel, ends_with(".weight") ? T(1) : T(0));
    }
  }
}

namespace {

template <typename T>
void zero_floats(T* gp, size_t n) {
#pragma omp parallel for schedule(static) if (kernels::worth_threads(n))
  for (size_t i = 0; i < n; ++i) gp[i] = T(0);
}

}  // namespace

template <typename T>
void GPTModel<T>::zero_grad() {
  Impl& m = *impl_;
  if (m.grads.size() > 0) {
    zero_floats(m.grads.data(), m.n_params);
    return;
  }
  for (size_t i = 0; i < m.layout.size(); ++i) zero_floats(m.grad_storage[i], m.layout[i].numel);
}

template <typename T>
void GPTModel<T>::bind_gradients(const std::vector<T*>& storage) {
  Impl& m = *impl_;
  LOOM_CHECK(storage.size() == m.layout.size(), "bind_gradients: ", storage.size(),
             " pointers for the ", m.layout.size(), " tensors of the layout");
  for (size_t i = 0; i < storage.size(); ++i)
    LOOM_CHECK(storage[i] != nullptr, "bind_gradients: no storage for ", m.layout[i].name);
  m.grad_storage = storage;
  m.g = gpt_internal::bind_tensors(m.grad_storage, m.layout, m.block_id, m.cfg);
  m.grads.resize(0);
}

template <typename T>
void GPTModel<T>::bind_params(const std::vector<T*>& storage, ParamGather* gather) {
  Impl& m = *impl_;
  LOOM_CHECK(storage.size() == m.layout.size(), "bind_params: ", storage.size(),
             " pointers for the ", m.layout.size(), " tensors of the layout");
  for (size_t i = 0; i < storage.size(); ++i)
    LOOM_CHECK(storage[i] != nullptr, "bind_params: no storage for ", m.layout[i].name);
  LOOM_CHECK(gather != nullptr, "bind_params: no ParamGather to put the units' parameters in place");
  m.p = gpt_internal::bind_tensors(storage, m.layout, m.block_id, m.cfg);
  m.gather = gather;
  m.params.resize(0);
}

template class GPTModel<float>;
template class GPTModel<double>;

}  // namespace loom
