#include "loom/comm/shm/shm_backend.hpp"

#include <numeric>

#include "loom/comm/shm/shm_transport.hpp"

namespace loom::comm::shm {
namespace {

class ShmBackend : public Backend {
 public:
  ShmBackend(std::shared_ptr<Segment> seg, int context, std::vector<int> members, int me)
      : seg_(seg), members_(members), me_(me), transport_(seg, context, std::move(members), me) {}
  const char* name() const override { return "shm"; }
  Transport& transport() override { return transport_; }
  const std::vector<int>& members() const override { return members_; }
  std::unique_ptr<Backend> split(int, int, const std::vector<int>& group_members,
                                 int context) override {
    std::vector<int> world_ranks;
    for (int g : group_members) world_ranks.push_back(members_[g]);
    return std::make_unique<ShmBackend>(seg_, context, std::move(world_ranks), me_);
  }

 private:
  std::shared_ptr<Segment> seg_;
  std::vector<int> members_;
  int me_;
  ShmTransport transport_;
};

}  // namespace

std::unique_ptr<Backend> make_shm_backend(const std::string& segment_name, int rank, int world,
                                          Clock::time_point deadline) {
  std::shared_ptr<Segment> seg = Segment::attach(segment_name, rank, config_from_env(world), deadline);
  std::vector<int> members(world);
  std::iota(members.begin(), members.end(), 0);
  return std::make_unique<ShmBackend>(std::move(seg), 0, std::move(members), rank);
}

}  // namespace loom::comm::shm
