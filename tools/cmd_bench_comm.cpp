// `loom bench comm`: time collectives per message size, as nccl-tests do, run under
// `loom launch` or mpirun. algbw = bytes / time; busbw = algbw x the per-op factor of
// nccl-tests (allreduce 2(n-1)/n, reduce_scatter and allgather (n-1)/n, broadcast 1), which is
// comparable to the bandwidth of one link. The machine's memcpy bandwidth is measured in the same
// run as the yardstick. Under mpirun on one host, --backend shm,mpi compares both engines.
// --algo native-blocking (mpi backend, allreduce f32) times the plain blocking MPI_Allreduce as
// the reference to beat: --algo native is MPI_Iallreduce polled under our timeout, which is what
// Loom runs but not what users of MPI_Allreduce get. --algo flat,hierarchical times the ring in
// one level and in two (inside hosts, across hosts) side by side; under mpirun on one host,
// "hierarchical" is the ring over the host's shared memory, "flat" the ring over MPI.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>

#if LOOM_WITH_MPI
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include "command_registry.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/core/timer.hpp"

namespace {

using namespace loom::comm;

struct Options {
  std::string backends = "auto";
  std::string op = "allreduce";
  std::string algos = "ring,tree,naive";
  std::string min = "4K", max = "64M";
  std::string dtype = "f32";
  int iters = 0;  // 0: by size
};

size_t parse_size(const std::string& s) {
  size_t pos = 0;
  const double v = std::stod(s, &pos);
  const std::string unit = s.substr(pos);
  double mult = 1;
  if (unit == "K" || unit == "KiB") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else LOOM_CHECK(unit.empty() || unit == "B", "bad size '", s, "' (e.g. 4K, 256M)");
  return static_cast<size_t>(v * mult);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

double bus_factor(OpKind k, int n) {
  if (k == OpKind::AllReduce) return 2.0 * (n - 1) / n;
  if (k == OpKind::Broadcast) return 1.0;
  return static_cast<double>(n - 1) / n;
}

// The slowest rank's time (the collective is done when the last rank is done).
double slowest(Communicator& comm, double t) {
  std::vector<float> all(comm.size());
  all[comm.rank()] = static_cast<float>(t);
  comm.allgather(all.data(), all.size(), Algo::Ring);
  return *std::max_element(all.begin(), all.end());
}

// memcpy of `bytes` between warm buffers, best of 5: alone on rank 0, then on all ranks at once.
void bench_memcpy(Communicator& comm, size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  auto best_copy = [&] {
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
      loom::Timer t;
      std::memcpy(b.data(), a.data(), bytes);
      best = std::min(best, t.seconds());
    }
    return best;
  };
  comm.barrier();
  const double alone = comm.rank() == 0 ? best_copy() : 0;
  comm.barrier();
  const double together = slowest(comm, best_copy());
  if (comm.rank() == 0)
    std::printf("# memcpy %zu bytes: %.2f GB/s on one rank, %.2f GB/s per rank with all %d "
                "ranks copying\n",
                bytes, bytes / alone / 1e9, bytes / together / 1e9, comm.size());
}

// One row kind of the table: a name and how to run one collective.
struct Variant {
  std::string label;
  std::function<void(const Collective&)> run;
};

// The blocking MPI_Allreduce on MPI_COMM_WORLD (the bench's communicators are the world). It
// bypasses Loom's deadline (and MPI aborts on errors by default): a reference for timing only.
std::optional<Variant> blocking_mpi_allreduce(const Communicator& comm, const Options& o) {
#if LOOM_WITH_MPI
  if (std::string(comm.backend_name()) == "mpi" && parse_op(o.op) == OpKind::AllReduce &&
      parse_dtype(o.dtype) == DType::F32)
    return Variant{"mpi-blk", [](const Collective& c) {
                     MPI_Allreduce(MPI_IN_PLACE, c.data, static_cast<int>(c.count), MPI_FLOAT,
                                   MPI_SUM, MPI_COMM_WORLD);
                   }};
#endif
  (void)comm, (void)o;
  return std::nullopt;
}

std::vector<Variant> variants(Communicator& comm, const Options& o) {
  std::vector<Variant> out;
  for (const auto& a : split_list(o.algos)) {
    if (a == "native-blocking") {
      if (auto v = blocking_mpi_allreduce(comm, o)) out.push_back(std::move(*v));
      continue;
    }
    if (a == "flat" || a == "hierarchical") {
      // The ring in one topology or the other, whatever LOOM_COMM_TOPOLOGY chose for the rest.
      const Topology topology = parse_topology(a);
      if (topology == Topology::Hierarchical && !comm.hierarchical() && !comm.in_host_memory()) {
        if (comm.rank() == 0)
          std::printf("# hierarchical: skipped, the ranks are not on several hosts with the same "
                      "number each, nor on one host under mpirun (LOOM_HOST_MAP simulates "
                      "hosts)\n");
        continue;
      }
      out.push_back({a, [&comm, topology](const Collective& c) {
                       comm.set_topology(topology);
                       comm.run(c, Algo::Ring);
                     }});
      continue;
    }
    const Algo algo = parse_algo(a);
    if (algo == Algo::Native && std::string(comm.backend_name()) != "mpi") continue;
    out.push_back({name(algo), [&comm, algo](const Collective& c) { comm.run(c, algo); }});
  }
  return out;
}

void bench_table(Communicator& comm, const Options& o, const std::vector<Variant>& algos) {
  const OpKind kind = parse_op(o.op);
  const DType dtype = parse_dtype(o.dtype);
  const size_t es = dtype_size(dtype), n = static_cast<size_t>(comm.size());
  const size_t max_bytes = parse_size(o.max);
  std::vector<std::byte> buf(max_bytes + es);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = std::byte(i % 64);  // small, finite values
  if (comm.rank() == 0) {
    std::printf("# backend %s, %d ranks, %s %s\n", comm.backend_name(), comm.size(),
                name(kind), name(dtype));
    std::printf("# %12s %12s %12s %12s %12s %12s\n", "size(B)", "count", "algo", "time(us)",
                "algbw(GB/s)", "busbw(GB/s)");
  }
  for (size_t bytes = parse_size(o.min); bytes <= max_bytes; bytes *= 2) {
    const size_t count = std::max<size_t>(n, bytes / es);
    for (const Variant& v : algos) {
      Collective c{kind, buf.data(), count, dtype, ReduceOp::Sum, 0};
      const int iters = o.iters > 0 ? o.iters
                                    : static_cast<int>(std::clamp<size_t>(
                                          (size_t(512) << 20) / bytes, 5, 200));
      for (int i = 0; i < 2; ++i) v.run(c);  // warm-up
      comm.barrier();
      loom::Timer t;
      for (int i = 0; i < iters; ++i) v.run(c);
      const double sec = slowest(comm, t.seconds() / iters);
      const double algbw = count * es / sec / 1e9;
      if (comm.rank() == 0)
        std::printf("  %12zu %12zu %12s %12.1f %12.2f %12.2f\n", count * es, count, v.label.c_str(),
                    sec * 1e6, algbw, algbw * bus_factor(kind, comm.size()));
      // Keep values finite whatever the sums did.
      std::fill(buf.begin(), buf.end(), std::byte(0));
    }
  }
  std::fflush(stdout);
}

int run(const Options& o) {
  std::vector<std::unique_ptr<Communicator>> comms;
  for (const auto& b : split_list(o.backends)) {
    CommOptions copts;
    copts.backend = b;
    comms.push_back(communicator_from_env(copts));
  }
  bench_memcpy(*comms.front(), parse_size(o.max));
  for (auto& comm : comms) bench_table(*comm, o, variants(*comm, o));
  return 0;
}

const bool registered = loom::cli::register_command(
    "bench comm", "Time a collective per message size (time, algbw, busbw as in nccl-tests)",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--backend", o->backends, "auto, shm, mpi, or a list (shm,mpi under mpirun)");
      app.add_option("--op", o->op, "allreduce, reduce_scatter, allgather or broadcast");
      app.add_option("--algo", o->algos,
                     "Comma-separated: ring, tree, naive, native, native-blocking (MPI_Allreduce), "
                     "flat, hierarchical (the ring in one level / two levels, topology.hpp)");
      app.add_option("--min", o->min, "Smallest message (e.g. 4K)");
      app.add_option("--max", o->max, "Largest message (e.g. 256M)");
      app.add_option("--dtype", o->dtype, "f32 or bf16");
      app.add_option("--iters", o->iters, "Timed iterations per size (default: by size)");
      return [o] { return run(*o); };
    });

}  // namespace
