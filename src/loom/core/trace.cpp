#include "loom/core/trace.hpp"

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

namespace loom::trace {
namespace detail {
std::atomic<bool> g_enabled{false};
}
namespace {

struct Event {
  std::string name;
  const char* category;
  double ts, dur;
  int tid;
  int64_t step;
};

struct Recorder {
  std::mutex mu;
  std::vector<Event> events;
  std::vector<std::pair<int, std::string>> thread_names;
  int rank = 0;
  int next_tid = 1;
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

std::atomic<int64_t> g_step{-1};

// Small per-thread ids (1 = the first thread that records: normally the main thread).
int thread_id() {
  thread_local int id = 0;
  if (id == 0) {
    Recorder& r = recorder();
    std::lock_guard<std::mutex> lock(r.mu);
    id = r.next_tid++;
  }
  return id;
}

}  // namespace

void enable(int rank) {
  Recorder& r = recorder();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    r.rank = rank;
  }
  thread_id();  // the enabling thread is tid 1
  detail::g_enabled = true;
  name_thread("main");
}

void disable() {
  detail::g_enabled = false;
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mu);
  r.events.clear();
  r.thread_names.clear();
}

void set_step(int64_t step) { g_step.store(step, std::memory_order_relaxed); }

void name_thread(const std::string& name) {
  if (!enabled()) return;
  const int tid = thread_id();
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mu);
  r.thread_names.emplace_back(tid, name);
}

double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void complete(const std::string& name, const char* category, double start_us) {
  if (!enabled()) return;
  const double end = now_us();
  const int tid = thread_id();
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mu);
  r.events.push_back({name, category, start_us, end - start_us, tid, g_step.load()});
}

std::string events_json(size_t* count) {
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mu);
  std::string out;
  auto add = [&](const nlohmann::json& j) {
    if (!out.empty()) out += ",\n";
    out += j.dump();
  };
  add({{"name", "process_name"}, {"ph", "M"}, {"pid", r.rank}, {"args", {{"name", "rank " + std::to_string(r.rank)}}}});
  add({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", r.rank}, {"args", {{"sort_index", r.rank}}}});
  for (const auto& [tid, name] : r.thread_names)
    add({{"name", "thread_name"}, {"ph", "M"}, {"pid", r.rank}, {"tid", tid}, {"args", {{"name", name}}}});
  for (const Event& e : r.events) {
    nlohmann::json j = {{"name", e.name}, {"cat", e.category}, {"ph", "X"}, {"ts", e.ts},
                        {"dur", e.dur}, {"pid", r.rank}, {"tid", e.tid}};
    if (e.step >= 0) j["args"] = {{"step", e.step}};
    add(j);
  }
  if (count) *count = r.events.size();
  return out;
}

}  // namespace loom::trace
