// The environment a rank reads at start-up (loom launch, mpirun, srun/PMI, torchrun variables,
// and the shm transport's LOOM_SHM_* sizes). Input: lines "<index byte><value>", the index byte
// choosing one of kVars; every variable is cleared again after each input.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_input.hpp"
#include "loom/comm/shm/segment.hpp"
#include "loom/comm/environment.hpp"

namespace {

constexpr const char* kVars[] = {
    "LOOM_RANK", "LOOM_WORLD_SIZE", "LOOM_LOCAL_RANK", "LOOM_LOCAL_WORLD_SIZE", "LOOM_SHM_NAME",
    "LOOM_RESTART_COUNT", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
    "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "RANK",
    "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "LOOM_SHM_CONTEXTS", "LOOM_SHM_SLOTS", "LOOM_SHM_SLOT_BYTES"};
constexpr size_t kNumVars = sizeof(kVars) / sizeof(kVars[0]);

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (const char* v : kVars) unsetenv(v);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) {
      const std::string value = text.substr(start + 1, end - start - 1);
      if (value.find('\0') == std::string::npos)
        setenv(kVars[static_cast<uint8_t>(text[start]) % kNumVars], value.c_str(), 1);
    }
    start = end + 1;
  }
  loom::fuzz::expect_ok_or_loom_error([] {
    const auto env = loom::comm::detect_environment();
    loom::comm::shm::config_from_env(env.world_size);
  });
  for (const char* v : kVars) unsetenv(v);
  return 0;
}
