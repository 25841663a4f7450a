// `loom info`: what this build and machine will use (matmul backends, threads, comm backends),
// and with --nproc/--tp/--pp/--ep the parallel plan (loom/config/parallel_plan.hpp) and the process
// mesh a job of that shape would have, and with --ranks-per-host or --host-map which of its
// groups stay inside a host; with --ps S the roles of a parameter-server job (the first S ranks servers, the others
// workers).
#include <cblas.h>
#include <omp.h>

#include <iostream>
#include <memory>

#include "command_registry.hpp"
#include "loom/config/parallel_plan.hpp"
#include "loom/config/train_config.hpp"
#include "loom/core/check.hpp"
#include "loom/device/device.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/train/ps_training.hpp"

extern "C" char* openblas_get_corename();

namespace {

struct Options {
  int nproc = 0;
  int tp = 1;
  int pp = 1;
  int ep = 1;              // expert-parallel ranks inside each dp group
  int ranks_per_host = 0;  // 0: all on one host
  std::string host_map;    // the host of each rank, as LOOM_HOST_MAP
  int ps = 0;              // parameter servers
};

int run(const Options& o) {
  // Checked first: a shape that does not fit is an error before anything is printed.
  const auto shape = loom::parallel::mesh_shape(o.nproc > 0 ? o.nproc : 1, o.tp, o.pp, o.ep);
  loom::TrainConfig ps_layout;
  ps_layout.ps = o.ps;
  ps_layout.tp = o.tp;
  ps_layout.pp = o.pp;
  LOOM_CHECK(o.ps == 0 || (o.tp == 1 && o.pp == 1), "--ps ", o.ps, " cannot be combined with --tp ",
             o.tp, " or --pp ", o.pp);
  loom::check_ps_world(ps_layout, o.nproc > 0 ? o.nproc : 1);
  LOOM_CHECK(o.host_map.empty() || o.ranks_per_host == 0,
             "--host-map and --ranks-per-host both say where ranks run; give one");
  LOOM_CHECK(o.ranks_per_host == 0 || shape.world() % o.ranks_per_host == 0, "--ranks-per-host ",
             o.ranks_per_host, " must divide the world size ", shape.world());
  const loom::comm::Hosts hosts =
      !o.host_map.empty()    ? loom::comm::parse_host_map(o.host_map, shape.world(), "--host-map")
      : o.ranks_per_host > 0 ? loom::comm::consecutive_hosts(shape.world(), o.ranks_per_host)
                             : loom::comm::consecutive_hosts(shape.world(), shape.world());
  const std::string placement = loom::parallel::describe_placement(shape, hosts);
  namespace k = loom::kernels;
  std::cout << "matmul: f32 on " << k::backend_name(k::f32_backend()) << ", bf16 "
            << (k::bf16_matmul_available() ? "on oneDNN (AVX512_BF16)" : "unavailable")
            << ", double on OpenBLAS\n"
            << "openblas: " << openblas_get_config() << "\n"
            << "openblas core: " << openblas_get_corename() << "\n"
            << "openblas threads: " << openblas_get_num_threads() << "\n"
            << "openmp threads: " << omp_get_max_threads() << "\n"
            << loom::device::describe_cuda()
#ifdef LOOM_WITH_MPI
            << "backends: shm mpi\n";
#else
            << "backends: shm\n";
#endif
  if (o.nproc > 0 && o.ps > 0) {
    std::cout << "parameter servers: " << loom::ps_roles(o.ps, o.nproc) << "\n";
  } else if (o.nproc > 0) {
    loom::RunConfig config;  // every other setting as `loom train` defaults it
    config.train.tp = o.tp;
    config.train.pp = o.pp;
    config.train.ep = o.ep;
    std::cout << loom::make_parallel_plan(config, shape.world()).describe() << "\n"
              << loom::parallel::describe_mesh(shape, loom::parallel::mesh_positions(hosts))
              << placement;
  }
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "info", "Print the matmul backends, thread counts, communication backends and a process mesh",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--nproc", o->nproc, "world size of the mesh to print (0: no mesh)")
          ->check(CLI::NonNegativeNumber);
      app.add_option("--tp", o->tp, "tensor-parallel ranks per model replica")->default_str("1");
      app.add_option("--pp", o->pp, "pipeline stages")->default_str("1");
      app.add_option("--ep", o->ep, "expert-parallel ranks inside each data-parallel group "
                     "(mixture of experts; divides dp)")->default_str("1");
      app.add_option("--ps", o->ps, "parameter servers: the first ps ranks serve, the others work")
          ->default_str("0");
      app.add_option("--ranks-per-host", o->ranks_per_host,
                     "ranks on each host, consecutive ranks filling a host (0: one host)")
          ->default_str("0");
      app.add_option("--host-map", o->host_map,
                     "the host of each rank, e.g. 0,1,0,1 (as mpirun --map-by node deals them)");
      return [o] { return run(*o); };
    });
