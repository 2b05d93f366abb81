// copy_endpoint.hpp: one side of `nbdpp copy` behind one interface, as nbdcopy's rw_ops: an
// NBD export (copy_nbd.cpp), a file or block device (copy_file.cpp) or a stream
// (copy_stream.cpp).  The workers (copy_worker.hpp) use only this interface; the kind is chosen
// once, when the operand is opened.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "cli.hpp"
#include "planner.hpp"

namespace nbdpp {

// One zero request covers at most this.
inline constexpr uint64_t kMaxZero = uint64_t{1} << 30;

// Ends one request, exactly once, with 0 or an errno: before the call that started it returns
// (files), when the worker notifies the connection (NBD), or when its turn comes (a stream
// destination writes in order).
using Done = std::function<void(int error)>;

// One side of the copy.  The setting-up calls run on the main thread before the workers start,
// the copying calls on worker conn only (conn counts from 0 up to the number of connections),
// the ending calls on the main thread once the workers have stopped.
class Endpoint {
 public:
  Endpoint(std::string name, std::optional<uint64_t> size)
      : name_(std::move(name)), size_(size) {}
  virtual ~Endpoint() = default;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // How messages name it.
  const std::string& name() const { return name_; }
  // Its size in bytes; unknown for streams and for a new file until it takes the source's.
  const std::optional<uint64_t>& size() const { return size_; }
  // For --verbose: what it is, then its size when known.
  std::string describe() const;

  // Setting up.
  //
  // Tells a destination the source's size: before copying when it is known, else once a
  // stream source has ended.  A destination of fixed size checks that it holds the source; a
  // new file takes that size.
  virtual void source_size([[maybe_unused]] uint64_t bytes) {}
  // It is reached through connections, one per worker (NBD), so the copy can use several.
  virtual bool has_connections() const { return false; }
  // Its bytes go in order (a stream): one worker copies them all.
  virtual bool sequential() const { return false; }
  // Why it can have only one connection, if so.
  virtual std::optional<std::string> one_connection_only(
      [[maybe_unused]] bool socket_activation) const {
    return std::nullopt;
  }
  // Opens connections up to total (only called when total > 1).
  virtual void add_connections([[maybe_unused]] unsigned total,
                               [[maybe_unused]] bool socket_activation) {}
  // Sends from the library's concurrent writer thread (--writer); false if it has none.
  virtual bool start_writer() { return false; }
  // The request size made to fit its block size limits (throws if none fits).
  virtual uint64_t fit_request_size(uint64_t wanted) const { return wanted; }
  // The longest run one zero() may cover, with requests of request_size.
  virtual uint64_t max_zero([[maybe_unused]] uint64_t request_size) const { return kMaxZero; }
  // The request size chosen: zeroes are written in pieces of at most this.
  void set_request_size(uint64_t bytes) { request_size_ = bytes; }

  // Copying.
  //
  // A source's allocation map for the planner, read on connection conn; empty when it has
  // none (all data).
  virtual Planner::Fetch extents([[maybe_unused]] unsigned conn) { return {}; }
  // Reads buf.size() bytes at offset.  Returns how many it reads: all, fewer only where a
  // stream source has ended (such a read ends before returning).
  virtual uint64_t read(unsigned conn, std::span<std::byte> buf, uint64_t offset, Done done) = 0;
  // Writes buf at offset.
  virtual void write(unsigned conn, std::span<const std::byte> buf, uint64_t offset,
                     Done done) = 0;
  // Makes [offset, offset + length) read as zeroes, by the cheapest means it has.
  virtual void zero(unsigned conn, uint64_t offset, uint64_t length, Done done) = 0;
  // Ends the requests that were waiting only for their turn; the workers call it every round.
  virtual void advance([[maybe_unused]] unsigned conn) {}
  // Requests sent on connection conn whose replies have not come yet.
  virtual bool in_flight([[maybe_unused]] unsigned conn) { return false; }
  // What to poll for connection conn, while it has requests in flight.
  virtual std::optional<pollfd> poll_fd([[maybe_unused]] unsigned conn) { return std::nullopt; }
  // Hands connection conn what poll said of its poll_fd(), ending the requests whose replies
  // have come.
  virtual void notify([[maybe_unused]] unsigned conn, [[maybe_unused]] short revents) {}

  // Ending.
  //
  // Makes what was written durable (--flush).
  virtual void flush() {}
  // Ends a copy that succeeded.  A destination reports what goes wrong; a source, whose data
  // has all been read, ignores it.
  virtual void close() {}
  // Ends a copy that failed, politely; what goes wrong no longer matters.
  virtual void abandon() noexcept {}
  // How many times its connections were made again after being lost (--reconnect-delay).
  virtual uint64_t reconnections() { return 0; }

 protected:
  // What it is and can do, for describe(): "NBD export, multi-conn, zero".
  virtual std::string summary() const = 0;
  // One request's worth of zeroes, made on first use and then only read, by any worker.
  std::span<const std::byte> zeros();
  // Writes length zero bytes to fd in request-sized pieces, at offset or, for a stream, where
  // it stands: 0 or an errno.
  int write_zeroes(int fd, uint64_t length, std::optional<uint64_t> offset);
  // Once it is known (NBD) or taken from the source (a new file).
  void set_size(uint64_t bytes) { size_ = bytes; }

 private:
  std::string name_;
  std::optional<uint64_t> size_;
  uint64_t request_size_ = 0;
  std::once_flag zeros_once_;
  std::unique_ptr<std::byte[]> zeros_;
};

// Owns a file descriptor; close() reports its error, the destructor ignores it.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0)
        ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  int get() const { return fd_; }
  // 0, or -1 with errno set.
  int close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_ = -1;
};

// Writes all of buf to fd, at offset or, for a stream, where it stands: 0 or an errno.
int write_full(int fd, std::span<const std::byte> buf, std::optional<uint64_t> offset);

// strerror(err) as a string.
std::string errno_text(int err);

// Opens SRC (source) or DST as an endpoint of its kind; throws Failure.
// Every connection gets limits.
std::unique_ptr<Endpoint> open_nbd(const Operand& op, bool source, bool socket_activation,
                                   const Limits& limits);
// A local file, block device, pipe or character device.
std::unique_ptr<Endpoint> open_path(const Operand& op, bool source);
// "-": standard input (source) or output.
std::unique_ptr<Endpoint> open_stdio(bool source);

// A stream opened by open_path (a pipe or character device): it owns fd.
std::unique_ptr<Endpoint> open_stream(std::string name, UniqueFd fd, bool source);

}  // namespace nbdpp
