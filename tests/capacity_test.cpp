// Resource sanity: a local job with more ranks than the host's cores can run, or whose planned
// memory exceeds the available memory, or a sequence longer than the context, is refused before
// any rank starts, with the numbers; --oversubscribe starts it anyway.
#include "loom/launch/capacity.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "error_of.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

using test::error_of;

constexpr double kGiB = 1024.0 * 1024 * 1024;

TEST(HostCapacity, ReportsCoresAndMemory) {
  const launch::HostCapacity h = launch::host_capacity();
  EXPECT_GE(h.cores, 1);
  EXPECT_GT(h.memory_bytes, 0);
}

TEST(HostCapacity, RefusesMoreRanksThanTheCoresRun) {
  const launch::HostCapacity host{2, 4 * kGiB};
  EXPECT_EQ(error_of([&] { launch::check_job_fits(16, 0, host); }), "");
  const std::string e = error_of([&] { launch::check_job_fits(17, 0, host); });
  EXPECT_NE(e.find("--nproc 17: this machine runs at most 16 local ranks (2 cores x 8 ranks per core)"),
            std::string::npos) << e;
  EXPECT_NE(e.find("--oversubscribe"), std::string::npos) << e;
}

TEST(HostCapacity, RefusesMorePlannedMemoryThanAvailable) {
  const launch::HostCapacity host{2, 4 * kGiB};
  EXPECT_EQ(error_of([&] { launch::check_job_fits(4, 1 * kGiB, host); }), "");
  const std::string e = error_of([&] { launch::check_job_fits(4, 1.5 * kGiB, host); });
  EXPECT_NE(e.find("the job needs 6.0 GiB (4 rank(s) x 1.5 GiB"), std::string::npos) << e;
  EXPECT_NE(e.find("this machine has 4.0 GiB available"), std::string::npos) << e;
}

// `loom train` refusals: exit 1 with the message, and nothing written (out_dir never created).
struct Refusal {
  std::string flags, message;
};

TEST(HostCapacity, TrainRefusesBeforeAnyRankStarts) {
  testing::TempDir dir;
  const std::string out = dir / "out";
  const std::string base = "train --config " + std::string(LOOM_SOURCE_DIR) +
                           "/configs/tiny.json --data_dir " + dir.path() + " --out_dir " + out;
  for (const Refusal& r : std::vector<Refusal>{
           {"--nproc 1000", "--nproc 1000: this machine runs at most"},
           {"--batch_size 1000000", "planned by the memory model"},
           {"--nproc 2 --seq_len 100000", "seq_len must be in [1, context_len = 128], got 100000"}}) {
    const auto res = testing::loom_cli(base + " " + r.flags, 60);
    EXPECT_EQ(res.rc, 1) << r.flags << "\n" << res.out;
    EXPECT_NE(res.out.find(r.message), std::string::npos) << r.flags << "\n" << res.out;
    EXPECT_EQ(res.out.find("[rank"), std::string::npos) << r.flags << "\n" << res.out;
    EXPECT_FALSE(std::filesystem::exists(out)) << r.flags;
  }
}

TEST(HostCapacity, OversubscribeSkipsTheRefusal) {
  testing::TempDir dir;
  // The memory check passes with --oversubscribe; the run then stops at its (empty) data dir.
  const auto res = testing::loom_cli("train --config " + std::string(LOOM_SOURCE_DIR) +
                                     "/configs/tiny.json --batch_size 1000000 --oversubscribe --data_dir " +
                                     dir.path() + "/none --out_dir " + dir.path() + "/out", 60);
  EXPECT_EQ(res.out.find("planned by the memory model"), std::string::npos) << res.out;
  EXPECT_NE(res.out.find("is not a directory"), std::string::npos) << res.out;
}

TEST(HostCapacity, LaunchRefusesMoreRanksThanTheCoresRun) {
  const auto res = testing::loom_cli("launch --nproc 1000 -- comm check", 60);
  EXPECT_EQ(res.rc, 1) << res.out;
  EXPECT_NE(res.out.find("--nproc 1000: this machine runs at most"), std::string::npos) << res.out;
}

}  // namespace
}  // namespace loom
