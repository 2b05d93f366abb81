// copy_worker.cpp: one `nbdpp copy` worker's loop over its slots.  Each round it moves on the
// slots whose requests have ended, gives free slots new chunks, and when nothing moved, polls
// the connections with requests in flight.
#include "copy_worker.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <utility>

#include "cli.hpp"

namespace nbdpp {
namespace {

bool is_zero(const std::byte* p, size_t n) {
  // Check a few bytes by hand, then compare the buffer with itself shifted: if the first 16
  // bytes are zero and every byte equals the one 16 before it, all are zero.
  const size_t head = std::min<size_t>(n, 16);
  for (size_t i = 0; i < head; ++i)
    if (p[i] != std::byte{0})
      return false;
  return n <= 16 || std::memcmp(p, p + 16, n - 16) == 0;
}

}  // namespace

Worker::Worker(Job& job, unsigned conn) : job_(job), conn_(conn), slots_(job.requests) {
  for (auto& s : slots_)
    s.buf = std::make_unique_for_overwrite<std::byte[]>(job.request_size);
}

// Ends a slot's request: the slot moves to next with the request's errno.
Done Worker::completion(Slot& s, State next) {
  return [&s, next](int error) {
    s.error = error;
    s.state = next;
  };
}

void Worker::run() noexcept {
  try {
    loop();
  } catch (const std::exception& e) {
    job_.fail(e.what());
  }
  if (job_.failed) {
    try {
      finish_in_flight();
    } catch (const std::exception&) {
      // The first failure is the one reported; the connections are closed anyway.
    }
  }
  std::lock_guard lock{job_.mu};
  ++job_.finished;
  job_.finished_cv.notify_all();
}

void Worker::loop() {
  const Planner::Fetch fetch = job_.src->extents(conn_);
  bool planned_all = false;
  while (!job_.failed) {
    bool progressed = false;
    for (auto& s : slots_) {
      if (job_.failed)
        return;
      if (s.state == State::Read) {
        moved(*job_.src);
        after_read(s);
        progressed = true;
      } else if (s.state == State::Written) {
        moved(*job_.dst);
        retire(s);
        progressed = true;
      }
    }
    for (auto& s : slots_) {
      if (planned_all || job_.failed)
        break;
      if (s.state != State::Free)
        continue;
      const auto chunk = job_.planner->next(fetch);
      if (!chunk) {
        planned_all = true;
        break;
      }
      s.chunk = *chunk;
      start(s);
      progressed = true;
    }
    job_.src->advance(conn_);
    job_.dst->advance(conn_);
    if (planned_all && std::all_of(slots_.begin(), slots_.end(),
                                   [](const Slot& s) { return s.state == State::Free; }))
      return;
    if (!progressed)
      wait();
  }
}

void Worker::start(Slot& s) {
  s.error = 0;
  if (s.chunk.zero) {
    job_.zero_bytes += s.chunk.length;
    zero(s);
    return;
  }
  s.state = State::Reading;
  moved(*job_.src);
  const std::span<std::byte> buf{s.buf.get(), static_cast<size_t>(s.chunk.length)};
  const uint64_t got = job_.src->read(conn_, buf, s.chunk.offset, completion(s, State::Read));
  if (got < s.chunk.length) {
    // A stream source has ended: no chunk is handed out past its end.
    s.chunk.length = got;
    job_.stream_end = s.chunk.offset + s.chunk.length;
    job_.planner->end_of_stream(s.chunk.offset + s.chunk.length);
    if (s.chunk.length == 0)
      s.state = State::Free;
  }
}

void Worker::after_read(Slot& s) {
  if (s.error != 0)
    throw Failure("reading " + job_.src->name() + " at offset " + std::to_string(s.chunk.offset) +
                  ": " + errno_text(s.error));
  if (is_zero(s.buf.get(), static_cast<size_t>(s.chunk.length))) {
    s.chunk.zero = true;
    job_.zero_bytes += s.chunk.length;
    zero(s);
  } else {
    job_.data_bytes += s.chunk.length;
    write(s);
  }
}

// A stream source's size is only known at its end: the destination must hold every chunk.
void Worker::check_fits(const Slot& s) {
  const auto& size = job_.dst->size();
  if (size && s.chunk.offset + s.chunk.length > *size)
    throw Failure(job_.src->name() + " is larger than the destination " + job_.dst->name() +
                  " (" + std::to_string(*size) + " bytes)");
}

void Worker::write(Slot& s) {
  check_fits(s);
  s.state = State::Writing;
  moved(*job_.dst);
  const std::span<const std::byte> buf{s.buf.get(), static_cast<size_t>(s.chunk.length)};
  job_.dst->write(conn_, buf, s.chunk.offset, completion(s, State::Written));
}

void Worker::zero(Slot& s) {
  check_fits(s);
  s.state = State::Writing;
  moved(*job_.dst);
  job_.dst->zero(conn_, s.chunk.offset, s.chunk.length, completion(s, State::Written));
}

void Worker::retire(Slot& s) {
  if (s.error != 0)
    throw Failure("writing " + job_.dst->name() + " at offset " + std::to_string(s.chunk.offset) +
                  ": " + errno_text(s.error));
  job_.done += s.chunk.length;
  s.state = State::Free;
}

bool Worker::in_flight() { return job_.src->in_flight(conn_) || job_.dst->in_flight(conn_); }

// After a failure: lets the requests already sent finish, for a while, so that the servers see
// an orderly end rather than connections dropped under their replies (nbdkit 1.32 can abort
// then).  Their results no longer matter.
void Worker::finish_in_flight() {
  constexpr auto kPatience = std::chrono::seconds{10};
  const auto give_up = std::chrono::steady_clock::now() + kPatience;
  while (in_flight() && std::chrono::steady_clock::now() < give_up)
    wait(100);
}

// A request of ep started or ended: its --timeout clock starts again.  A request that starts
// while older ones wait also restarts it, which only delays the verdict: once every slot
// waits on a silent endpoint, nothing starts or ends there for the whole timeout.
void Worker::moved(const Endpoint& ep) {
  if (job_.timeout_ms == 0)
    return;
  (&ep == job_.src.get() ? src_moved_ : dst_moved_) = std::chrono::steady_clock::now();
}

// Waits until a connection with requests in flight can make progress (or timeout_ms passes).
// The connections are asked what to poll every time: one that is being made again
// (--reconnect-delay) changes descriptor between attempts.  With --timeout, an endpoint whose
// requests have neither started nor ended for that long fails the copy.
void Worker::wait(int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  pollfd fds[2];
  Endpoint* polled[2];
  nfds_t n = 0;
  std::optional<Clock::time_point> deadline;
  const Endpoint* late = nullptr;  // the endpoint whose deadline is the nearest
  for (Endpoint* ep : {job_.src.get(), job_.dst.get()}) {
    if (const auto fd = ep->poll_fd(conn_)) {
      fds[n] = *fd;
      polled[n] = ep;
      ++n;
      if (job_.timeout_ms > 0) {
        const auto d = (ep == job_.src.get() ? src_moved_ : dst_moved_) +
                       std::chrono::milliseconds{job_.timeout_ms};
        if (!deadline || d < *deadline) {
          deadline = d;
          late = ep;
        }
      }
    }
  }
  if (n == 0)
    throw Failure("internal error: busy requests but no connection to wait for");
  if (deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
    if (left.count() <= 0)
      throw Failure(late->name() + ": no reply for " + std::to_string(job_.timeout_ms) +
                    " ms: " + errno_text(ETIMEDOUT));
    if (timeout_ms < 0 || left.count() < timeout_ms)
      timeout_ms = static_cast<int>(left.count());
  }
  if (poll(fds, n, timeout_ms) == -1) {
    if (errno == EINTR)
      return;
    throw Failure("poll: " + errno_text(errno));
  }
  for (nfds_t i = 0; i < n; ++i)
    polled[i]->notify(conn_, fds[i].revents);
}

}  // namespace nbdpp
