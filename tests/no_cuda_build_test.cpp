// The build without CUDA (no nvcc found, or -DLOOM_WITH_CUDA=OFF): CMake then leaves out every
// file under a cuda/ or nccl/ folder, and the files that switch on LOOM_WITH_CUDA take their
// CUDA-less branch. Configuring a second build tree here would take minutes on CI, so this test
// compiles exactly those switching files (syntax and types, no code generation) with the macro
// undefined; a CUDA-only name used outside its #ifdef fails it.
#include <gtest/gtest.h>

#include "comm_process_util.hpp"

namespace loom {
namespace {

TEST(BuildWithoutCuda, FilesWithACudaSwitchCompileWithoutIt) {
  const std::string root = LOOM_SOURCE_DIR;
  // run_shell wraps the command in single quotes: no single quotes inside.
  const std::string list =
      "cd " + root +
      " && grep -rl --include=*.cpp LOOM_WITH_CUDA src tools tests | grep -v -E \"/(cuda|nccl)/\"";
  const auto files = test::run_shell(list, 60);
  ASSERT_EQ(files.exit_code, 0) << files.output;
  // At least the device query, nccl check and the CUDA tests.
  ASSERT_NE(files.output.find("src/loom/device/device.cpp"), std::string::npos) << files.output;
  ASSERT_NE(files.output.find("tools/cmd_nccl_check.cpp"), std::string::npos) << files.output;
  const std::string compile =
      list +
      " | xargs -P 2 -I{} c++ -std=c++20 -fsyntax-only -Wall -Wextra -ULOOM_WITH_CUDA "
      "-DLOOM_WITH_MPI=1 -DLOOM_BINARY=\\\"loom\\\" -DLOOM_SOURCE_DIR=\\\"" +
      root +
      "\\\" "
      "-Isrc -Itools -Itests $(pkg-config --cflags openblas) {}";
  const auto r = test::run_shell(compile, 240);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom
