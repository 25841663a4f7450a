#pragma once
// Every `loom` subcommand lives in its own tools/cmd_*.cpp and registers itself here at static
// initialisation, so adding a command never touches a shared file:
//
//   static const bool registered = loom::cli::register_command(
//       "bench train", "Measure training throughput", [](CLI::App& app) {
//         auto opts = std::make_shared<Options>();
//         app.add_option("--config", opts->config, "...");
//         return [opts] { return run(*opts); };   // exit code
//       });
//
// A path with a space ("bench train") makes a nested subcommand. Errors are thrown as
// loom::Error; main() prints them as "loom <command>: error: ..." and exits 1.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace loom::cli {

using Run = std::function<int()>;
using Setup = std::function<Run(CLI::App& app)>;

bool register_command(const std::string& path, const std::string& description, Setup setup);

// Builds the CLI, parses argv, runs the chosen command; returns the process exit code.
int run_main(int argc, char** argv);

}  // namespace loom::cli
