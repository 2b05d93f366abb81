// copy_nbd.cpp: an NBD export as a `nbdpp copy` endpoint: one connection per worker, requests
// sent asynchronously (aio_*), their completions run when the worker notifies the connection.
#include "copy_endpoint.hpp"

#include <nbd/nbd.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server.hpp"

namespace nbdpp {
namespace {

// A source connection asks for the allocation map, and skips zeroing read buffers before each
// read (the library's safety net for programs that ignore errors): every read's result is
// checked by the worker, and a failed read's buffer is never used.
void prepare_source(nbd::Handle& h) {
  h.add_meta_context(nbd::kContextBaseAllocation);
  h.set_pread_initialize(false);
}

// The completion of an aio_* command: hands the server's errno to done.
auto aio_completion(Done done) {
  return [done = std::move(done)](int* error) {
    done(*error);
    return 1;
  };
}

class NbdEndpoint final : public Endpoint {
 public:
  NbdEndpoint(const Operand& op, bool source, const Limits& limits, nbd::Handle h)
      : Endpoint(op.display(), std::nullopt), op_(op), source_(source), limits_(limits) {
    try {
      set_size(static_cast<uint64_t>(h.get_size()));
      multi_conn_ = h.can_multi_conn();
      can_zero_ = h.can_zero();
      can_flush_ = h.can_flush();
      extents_ = source && h.can_meta_context(nbd::kContextBaseAllocation);
      min_block_ = h.get_block_size(nbd::BlockSize::Minimum);
      max_block_ = h.get_block_size(nbd::BlockSize::Maximum);
      if (!source && h.is_read_only())
        throw Failure(name() + ": the export is read-only");
    } catch (const nbd::Error& e) {
      fail(name(), e);
    }
    conns_.push_back(std::move(h));
  }

  void source_size(uint64_t bytes) override {
    if (*size() < bytes)
      throw Failure(name() + ": the destination (" + std::to_string(*size()) +
                    " bytes) is smaller than the source (" + std::to_string(bytes) + " bytes)");
  }

  bool has_connections() const override { return true; }

  std::optional<std::string> one_connection_only(bool socket_activation) const override {
    if (!multi_conn_)
      return name() + " does not offer multi-conn";
    if (op_.kind == Operand::Kind::Command && !socket_activation)
      return name() + " serves one connection on its stdin/stdout";
    return std::nullopt;
  }

  void add_connections(unsigned total, bool socket_activation) override {
    const auto uri = another_connection_uri(conns_[0], op_, socket_activation);
    if (!uri)
      throw Failure(name() + ": cannot open more connections");
    while (conns_.size() < total)
      add_connection(*uri);
  }

  bool start_writer() override {
    for (auto& h : conns_) {
      try {
        h.start_concurrent_writer();
      } catch (const nbd::Error& e) {
        fail(name(), e);
      }
    }
    return true;
  }

  uint64_t fit_request_size(uint64_t wanted) const override {
    uint64_t rs = wanted;
    if (max_block_ > 0)
      while (rs > 512 && rs > static_cast<uint64_t>(max_block_))
        rs /= 2;
    if (min_block_ > 0 && rs < static_cast<uint64_t>(min_block_))
      rs = static_cast<uint64_t>(min_block_);
    if (min_block_ > 0 && rs % static_cast<uint64_t>(min_block_) != 0)
      throw Failure(name() + ": its minimum block size " + std::to_string(min_block_) +
                    " does not divide the request size " + std::to_string(rs));
    return rs;
  }

  // Without a zero command, zeroes are written from a buffer of one request.
  uint64_t max_zero(uint64_t request_size) const override {
    return can_zero_ ? kMaxZero : request_size;
  }

  Planner::Fetch extents(unsigned conn) override {
    if (!extents_)
      return {};
    return [this, &h = conns_[conn]](uint64_t offset, uint64_t count, std::vector<Extent>& out) {
      try {
        return fetch_extents(h, nbd::kContextBaseAllocation, offset, count, out);
      } catch (const nbd::Error& e) {
        fail(name(), e);
      }
    };
  }

  uint64_t read(unsigned conn, std::span<std::byte> buf, uint64_t offset, Done done) override {
    try {
      conns_[conn].aio_pread(buf, offset, aio_completion(std::move(done)));
    } catch (const nbd::Error& e) {
      fail(name(), e);
    }
    return buf.size();
  }

  void write(unsigned conn, std::span<const std::byte> buf, uint64_t offset,
             Done done) override {
    try {
      conns_[conn].aio_pwrite(buf, offset, aio_completion(std::move(done)));
    } catch (const nbd::Error& e) {
      fail(name(), e);
    }
  }

  void zero(unsigned conn, uint64_t offset, uint64_t length, Done done) override {
    try {
      if (can_zero_)
        conns_[conn].aio_zero(length, offset, aio_completion(std::move(done)));
      else  // no zero command: max_zero() keeps such runs to one request
        conns_[conn].aio_pwrite(zeros().first(static_cast<size_t>(length)), offset,
                                aio_completion(std::move(done)));
    } catch (const nbd::Error& e) {
      fail(name(), e);
    }
  }

  bool in_flight(unsigned conn) override { return busy(conns_[conn]); }

  // Asked at every wait: while a handle reconnects, its descriptor changes (a timer between
  // attempts, then the new socket), and so does the direction to watch it in.
  std::optional<pollfd> poll_fd(unsigned conn) override {
    nbd::Handle& h = conns_[conn];
    try {
      if (!busy(h))
        return std::nullopt;
      const unsigned dir = h.aio_get_direction();
      short events = 0;
      if (dir & nbd::kAioDirectionRead)
        events |= POLLIN;
      if (dir & nbd::kAioDirectionWrite)
        events |= POLLOUT;
      return pollfd{h.aio_get_fd(), events, 0};
    } catch (const nbd::Error& e) {
      fail("connection", e);
    }
  }

  void notify(unsigned conn, short revents) override {
    try {
      // One event per round, as libnbd's callers do: a read also sends what is queued, and
      // a handle refuses an event it no longer waits for.
      if (revents & (POLLIN | POLLHUP | POLLERR))
        conns_[conn].aio_notify_read();
      else if (revents & POLLOUT)
        conns_[conn].aio_notify_write();
    } catch (const nbd::Error& e) {
      if (conns_[conn].aio_is_dead())
        fail(name() + ": connection " + std::to_string(conn + 1) + " lost", e);
      fail(name(), e);
    }
  }

  void flush() override {
    if (!can_flush_)
      return;
    for (auto& h : conns_) {
      try {
        h.flush();
      } catch (const nbd::Error& e) {
        fail(name(), e);
      }
    }
  }

  void close() override {
    for (auto& h : conns_) {
      try {
        h.shutdown();
      } catch (const nbd::Error& e) {
        // Everything was read; a source that drops the connection early changes nothing.
        if (!source_)
          fail(name(), e);
      }
    }
  }

  uint64_t reconnections() override {
    uint64_t n = 0;
    for (auto& h : conns_)
      n += h.stats_reconnections();
    return n;
  }

  void abandon() noexcept override {
    for (auto& h : conns_) {
      try {
        if (!h.aio_is_dead() && !h.aio_is_closed())
          h.shutdown();
      } catch (const nbd::Error&) {
      }
    }
  }

 private:
  std::string summary() const override {
    std::string d = "NBD export";
    if (multi_conn_)
      d += ", multi-conn";
    if (extents_)
      d += ", base:allocation";
    if (can_zero_)
      d += ", zero";
    return d;
  }

  // Requests in flight, or a connection being made again (nbd_set_reconnect_delay): either
  // way the handle has work that only polling it moves on.
  static bool busy(nbd::Handle& h) { return h.aio_in_flight() > 0 || h.aio_is_processing(); }

  // Another connection to the same server.
  void add_connection(const std::string& uri) {
    nbd::Handle h;
    try {
      if (source_)
        prepare_source(h);
      set_limits(h, limits_);
      h.set_uri_allow_local_file(true);
      h.connect_uri(uri);
    } catch (const nbd::Error& e) {
      fail(name() + " (connection " + std::to_string(conns_.size() + 1) + ")", e);
    }
    conns_.push_back(std::move(h));
  }

  const Operand op_;
  const bool source_;
  const Limits limits_;
  std::vector<nbd::Handle> conns_;  // one per worker
  bool multi_conn_ = false;
  bool can_zero_ = false;
  bool can_flush_ = false;
  bool extents_ = false;  // base:allocation negotiated (sources)
  int64_t min_block_ = 0;
  int64_t max_block_ = 0;
};

}  // namespace

std::unique_ptr<Endpoint> open_nbd(const Operand& op, bool source, bool socket_activation,
                                   const Limits& limits) {
  nbd::Handle h;
  if (source)
    prepare_source(h);
  connect(h, op, socket_activation, limits);
  return std::make_unique<NbdEndpoint>(op, source, limits, std::move(h));
}

}  // namespace nbdpp
