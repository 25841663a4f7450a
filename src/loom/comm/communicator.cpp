#include "loom/comm/communicator.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <thread>

#include <sched.h>
#include <unistd.h>

#include "loom/comm/algorithms/algorithms.hpp"
#include "loom/comm/call_signature.hpp"
#include "loom/comm/shm/shm_backend.hpp"
#include "loom/core/trace.hpp"

namespace loom::comm {

// One worker thread per communicator runs the non-blocking calls in the order they were made.
class Communicator::AsyncQueue {
 public:
  ~AsyncQueue() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (worker_.joinable()) worker_.join();
  }

  std::shared_future<void> push(std::function<void()> task) {
    std::packaged_task<void()> pt(std::move(task));
    std::shared_future<void> f = pt.get_future().share();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!worker_.joinable())
        worker_ = std::thread([this] {
          trace::name_thread("comm worker");
          loop();
        });
      tasks_.push_back(std::move(pt));
      last_ = f;
    }
    cv_.notify_one();
    return f;
  }

  // Waits until every task pushed so far has finished (errors stay with their Work).
  void drain() {
    std::shared_future<void> last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = last_;
    }
    if (last.valid()) last.wait();
  }

 private:
  void loop() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;
  std::shared_future<void> last_;
  bool stop_ = false;
  std::thread worker_;
};

Work::~Work() {
  if (!waited_ && f_.valid()) f_.wait();
}

void Work::wait() {
  waited_ = true;
  f_.get();
}

bool Work::done() const {
  return f_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

Communicator::Communicator(std::unique_ptr<Backend> backend, const CommOptions& opts,
                           std::string group_name)
    : backend_(std::move(backend)),
      name_(std::move(group_name)),
      topology_(opts.topology),
      algo_(opts.algo),
      timeout_s_(opts.timeout_s),
      debug_(opts.debug),
      next_context_(std::make_shared<int>(1)),
      async_(std::make_unique<AsyncQueue>()) {
  LOOM_CHECK(timeout_s_ > 0, "communicator timeout must be positive, got ", timeout_s_);
}

Communicator::~Communicator() {
  async_.reset();  // joins the worker before the backend goes
}

std::string Communicator::describe_group() const {
  std::string s = "'" + name_ + "' [ranks";
  const auto& m = members();
  for (size_t i = 0; i < m.size(); ++i) {
    if (i == 8 && m.size() > 9) {
      s += " ... ";
      s += std::to_string(m.back());
      break;
    }
    // Appended piece by piece: `"x" + std::to_string(..)` trips GCC 12's -Wrestrict (a false
    // positive in its inlined std::string code).
    s += i ? "," : " ";
    s += std::to_string(m[i]);
  }
  return s + "]";
}

template <typename Body>
void Communicator::guarded(const std::string& what, const Body& body) {
  std::lock_guard<std::mutex> lock(mu_);
  LOOM_CHECK(broken_.empty(), what, " in group ", describe_group(),
             ": communicator unusable after an earlier failure: ", broken_);
  LOOM_CHECK(!transport().aborted(), what, " in group ", describe_group(),
             ": communicator aborted after an earlier failure on this rank");
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(timeout_s_));
  transport().set_deadline(deadline);
  const double start = trace::enabled() ? trace::now_us() : -1;
  try {
    body(deadline);
    if (start >= 0) trace::complete(what, "comm", start);
  } catch (const std::exception& e) {
    broken_ = e.what();
    const std::string message = detail::concat(what, " in group ", describe_group(), ": ",
                                               e.what(), " (timeout ", timeout_s_, " s)");
    // A peer's failure keeps its type, so the rank's exit code can say it was not the cause.
    if (const auto* peer = dynamic_cast<const PeerFailure*>(&e))
      throw PeerFailure(peer->peer, detail::concat(message, "; the peer is ",
                                                   describe_rank(peer->peer)));
    throw Error(message);
  }
}

void Communicator::wait_for_async() { async_->drain(); }

std::string Communicator::describe_rank(int group_rank) const {
  const int world = members()[static_cast<size_t>(group_rank)];
  std::string s = detail::concat("rank ", world);
  if (hosts_) s += detail::concat(" on host '", hosts_->names[hosts_->host_of[world]], "'");
  return s;
}

void Communicator::set_hosts(std::shared_ptr<const Hosts> hosts) {
  LOOM_CHECK(hosts->host_of.size() > static_cast<size_t>(*std::max_element(members().begin(),
                                                                            members().end())),
             "host map of ", hosts->host_of.size(), " ranks for group ", describe_group());
  hosts_ = std::move(hosts);
  if (topology_ == Topology::Flat) return;
  const std::optional<HostLayout> layout = layout_of(*hosts_, members());
  // Under MPI, members sharing a host reach each other through memory.
  const bool mpi = std::string(backend_name()) == "mpi";
  const bool p2p_on_host = mpi && shares_a_host(*hosts_, members());
  if (!layout && !p2p_on_host) return;
  // The host group, ordered by group rank: its rank is the index on the host (local_index).
  const int my_host = hosts_->host_of[static_cast<size_t>(members()[rank()])];
  host_ = split_with(my_host, rank(), name_ + "/host", Topology::Flat);
  if (mpi && host_->size() > 1) host_ = host_->over_shared_memory();
  int on_host = 0;
  for (const int world : members())
    host_rank_.push_back(hosts_->host_of[static_cast<size_t>(world)] == my_host ? on_host++ : -1);
  p2p_on_host_ = p2p_on_host;
  if (!layout) return;
  auto levels = std::make_unique<Levels>();
  levels->layout = *layout;
  // Ordered so that the cross rank is the host index.
  levels->cross = split(layout->local_index(rank()), layout->host_of(rank()),
                        name_ + "/across-hosts");
  levels_ = std::move(levels);
}

std::unique_ptr<Communicator> Communicator::over_shared_memory() {
  // The segment is named after this group's rank 0 (its pid, and a context number no group of
  // that process has used yet), so groups and jobs never share one.
  int32_t id[2] = {static_cast<int32_t>(getpid()), *next_context_};
  guarded("shared-memory segment of the host (broadcast of its name)", [&](Clock::time_point) {
    algorithms::ring(transport(), {OpKind::Broadcast, id, 2, DType::F32});
  });
  ++*next_context_;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_s_));
  CommOptions opts;
  opts.algo = algo_;
  opts.timeout_s = timeout_s_;
  opts.debug = debug_;
  opts.topology = Topology::Flat;
  return std::make_unique<Communicator>(
      shm::make_shm_backend(detail::concat("/loom-host-", id[0], "-", id[1]), rank(), size(),
                            deadline),
      opts, name_ + " (shm)");
}

void Communicator::set_topology(Topology t) {
  LOOM_CHECK(t == Topology::Flat || levels_ != nullptr ||
                 (p2p_on_host_ && host_->size() == size()),
             "topology ", name(t), " for group ", describe_group(),
             ": its ranks do not span several hosts with the same number each, nor share one "
             "host under MPI");
  topology_ = t;
}

void Communicator::agree_on_call(const char* kind, const Collective& c, Algo algo) {
  const CallSignature mine = make_signature(calls_++, kind, c, algo, members());
  const size_t words = sizeof(CallSignature) / sizeof(float);
  std::vector<CallSignature> all(static_cast<size_t>(size()));
  all[static_cast<size_t>(rank())] = mine;
  // All-gather moves bytes without arithmetic: the signatures travel as "f32" words.
  algorithms::ring(transport(), {OpKind::AllGather, all.data(), words * all.size(), DType::F32});
  const std::string mismatch = describe_mismatch(all, members());
  LOOM_CHECK(mismatch.empty(), "collective mismatch (LOOM_COMM_DEBUG): ", mismatch);
}

void Communicator::run_now(const Collective& c, Algo algo) {
  LOOM_CHECK(c.data != nullptr || c.count == 0, name(c.kind), ": null buffer");
  LOOM_CHECK(c.root >= 0 && c.root < size(), name(c.kind), ": root ", c.root,
             " outside the group of ", size());
  LOOM_CHECK(algo != Algo::Native || backend_->has_native(), "backend ", backend_->name(),
             " has no native collectives (use --algo ring, tree or naive)");
  const bool two_levels = hierarchical() && algo != Algo::Native;
  const bool in_memory = !two_levels && in_host_memory() && algo != Algo::Native;
  const std::string levels =
      two_levels ? detail::concat(" over ", levels_->layout.hosts(), " hosts x ",
                                  levels_->layout.per_host())
      : in_memory ? std::string(" in host memory")
                  : std::string();
  const std::string what = detail::concat(name(c.kind), " (", name(algo), levels, ", ", c.count,
                                          " x ", name(c.dtype), ")");
  guarded(what, [&](Clock::time_point deadline) {
    if (debug_) agree_on_call(name(c.kind), c, algo);
    if (algo == Algo::Native) {
      backend_->native(c, deadline);
      return;
    }
    const algorithms::Family family = algo == Algo::Ring   ? algorithms::ring
                                      : algo == Algo::Tree ? algorithms::tree
                                                           : algorithms::naive;
    if (in_memory) {
      // The host group holds every member, in group-rank order: the same ranks, in memory.
      host_->transport().set_deadline(deadline);
      family(host_->transport(), c);
      return;
    }
    if (!two_levels) {
      family(transport(), c);
      return;
    }
    Transport& local = host_->transport();
    Transport& cross = levels_->cross->transport();
    local.set_deadline(deadline);
    cross.set_deadline(deadline);
    algorithms::hierarchical(local, cross, levels_->layout, family, c);
  });
}

void Communicator::run(const Collective& c, std::optional<Algo> algo) {
  wait_for_async();
  run_now(c, algo.value_or(algo_));
}

std::unique_ptr<Work> Communicator::run_async(const Collective& c, std::optional<Algo> algo) {
  const Algo a = algo.value_or(algo_);
  return std::make_unique<Work>(async_->push([this, c, a] { run_now(c, a); }));
}

void Communicator::allreduce(float* data, size_t count, ReduceOp op, std::optional<Algo> algo) {
  run({OpKind::AllReduce, data, count, DType::F32, op, 0}, algo);
}

void Communicator::allreduce_bf16(uint16_t* data, size_t count, ReduceOp op,
                                  std::optional<Algo> algo) {
  run({OpKind::AllReduce, data, count, DType::BF16, op, 0}, algo);
}

std::unique_ptr<Work> Communicator::allreduce_async(float* data, size_t count, ReduceOp op,
                                                    std::optional<Algo> algo) {
  return run_async({OpKind::AllReduce, data, count, DType::F32, op, 0}, algo);
}

void Communicator::reduce_scatter(float* data, size_t count, ReduceOp op,
                                  std::optional<Algo> algo) {
  run({OpKind::ReduceScatter, data, count, DType::F32, op, 0}, algo);
}

void Communicator::allgather(float* data, size_t count, std::optional<Algo> algo) {
  run({OpKind::AllGather, data, count, DType::F32, ReduceOp::Sum, 0}, algo);
}

void Communicator::broadcast(float* data, size_t count, int root, std::optional<Algo> algo) {
  run({OpKind::Broadcast, data, count, DType::F32, ReduceOp::Sum, root}, algo);
}

void Communicator::barrier() {
  wait_for_async();
  const bool native = algo_ == Algo::Native && backend_->has_native();
  guarded("barrier", [&](Clock::time_point deadline) {
    if (debug_) agree_on_call("barrier", {OpKind::AllReduce, nullptr, 0}, algo_);
    if (native)
      backend_->native_barrier(deadline);
    else
      algorithms::barrier(transport());
  });
}

void Communicator::all_to_all(const float* send, float* recv, size_t chunk) {
  const std::vector<size_t> counts(static_cast<size_t>(size()), chunk);
  all_to_all_v(send, counts, recv, counts);
}

void Communicator::all_to_all_v(const float* send, std::span<const size_t> send_counts,
                                float* recv, std::span<const size_t> recv_counts) {
  const size_t n = static_cast<size_t>(size());
  LOOM_CHECK(send_counts.size() == n && recv_counts.size() == n, "all-to-all in group ",
             describe_group(), ": ", send_counts.size(), " send and ", recv_counts.size(),
             " receive counts for ", n, " ranks");
  std::vector<size_t> send_bytes(n), recv_bytes(n);
  size_t sent = 0, received = 0;
  for (size_t p = 0; p < n; ++p) {
    send_bytes[p] = send_counts[p] * sizeof(float);
    recv_bytes[p] = recv_counts[p] * sizeof(float);
    sent += send_counts[p];
    received += recv_counts[p];
  }
  LOOM_CHECK((send != nullptr || sent == 0) && (recv != nullptr || received == 0),
             "all-to-all in group ", describe_group(), ": null buffer");
  wait_for_async();
  guarded(detail::concat("all-to-all (pairwise, ", sent, " x f32 out, ", received, " in)"),
          [&](Clock::time_point) {
            // Debug mode: the ranks agree on the call; the counts differ from rank to rank, so
            // the signature carries the group size as its count.
            if (debug_) agree_on_call("alltoall", {OpKind::AllGather, nullptr, n}, Algo::Ring);
            algorithms::all_to_all(transport(), reinterpret_cast<const std::byte*>(send),
                                   send_bytes, reinterpret_cast<std::byte*>(recv), recv_bytes);
          });
}

// Point to point: each peer over its link, the host's shared-memory segment for a peer on this
// rank's host under MPI, the group's backend otherwise.
Communicator::Link Communicator::link_to(int group_peer) const {
  const int on_host = p2p_on_host_ ? host_rank_[static_cast<size_t>(group_peer)] : -1;
  if (on_host >= 0) return {&host_->transport(), on_host, group_peer};
  return {&transport(), group_peer, group_peer};
}

const char* Communicator::link_name(int peer) const {
  LOOM_CHECK(peer >= 0 && peer < size() && peer != rank(), "link_name: bad peer ", peer);
  return link_to(peer).transport == &transport() ? backend_name() : host_->backend_name();
}

template <typename Body>
void Communicator::over(const Link& link, Clock::time_point deadline, const Body& body) {
  link.transport->set_deadline(deadline);
  try {
    body();
  } catch (const PeerFailure& e) {
    throw PeerFailure(link.group_peer, e.what());
  }
}

void Communicator::send(const void* data, size_t bytes, int peer) {
  LOOM_CHECK(peer >= 0 && peer < size() && peer != rank(), "send: bad peer ", peer);
  wait_for_async();
  const Link link = link_to(peer);
  guarded(detail::concat("send (", bytes, " bytes to rank ", members()[peer], ")"),
          [&](Clock::time_point deadline) {
            over(link, deadline, [&] {
              link.transport->send(link.peer, {static_cast<const std::byte*>(data), bytes});
            });
          });
}

void Communicator::recv(void* data, size_t bytes, int peer) {
  LOOM_CHECK(peer >= 0 && peer < size() && peer != rank(), "recv: bad peer ", peer);
  wait_for_async();
  const Link link = link_to(peer);
  guarded(detail::concat("recv (", bytes, " bytes from rank ", members()[peer], ")"),
          [&](Clock::time_point deadline) {
            over(link, deadline, [&] { link.transport->recv_into(link.peer, data, bytes); });
          });
}

bool Communicator::unless_gone(int peer, const std::string& what,
                               const std::function<void(const Link&)>& body) {
  wait_for_async();
  const Link link = link_to(peer);
  bool reached = true;
  guarded(what, [&](Clock::time_point deadline) {
    over(link, deadline, [&] {
      try {
        body(link);
      } catch (const PeerGone& e) {
        if (e.peer != link.peer) throw;
        reached = false;
      }
    });
  });
  return reached;
}

bool Communicator::send_unless_gone(const void* data, size_t bytes, int peer) {
  LOOM_CHECK(peer >= 0 && peer < size() && peer != rank(), "send: bad peer ", peer);
  return unless_gone(peer, detail::concat("send (", bytes, " bytes to rank ", members()[peer], ")"),
                     [&](const Link& l) {
                       l.transport->send(l.peer, {static_cast<const std::byte*>(data), bytes});
                     });
}

bool Communicator::recv_unless_gone(void* data, size_t bytes, int peer) {
  LOOM_CHECK(peer >= 0 && peer < size() && peer != rank(), "recv: bad peer ", peer);
  return unless_gone(peer,
                     detail::concat("recv (", bytes, " bytes from rank ", members()[peer], ")"),
                     [&](const Link& l) { l.transport->recv_into(l.peer, data, bytes); });
}

Communicator::Arrival Communicator::wait_any(std::span<const int> peers, Clock::time_point until) {
  wait_for_async();
  Arrival a;
  guarded(detail::concat("receive from any of ", peers.size(), " ranks"),
          [&](Clock::time_point deadline) { a = wait_any_over_links(peers, deadline, until); });
  return a;
}

Communicator::Arrival Communicator::wait_any_over_links(std::span<const int> peers,
                                                        Clock::time_point deadline,
                                                        Clock::time_point until) {
  std::vector<Link> links;
  for (const int p : peers) {
    LOOM_CHECK(p >= 0 && p < size() && p != rank(), "receive from any peer: bad peer ", p);
    links.push_back(link_to(p));
  }
  const bool one_link = std::all_of(links.begin(), links.end(), [&](const Link& l) {
    return l.transport == links.front().transport;
  });
  if (links.empty() || one_link) {
    // The transport's own wait (the shm one sleeps on its doorbell).
    if (links.empty() || links.front().transport == &transport())
      return transport().wait_any(peers, until);
    std::vector<int> on_host;
    for (const Link& l : links) on_host.push_back(l.peer);
    Arrival a;
    over(links.front(), deadline, [&] { a = links.front().transport->wait_any(on_host, until); });
    if (a.peer < 0) return a;  // nothing by `until`
    a.peer = links[static_cast<size_t>(std::find(on_host.begin(), on_host.end(), a.peer) -
                                       on_host.begin())]
                 .group_peer;
    return a;
  }
  // Peers on both links: one look at each in the callers' order, until one has a message.
  for (;;) {
    for (const Link& l : links) {
      std::optional<Arrival> a;
      over(l, deadline, [&] { a = l.transport->poll_any({&l.peer, 1}); });
      if (a) return {l.group_peer, a->gone};
    }
    if (Clock::now() >= until && until < deadline) return {};
    if (Clock::now() >= deadline)
      throw PeerFailure(peers[0], detail::concat("timed out waiting for a message from any of ",
                                                 peers.size(), " ranks (rank ",
                                                 members()[peers[0]], ", ...)"));
    sched_yield();
  }
}

void Communicator::abort() {
  transport().abort();
  if (host_) host_->abort();
  if (levels_) levels_->cross->abort();
}

std::unique_ptr<Communicator> Communicator::split(int color, int key, const std::string& name) {
  return split_with(color, key, name, topology_);
}

std::unique_ptr<Communicator> Communicator::split_with(int color, int key, const std::string& name,
                                                       Topology topology) {
  wait_for_async();
  // Everyone learns everyone's (color, key, next free context); the new group's context is the
  // largest next-free one among the parent's members, so it is unused by every member.
  const int n = size();
  std::vector<int32_t> info(3 * static_cast<size_t>(n));
  info[3 * rank()] = color;
  info[3 * rank() + 1] = key;
  info[3 * rank() + 2] = *next_context_;
  // All-gather moves bytes without arithmetic, so ints travel safely as "f32" elements.
  guarded("split (allgather of colors)", [&](Clock::time_point) {
    if (debug_) agree_on_call("split", {OpKind::AllGather, nullptr, info.size()}, Algo::Ring);
    algorithms::ring(transport(), {OpKind::AllGather, info.data(), info.size(), DType::F32});
  });
  std::vector<int> group;
  int context = 0;
  for (int r = 0; r < n; ++r) {
    context = std::max(context, static_cast<int>(info[3 * r + 2]));
    if (info[3 * r] == color) group.push_back(r);
  }
  std::stable_sort(group.begin(), group.end(),
                   [&](int a, int b) { return info[3 * a + 1] < info[3 * b + 1]; });
  *next_context_ = context + 1;
  CommOptions opts;
  opts.algo = algo_;
  opts.timeout_s = timeout_s_;
  opts.debug = debug_;
  opts.topology = topology;
  auto child = std::make_unique<Communicator>(backend_->split(color, key, group, context), opts,
                                              name);
  child->next_context_ = next_context_;
  if (hosts_) child->set_hosts(hosts_);
  return child;
}

}  // namespace loom::comm
