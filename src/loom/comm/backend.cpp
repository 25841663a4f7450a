#include "loom/comm/backend.hpp"

namespace loom::comm {

void Backend::native(const Collective&, Clock::time_point) {
  LOOM_FAIL("backend ", name(), " has no native collectives (use --algo ring, tree or naive)");
}

void Backend::native_barrier(Clock::time_point) {
  LOOM_FAIL("backend ", name(), " has no native collectives (use --algo ring, tree or naive)");
}

namespace {

class SoloTransport : public Transport {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void exchange(int to, std::span<const std::byte>, int from, size_t, const Sink&) override {
    LOOM_CHECK(to < 0 && from < 0, "a single-rank communicator has no peer to talk to");
  }
};

class SoloBackend : public Backend {
 public:
  const char* name() const override { return "solo"; }
  Transport& transport() override { return transport_; }
  const std::vector<int>& members() const override { return members_; }
  std::unique_ptr<Backend> split(int, int, const std::vector<int>&, int) override {
    return std::make_unique<SoloBackend>();
  }

 private:
  SoloTransport transport_;
  std::vector<int> members_{0};
};

}  // namespace

std::unique_ptr<Backend> make_solo_backend() { return std::make_unique<SoloBackend>(); }

}  // namespace loom::comm
