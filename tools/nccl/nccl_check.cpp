#include "nccl/nccl_check.hpp"

#include <cmath>
#include <cstring>
#include <thread>

#include "loom/comm/nccl/nccl_backend.hpp"
#include "loom/comm/reduce.hpp"
#include "loom/device/cuda/runtime.hpp"

namespace loom::comm::nccl {

namespace {

using device::cuda::DeviceArray;

float input(int rank, size_t i, int salt) {
  return static_cast<float>(static_cast<int>((rank * 7 + i * 3 + static_cast<size_t>(salt)) % 11) -
                            5);
}

// A buffer of `count` elements of `dtype` as raw bytes, readable as float.
struct Bytes {
  DType dtype;
  std::vector<std::byte> data;
  Bytes(DType t, size_t n) : dtype(t), data(n * dtype_size(t)) {}
  void set(size_t i, float v) {
    if (dtype == DType::F32) {
      std::memcpy(&data[i * 4], &v, 4);
    } else {
      const uint16_t b = float_to_bf16(v);
      std::memcpy(&data[i * 2], &b, 2);
    }
  }
  float get(size_t i) const {
    if (dtype == DType::F32) {
      float v;
      std::memcpy(&v, &data[i * 4], 4);
      return v;
    }
    uint16_t b;
    std::memcpy(&b, &data[i * 2], 2);
    return bf16_to_float(b);
  }
};

// Runs `c` through `host` on host memory and through `gpu` on device memory from the same input;
// returns "" or what differs.
std::string compare_one(Communicator& host, Communicator& gpu, Collective c, int salt) {
  const int me = host.rank();
  Bytes in(c.dtype, c.count);
  for (size_t i = 0; i < c.count; ++i) in.set(i, input(me, i, salt));
  Bytes want = in, got = in;
  c.data = want.data.data();
  host.run(c, Algo::Ring);
  DeviceArray<std::byte> dev(got.data.size());
  device::cuda::copy_to_device(dev.data(), got.data.data(), got.data.size());
  c.data = dev.data();
  gpu.run(c);
  device::cuda::copy_to_host_sync(got.data.data(), dev.data(), got.data.size());
  size_t first = 0, last = c.count;
  if (c.kind == OpKind::ReduceScatter) {
    const Block b = block_of(c.count, host.size(), me);
    first = b.offset;
    last = b.offset + b.count;
  }
  // Sums of small integers are exact; an average may differ by one rounding of the element type.
  const double tol = c.op == ReduceOp::Avg ? (c.dtype == DType::F32 ? 1e-6 : 1e-2) : 0.0;
  for (size_t i = first; i < last; ++i) {
    const double w = want.get(i), g = got.get(i);
    if (std::abs(w - g) > tol * std::max(1.0, std::abs(w)))
      return detail::concat(name(c.kind), " ", name(c.dtype), " ", name(c.op), " count ", c.count,
                            " root ", c.root, ": element ", i, " is ", g, " on nccl, ", w, " on ",
                            host.backend_name());
  }
  return {};
}

void record(NcclCheckResult& r, const std::string& failure) {
  ++r.cases;
  if (!failure.empty()) r.failures.push_back(failure);
}

void check_collectives(Communicator& host, Communicator& gpu, const std::vector<size_t>& counts,
                       NcclCheckResult& res) {
  int salt = 0;
  for (OpKind kind :
       {OpKind::AllReduce, OpKind::ReduceScatter, OpKind::AllGather, OpKind::Broadcast})
    for (DType t : {DType::F32, DType::BF16})
      for (size_t count : counts) {
        ++salt;
        Collective c{kind, nullptr, count, t};
        if (kind == OpKind::AllReduce || kind == OpKind::ReduceScatter) {
          for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
            c.op = op;
            record(res, compare_one(host, gpu, c, salt));
          }
        } else if (kind == OpKind::Broadcast) {
          for (int root : {0, host.size() - 1}) {
            c.root = root;
            record(res, compare_one(host, gpu, c, salt));
          }
        } else {
          record(res, compare_one(host, gpu, c, salt));
        }
      }
}

}  // namespace

NcclCheckResult run_nccl_check(Communicator& host, int device, int stall_rank) {
  NcclCheckResult res;
  auto gpu = make_nccl_communicator(host, device);
  if (host.rank() == stall_rank) {  // never joins a collective: the others must time out
    std::this_thread::sleep_for(std::chrono::duration<double>(3 * host.timeout_s()));
    return res;
  }
  // 65536 divides evenly by 2, 4 and 8 ranks (ncclReduceScatter/ncclAllGather); 1001 and 300007
  // do not (one ncclReduce/ncclBroadcast per block).
  check_collectives(host, *gpu, {1, 1001, 65536, 300007}, res);

  // Sub-groups: even and odd ranks, in reversed order, on both backends.
  const int n = host.size(), me = host.rank();
  auto host_sub = host.split(me % 2, n - me, "parity");
  auto gpu_sub = gpu->split(me % 2, n - me, "parity");
  record(res, gpu_sub->rank() == host_sub->rank() && gpu_sub->members() == host_sub->members()
                  ? ""
                  : detail::concat("split: rank ", me, " is rank ", gpu_sub->rank(),
                                   " of the nccl group, ", host_sub->rank(), " of the host one"));
  check_collectives(*host_sub, *gpu_sub, {1001, 65536}, res);

  // Asynchronous all-reduce, barrier, host-memory send/recv through the staged transport.
  {
    std::vector<float> h(4099);
    for (size_t i = 0; i < h.size(); ++i) h[i] = input(me, i, 99);
    DeviceArray<float> d(h.size());
    device::cuda::copy_to_device(d.data(), h.data(), h.size() * sizeof(float));
    auto work = gpu->allreduce_async(d.data(), d.size());
    host.allreduce(h.data(), h.size());
    work->wait();
    std::vector<float> got(h.size());
    device::cuda::copy_to_host_sync(got.data(), d.data(), got.size() * sizeof(float));
    record(res, got == h ? "" : "allreduce_async: differs from the host all-reduce");
  }
  gpu->barrier();
  if (n >= 2 && me < 2) {
    std::vector<int32_t> msg(1000);
    for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<int32_t>(i * 31 + 7);
    if (me == 0) {
      gpu->send(msg.data(), msg.size() * sizeof(int32_t), 1);
    } else {
      std::vector<int32_t> got(msg.size());
      gpu->recv(got.data(), got.size() * sizeof(int32_t), 0);
      record(res, got == msg ? "" : "send/recv: rank 1 received other bytes than rank 0 sent");
    }
  }
  return res;
}

}  // namespace loom::comm::nccl
