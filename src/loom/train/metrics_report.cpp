#include "loom/train/metrics_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "loom/core/check.hpp"

namespace loom {
namespace {

double number(const nlohmann::json& j, const char* key, const std::string& where) {
  LOOM_CHECK(j.contains(key) && j[key].is_number(), where, ": expected a number \"", key, "\"");
  return j[key].get<double>();
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return out;
}

struct Series {
  std::string label, color;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

constexpr double kWidth = 900, kPanelHeight = 230, kLeft = 80, kRight = 20, kTop = 40, kGap = 30;

// One panel at vertical offset y0: a frame, the y range's labels, step labels, a legend and the
// series as polylines (one point alone as a dot).
std::string panel(double y0, const std::string& title, const std::vector<Series>& series,
                  double x_min, double x_max) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) lo = std::min(lo, y), hi = std::max(hi, y);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  const AxisTicks y_ticks = round_ticks(lo, hi, 5, /*widen=*/true);
  lo = y_ticks.values.front(), hi = y_ticks.values.back();
  const AxisTicks x_ticks = round_ticks(x_min, x_max, 6, /*widen=*/false, /*min_step=*/1);
  const double w = kWidth - kLeft - kRight, h = kPanelHeight - kGap;
  auto px = [&](double x) { return kLeft + (x_max > x_min ? (x - x_min) / (x_max - x_min) : 0.5) * w; };
  auto py = [&](double y) { return y0 + h - (y - lo) / (hi - lo) * h; };
  std::string out;
  out += "<text x='" + fmt("%.1f", kLeft) + "' y='" + fmt("%.1f", y0 - 6) + "' font-weight='bold'>" +
         escape(title) + "</text>\n";
  out += "<rect x='" + fmt("%.1f", kLeft) + "' y='" + fmt("%.1f", y0) + "' width='" + fmt("%.1f", w) +
         "' height='" + fmt("%.1f", h) + "' fill='none' stroke='#888'/>\n";
  for (size_t k = 0; k < y_ticks.values.size(); ++k)
    out += "<text class='ytick' x='" + fmt("%.1f", kLeft - 6) + "' y='" +
           fmt("%.1f", py(y_ticks.values[k]) + 4) + "' text-anchor='end' font-size='11'>" +
           y_ticks.labels[k] + "</text>\n";
  for (size_t k = 0; k < x_ticks.values.size(); ++k)
    out += "<text class='xtick' x='" + fmt("%.1f", px(x_ticks.values[k])) + "' y='" +
           fmt("%.1f", y0 + h + 14) + "' text-anchor='middle' font-size='11'>" +
           x_ticks.labels[k] + "</text>\n";
  double legend_x = kLeft + w - 10;
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    const Series& s = *it;
    out += "<text x='" + fmt("%.1f", legend_x) + "' y='" + fmt("%.1f", y0 - 6) + "' text-anchor='end' fill='" +
           s.color + "' font-size='12'>" + escape(s.label) + "</text>\n";
    legend_x -= 12 + 7.0 * static_cast<double>(s.label.size());
    if (s.points.size() == 1) {
      out += "<circle cx='" + fmt("%.1f", px(s.points[0].first)) + "' cy='" + fmt("%.1f", py(s.points[0].second)) +
             "' r='3' fill='" + s.color + "'/>\n";
      continue;
    }
    out += "<polyline fill='none' stroke-width='1.5' stroke='" + s.color + "' points='";
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) out += fmt("%.1f", px(x)) + "," + fmt("%.1f", py(y)) + " ";
    out += "'/>\n";
  }
  return out;
}

double mean_of_last(const std::map<int64_t, MetricsHistory::Train>& m, size_t n) {
  double sum = 0;
  size_t k = 0;
  for (auto it = m.rbegin(); it != m.rend() && k < n; ++it, ++k) sum += it->second.loss;
  return k ? sum / static_cast<double>(k) : NAN;
}

// The label of n x step, step = m x 10^e (m 1, 2 or 5), from the integer n x m: plain decimals
// for 1e-4 <= step < 1e6, else a mantissa and an exponent ("1.5e-09" never: "1.5e-9").
std::string tick_label(long long n, int m, int e) {
  if (n == 0) return "0";
  const long long digits = n * m;
  std::string out = digits < 0 ? "-" : "";
  const std::string s = std::to_string(digits < 0 ? -digits : digits);
  // s without trailing zeros after a decimal point placed `decimals` digits from its end.
  auto with_point = [](std::string d, size_t decimals) {
    if (d.size() <= decimals) d.insert(0, decimals + 1 - d.size(), '0');
    d.insert(d.size() - decimals, 1, '.');
    while (d.back() == '0') d.pop_back();
    if (d.back() == '.') d.pop_back();
    return d;
  };
  if (e < -4 || e >= 6) {
    out.append(with_point(s, s.size() - 1));
    out.push_back('e');
    out.append(std::to_string(e + static_cast<int>(s.size()) - 1));
  } else if (e >= 0) {
    out.append(s);
    out.append(static_cast<size_t>(e), '0');
  } else {
    out.append(with_point(s, static_cast<size_t>(-e)));
  }
  return out;
}

}  // namespace

AxisTicks round_ticks(double lo, double hi, int count, bool widen, double min_step) {
  LOOM_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && count >= 2,
             "round_ticks: bad range [", lo, ", ", hi, "] or count ", count);
  // A flat series gets a range around its value.
  if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double half = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= half, hi += half;
  }
  const double raw = std::max(min_step, (hi - lo) / (count - 1));
  int e = static_cast<int>(std::floor(std::log10(raw)));
  int m = 1;
  for (int candidate : {1, 2, 5, 10}) {
    m = candidate;
    if (candidate * std::pow(10.0, e) >= raw * (1 - 1e-9)) break;
  }
  if (m == 10) m = 1, ++e;
  AxisTicks t;
  t.step = m * std::pow(10.0, e);
  const double first = widen ? std::floor(lo / t.step + 1e-9) : std::ceil(lo / t.step - 1e-9);
  const double last = widen ? std::ceil(hi / t.step - 1e-9) : std::floor(hi / t.step + 1e-9);
  for (double n = first; n <= last; ++n) {
    const long long k = std::llround(n);
    t.values.push_back(static_cast<double>(k * m) * std::pow(10.0, e));
    t.labels.push_back(tick_label(k, m, e));
  }
  return t;
}

MetricsHistory read_metrics(const std::string& path) {
  std::ifstream in(path);
  LOOM_CHECK(in, path, ": cannot open (is this a run's out_dir? it should hold metrics.jsonl)");
  MetricsHistory h;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;  // a line cut short by a killed run
    LOOM_CHECK(j.is_object() && j.contains("type") && j.contains("step") && j["step"].is_number_integer(),
               where, ": expected {\"type\": .., \"step\": .., ...}");
    const int64_t step = j["step"].get<int64_t>();
    const std::string type = j["type"].get<std::string>();
    if (type == "train")
      h.train[step] = {number(j, "loss", where), number(j, "lr", where), number(j, "tokens_per_s", where),
                       number(j, "elapsed_s", where)};
    else if (type == "eval")
      h.eval[step] = {number(j, "train_loss", where), number(j, "val_loss", where)};
    else if (type == "save")
      h.save_stall_s[step] = number(j, "stall_s", where);
  }
  LOOM_CHECK(!h.train.empty(), path, ": no training steps logged yet");
  return h;
}

std::string metrics_svg(const MetricsHistory& h, const std::string& title) {
  const double x_min = static_cast<double>(h.train.begin()->first), x_max = static_cast<double>(h.train.rbegin()->first);
  Series loss{"train loss", "#1f77b4", {}}, eval_train{"eval: train loss", "#2ca02c", {}},
      val{"eval: val loss", "#d62728", {}}, lr{"lr", "#9467bd", {}}, tps{"tokens/s", "#ff7f0e", {}};
  for (const auto& [step, t] : h.train) {
    const double x = static_cast<double>(step);
    loss.points.emplace_back(x, t.loss);
    lr.points.emplace_back(x, t.lr);
    tps.points.emplace_back(x, t.tokens_per_s);
  }
  for (const auto& [step, e] : h.eval) {
    eval_train.points.emplace_back(static_cast<double>(step), e.first);
    val.points.emplace_back(static_cast<double>(step), e.second);
  }
  std::vector<Series> losses{loss};
  if (!h.eval.empty()) losses.insert(losses.end(), {eval_train, val});
  const double height = kTop + 3 * (kPanelHeight + kGap);
  std::string svg = "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='" +
                    fmt("%.0f", kWidth) + "' height='" + fmt("%.0f", height) +
                    "' font-family='sans-serif' font-size='13'>\n<rect width='100%' height='100%' fill='white'/>\n";
  svg += "<text x='" + fmt("%.1f", kLeft) + "' y='20' font-size='15'>" + escape(title) + " (x: step)</text>\n";
  svg += panel(kTop + kGap, "loss", losses, x_min, x_max);
  svg += panel(kTop + kGap + kPanelHeight + kGap, "learning rate", {lr}, x_min, x_max);
  svg += panel(kTop + kGap + 2 * (kPanelHeight + kGap), "tokens/s", {tps}, x_min, x_max);
  return svg + "</svg>\n";
}

std::string metrics_summary(const MetricsHistory& h) {
  std::string s;
  const auto& first = *h.train.begin();
  const auto& last = *h.train.rbegin();
  s += "steps: " + std::to_string(first.first) + ".." + std::to_string(last.first) + " (" +
       std::to_string(h.train.size()) + " logged)\n";
  s += "train loss: " + fmt("%.4f", first.second.loss) + " at the start, " +
       fmt("%.4f", mean_of_last(h.train, 10)) + " (mean of the last 10 steps)\n";
  if (!h.eval.empty()) {
    auto best = h.eval.begin();
    for (auto it = h.eval.begin(); it != h.eval.end(); ++it)
      if (it->second.second < best->second.second) best = it;
    s += "val loss: " + fmt("%.4f", h.eval.rbegin()->second.second) + " at step " +
         std::to_string(h.eval.rbegin()->first) + ", best " + fmt("%.4f", best->second.second) +
         " at step " + std::to_string(best->first) + "\n";
  }
  std::vector<double> tps;
  for (const auto& [step, t] : h.train) tps.push_back(t.tokens_per_s);
  std::nth_element(tps.begin(), tps.begin() + tps.size() / 2, tps.end());
  s += "throughput: " + fmt("%.0f", tps[tps.size() / 2]) + " tokens/s (median)\n";
  if (!h.save_stall_s.empty()) {
    double sum = 0, worst = 0;
    for (const auto& [step, x] : h.save_stall_s) sum += x, worst = std::max(worst, x);
    s += "checkpoints: " + std::to_string(h.save_stall_s.size()) + ", training stalled " +
         fmt("%.3f", sum / static_cast<double>(h.save_stall_s.size())) + " s per save (worst " +
         fmt("%.3f", worst) + " s)\n";
  }
  return s;
}

}  // namespace loom
