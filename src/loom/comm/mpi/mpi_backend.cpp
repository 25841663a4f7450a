#include "loom/comm/mpi/mpi_backend.hpp"

// C API only: Open MPI would otherwise pull in its deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstring>
#include <numeric>

#include "loom/comm/mpi/mpi_transport.hpp"
#include "loom/comm/mpi/mpi_wait.hpp"
#include "loom/comm/reduce.hpp"

namespace loom::comm::mpi {
namespace {

void init_once() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
  LOOM_CHECK(provided >= MPI_THREAD_SERIALIZED,
             "mpi: the MPI library gives no thread support (need MPI_THREAD_SERIALIZED)");
}

int as_int(size_t n) {
  LOOM_CHECK(n <= INT_MAX, "mpi: ", n, " elements is more than one MPI call can take");
  return static_cast<int>(n);
}

MPI_Datatype mpi_type(DType t) { return t == DType::F32 ? MPI_FLOAT : MPI_UINT16_T; }

class MpiBackend : public Backend {
 public:
  MpiBackend(MPI_Comm comm, std::vector<int> members, bool owns_world)
      : comm_(comm), members_(members), transport_(comm, std::move(members)),
        owns_world_(owns_world) {}

  // MPI is initialised by the first backend and finalised with the world's, unless a wait
  // timed out (see a_wait_timed_out).
  ~MpiBackend() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || a_wait_timed_out()) return;
    if (owns_world_)
      MPI_Finalize();
    else
      MPI_Comm_free(&comm_);
  }

  const char* name() const override { return "mpi"; }
  Transport& transport() override { return transport_; }
  const std::vector<int>& members() const override { return members_; }
  bool has_native() const override { return true; }

  void native(const Collective& c, Clock::time_point deadline) override {
    const std::string what = std::string("MPI native ") + comm::name(c.kind);
    LOOM_CHECK(c.dtype == DType::F32 || c.kind == OpKind::AllGather ||
                   c.kind == OpKind::Broadcast,
               "mpi: native reductions of bf16 are not available (use ring, tree or naive)");
    const int n = transport_.size(), r = transport_.rank();
    MPI_Request req;
    std::vector<int> counts, displs;
    auto layout = [&] {
      for (int i = 0; i < n; ++i) {
        const Block b = block_of(c.count, n, i);
        counts.push_back(as_int(b.count));
        displs.push_back(as_int(b.offset));
      }
    };
    switch (c.kind) {
      case OpKind::AllReduce:
        check(MPI_Iallreduce(MPI_IN_PLACE, c.data, as_int(c.count), MPI_FLOAT, MPI_SUM, comm_,
                             &req),
              "MPI_Iallreduce");
        break;
      case OpKind::ReduceScatter:
        layout();
        check(MPI_Ireduce_scatter(MPI_IN_PLACE, c.data, counts.data(), MPI_FLOAT, MPI_SUM, comm_,
                                  &req),
              "MPI_Ireduce_scatter");
        break;
      case OpKind::AllGather:
        layout();
        check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, c.data, counts.data(),
                              displs.data(), mpi_type(c.dtype), comm_, &req),
              "MPI_Iallgatherv");
        break;
      case OpKind::Broadcast:
        check(MPI_Ibcast(c.data, as_int(c.count), mpi_type(c.dtype), c.root, comm_, &req),
              "MPI_Ibcast");
        break;
    }
    wait_all(&req, 1, deadline, -1, what);
    const Block mine = block_of(c.count, n, r);
    if (c.kind == OpKind::ReduceScatter) {
      // In place, MPI leaves rank r's block at the start of the buffer; ours lives at its offset.
      float* base = static_cast<float*>(c.data);
      std::memmove(base + mine.offset, base, mine.count * sizeof(float));
    }
    if (c.op == ReduceOp::Avg && n > 1) {
      if (c.kind == OpKind::AllReduce)
        scale(c.data, c.count, c.dtype, 1.0f / n);
      else if (c.kind == OpKind::ReduceScatter)
        scale(static_cast<float*>(c.data) + mine.offset, mine.count, c.dtype, 1.0f / n);
    }
  }

  void native_barrier(Clock::time_point deadline) override {
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
    wait_all(&req, 1, deadline, -1, "MPI native barrier");
  }

  std::unique_ptr<Backend> split(int color, int key, const std::vector<int>& group_members,
                                 int) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    std::vector<int> world_ranks;
    for (int g : group_members) world_ranks.push_back(members_[g]);
    return std::make_unique<MpiBackend>(sub, std::move(world_ranks), false);
  }

 private:
  MPI_Comm comm_;
  std::vector<int> members_;
  MpiTransport transport_;
  bool owns_world_;
};

}  // namespace

std::unique_ptr<Backend> make_mpi_backend() {
  init_once();
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int> members(size);
  std::iota(members.begin(), members.end(), 0);
  return std::make_unique<MpiBackend>(MPI_COMM_WORLD, std::move(members), true);
}

}  // namespace loom::comm::mpi
