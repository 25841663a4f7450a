// `loom comm check`: verifies every collective x algorithm on this job's ranks against a local
// reference (run it under `loom launch` or mpirun). The --fault options make one rank fail on
// purpose, to see how the others and the launcher react (used by the failure tests).
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "comm_check.hpp"
#include "command_registry.hpp"
#include "loom/comm/environment.hpp"

namespace {

using namespace loom::comm;

struct Options {
  std::string backend = "auto";
  std::string ops = "allreduce,reduce_scatter,allgather,broadcast";
  std::string algos = "ring,tree,naive,native";
  std::string counts = "0,1,2,3,7,1001,65537,300007";
  double timeout_s = 60;
  std::string fault;  // kill | stop | exit | exit-first-attempt | mismatch-count | mismatch-op
  int fault_rank = -1;
  int fault_after_ms = 200;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// All ranks run large all-reduces until the communicator fails; rank `fault_rank` injects the
// fault after fault_after_ms, i.e. in the middle of a collective.
int run_fault(Communicator& comm, const Options& o) {
  const bool me = comm.rank() == o.fault_rank;
  if (o.fault == "exit-first-attempt") {
    if (me && loom::comm::detect_environment().restart_count == 0) {
      std::cerr << "comm check: rank " << comm.rank() << " fails on purpose (first attempt)\n";
      return 3;
    }
    return -1;  // no fault on this rank/attempt: run the normal check
  }
  if (o.fault == "mismatch-count" || o.fault == "mismatch-op") {
    // One all-reduce, with a different count or reduce op on the faulty rank: a programming
    // error that LOOM_COMM_DEBUG=1 names on every rank.
    std::vector<float> data(1001, 1.0f);
    const bool count = o.fault == "mismatch-count";
    comm.allreduce(data.data(), me && count ? 1001 : 1000,
                   me && !count ? ReduceOp::Avg : ReduceOp::Sum);
    std::cout << "comm check: rank " << comm.rank() << ": the mismatched all-reduce returned\n";
    return 0;
  }
  LOOM_CHECK(o.fault == "kill" || o.fault == "stop" || o.fault == "exit",
             "--fault must be kill, stop, exit, exit-first-attempt, mismatch-count or mismatch-op");
  if (me) {
    std::thread([o] {
      std::this_thread::sleep_for(std::chrono::milliseconds(o.fault_after_ms));
      if (o.fault == "kill") raise(SIGKILL);
      if (o.fault == "stop") raise(SIGSTOP);
      _exit(7);
    }).detach();
  }
  std::vector<float> data(4 << 20, 1.0f);
  for (;;) comm.allreduce(data.data(), data.size(), ReduceOp::Sum);
}

// "point to point from rank 0: shm to 1, mpi to 2,3": the link to each peer.
std::string describe_links(Communicator& comm) {
  std::map<std::string, std::string> peers_by_link;
  for (int p = 0; p < comm.size(); ++p)
    if (p != comm.rank()) {
      std::string& peers = peers_by_link[comm.link_name(p)];
      if (!peers.empty()) peers += ",";
      peers += std::to_string(p);
    }
  std::string out = loom::detail::concat("comm check: point to point from rank ", comm.rank(), ":");
  for (const auto& [link, peers] : peers_by_link)
    out += loom::detail::concat(out.back() == ':' ? " " : ", ", link, " to ", peers);
  return out;
}

int run(const Options& o) {
  CommOptions copts;
  copts.backend = o.backend;
  copts.timeout_s = o.timeout_s;
  auto comm = communicator_from_env(copts);
  if (!o.fault.empty()) {
    const int rc = run_fault(*comm, o);
    if (rc >= 0) return rc;
  }
  CheckOptions c;
  for (const auto& s : split_list(o.ops)) c.ops.push_back(parse_op(s));
  for (const auto& s : split_list(o.algos)) {
    const Algo a = parse_algo(s);
    if (a == Algo::Native && std::string(comm->backend_name()) != "mpi") continue;
    c.algos.push_back(a);
  }
  for (const auto& s : split_list(o.counts)) c.counts.push_back(std::stoull(s));
  const auto t0 = std::chrono::steady_clock::now();
  const CheckResult res = run_check(*comm, c);
  for (const auto& f : res.failures) std::cerr << "comm check: FAILED " << f << "\n";
  if (comm->rank() == 0 || !res.failures.empty())
    std::cout << "comm check: backend " << comm->backend_name() << ", " << comm->size()
              << " ranks"
              << (comm->hierarchical()
                      ? loom::detail::concat(", hierarchical over ", comm->hosts()->count(), " hosts")
                  : comm->in_host_memory() ? std::string(", in host memory")
                                           : std::string())
              << ": " << res.cases - static_cast<int>(res.failures.size()) << "/"
              << res.cases << " cases passed in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
              << " s\n";
  if (comm->rank() == 0 && comm->size() > 1) std::cout << describe_links(*comm) << "\n";
  return res.failures.empty() ? 0 : 1;
}

const bool registered = loom::cli::register_command(
    "comm check",
    "Check every collective and algorithm element-wise against a reference on this job's ranks",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--backend", o->backend, "auto, shm or mpi");
      app.add_option("--ops", o->ops, "Comma-separated collectives");
      app.add_option("--algos", o->algos, "Comma-separated algorithms (native: mpi only)");
      app.add_option("--counts", o->counts, "Comma-separated element counts");
      app.add_option("--timeout", o->timeout_s, "Seconds each call may take");
      app.add_option("--fault", o->fault,
                     "Inject a failure: kill | stop | exit (mid all-reduce), exit-first-attempt, "
                     "mismatch-count | mismatch-op (one all-reduce that differs on --fault_rank)");
      app.add_option("--fault_rank", o->fault_rank, "The rank that fails");
      app.add_option("--fault_after_ms", o->fault_after_ms, "When it fails");
      return [o] { return run(*o); };
    });

}  // namespace
