#pragma once
// `loom train --ps S`: training with parameter servers (parallel/ps). World ranks 0..S-1 are the
// servers, each holding its range of the parameters and AdamW moments; the others are workers,
// each a whole model reading its share of the data (worker w of W is sampler rank w of W, as a
// data-parallel rank is) that pulls the parameters, runs forward and backward and pushes the
// gradient. Server 0 prints and logs each update (a step is one server update), writes the
// checkpoints (whole Hugging Face tensors gathered from every server's range: they resume under
// all-reduce data parallelism, and a data-parallel checkpoint resumes here) and, at the end, the
// staleness histograms to metrics.jsonl. Checkpoints also keep each worker's data position
// ("ps_workers" in their layout): a resumed run continues every worker where it was. SIGTERM or
// SIGINT (preemption) on any rank stops the servers after the update in progress, which they save
// before exiting 0. Evaluation and samples are not run under --ps (`loom eval` on a checkpoint
// evaluates it).
#include <string>

#include "loom/comm/communicator.hpp"
#include "loom/config/train_config.hpp"

namespace loom {

// Collective over `world` (config.train.ps < world.size()). resume_dir: a checkpoint directory
// to continue ("" for a fresh run); init_from: pretrained weights for a fresh run ("" for none).
void train_with_parameter_servers(const RunConfig& config, comm::Communicator& world,
                                  const std::string& resume_dir, const std::string& init_from);

// "ranks 0..1 servers, ranks 2..5 workers" for `loom info` and the run's first line.
std::string ps_roles(int servers, int world);

}  // namespace loom
