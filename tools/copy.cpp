// copy.cpp: `nbdpp copy SRC DST`: several connections, many requests in flight on each, holes
// and zero blocks sent as zero requests (or skipped on a new file), every completion checked.
//
// Shape: the planner (planner.hpp) cuts the source into chunks; one worker thread per
// connection takes chunks and runs them through a fixed set of slots (one buffer each): read
// the source, then write the destination, or zero it when the source reads as zeroes there.
// NBD reads and writes are asynchronous (aio_* with a completion callback, which only marks the
// slot); local files are read and written synchronously by the worker.  The main thread only
// shows progress.
#include "copy.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nbd/nbd.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "planner.hpp"
#include "progress.hpp"
#include "server.hpp"

namespace nbdpp {

const char kCopyUsage[] =
    "usage: nbdpp copy [OPTIONS] SRC DST\n"
    "\n"
    "Copy an NBD export, a file, a block device or a pipe to another.  SRC and DST are\n"
    "each an NBD URI, a server command in brackets ([ CMD ARGS ... ]), a local file or\n"
    "block device, or \"-\" for standard input or output.  A regular file DST is created\n"
    "or truncated.  Holes and blocks of zeroes in SRC are not written as data: they\n"
    "become zero requests on NBD and block devices, and stay holes in files.\n"
    "\n"
    "  -C, --connections N    connections to each NBD server (default 4 when the\n"
    "                         servers offer multi-conn, else 1)\n"
    "  -R, --requests N       requests in flight per connection (default 64)\n"
    "      --request-size S   bytes per request, a power of 2 from 512 to 64M\n"
    "                         (default 256K)\n"
    "      --writer           send to NBD destinations from the library's concurrent\n"
    "                         writer thread\n"
    "      --no-writer        send from the copying thread (the default)\n"
    "      --flush            flush the destination at the end\n"
    "  -p, --progress         show progress on stderr\n"
    "  -v, --verbose          describe the source, destination and connections\n"
    "  -q, --quiet            do not print the closing summary line\n"
    "      --socket-activation  start [ CMD ] servers with systemd socket activation\n"
    "                         (default: they speak NBD on their stdin and stdout)\n"
    "  -h, --help             show this help\n";

namespace {

constexpr uint64_t kDefaultRequestSize = 256 * 1024;
constexpr uint64_t kMaxRequestSize = 64 * 1024 * 1024;  // libnbd's limit on a data request
constexpr uint64_t kMaxZero = uint64_t{1} << 30;         // one zero request covers at most this
constexpr unsigned kDefaultMultiConn = 4;

struct CopyOptions {
  bool help = false;
  std::optional<Operand> src;
  std::optional<Operand> dst;
  std::optional<unsigned> connections;
  unsigned requests = 64;
  uint64_t request_size = kDefaultRequestSize;
  bool writer = false;
  bool flush = false;
  bool progress = false;
  bool verbose = false;
  bool quiet = false;
  bool socket_activation = false;
};

CopyOptions parse(std::vector<std::string> args) {
  CopyOptions o;
  ArgReader r{std::move(args)};
  while (r.next()) {
    if (r.flag("--help", 'h')) {
      o.help = true;
      return o;
    }
    if (r.is_operand()) {
      if (!o.src)
        o.src = r.take_operand();
      else if (!o.dst)
        o.dst = r.take_operand();
      else
        throw UsageError("copy takes two operands, SRC and DST; extra: " +
                         r.take_operand().display());
    } else if (auto v = r.value("--connections", 'C')) {
      o.connections = parse_count("--connections", *v, 64);
    } else if (auto v2 = r.value("--requests", 'R')) {
      o.requests = parse_count("--requests", *v2, 1024);
    } else if (auto v3 = r.value("--request-size")) {
      o.request_size = parse_size("--request-size", *v3);
      const uint64_t s = o.request_size;
      if (s < 512 || s > kMaxRequestSize || (s & (s - 1)) != 0)
        throw UsageError("--request-size: must be a power of 2 from 512 to 64M, not " + *v3);
    } else if (r.flag("--writer")) {
      o.writer = true;
    } else if (r.flag("--no-writer")) {
      o.writer = false;
    } else if (r.flag("--flush")) {
      o.flush = true;
    } else if (r.flag("--progress", 'p')) {
      o.progress = true;
    } else if (r.flag("--verbose", 'v')) {
      o.verbose = true;
    } else if (r.flag("--quiet", 'q')) {
      o.quiet = true;
    } else if (r.flag("--socket-activation")) {
      o.socket_activation = true;
    } else {
      throw UsageError("copy: unknown option " + r.current());
    }
  }
  if (!o.dst)
    throw UsageError("copy needs SRC and DST");
  return o;
}

std::string errno_text(int err) { return std::strerror(err); }

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

// One side of the copy.
struct Endpoint {
  enum class Kind {
    Nbd,     // an NBD export: one handle per connection
    File,    // a regular file or block device: pread/pwrite at any offset
    Stream,  // stdin, stdout, a pipe or character device: in order only
  };
  Kind kind = Kind::File;
  Operand op;
  std::string name;               // for messages
  std::optional<uint64_t> size;   // unknown for streams
  // Nbd
  std::vector<nbd::Handle> conns;
  bool multi_conn = false;
  bool can_zero = false;
  bool can_flush = false;
  bool extents = false;  // base:allocation negotiated (sources)
  int64_t min_block = 0;
  int64_t max_block = 0;
  // File and Stream
  UniqueFd owned;   // closed at the end unless it is stdin or stdout
  int fd = -1;
  bool block_device = false;
  bool fresh = false;  // a file we created or truncated: holes need no writing

  std::string describe() const {
    std::string d;
    switch (kind) {
      case Kind::Nbd:
        d = "NBD export";
        if (multi_conn)
          d += ", multi-conn";
        if (extents)
          d += ", base:allocation";
        if (can_zero)
          d += ", zero";
        break;
      case Kind::File:
        d = block_device ? "block device" : fresh ? "new file" : "file";
        break;
      case Kind::Stream:
        d = "stream";
        break;
    }
    if (size)
      d += ", " + std::to_string(*size) + " bytes";
    return d;
  }
};

// A source connection asks for the allocation map, and skips zeroing read buffers before each
// read (the library's safety net for programs that ignore errors): every read's result is
// checked here, and a failed read's buffer is never used.
void prepare_source(nbd::Handle& h) {
  h.add_meta_context(nbd::kContextBaseAllocation);
  h.set_pread_initialize(false);
}

void open_nbd(Endpoint& ep, bool source, const CopyOptions& o) {
  ep.kind = Endpoint::Kind::Nbd;
  nbd::Handle h;
  if (source)
    prepare_source(h);
  connect(h, ep.op, o.socket_activation);
  try {
    ep.size = static_cast<uint64_t>(h.get_size());
    ep.multi_conn = h.can_multi_conn();
    ep.can_zero = h.can_zero();
    ep.can_flush = h.can_flush();
    ep.extents = source && h.can_meta_context(nbd::kContextBaseAllocation);
    ep.min_block = h.get_block_size(nbd::BlockSize::Minimum);
    ep.max_block = h.get_block_size(nbd::BlockSize::Maximum);
    if (!source && h.is_read_only())
      throw Failure(ep.name + ": the export is read-only");
  } catch (const nbd::Error& e) {
    fail(ep.name, e);
  }
  ep.conns.push_back(std::move(h));
}

uint64_t block_device_size(int fd, const std::string& name) {
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) == -1)
    throw Failure(name + ": cannot get the block device size: " + errno_text(errno));
  return size;
}

// Opens SRC (source) or DST.  A regular file destination is made afresh, so that its holes need
// no writing and stay holes; block devices and streams are used in place.
Endpoint open_endpoint(const Operand& op, bool source, const CopyOptions& o) {
  Endpoint ep;
  ep.op = op;
  ep.name = op.display();
  if (op.is_nbd()) {
    open_nbd(ep, source, o);
    return ep;
  }
  if (op.kind == Operand::Kind::Stdio) {
    ep.kind = Endpoint::Kind::Stream;
    ep.name = source ? "standard input" : "standard output";
    ep.fd = source ? STDIN_FILENO : STDOUT_FILENO;
    return ep;
  }
  const std::string is_a_directory =
      std::string{"cannot copy "} + (source ? "from " : "to ") + op.text + ": it is a directory";
  struct stat st {};
  int flags = O_RDONLY | O_CLOEXEC;
  if (!source) {
    const bool exists = ::stat(op.text.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
      throw Failure(is_a_directory);
    const bool in_place = exists && !S_ISREG(st.st_mode);
    flags = in_place ? O_WRONLY | O_CLOEXEC : O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  }
  ep.owned = UniqueFd{::open(op.text.c_str(), flags, 0666)};
  if (ep.owned.get() < 0)
    throw Failure("cannot open " + op.text + (source ? "" : " for writing") + ": " +
                  errno_text(errno));
  ep.fd = ep.owned.get();
  if (fstat(ep.fd, &st) == -1)
    throw Failure("cannot stat " + op.text + ": " + errno_text(errno));
  if (S_ISREG(st.st_mode)) {
    ep.kind = Endpoint::Kind::File;
    if (source)
      ep.size = static_cast<uint64_t>(st.st_size);
    else
      ep.fresh = true;
  } else if (S_ISBLK(st.st_mode)) {
    ep.kind = Endpoint::Kind::File;
    ep.block_device = true;
    ep.size = block_device_size(ep.fd, ep.name);
  } else if (S_ISDIR(st.st_mode)) {
    throw Failure(is_a_directory);
  } else {
    ep.kind = Endpoint::Kind::Stream;
  }
  return ep;
}

// Another connection to an NBD endpoint's server.
void add_connection(Endpoint& ep, const std::string& uri, bool source) {
  nbd::Handle h;
  try {
    if (source)
      prepare_source(h);
    h.set_uri_allow_local_file(true);
    h.connect_uri(uri);
  } catch (const nbd::Error& e) {
    fail(ep.name + " (connection " + std::to_string(ep.conns.size() + 1) + ")", e);
  }
  ep.conns.push_back(std::move(h));
}

bool is_zero(const std::byte* p, size_t n) {
  // Check a few bytes by hand, then compare the buffer with itself shifted: if the first 16
  // bytes are zero and every byte equals the one 16 before it, all are zero.
  const size_t head = std::min<size_t>(n, 16);
  for (size_t i = 0; i < head; ++i)
    if (p[i] != std::byte{0})
      return false;
  return n <= 16 || std::memcmp(p, p + 16, n - 16) == 0;
}

// Whole-buffer pread/pwrite/read/write: 0, or the errno.
int pread_full(int fd, std::byte* buf, size_t n, uint64_t off) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return errno;
    if (r == 0)
      return EIO;  // the file shrank under us
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return 0;
}

int pwrite_full(int fd, const std::byte* buf, size_t n, uint64_t off) {
  while (n > 0) {
    const ssize_t r = ::pwrite(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return errno;
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return 0;
}

int write_full(int fd, const std::byte* buf, size_t n) {
  while (n > 0) {
    const ssize_t r = ::write(fd, buf, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return errno;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return 0;
}

// Reads up to n bytes, fewer only at the end of the stream; the count, or -errno.
ssize_t read_full(int fd, std::byte* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

struct Job;

// One thread's share of the copy: its own connection to each NBD endpoint and a fixed set of
// slots, each holding one request's buffer.

class Worker {
 public:
  Worker(Job& job, nbd::Handle* src, nbd::Handle* dst);
  // Copies chunks until the planner has none left or some worker failed; never throws.
  void run() noexcept;

 private:
  enum class State { Free, Reading, Read, Writing, Written, Queued };
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
  template <typename Submit>
  void issue(Slot& s, State pending, State done, const std::string& name, Submit&& submit);
  int write_zeroes(uint64_t length, std::optional<uint64_t> offset);
  void retire(Slot& s);
  void drain_stream();
  void wait(int timeout_ms = -1);
  void finish_in_flight();
  bool in_flight();
  void check_fits(const Slot& s);
  const std::byte* zeros();

  Job& job_;
  nbd::Handle* src_;
  nbd::Handle* dst_;
  std::vector<Slot> slots_;
  std::unique_ptr<std::byte[]> zeros_;
  std::map<uint64_t, Slot*> queued_;  // stream destination: slots waiting for their turn
  uint64_t stream_pos_ = 0;
};

// Everything the workers share.  Members are destroyed in reverse order: the endpoints (and
// with them the NBD handles, which may still hold commands after a failure) before the
// workers' buffers those commands point into.
struct Job {
  const CopyOptions& o;
  uint64_t request_size = kDefaultRequestSize;
  std::vector<std::unique_ptr<Worker>> workers;
  Endpoint src;
  Endpoint dst;
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

  explicit Job(const CopyOptions& opts) : o(opts) {}

  void fail(std::string message) {
    std::lock_guard lock{mu};
    if (!failed.exchange(true))
      error = std::move(message);
  }
};

Worker::Worker(Job& job, nbd::Handle* src, nbd::Handle* dst)
    : job_(job), src_(src), dst_(dst), slots_(job.o.requests) {
  for (auto& s : slots_)
    s.buf = std::make_unique_for_overwrite<std::byte[]>(job.request_size);
}

const std::byte* Worker::zeros() {
  if (!zeros_) {
    zeros_ = std::make_unique<std::byte[]>(job_.request_size);  // value-initialised: zeroes
  }
  return zeros_.get();
}

// Hands a request to an NBD connection: submit is called with the completion, which moves the
// slot from pending to done with the server's errno.
template <typename Submit>
void Worker::issue(Slot& s, State pending, State done, const std::string& name, Submit&& submit) {
  s.state = pending;
  try {
    submit([&s, done](int* error) {
      s.error = *error;
      s.state = done;
      return 1;
    });
  } catch (const nbd::Error& e) {
    fail(name, e);
  }
}

// Writes length zero bytes to the destination file, in request-sized pieces: at offset, or
// where a stream destination stands.  Returns 0 or an errno.
int Worker::write_zeroes(uint64_t length, std::optional<uint64_t> offset) {
  int error = 0;
  for (uint64_t done = 0; done < length && error == 0;) {
    const auto n = static_cast<size_t>(std::min(length - done, job_.request_size));
    error = offset ? pwrite_full(job_.dst.fd, zeros(), n, *offset + done)
                   : write_full(job_.dst.fd, zeros(), n);
    done += n;
  }
  return error;
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
  Planner::Fetch fetch;
  if (job_.src.kind == Endpoint::Kind::Nbd && job_.src.extents) {
    fetch = [this](uint64_t offset, uint64_t count, std::vector<Extent>& out) {
      try {
        return fetch_extents(*src_, nbd::kContextBaseAllocation, offset, count, out);
      } catch (const nbd::Error& e) {
        fail(job_.src.name, e);
      }
    };
  } else if (job_.src.kind == Endpoint::Kind::File && !job_.src.block_device) {
    fetch = [this](uint64_t offset, uint64_t count, std::vector<Extent>& out) {
      return file_extents(job_.src.fd, *job_.src.size, offset, count, out);
    };
  }

  bool planned_all = false;
  while (!job_.failed) {
    bool progressed = false;
    for (auto& s : slots_) {
      if (job_.failed)
        return;
      if (s.state == State::Read) {
        after_read(s);
        progressed = true;
      } else if (s.state == State::Written) {
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
    if (job_.dst.kind == Endpoint::Kind::Stream)
      drain_stream();
    if (planned_all &&
        std::all_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.state == State::Free; }))
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
  const std::span<std::byte> buf{s.buf.get(), static_cast<size_t>(s.chunk.length)};
  switch (job_.src.kind) {
    case Endpoint::Kind::Nbd:
      issue(s, State::Reading, State::Read, job_.src.name,
            [&](const auto& done) { src_->aio_pread(buf, s.chunk.offset, done); });
      return;
    case Endpoint::Kind::File:
      s.error = pread_full(job_.src.fd, buf.data(), buf.size(), s.chunk.offset);
      s.state = State::Read;
      return;
    case Endpoint::Kind::Stream: {
      const ssize_t n = read_full(job_.src.fd, buf.data(), buf.size());
      if (n < 0) {
        s.error = static_cast<int>(-n);
      } else if (static_cast<uint64_t>(n) < s.chunk.length) {
        s.chunk.length = static_cast<uint64_t>(n);
        job_.stream_end = s.chunk.offset + s.chunk.length;
        job_.planner->end_of_stream(s.chunk.offset + s.chunk.length);
      }
      s.state = s.chunk.length == 0 ? State::Free : State::Read;
      return;
    }
  }
}

void Worker::after_read(Slot& s) {
  if (s.error != 0)
    throw Failure("reading " + job_.src.name + " at offset " + std::to_string(s.chunk.offset) +
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
  if (job_.dst.size && s.chunk.offset + s.chunk.length > *job_.dst.size)
    throw Failure(job_.src.name + " is larger than the destination " + job_.dst.name + " (" +
                  std::to_string(*job_.dst.size) + " bytes)");
}

void Worker::write(Slot& s) {
  check_fits(s);
  const std::span<const std::byte> buf{s.buf.get(), static_cast<size_t>(s.chunk.length)};
  switch (job_.dst.kind) {
    case Endpoint::Kind::Nbd:
      issue(s, State::Writing, State::Written, job_.dst.name,
            [&](const auto& done) { dst_->aio_pwrite(buf, s.chunk.offset, done); });
      return;
    case Endpoint::Kind::File:
      s.error = pwrite_full(job_.dst.fd, buf.data(), buf.size(), s.chunk.offset);
      s.state = State::Written;
      return;
    case Endpoint::Kind::Stream:
      s.state = State::Queued;
      queued_[s.chunk.offset] = &s;
      return;
  }
}

void Worker::zero(Slot& s) {
  check_fits(s);
  const uint64_t off = s.chunk.offset;
  const uint64_t len = s.chunk.length;
  switch (job_.dst.kind) {
    case Endpoint::Kind::Nbd:
      issue(s, State::Writing, State::Written, job_.dst.name, [&](const auto& done) {
        if (job_.dst.can_zero) {
          dst_->aio_zero(len, off, done);
        } else {
          // No zero command: write zeroes (the planner keeps such runs to one request).
          dst_->aio_pwrite(std::span<const std::byte>{zeros(), static_cast<size_t>(len)}, off,
                           done);
        }
      });
      return;
    case Endpoint::Kind::File:
      s.state = State::Written;
      if (job_.dst.fresh)
        return;  // a hole already
      // A block device: let it zero the range (punching a hole where it can), else write.
      if (fallocate(job_.dst.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(off), static_cast<off_t>(len)) == 0 ||
          fallocate(job_.dst.fd, FALLOC_FL_ZERO_RANGE, static_cast<off_t>(off),
                    static_cast<off_t>(len)) == 0)
        return;
      s.error = write_zeroes(len, off);
      return;
    case Endpoint::Kind::Stream:
      s.state = State::Queued;
      queued_[off] = &s;
      return;
  }
}

void Worker::drain_stream() {
  while (!queued_.empty() && queued_.begin()->first == stream_pos_) {
    Slot& s = *queued_.begin()->second;
    queued_.erase(queued_.begin());
    if (s.chunk.zero) {
      s.error = write_zeroes(s.chunk.length, std::nullopt);
    } else {
      s.error = write_full(job_.dst.fd, s.buf.get(), static_cast<size_t>(s.chunk.length));
    }
    stream_pos_ += s.chunk.length;
    s.state = State::Written;
  }
}

void Worker::retire(Slot& s) {
  if (s.error != 0)
    throw Failure("writing " + job_.dst.name + " at offset " + std::to_string(s.chunk.offset) +
                  ": " + errno_text(s.error));
  job_.done += s.chunk.length;
  s.state = State::Free;
}

bool Worker::in_flight() {
  return (src_ != nullptr && src_->aio_in_flight() > 0) ||
         (dst_ != nullptr && dst_->aio_in_flight() > 0);
}

// After a failure: lets the requests already sent finish, for a while, so that the servers see
// an orderly end rather than connections dropped under their replies (nbdkit 1.32 can abort
// then).  Their results no longer matter.
void Worker::finish_in_flight() {
  constexpr auto kPatience = std::chrono::seconds{10};
  const auto give_up = std::chrono::steady_clock::now() + kPatience;
  while (in_flight() && std::chrono::steady_clock::now() < give_up)
    wait(100);
}

// Waits until a connection with commands in flight can make progress (or timeout_ms passes).
void Worker::wait(int timeout_ms) {
  pollfd fds[2];
  nbd::Handle* handles[2];
  const std::string* names[2];
  nfds_t n = 0;
  const auto add = [&](nbd::Handle* h, const std::string& name) {
    if (h == nullptr || h->aio_in_flight() == 0)
      return;
    const unsigned dir = h->aio_get_direction();
    short events = 0;
    if (dir & nbd::kAioDirectionRead)
      events |= POLLIN;
    if (dir & nbd::kAioDirectionWrite)
      events |= POLLOUT;
    fds[n] = pollfd{h->aio_get_fd(), events, 0};
    handles[n] = h;
    names[n] = &name;
    ++n;
  };
  try {
    add(src_, job_.src.name);
    add(dst_, job_.dst.name);
  } catch (const nbd::Error& e) {
    fail("connection", e);
  }
  if (n == 0)
    throw Failure("internal error: busy requests but no connection to wait for");
  if (poll(fds, n, timeout_ms) == -1) {
    if (errno == EINTR)
      return;
    throw Failure("poll: " + errno_text(errno));
  }
  for (nfds_t i = 0; i < n; ++i) {
    try {
      // One event per round, as libnbd's callers do: a read also sends what is queued, and
      // a handle refuses an event it no longer waits for.
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
        handles[i]->aio_notify_read();
      else if (fds[i].revents & POLLOUT)
        handles[i]->aio_notify_write();
    } catch (const nbd::Error& e) {
      fail(*names[i], e);
    }
  }
}

// How many connections each NBD endpoint gets, and why, for --verbose.
unsigned choose_connections(const Job& job, const CopyOptions& o, std::string& why) {
  std::vector<const Endpoint*> nbd_eps;
  for (const Endpoint* ep : {&job.src, &job.dst})
    if (ep->kind == Endpoint::Kind::Nbd)
      nbd_eps.push_back(ep);
  if (nbd_eps.empty()) {
    why = "no NBD endpoint";
    return 1;
  }
  const unsigned wanted = o.connections.value_or(kDefaultMultiConn);
  if (wanted == 1) {
    why = "as asked";
    return 1;
  }
  for (const Endpoint* ep : {&job.src, &job.dst}) {
    if (ep->kind == Endpoint::Kind::Stream) {
      why = ep->name + " is a stream, copied in order";
      return 1;
    }
  }
  for (const Endpoint* ep : nbd_eps) {
    if (!ep->multi_conn) {
      why = ep->name + " does not offer multi-conn";
      return 1;
    }
    if (ep->op.kind == Operand::Kind::Command && !o.socket_activation) {
      why = ep->name + " serves one connection on its stdin/stdout";
      return 1;
    }
  }
  why = o.connections ? "as asked" : "the servers offer multi-conn";
  return wanted;
}

// The request size: the asked one, made to fit each NBD server's block size limits.
uint64_t choose_request_size(const Job& job, uint64_t wanted) {
  uint64_t rs = wanted;
  for (const Endpoint* ep : {&job.src, &job.dst}) {
    if (ep->kind != Endpoint::Kind::Nbd)
      continue;
    if (ep->max_block > 0)
      while (rs > 512 && rs > static_cast<uint64_t>(ep->max_block))
        rs /= 2;
    if (ep->min_block > 0 && rs < static_cast<uint64_t>(ep->min_block))
      rs = static_cast<uint64_t>(ep->min_block);
    if (ep->min_block > 0 && rs % static_cast<uint64_t>(ep->min_block) != 0)
      throw Failure(ep->name + ": its minimum block size " + std::to_string(ep->min_block) +
                    " does not divide the request size " + std::to_string(rs));
  }
  return rs;
}

void finish_destination(Job& job) {
  Endpoint& dst = job.dst;
  const CopyOptions& o = job.o;
  if (dst.kind == Endpoint::Kind::File && dst.fresh && !dst.size) {
    // A stream source: the new file gets its size now (trailing zeroes were skipped).
    if (ftruncate(dst.fd, static_cast<off_t>(job.stream_end.load())) == -1)
      throw Failure("cannot set the size of " + dst.name + ": " + errno_text(errno));
  }
  if (o.flush) {
    if (dst.kind == Endpoint::Kind::Nbd && dst.can_flush) {
      for (auto& h : dst.conns) {
        try {
          h.flush();
        } catch (const nbd::Error& e) {
          fail(dst.name, e);
        }
      }
    } else if (dst.kind == Endpoint::Kind::File && fdatasync(dst.fd) == -1) {
      throw Failure("flushing " + dst.name + ": " + errno_text(errno));
    }
  }
  for (auto& h : dst.conns) {
    try {
      h.shutdown();
    } catch (const nbd::Error& e) {
      fail(dst.name, e);
    }
  }
  if (dst.owned.get() >= 0 && dst.owned.close() == -1)
    throw Failure("closing " + dst.name + ": " + errno_text(errno));
}

}  // namespace

int run_copy(std::vector<std::string> args) {
  const CopyOptions o = parse(std::move(args));
  if (o.help) {
    std::fputs(kCopyUsage, stdout);
    return 0;
  }

  Job job{o};
  job.src = open_endpoint(*o.src, true, o);
  job.dst = open_endpoint(*o.dst, false, o);
  if (job.src.size && job.dst.kind == Endpoint::Kind::Nbd && *job.dst.size < *job.src.size)
    throw Failure(job.dst.name + ": the destination (" + std::to_string(*job.dst.size) +
                  " bytes) is smaller than the source (" + std::to_string(*job.src.size) +
                  " bytes)");
  if (job.src.size && job.dst.block_device && *job.dst.size < *job.src.size)
    throw Failure(job.dst.name + ": the block device (" + std::to_string(*job.dst.size) +
                  " bytes) is smaller than the source (" + std::to_string(*job.src.size) +
                  " bytes)");
  if (job.dst.kind == Endpoint::Kind::File && job.dst.fresh && job.src.size) {
    job.dst.size = job.src.size;
    if (ftruncate(job.dst.fd, static_cast<off_t>(*job.src.size)) == -1)
      throw Failure("cannot set the size of " + job.dst.name + ": " + errno_text(errno));
  }

  std::string why;
  const unsigned connections = choose_connections(job, o, why);
  if (o.connections && *o.connections > connections)
    std::fprintf(stderr, "nbdpp: using 1 connection: %s\n", why.c_str());
  for (Endpoint* ep : {&job.src, &job.dst}) {
    if (ep->kind != Endpoint::Kind::Nbd || connections == 1)
      continue;
    const auto uri = another_connection_uri(ep->conns[0], ep->op, o.socket_activation);
    if (!uri)
      throw Failure(ep->name + ": cannot open more connections");
    while (ep->conns.size() < connections)
      add_connection(*ep, *uri, ep == &job.src);
  }
  if (o.writer && job.dst.kind == Endpoint::Kind::Nbd) {
    for (auto& h : job.dst.conns) {
      try {
        h.start_concurrent_writer();
      } catch (const nbd::Error& e) {
        fail(job.dst.name, e);
      }
    }
  }
  job.request_size = choose_request_size(job, o.request_size);
  // Without a zero command, zeroes are written from a buffer of one request.
  const bool writes_zeroes = job.dst.kind == Endpoint::Kind::Nbd && !job.dst.can_zero;
  job.planner.emplace(job.src.size, job.request_size, writes_zeroes ? job.request_size : kMaxZero);

  const unsigned workers = job.src.kind == Endpoint::Kind::Nbd || job.dst.kind == Endpoint::Kind::Nbd
                               ? connections
                               : 1;
  if (o.verbose) {
    std::fprintf(stderr, "nbdpp: source %s: %s\n", job.src.name.c_str(), job.src.describe().c_str());
    std::fprintf(stderr, "nbdpp: destination %s: %s\n", job.dst.name.c_str(),
                 job.dst.describe().c_str());
    std::fprintf(stderr,
                 "nbdpp: %u connection%s (%s), %u requests of %llu bytes in flight on each, "
                 "concurrent writer %s\n",
                 connections, connections == 1 ? "" : "s", why.c_str(), o.requests,
                 static_cast<unsigned long long>(job.request_size),
                 o.writer && job.dst.kind == Endpoint::Kind::Nbd ? "on" : "off");
  }

  const auto t0 = std::chrono::steady_clock::now();
  Progress progress{o.progress, job.src.size};
  for (unsigned i = 0; i < workers; ++i) {
    nbd::Handle* s = job.src.conns.empty() ? nullptr : &job.src.conns[i];
    nbd::Handle* d = job.dst.conns.empty() ? nullptr : &job.dst.conns[i];
    job.workers.push_back(std::make_unique<Worker>(job, s, d));
  }
  {
    std::vector<std::jthread> threads;
    for (auto& w : job.workers)
      threads.emplace_back([&w] { w->run(); });
    std::unique_lock lock{job.mu};
    while (job.finished < workers) {
      job.finished_cv.wait_for(lock, std::chrono::milliseconds{100});
      lock.unlock();
      progress.update(job.done);
      lock.lock();
    }
  }
  if (job.failed) {
    // Disconnect politely; the copy has failed whatever the servers say now.
    for (Endpoint* ep : {&job.src, &job.dst}) {
      for (auto& h : ep->conns) {
        try {
          if (!h.aio_is_dead() && !h.aio_is_closed())
            h.shutdown();
        } catch (const nbd::Error&) {
        }
      }
    }
    throw Failure(job.error);
  }
  finish_destination(job);
  for (auto& h : job.src.conns) {
    try {
      h.shutdown();
    } catch (const nbd::Error&) {
      // Everything was read; a source that drops the connection early changes nothing.
    }
  }
  progress.finish(job.done);

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet) {
    const double mib = static_cast<double>(job.done) / (1024.0 * 1024.0);
    std::fprintf(stderr,
                 "nbdpp: copied %llu bytes (%llu data, %llu zero) in %.3f s, %.1f MiB/s\n",
                 static_cast<unsigned long long>(job.done.load()),
                 static_cast<unsigned long long>(job.data_bytes.load()),
                 static_cast<unsigned long long>(job.zero_bytes.load()), seconds,
                 seconds > 0 ? mib / seconds : 0.0);
  }
  return 0;
}

}  // namespace nbdpp
