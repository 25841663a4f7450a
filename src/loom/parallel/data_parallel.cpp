#include "loom/parallel/data_parallel.hpp"

#include <algorithm>
#include <cstdio>

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
  LOOM_CHECK(!opts.bf16_reduce || opts.zero == 0, "the bf16 gradient all-reduce needs ZeRO 0 (ZeRO ",
             opts.zero, " reduce-scatters the gradients in f32)");
  if (comm_ && opts.zero == 3) {
    // ZeRO-3: the parameters move into this rank's shard and the working buffers; gradients as
    // ZeRO-2 with a bucket per backward slice, so the buckets are the parameters' partitions.
    zero3_ = std::make_unique<Zero3Params>(*comm_, model.layout());
    zero3_->load(model.params());
    model.bind_params(zero3_->storage(), zero3_.get());
    sharded_ = std::make_unique<ShardedGradients>(*comm_, model.layout(), /*bucket_bytes=*/1);
    std::vector<FlatRange> buckets = sharded_->partitions();
    std::sort(buckets.begin(), buckets.end(),
              [](const FlatRange& a, const FlatRange& b) { return a.begin < b.begin; });
    const auto& units = zero3_->partitions();
    LOOM_CHECK(std::equal(buckets.begin(), buckets.end(), units.begin(), units.end(),
                          [](const FlatRange& a, const FlatRange& b) {
                            return a.begin == b.begin && a.end == b.end;
                          }),
               "ZeRO-3: the gradient buckets differ from the parameter partitions");
    model.bind_gradients(sharded_->storage());
    zero_.emplace(*comm_, model.layout(), hp, units);
    return;
  }
  if (comm_ && opts.zero == 2) {
    // ZeRO-2: the model's gradients move into the bucket pool (its flat buffer is freed); the
    // buckets are the partitions of the sharded optimizer.
    LOOM_CHECK(opts.bucket_mb > 0, "bucket_mb must be > 0, got ", opts.bucket_mb);
    sharded_ = std::make_unique<ShardedGradients>(
        *comm_, model.layout(), static_cast<size_t>(opts.bucket_mb * (1 << 20)));
    model.bind_gradients(sharded_->storage());
    zero_.emplace(*comm_, model.layout(), hp, sharded_->partitions());
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
                     static_cast<size_t>(opts.bucket_mb * (1 << 20)),
                     opts.bf16_reduce ? comm::DType::BF16 : comm::DType::F32);
  }
}

void DataParallel::check_identical_replicas() {
  if (comm_ && !zero3_) parallel::check_identical_replicas(*comm_, model_.params(), model_.num_params());
}

void DataParallel::load_params(const std::function<void(float*)>& fill) {
  if (!zero3_) {
    fill(model_.params());
    return;
  }
  std::vector<float> whole(model_.num_params());
  fill(whole.data());
  zero3_->load(whole.data());
}

const float* DataParallel::param(const ParamInfo& p, float* scratch) {
  if (!zero3_) return model_.params() + p.offset;
  zero3_->gather_tensor(p, scratch);
  return scratch;
}

GPT::GradReadyFn DataParallel::backward_hook(bool last) {
  if (sharded_) {
    sharded_->begin_backward(last);
    return [this](size_t begin, size_t end) { sharded_->on_ready(begin, end); };
  }
  if (!buckets_ || !last) return {};
  buckets_->begin();
  return [this](size_t begin, size_t end) { buckets_->on_ready(begin, end); };
}

void DataParallel::reduce_gradients() {
  if (sharded_)
    sharded_->finish();
  else if (buckets_)
    buckets_->finish();
  else if (zero_)
    zero_->reduce_gradients(model_.grads());
}

ZeroOptimizer::Shard DataParallel::gradient_shard() {
  if (sharded_) return sharded_->shard();
  return {model_.grads() + zero_->shard_ranges().front().begin};  // ZeRO-1: one partition
}

double DataParallel::grad_sq_sum(FlatRange skip) {
  // Under tp the replicated tensors are counted on tp rank 0 only, then the tp ranks' sums add.
  const bool count_replicated = !tp_ || tp_->rank() == 0;
  double sum = 0;
  if (zero_)
    sum = zero_->grad_sq_sum(gradient_shard(), count_replicated, skip);
  else if (tp_)
    sum = sharded_grad_sq_sum(model_.grads(), model_.layout(), 0, model_.num_params(),
                              count_replicated, skip.begin, skip.end);
  else  // after the all-reduce every rank holds the same averaged gradient: the local sum is global
    sum = loom::grad_sq_sum(model_.grads(), model_.num_params(), skip.begin, skip.end);
  return tp_ ? allreduce_sum(*tp_, sum) : sum;
}

void DataParallel::step(float lr, float clip) {
  if (zero3_) {
    zero_->step_shard(zero3_->shard(), gradient_shard(), lr, clip);
    sharded_->clear();
    zero3_->invalidate();
    return;
  }
  if (zero_) {
    zero_->step(model_.params(), gradient_shard(), lr, clip);
    if (sharded_) sharded_->clear();
    return;
  }
  adamw_->step(model_.params(), model_.grads(), lr, clip);
}

size_t DataParallel::gradient_bytes() const {
  return sharded_ ? sharded_->bytes() : model_.num_params() * sizeof(float);
}

size_t DataParallel::parameter_bytes() const {
  return zero3_ ? zero3_->bytes() : model_.num_params() * sizeof(float);
}

std::string DataParallel::gather_summary(double seconds) const {
  if (!zero3_) return "";
  const long n = zero3_->gathers(), hidden = zero3_->hidden_gathers();
  const double wait = zero3_->wait_seconds();
  char line[256];
  std::snprintf(line, sizeof line,
                "ZeRO-3: %ld parameter gathers, %ld (%.0f%%) complete when their unit ran; %.2f s "
                "waiting for them (%.1f%% of %.1f s)",
                n, hidden, n > 0 ? 100.0 * hidden / n : 0.0, wait,
                seconds > 0 ? 100 * wait / seconds : 0.0, seconds);
  return line;
}

double DataParallel::sum(double x) { return comm_ ? allreduce_sum(*comm_, x) : x; }

const float* DataParallel::moment(bool second, const ParamInfo& p, float* scratch) {
  if (!zero_) return (second ? adamw_->v() : adamw_->m()) + p.offset;
  zero_->gather_moments(second, {p.offset, p.offset + p.numel}, scratch);
  return scratch;
}

int64_t DataParallel::optimizer_step() const {
  return zero_ ? zero_->step_count() : adamw_->step_count();
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
