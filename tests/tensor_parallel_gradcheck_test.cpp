// Tensor parallelism in double precision on 2 processes (shm): finite-difference gradient checks
// of one tensor-parallel block and of the vocab-parallel cross-entropy, and the tp 2 model
// against the whole model (and, in f32, with activation recomputation against without). Each check is a worker test (DISABLED_, so only its driver runs it):
// the driver starts this test binary twice as the ranks of a world of 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "comm_process_util.hpp"
#include "gradcheck.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/kernels/cpu/softmax_ce.hpp"
#include "loom/kernels/cpu/vocab_parallel_ce.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/parallel/tensor_parallel.hpp"
#include "model_shard_util.hpp"

namespace loom {
namespace {

using test::kGradTolerance;

// Runs worker test `name` as 2 ranks of this binary; passes when both ranks pass it.
void run_world_of_two(const std::string& name) {
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(len, 0);
  self[len] = '\0';
  const std::string seg = "/loom-tp-test-" + std::to_string(getpid());
  std::string script;
  for (int r = 0; r < 2; ++r)
    script += "LOOM_COMM_TIMEOUT=30 OMP_NUM_THREADS=1 LOOM_SHM_NAME=" + seg + " LOOM_RANK=" +
              std::to_string(r) + " LOOM_WORLD_SIZE=2 " + self +
              " --gtest_also_run_disabled_tests --gtest_filter=TensorParallelWorker.DISABLED_" +
              name + " & p" + std::to_string(r) + "=$!; ";
  script += "rc=0; for p in $p0 $p1; do wait $p || rc=$?; done; echo exit=$rc; rm -f /dev/shm" + seg;
  const auto r = test::run_shell(script, 120);
  EXPECT_NE(r.output.find("exit=0"), std::string::npos) << r.output;
  // Both ranks ran the worker (a filter matching nothing would also exit 0).
  size_t passed = 0;
  for (size_t at = 0; (at = r.output.find("[  PASSED  ] 1 test", at)) != std::string::npos; ++at) ++passed;
  EXPECT_EQ(passed, 2u) << r.output;
}

// The world of this worker process (the driver's environment) as a tp group.
struct World {
  std::unique_ptr<comm::Communicator> comm = comm::communicator_from_env();
  parallel::CommTensorParallelGroup group{*comm};
};

// Finite differences of a loss that is collective over the group: every rank evaluates it in
// lockstep. Index i of `x` is one shared parameter when shared(i) (all ranks perturb it together)
// and otherwise rank-local (perturbed by one rank at a time, the others evaluating unperturbed).
// Returns the largest relative error over all ranks.
double distributed_max_rel_error(TensorParallelGroup& g, double* x, size_t n, const double* analytic,
                                 const std::function<bool(size_t)>& shared,
                                 const std::function<double()>& loss) {
  double worst = 0;
  std::vector<double> one(1);
  for (int owner = 0; owner < g.size(); ++owner) {
    for (size_t i = 0; i < n; ++i) {
      if (shared(i) && owner > 0) continue;
      const bool mine = shared(i) || g.rank() == owner;
      double zero = 0;  // others: a 1-element check against an unperturbed loss, discarded
      double* xi = mine ? &x[i] : &zero;
      const double e = test::max_rel_error(xi, 1, mine ? &analytic[i] : &zero, loss);
      if (mine) worst = std::max(worst, e);
    }
  }
  one[0] = worst;
  g.allreduce_max(one.data(), 1);
  return one[0];
}

// One block split over 2 tp ranks, as a pipeline stage without embedding or head: loss =
// sum(output .* weights). Checks every local parameter (sharded ones per rank; LayerNorms and
// row-parallel biases shared) and the input activation (shared).
TEST(TensorParallelWorker, DISABLED_BlockGradcheck) {
  World w;
  const GPTConfig cfg = test::shard_test_config(1);
  GPTModel<double> m(cfg, {w.comm->rank(), 2, 0, 1, false, false}, &w.group);
  ModelRunner<double> run_m(m);
  test::load_pieces(m, test::random_whole_params(cfg, 5));
  const int B = 2, T = 4, C = cfg.d_model;
  const size_t NC = static_cast<size_t>(B) * T * C;
  auto input = test::random_vector(NC, 6), weights = test::random_vector(NC, 7);
  auto loss = [&] {
    run_m.forward_activation(input.data(), nullptr, B, T, true);
    return test::dot(run_m.output(), weights.data(), NC);
  };
  loss();
  m.zero_grad();
  run_m.backward_from_output(weights.data());
  const std::vector<double> grads(m.grads(), m.grads() + m.num_params());
  const std::vector<double> dinput(run_m.input_grad(), run_m.input_grad() + NC);
  std::vector<bool> shared(m.num_params());
  for (const auto& p : m.layout())
    std::fill(shared.begin() + p.offset, shared.begin() + p.offset + p.numel, p.replicated());
  const double ep = distributed_max_rel_error(
      w.group, m.params(), m.num_params(), grads.data(), [&](size_t i) { return shared[i]; }, loss);
  const double ei = distributed_max_rel_error(
      w.group, input.data(), NC, dinput.data(), [](size_t) { return true; }, loss);
  std::printf("tp block (rank %d, %zu local params): max rel error params %.2e, input %.2e\n",
              w.comm->rank(), m.num_params(), ep, ei);
  EXPECT_LT(ep, kGradTolerance);
  EXPECT_LT(ei, kGradTolerance);
}

TEST(TensorParallelGradcheck, BlockOnTwoRanks) { run_world_of_two("BlockGradcheck"); }

// The vocab-parallel cross-entropy over V = 11 classes split 6 + 5 (+1 padding column): the mean
// loss equals the single-rank softmax cross-entropy of the whole logits, and its gradient matches
// finite differences; the padding column gets no gradient.
TEST(TensorParallelWorker, DISABLED_CrossEntropyGradcheck) {
  World w;
  const int N = 5, V = 11, Vl = 6, r = w.comm->rank();
  const kernels::VocabSlice slice{Vl, r == 0 ? 6 : 5, r * Vl};
  // Large logits: the max subtraction matters.
  const auto whole = test::random_vector(static_cast<size_t>(N) * V, 8, 30.0);
  std::vector<int32_t> targets = {0, 5, 6, 10, 3};
  std::vector<double> logits(static_cast<size_t>(N) * Vl, 123.0);  // padding: never used
  for (int n = 0; n < N; ++n)
    for (int v = 0; v < slice.valid; ++v) logits[n * Vl + v] = whole[n * V + slice.vocab_start + v];
  std::vector<double> row_max(N), stats(2 * N), losses(N), lse(N);
  auto loss = [&] {
    kernels::vocab_parallel_row_max(row_max.data(), logits.data(), N, slice);
    w.group.allreduce_max(row_max.data(), N);
    kernels::vocab_parallel_sum_exp(stats.data(), logits.data(), row_max.data(), targets.data(), N, slice);
    w.group.allreduce_sum(stats.data(), 2 * N);
    kernels::vocab_parallel_ce_finish(losses.data(), lse.data(), row_max.data(), stats.data(), N);
    double sum = 0;
    for (double l : losses) sum += l;
    return sum / N;
  };
  std::vector<double> ref_losses(N), ref_lse(N);
  kernels::softmax_ce_forward(ref_losses.data(), ref_lse.data(), whole.data(), targets.data(), N, V);
  double ref = 0;
  for (double l : ref_losses) ref += l / N;
  EXPECT_NEAR(loss(), ref, 1e-12);
  std::vector<double> dlogits(logits.size());
  kernels::vocab_parallel_ce_backward(dlogits.data(), logits.data(), lse.data(), targets.data(),
                                      1.0 / N, N, slice);
  for (int n = 0; n < N; ++n)
    for (int v = slice.valid; v < Vl; ++v) EXPECT_EQ(dlogits[n * Vl + v], 0.0);
  const double e = distributed_max_rel_error(
      w.group, logits.data(), logits.size(), dlogits.data(), [](size_t) { return false; }, loss);
  std::printf("vocab-parallel cross-entropy (rank %d): max rel error %.2e\n", r, e);
  EXPECT_LT(e, kGradTolerance);
}

TEST(TensorParallelGradcheck, CrossEntropyOnTwoRanks) { run_world_of_two("CrossEntropyGradcheck"); }

// The whole model (vocab-parallel embedding and head, padded vocabulary, 2 blocks) at tp 2 gives
// the single-rank loss, gradients and generated-token logits of the same parameters.
TEST(TensorParallelWorker, DISABLED_ModelMatchesOneRank) {
  World w;
  const GPTConfig cfg = test::shard_test_config(2);
  const auto params = test::random_whole_params(cfg, 9);
  const test::TokenBatch batch(cfg.vocab_size, 10);
  GPTModel<double> whole(cfg), m(cfg, {w.comm->rank(), 2}, &w.group);
  ModelRunner<double> run_whole(whole);
  ModelRunner<double> run_m(m);
  test::load_pieces(whole, params);
  test::load_pieces(m, params);
  const double ref = run_whole.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, false);
  const double loss = run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, false);
  EXPECT_NEAR(loss, ref, 1e-13);
  std::vector<double> row(cfg.vocab_size), ref_row(cfg.vocab_size);
  run_m.logits_row(3, row.data());
  run_whole.logits_row(3, ref_row.data());
  EXPECT_LT(test::max_abs_diff(row, ref_row), 1e-13);
  run_whole.backward();
  run_m.backward();
  // Sharded pieces summed over the ranks, replicated tensors from rank 0: the whole gradient.
  std::vector<double> grads(whole.num_params(), 0.0);
  test::add_grad_pieces(m, grads, w.comm->rank() == 0);
  w.group.allreduce_sum(grads.data(), grads.size());
  const std::vector<double> expected(whole.grads(), whole.grads() + whole.num_params());
  EXPECT_LT(test::max_abs_diff(grads, expected), 1e-13);
  // The replicated tensors' gradients are identical on both ranks.
  for (const auto& p : m.layout()) {
    if (!p.replicated()) continue;
    std::vector<double> mine(m.grads() + p.offset, m.grads() + p.offset + p.numel), sum = mine;
    w.group.allreduce_sum(sum.data(), sum.size());
    for (size_t i = 0; i < p.numel; ++i) ASSERT_EQ(sum[i], 2 * mine[i]) << p.name;
  }
}

TEST(TensorParallelGradcheck, ModelMatchesOneRankOnTwoRanks) { run_world_of_two("ModelMatchesOneRank"); }

// Activation recomputation at tp 2 in f32 with dropout: every rank's gradients are bit-identical
// to keeping every activation (the recomputed block forward runs its attention all-reduce again).
TEST(TensorParallelWorker, DISABLED_RecomputeMatchesKeepingEverything) {
  World w;
  GPTConfig cfg = test::shard_test_config(2);
  cfg.dropout = 0.1f;
  const auto params = test::random_whole_params(cfg, 11);
  const test::TokenBatch batch(cfg.vocab_size, 12);
  std::vector<std::vector<float>> grads;
  for (const Recompute mode : {Recompute::kNone, Recompute::kSelective, Recompute::kFull}) {
    GPT m(cfg, {w.comm->rank(), 2}, &w.group);
    ModelRunner<float> run_m(m, {0, mode, /*split_backward=*/false});
    test::load_pieces(m, params);
    Rng rng(13);
    for (int step = 0; step < 2; ++step) {
      run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true, &rng);
      run_m.backward();
    }
    grads.emplace_back(m.grads(), m.grads() + m.num_params());
  }
  EXPECT_EQ(grads[1], grads[0]) << "selective";
  EXPECT_EQ(grads[2], grads[0]) << "full";
}

TEST(TensorParallelGradcheck, RecomputeMatchesKeepingEverythingOnTwoRanks) {
  run_world_of_two("RecomputeMatchesKeepingEverything");
}

}  // namespace
}  // namespace loom
