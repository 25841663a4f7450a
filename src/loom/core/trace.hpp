#pragma once
// Timeline trace in the Chrome trace event format (chrome://tracing, ui.perfetto.dev): complete
// events {"name", "cat", "ph": "X", "ts", "dur" (microseconds), "pid": rank, "tid": thread,
// "args"}, plus process/thread names. Off by default: a Scope then costs one load and branch.
// enable() turns recording on for this process; every thread's events go to one list. The
// trainer marks the step being run (set_step), and every event records it in args.step, so a
// collective on the communicator's worker thread is attributed to the step it belongs to.
// train/trace_file merges the ranks' events into one file.
#include <atomic>
#include <cstdint>
#include <string>

namespace loom::trace {

namespace detail {
extern std::atomic<bool> g_enabled;
}

inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }
void enable(int rank);  // records from now on; events carry pid = rank
void disable();         // stops recording and drops what was recorded

// The step whose work is being done (-1: none, e.g. between steps); recorded in events.
void set_step(int64_t step);
// Names the calling thread in the trace (a "thread_name" metadata event).
void name_thread(const std::string& name);

// Wall-clock microseconds (shared by the processes of one host, so ranks line up).
double now_us();
// Records a complete event that started at start_us and ends now.
void complete(const std::string& name, const char* category, double start_us);

// A complete event spanning the scope. `name` is copied only when tracing is on.
class Scope {
 public:
  Scope(const char* name, const char* category)
      : name_(name), category_(category), start_(enabled() ? now_us() : -1) {}
  ~Scope() { end(); }
  // Ends the event before the scope does (for a span of plain statements); later calls do nothing.
  void end() {
    if (start_ >= 0) complete(name_, category_, start_);
    start_ = -1;
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_;
  const char* category_;
  double start_;
};

// This process's events as the text of a JSON array's elements ("{..},{..}"), and the number of
// events.
std::string events_json(size_t* count = nullptr);

}  // namespace loom::trace
