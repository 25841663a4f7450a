#include "loom/comm/nccl/nccl_backend.hpp"

#include <cstring>

#include "loom/comm/nccl/nccl_group.hpp"
#include "loom/comm/nccl/nccl_transport.hpp"
#include "loom/comm/nccl/nccl_wait.hpp"
#include "loom/device/cuda/runtime.hpp"

namespace loom::comm::nccl {

namespace {

ncclDataType_t nccl_type(DType t) { return t == DType::F32 ? ncclFloat32 : ncclBfloat16; }
ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::Sum ? ncclSum : ncclAvg; }

class NcclBackend : public Backend {
 public:
  NcclBackend(ncclComm_t comm, int rank, std::vector<int> members)
      : group_(comm, rank, static_cast<int>(members.size())),
        transport_(group_),
        members_(std::move(members)) {}

  const char* name() const override { return "nccl"; }
  Transport& transport() override { return transport_; }
  const std::vector<int>& members() const override { return members_; }
  bool has_native() const override { return true; }

  void native(const Collective& c, Clock::time_point deadline) override {
    LOOM_CHECK(c.count == 0 || device::cuda::is_device_pointer(c.data),
               "nccl backend: ", comm::name(c.kind),
               " needs a device buffer (this one is in host memory)");
    if (c.count == 0) return;
    group_.run(comm::name(c.kind), deadline, [&] { issue(c); });
  }

  void native_barrier(Clock::time_point deadline) override {
    if (!barrier_word_.data()) barrier_word_ = device::cuda::DeviceArray<float>(1);
    group_.run("barrier", deadline, [&] {
      LOOM_NCCL_CHECK(ncclAllReduce(barrier_word_.data(), barrier_word_.data(), 1, ncclFloat32,
                                    ncclSum, group_.comm(), group_.stream()));
    });
  }

  std::unique_ptr<Backend> split(int color, int key, const std::vector<int>& group_members,
                                 int) override {
    ncclComm_t child = nullptr;
    ncclConfig_t config = nonblocking_config();
    const auto deadline = transport_.deadline();
    LOOM_NCCL_CHECK(ncclCommSplit(group_.comm(), color, key, &child, &config));
    try {
      wait_ready(group_.comm(), deadline, "ncclCommSplit");
      wait_ready(child, deadline, "ncclCommSplit (new communicator)");
    } catch (...) {
      if (child != nullptr) ncclCommAbort(child);
      throw;
    }
    // NCCL orders the new group by (key, parent rank), as Communicator::split does.
    std::vector<int> world_ranks;
    int my_rank = -1;
    for (int g : group_members) {
      if (g == group_.rank()) my_rank = static_cast<int>(world_ranks.size());
      world_ranks.push_back(members_[g]);
    }
    return std::make_unique<NcclBackend>(child, my_rank, std::move(world_ranks));
  }

 private:
  // One NCCL call per non-empty block_of() block of `c` (f(block start, count, owner)), fused
  // into one NCCL group: the uneven reduce-scatter / all-gather layouts.
  template <typename F>
  void per_block(const Collective& c, const F& f) {
    const int n = group_.size();
    LOOM_NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < n; ++r) {
      const Block b = block_of(c.count, n, r);
      if (b.count > 0)
        f(static_cast<std::byte*>(c.data) + b.offset * dtype_size(c.dtype), b.count, r);
    }
    LOOM_NCCL_CHECK(ncclGroupEnd());
  }

  // Enqueues collective `c` on the group's stream.
  void issue(const Collective& c) {
    const ncclComm_t comm = group_.comm();
    const cudaStream_t s = group_.stream();
    const ncclDataType_t type = nccl_type(c.dtype);
    const size_t esize = dtype_size(c.dtype);
    auto* bytes = static_cast<std::byte*>(c.data);
    const int n = group_.size();
    const bool even = c.count % static_cast<size_t>(n) == 0;
    switch (c.kind) {
      case OpKind::AllReduce:
        LOOM_NCCL_CHECK(ncclAllReduce(c.data, c.data, c.count, type, nccl_op(c.op), comm, s));
        break;
      case OpKind::Broadcast:
        LOOM_NCCL_CHECK(ncclBroadcast(c.data, c.data, c.count, type, c.root, comm, s));
        break;
      case OpKind::ReduceScatter:
        if (even) {  // in place: rank r's block is where ncclReduceScatter writes it
          const size_t per = c.count / n;
          LOOM_NCCL_CHECK(ncclReduceScatter(c.data, bytes + group_.rank() * per * esize, per, type,
                                            nccl_op(c.op), comm, s));
        } else {
          per_block(c, [&](void* p, size_t count, int r) {
            LOOM_NCCL_CHECK(ncclReduce(p, p, count, type, nccl_op(c.op), r, comm, s));
          });
        }
        break;
      case OpKind::AllGather:
        if (even) {
          const size_t per = c.count / n;
          LOOM_NCCL_CHECK(
              ncclAllGather(bytes + group_.rank() * per * esize, c.data, per, type, comm, s));
        } else {
          per_block(c, [&](void* p, size_t count, int r) {
            LOOM_NCCL_CHECK(ncclBroadcast(p, p, count, type, r, comm, s));
          });
        }
        break;
    }
  }

  NcclGroup group_;
  NcclTransport transport_;
  std::vector<int> members_;
  device::cuda::DeviceArray<float> barrier_word_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device) {
  device::cuda::set_device(device);
  // The 128-byte id travels as 32 "floats": a broadcast moves bytes without arithmetic.
  static_assert(sizeof(ncclUniqueId) % sizeof(float) == 0);
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) LOOM_NCCL_CHECK(ncclGetUniqueId(&id));
  std::vector<float> words(sizeof id / sizeof(float));
  std::memcpy(words.data(), &id, sizeof id);
  bootstrap.broadcast(words.data(), words.size(), 0);
  std::memcpy(&id, words.data(), sizeof id);

  ncclComm_t comm = nullptr;
  ncclConfig_t config = nonblocking_config();
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(bootstrap.timeout_s()));
  LOOM_NCCL_CHECK(ncclCommInitRankConfig(&comm, bootstrap.size(), id, bootstrap.rank(), &config));
  try {
    wait_ready(comm, deadline, "ncclCommInitRank");
  } catch (const std::exception& e) {
    ncclCommAbort(comm);
    LOOM_FAIL("nccl backend: joining the NCCL communicator of group '", bootstrap.group_name(),
              "' on GPU ", device, ": ", e.what(), " (timeout ", bootstrap.timeout_s(), " s)");
  }
  CommOptions opts;
  opts.algo = Algo::Native;
  opts.timeout_s = bootstrap.timeout_s();
  return std::make_unique<Communicator>(
      std::make_unique<NcclBackend>(comm, bootstrap.rank(), bootstrap.members()), opts,
      bootstrap.group_name() + "/nccl");
}

}  // namespace loom::comm::nccl
