#include "loom/parallel/data_parallel.hpp"

#include "loom/core/check.hpp"
#include "loom/optim/grad_clip.hpp"
#include "loom/parallel/replica_check.hpp"
#include "loom/parallel/tensor_parallel.hpp"

namespace loom::parallel {

DataParallel::DataParallel(comm::Communicator* comm, GPT& model, const AdamWParams& hp,
                           const DataParallelOptions& opts, comm::Communicator* tp)
    : comm_(comm && comm->size() > 1 ? comm : nullptr),
      tp_(tp && tp->size() > 1 ? tp : nullptr),
      model_(model),
      hp_(hp) {
  if (comm_ && opts.zero == 2) {
    // ZeRO-2: each bucket is reduce-scattered during backward; the buckets are the partitions
    // of the sharded optimizer.
    LOOM_CHECK(opts.bucket_mb > 0, "bucket_mb must be > 0, got ", opts.bucket_mb);
    buckets_.emplace(*comm_, model.grads(), model.num_params(),
                     static_cast<size_t>(opts.bucket_mb * (1 << 20)), comm::OpKind::ReduceScatter);
    std::vector<FlatRange> parts;
    for (const auto& b : buckets_->buckets()) parts.push_back({b.begin, b.end});
    zero_.emplace(*comm_, model.layout(), hp, parts);
    return;
  }
  if (comm_ && opts.zero == 1) {
    zero_.emplace(*comm_, model.layout(), hp);
    return;
  }
  adamw_.emplace(model.layout(), hp);
  if (comm_) {
    LOOM_CHECK(opts.bucket_mb > 0, "bucket_mb must be > 0, got ", opts.bucket_mb);
    buckets_.emplace(*comm_, model.grads(), model.num_params(),
                     static_cast<size_t>(opts.bucket_mb * (1 << 20)));
  }
}

void DataParallel::check_identical_replicas() {
  if (comm_) parallel::check_identical_replicas(*comm_, model_.params(), model_.num_params());
}

GPT::GradReadyFn DataParallel::last_backward_hook() {
  if (!buckets_) return {};
  buckets_->begin();
  return [this](size_t begin, size_t end) { buckets_->on_ready(begin, end); };
}

void DataParallel::reduce_gradients() {
  if (buckets_)
    buckets_->finish();  // DDP's all-reduces or ZeRO-2's reduce-scatters
  else if (zero_)
    zero_->reduce_gradients(model_.grads());
}

double DataParallel::grad_sq_sum() {
  if (tp_) {
    const std::vector<FlatRange> mine =
        zero_ ? zero_->shard_ranges() : std::vector<FlatRange>{{0, model_.num_params()}};
    double sum = 0;
    for (const FlatRange& r : mine) {
      sum += sharded_grad_sq_sum(model_.grads(), model_.layout(), r.begin, r.end,
                                 tp_->rank() == 0);
    }
    if (zero_) sum = allreduce_sum(*comm_, sum);
    return allreduce_sum(*tp_, sum);
  }
  if (zero_) return zero_->grad_sq_sum(model_.grads());
  // After the all-reduce every rank holds the same averaged gradient: the local sum is global.
  return loom::grad_sq_sum(model_.grads(), model_.num_params());
}

void DataParallel::step(float lr, float clip) {
  if (zero_) {
    zero_->step(model_.params(), model_.grads(), lr, clip);
    return;
  }
  adamw_->step(model_.params(), model_.grads(), lr, clip);
}

double DataParallel::sum(double x) { return comm_ ? allreduce_sum(*comm_, x) : x; }

void DataParallel::with_full_optimizer(const std::function<void(const AdamW&)>& use) {
  if (zero_)
    use(zero_->full_state());
  else
    use(*adamw_);
}

void DataParallel::load_full_optimizer(const std::function<void(AdamW&)>& fill) {
  if (!zero_) {
    fill(*adamw_);
    return;
  }
  AdamW full(model_.layout(), hp_);
  fill(full);
  zero_->load_full_state(full);
}

}  // namespace loom::parallel
