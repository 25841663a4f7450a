#include "loom/model/activation_set.hpp"

#include "loom/model/activation_state.hpp"

namespace loom {

template <typename T>
ActivationSet<T>::ActivationSet() : state_(std::make_unique<gpt_internal::ActivationState<T>>()) {}
template <typename T>
ActivationSet<T>::~ActivationSet() = default;
template <typename T>
ActivationSet<T>::ActivationSet(ActivationSet&&) noexcept = default;
template <typename T>
ActivationSet<T>& ActivationSet<T>::operator=(ActivationSet&&) noexcept = default;
template <typename T>
size_t ActivationSet<T>::bytes() const {
  return state_->bytes();
}
template <typename T>
size_t ActivationSet<T>::logits_bytes() const {
  return carved_elems(state_->logits_elems) * sizeof(T);
}

template <typename T>
ActivationWorkspace<T>::ActivationWorkspace()
    : scratch_(std::make_unique<gpt_internal::BackwardScratch<T>>()) {}
template <typename T>
ActivationWorkspace<T>::~ActivationWorkspace() = default;
template <typename T>
ActivationWorkspace<T>::ActivationWorkspace(ActivationWorkspace&&) noexcept = default;
template <typename T>
ActivationWorkspace<T>& ActivationWorkspace<T>::operator=(ActivationWorkspace&&) noexcept = default;
template <typename T>
size_t ActivationWorkspace<T>::bytes() const {
  return scratch_->buf.size() * sizeof(T);
}
template <typename T>
size_t ActivationWorkspace<T>::allocations() const {
  return scratch_->allocations;
}

template class ActivationSet<float>;
template class ActivationSet<double>;
template class ActivationWorkspace<float>;
template class ActivationWorkspace<double>;

}  // namespace loom
