#include "loom/parallel/pipeline/p2p_lanes.hpp"

#include "loom/core/check.hpp"

namespace loom::pipeline {

Lane::Lane(std::unique_ptr<comm::Communicator> comm) : comm_(std::move(comm)) {
  LOOM_CHECK(comm_->size() == 2, "pipeline lane '", comm_->group_name(), "' has ", comm_->size(),
             " ranks, expected 2");
  peer_ = 1 - comm_->rank();
  worker_ = std::thread([this] { loop(); });
}

Lane::~Lane() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  worker_.join();
}

std::shared_future<void> Lane::post(std::function<void()> transfer) {
  std::packaged_task<void()> task(std::move(transfer));
  std::shared_future<void> f = task.get_future().share();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return f;
}

std::shared_future<void> Lane::post_send(Buffer data) {
  return post([this, data] { comm_->send(data->data(), data->size() * sizeof(float), peer_); });
}

std::shared_future<void> Lane::post_recv(Buffer into) {
  return post([this, into] { comm_->recv(into->data(), into->size() * sizeof(float), peer_); });
}

void Lane::abandon() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.clear();  // their futures report a broken promise
  }
  comm_->abort();
}

void Lane::loop() {
  for (;;) {
    std::packaged_task<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();  // an error is stored in the task's future
  }
}

namespace {

// Link l carries stage l -> stage (l + 1) % P. Neighbouring links share a rank, so they must be
// different sub-communicators: links get classes l % 2 (and class 2 for the wrap-around link of
// an odd ring), and one split per class and direction makes the two-rank groups.
int link_class(int l, int P, bool wrap) { return wrap && P % 2 == 1 && l == P - 1 ? 2 : l % 2; }

}  // namespace

P2PLanes::P2PLanes(comm::Communicator& pp, bool wrap) : wrap_(wrap && pp.size() > 1) {
  const int P = pp.size(), me = pp.rank();
  const int links = P == 1 ? 0 : wrap_ ? P : P - 1;
  // Sub-communicators are a scarce resource (shm contexts): make only the classes in use.
  const int classes = links <= 1 ? links : wrap_ && P % 2 == 1 ? 3 : 2;
  const int out_link = me < links ? me : -1;                     // me -> me + 1
  const int in_link = me > 0 ? me - 1 : (wrap_ ? P - 1 : -1);    // me - 1 -> me
  for (const char* dir : {"act", "grad"}) {
    const bool act = dir[0] == 'a';
    for (int k = 0; k < classes; ++k) {
      int color = P + 1 + me, key = 0;  // alone unless one of my links has class k
      int link = -1;
      if (out_link >= 0 && link_class(out_link, P, wrap_) == k) link = out_link;
      if (in_link >= 0 && link_class(in_link, P, wrap_) == k) link = in_link;
      if (link >= 0) {
        color = link;
        // Group rank 0 is the link's lower stage (the activation sender).
        key = link == out_link ? 0 : 1;
      }
      auto sub = pp.split(color, key, detail::concat("pp-", dir, "-link", link));
      if (link < 0) continue;
      auto lane = std::make_unique<Lane>(std::move(sub));
      const bool outgoing_link = link == out_link;
      if (act) (outgoing_link ? act_out_ : act_in_) = std::move(lane);
      else (outgoing_link ? grad_in_ : grad_out_) = std::move(lane);
    }
  }
}

void P2PLanes::abandon() {
  for (Lane* lane : {act_out_.get(), act_in_.get(), grad_out_.get(), grad_in_.get()})
    if (lane != nullptr) lane->abandon();
}

}  // namespace loom::pipeline
