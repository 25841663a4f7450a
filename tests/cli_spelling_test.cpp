// Every flag of every command is accepted with dashes or underscores; tokenize --encode-file.
#include <gtest/gtest.h>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
using testing::loom_cli;

TEST(CliSpelling, BothSpellingsOfEveryFlagAreAccepted) {
  // Registered with dashes (tokenize --val-fraction, launch --max-restarts) or underscores
  // (train --max_restarts): each works both ways.
  for (const char* flag : {"--encode-file", "--encode_file"}) {
    const auto r = testing::run_bounded("printf 'hi\\n' | " + std::string(LOOM_BINARY) +
                                        " tokenize --tokenizer byte " + flag + " -");
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(r.out, "104 105 10\n") << flag;
  }
  for (const char* flag : {"--max-restarts", "--max_restarts"}) {
    const auto r = loom_cli(std::string("launch --nproc 1 ") + flag + " 0 -- info");
    EXPECT_EQ(r.rc, 0) << flag << r.out;
  }
  const auto bad = loom_cli("launch --nproc 1 --max_restart 0 -- info");
  EXPECT_NE(bad.rc, 0) << bad.out;
}

TEST(CliSpelling, EncodeFileKeepsTrailingNewlines) {
  testing::TempDir dir;
  std::ofstream(dir / "t.txt") << "a\n\n";
  const auto r = loom_cli("tokenize --tokenizer byte --encode-file " + dir / "t.txt");
  EXPECT_EQ(r.out, "97 10 10\n");
  const auto missing = loom_cli("tokenize --encode-file " + dir / "none.txt");
  EXPECT_NE(missing.rc, 0);
  EXPECT_NE(missing.out.find("--encode_file: cannot open"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace loom
