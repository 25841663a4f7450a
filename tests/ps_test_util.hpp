#pragma once
// Fixture of the parameter-server end-to-end tests (ps_cli_test, ps_fault_test): the layout
// tests' tiny run (2 blocks), a run's ps_staleness record and its histograms, and a job long
// enough to be hit mid-run.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "layout_equivalence.hpp"

namespace loom::testing {

class PsTest : public LayoutEquivalenceTest {
 protected:
  void SetUp() override { make_config(2); }

  // The run's ps_staleness record (metrics.jsonl).
  nlohmann::json staleness_of(const std::string& out) {
    std::ifstream in(dir_ / out + "/metrics.jsonl");
    nlohmann::json found;
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j["type"] == "ps_staleness") found = j;
    }
    return found;
  }
  static int64_t max_key(const nlohmann::json& histogram) {
    int64_t m = -1;
    for (const auto& [k, v] : histogram.items()) m = std::max<int64_t>(m, std::stoll(k));
    return m;
  }
  static int64_t total(const nlohmann::json& histogram) {
    int64_t n = 0;
    for (const auto& [k, v] : histogram.items()) n += v.get<int64_t>();
    return n;
  }
  // The start of a command line running Open MPI's mpirun over `np` ranks that go on when one
  // dies (--mca orte_enable_recovery 1; without it mpirun ends the whole job).
  static std::string recovering_mpirun(int np) {
    return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --allow-run-as-root "
           "--oversubscribe --mca orte_enable_recovery 1 -np " +
           std::to_string(np) + " ";
  }
  // `loom train` arguments of a job long enough to be hit mid-run: `steps` updates at batch 1,
  // checkpoints every 10, into out_dir `out` (a path).
  std::string long_job(const std::string& out, int steps, const std::string& flags) const {
    return std::string(LOOM_BINARY) + " train --config " + config_ + " --out_dir " + out +
           " --batch_size 1 --eval_freq 0 --sample_freq -1 --save_freq 10 --max_steps " +
           std::to_string(steps) + " " + flags;
  }
};

}  // namespace loom::testing
