// The `loom` program. Subcommands are in tools/cmd_*.cpp (see command_registry.hpp).
#include "command_registry.hpp"
#include "loom/core/cpu_env.hpp"

int main(int argc, char** argv) {
  loom::reexec_with_cpu_env(argc, argv);
  return loom::cli::run_main(argc, argv);
}
