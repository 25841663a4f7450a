// `loom report DIR`: plot a run's metrics (loss, lr, tokens/s against step) as an SVG and print a
// summary.
#include <iostream>
#include <memory>

#include "command_registry.hpp"
#include "loom/io/file_io.hpp"
#include "loom/train/metrics_report.hpp"

namespace {

struct Options {
  std::string dir;
  std::string log_file = "metrics.jsonl";
  std::string out;  // default: <dir>/report.svg
};

int run(const Options& o) {
  const loom::MetricsHistory h = loom::read_metrics(o.dir + "/" + o.log_file);
  const std::string out = o.out.empty() ? o.dir + "/report.svg" : o.out;
  loom::write_file_atomic(out, loom::metrics_svg(h, o.dir));
  std::cout << loom::metrics_summary(h) << "plot: " << out << "\n";
  return 0;
}

const bool registered = loom::cli::register_command(
    "report", "Plot a run's train/val loss, learning rate and tokens/s (SVG) and summarise it",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("dir", o->dir, "The run's out_dir (holding metrics.jsonl)")->required();
      app.add_option("--log_file", o->log_file, "Metrics file inside dir")->capture_default_str();
      app.add_option("--out", o->out, "SVG to write (default: <dir>/report.svg)");
      app.footer("Example: loom report runs/tiny   (then open runs/tiny/report.svg in a browser)");
      return [o] { return run(*o); };
    });

}  // namespace
