// copy_worker.hpp: the threads of `nbdpp copy` and what they share.  One worker per
// connection takes chunks from the planner and runs them through a fixed set of slots (one
// buffer each): read the source, then write the destination, or zero it when the source reads
// as zeroes there.  Workers see the source and destination only as Endpoints.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "copy_endpoint.hpp"
#include "planner.hpp"

namespace nbdpp {

struct Job;

// One thread's share of the copy: connection conn of each endpoint and a fixed set of slots,
// each holding one request's buffer.
class Worker {
 public:
  Worker(Job& job, unsigned conn);
  // Copies chunks until the planner has none left or some worker failed; never throws.
  void run() noexcept;

 private:
  enum class State { Free, Reading, Read, Writing, Written };
  struct Slot {
    std::unique_ptr<std::byte[]> buf;
    Chunk chunk;
    State state = State::Free;
    int error = 0;
  };

  void loop();
  void start(Slot& s);
  void after_read(Slot& s);
  void write(Slot& s);
  void zero(Slot& s);
  void retire(Slot& s);
  static Done completion(Slot& s, State next);
  void wait(int timeout_ms = -1);
  void moved(const Endpoint& ep);
  void finish_in_flight();
  bool in_flight();
  void check_fits(const Slot& s);

  Job& job_;
  const unsigned conn_;
  std::vector<Slot> slots_;
  // When a request of the source and of the destination last started or ended, for --timeout.
  std::chrono::steady_clock::time_point src_moved_;
  std::chrono::steady_clock::time_point dst_moved_;
};

// Everything the workers share.  Members are destroyed in reverse order: the endpoints (and
// with them the NBD handles, which may still hold commands after a failure) before the
// workers' buffers those commands point into.
struct Job {
  unsigned requests = 0;  // slots per worker
  uint64_t request_size = 0;
  uint64_t timeout_ms = 0;  // --timeout: how long an endpoint may make no progress (0: no limit)
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<Endpoint> src;
  std::unique_ptr<Endpoint> dst;
  std::optional<Planner> planner;

  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> data_bytes{0};
  std::atomic<uint64_t> zero_bytes{0};
  std::atomic<uint64_t> stream_end{0};  // a stream source's size, once it has ended

  std::mutex mu;
  std::condition_variable finished_cv;
  unsigned finished = 0;
  std::atomic<bool> failed{false};
  std::string error;  // the first failure

  void fail(std::string message) {
    std::lock_guard lock{mu};
    if (!failed.exchange(true))
      error = std::move(message);
  }
};

}  // namespace nbdpp
