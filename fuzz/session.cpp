// session.cpp: the single-threaded client session behind the fuzzer and the corpus recorder.
#include "session.hpp"

#include <libnbd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace nbd_fuzz {
namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "nbd_fuzz: %s\n", what);
  std::abort();
}

// A closure's calls and frees; every closure must be freed exactly once by nbd_close.
struct Life {
  int calls = 0;
  int frees = 0;
};

void count_free(void* ud) { ++static_cast<Life*>(ud)->frees; }

// A command's buffer with guard bytes on both sides.
struct Buffer {
  static constexpr size_t kGuard = 32;
  static constexpr uint8_t kGuardByte = 0x5a;
  explicit Buffer(size_t n) : size(n), bytes(n + 2 * kGuard, kGuardByte) {}
  uint8_t* data() { return bytes.data() + kGuard; }
  bool guards_intact() const {
    for (size_t i = 0; i < kGuard; ++i)
      if (bytes[i] != kGuardByte || bytes[kGuard + size + i] != kGuardByte)
        return false;
    return true;
  }
  size_t size;
  std::vector<uint8_t> bytes;
};

// One command of the session and what its callbacks saw.
struct Command {
  const char* name;
  uint64_t offset = 0;
  size_t count = 0;
  int64_t export_size = -1;  // when it was issued (nbd_get_size)
  // Reads and writes.  Freed by the completion, as a caller may do once a command has
  // completed: a library that still touched it would be caught by ASan (or valgrind).
  std::unique_ptr<Buffer> buf;
  Life completion, chunk, extent;
  int error = -1;
  Outcome* out = nullptr;
};

int on_completion(void* ud, int* error) {
  auto* c = static_cast<Command*>(ud);
  if (++c->completion.calls != 1)
    finding("a completion callback ran twice");
  c->error = *error;
  if (c->buf) {
    if (!c->buf->guards_intact())
      finding("bytes were written outside a command's buffer");
    c->buf.reset();
  }
  ++c->out->completed;
  if (*error != 0)
    ++c->out->failed;
  return 1;  // retired here: nothing is left for nbd_aio_command_completed
}

int on_chunk(void* ud, const void* subbuf, size_t count, uint64_t offset, unsigned status, int*) {
  auto* c = static_cast<Command*>(ud);
  ++c->chunk.calls;
  if (!c->buf)
    finding("a chunk callback ran after its command had completed");
  const auto* p = static_cast<const uint8_t*>(subbuf);
  // The chunk must lie inside the command's buffer, where its offset says.
  if (offset < c->offset || offset - c->offset > c->count || count > c->count - (offset - c->offset) ||
      p != c->buf->data() + (offset - c->offset))
    finding("a chunk callback was given bytes outside its read");
  unsigned sum = 0;
  for (size_t i = 0; i < count; ++i)
    sum += p[i];  // touch every byte (ASan checks them)
  if (status == LIBNBD_READ_HOLE && sum != 0)
    finding("a hole chunk was not zeroed");
  return 0;
}

int on_extent(void* ud, const char* context, uint64_t offset, uint32_t* entries, size_t n, int* error) {
  auto* c = static_cast<Command*>(ud);
  ++c->extent.calls;
  if (context == nullptr || std::strlen(context) > 4096)
    finding("an extent callback was given a bad context name");
  if (offset != c->offset || n == 0 || n % 2 != 0)
    finding("an extent callback was given a bad offset or entry count");
  // What the library promises, as libnbd 1.18+ does: the extents never reach past the export
  // (what a server sends beyond the request is passed on); an extent of length 0 comes only
  // alone, and then with an error.
  uint64_t covered = offset;
  for (size_t i = 0; i < n; i += 2) {
    if (entries[i] == 0 && (n != 2 || *error == 0))
      finding("an extent callback was given an extent of length 0 among others, or without an error");
    covered += entries[i];
    if (c->export_size >= 0 && covered > static_cast<uint64_t>(c->export_size))
      finding("an extent callback was given an extent reaching past the export");
  }
  return 0;
}

int on_debug(void* ud, const char* context, const char* msg) {
  auto* life = static_cast<Life*>(ud);
  life->calls += static_cast<int>((std::strlen(context) + std::strlen(msg)) & 1);
  return 0;
}

int on_list(void* ud, const char* name, const char* description) {
  static_cast<Life*>(ud)->calls += static_cast<int>((std::strlen(name) + std::strlen(description)) & 1);
  return 0;
}

int on_context(void* ud, const char* name) {
  static_cast<Life*>(ud)->calls += static_cast<int>(std::strlen(name) & 1);
  return 0;
}

int on_opt_completion(void* ud, int*) {
  ++static_cast<Life*>(ud)->calls;
  return 1;
}

nbd_completion_callback completion_of(Command& c) { return {on_completion, &c, [](void* ud) { ++static_cast<Command*>(ud)->completion.frees; }}; }

// Everything the session owns, outliving the handle (closures are freed by nbd_close).
struct State {
  Outcome out;
  std::array<Command, 8> cmds{};
  Life debug, list, context;
  std::array<Life, 4> opt_completions{};
  int opt_phase = 0;
  bool issued = false;
  bool disconnected = false;
};

void record_error(Outcome& out) {
  const char* e = nbd_get_error();
  out.last_error = e != nullptr ? e : "";
}

// Issues every command once the handle is connected: the same calls, in the same order, on
// every run (the cookies then match a recording).
void issue_commands(nbd_handle* h, State& st) {
  struct Shape {
    const char* name;
    uint64_t offset;
    size_t count;
    bool buffer;
  };
  static constexpr Shape shapes[] = {{"pread", 0, 512, true},        {"pread_structured", 512, 1024, true},
                                     {"pwrite", 2048, 512, true},    {"flush", 0, 0, false},
                                     {"trim", 4096, 512, false},     {"cache", 0, 512, false},
                                     {"zero", 8192, 512, false},     {"block_status", 0, 65536, false}};
  for (size_t i = 0; i < st.cmds.size(); ++i) {
    Command& c = st.cmds[i];
    c.name = shapes[i].name;
    c.offset = shapes[i].offset;
    c.count = shapes[i].count;
    c.out = &st.out;
    if (shapes[i].buffer)
      c.buf = std::make_unique<Buffer>(c.count);
  }
  Command* c = st.cmds.data();
  for (size_t i = 0; i < c[2].count; ++i)
    c[2].buf->data()[i] = static_cast<uint8_t>(i * 31 + 7);
  int64_t r[8];
  r[0] = nbd_aio_pread(h, c[0].buf->data(), c[0].count, c[0].offset, completion_of(c[0]), 0);
  r[1] = nbd_aio_pread_structured(h, c[1].buf->data(), c[1].count, c[1].offset,
                                  {on_chunk, &c[1], [](void* ud) { ++static_cast<Command*>(ud)->chunk.frees; }},
                                  completion_of(c[1]), 0);
  r[2] = nbd_aio_pwrite(h, c[2].buf->data(), c[2].count, c[2].offset, completion_of(c[2]), 0);
  r[3] = nbd_aio_flush(h, completion_of(c[3]), 0);
  r[4] = nbd_aio_trim(h, c[4].count, c[4].offset, completion_of(c[4]), 0);
  r[5] = nbd_aio_cache(h, c[5].count, c[5].offset, completion_of(c[5]), 0);
  r[6] = nbd_aio_zero(h, c[6].count, c[6].offset, completion_of(c[6]), 0);
  c[7].export_size = nbd_get_size(h);
  r[7] = nbd_aio_block_status(h, c[7].count, c[7].offset,
                              {on_extent, &c[7], [](void* ud) { ++static_cast<Command*>(ud)->extent.frees; }},
                              completion_of(c[7]), 0);
  for (int64_t cookie : r) {
    if (cookie > 0)
      ++st.out.issued;
    else
      record_error(st.out);
  }
}

// The next step the client takes in the state it is in.
void step(nbd_handle* h, State& st) {
  if (nbd_aio_is_negotiating(h) == 1) {
    // Opt mode: the options one after the other, then NBD_OPT_GO; NBD_OPT_ABORT if GO failed.
    const int phase = st.opt_phase++;
    nbd_completion_callback done{on_opt_completion, nullptr, count_free};
    if (phase < static_cast<int>(st.opt_completions.size()))
      done.user_data = &st.opt_completions[static_cast<size_t>(phase)];
    int r;
    switch (phase) {
      case 0:
        r = nbd_aio_opt_list(h, {on_list, &st.list, count_free}, done);
        break;
      case 1:
        r = nbd_aio_opt_info(h, done);
        break;
      case 2:
        r = nbd_aio_opt_list_meta_context(h, {on_context, &st.context, count_free}, done);
        break;
      case 3:
        r = nbd_aio_opt_go(h, done);
        break;
      default:
        r = nbd_aio_opt_abort(h);
        break;
    }
    if (r == -1)
      record_error(st.out);
    return;
  }
  if (nbd_aio_is_ready(h) == 1 || nbd_aio_is_processing(h) == 1) {
    st.out.connected = true;
    if (!st.issued) {
      st.issued = true;
      issue_commands(h, st);
    } else if (!st.disconnected && nbd_aio_in_flight(h) == 0) {
      st.disconnected = true;
      if (nbd_aio_disconnect(h, 0) == -1)
        record_error(st.out);
    }
  }
}

void check_lives(const State& st) {
  auto once = [](const Life& l, const char* what) {
    if (l.frees != 1) {
      std::fprintf(stderr, "nbd_fuzz: %s closure freed %d times\n", what, l.frees);
      std::abort();
    }
  };
  if (st.issued) {
    for (const Command& c : st.cmds)
      once(c.completion, c.name);
    once(st.cmds[1].chunk, "chunk");
    once(st.cmds[7].extent, "extent");
  }
  for (int i = 0; i < st.opt_phase && i < static_cast<int>(st.opt_completions.size()); ++i)
    once(st.opt_completions[static_cast<size_t>(i)], "option completion");
  if (st.opt_phase > 0)
    once(st.list, "list");
  if (st.opt_phase > 2)
    once(st.context, "context");
}

}  // namespace

Settings Settings::decode(uint8_t b) {
  Settings s;
  s.opt_mode = (b & 1) != 0;
  s.no_structured = (b & 2) != 0;
  s.no_strict = (b & 4) != 0;
  s.export_name = (b & 8) != 0;
  s.full_info = (b & 16) != 0;
  s.debug = (b & 32) != 0;
  return s;
}

uint8_t Settings::encode() const {
  return static_cast<uint8_t>((opt_mode ? 1 : 0) | (no_structured ? 2 : 0) | (no_strict ? 4 : 0) |
                              (export_name ? 8 : 0) | (full_info ? 16 : 0) | (debug ? 32 : 0));
}

std::string Outcome::summary() const {
  return "connected=" + std::to_string(connected) + " issued=" + std::to_string(issued) +
         " completed=" + std::to_string(completed) + " failed=" + std::to_string(failed) +
         " end=" + (closed ? "closed" : "dead") + (last_error.empty() ? "" : " last_error=\"" + last_error + "\"");
}

void BufferServer::pump(bool one_byte) {
  // The client's requests (and write payloads) are read and dropped.
  uint8_t sink[64 * 1024];
  while (::recv(fd_, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  if (pos_ < size_) {
    const size_t n = one_byte ? 1 : size_ - pos_;
    const ssize_t r = ::send(fd_, data_ + pos_, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0)
      pos_ += static_cast<size_t>(r);
    else if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
      pos_ = size_;  // the client has gone
  }
  // The end of the input is the end of the stream, one whole turn later: the client first acts
  // on the last replies (a real server would see NBD_CMD_DISC before it hung up).
  if (pos_ == size_ && !shut_ && ++turns_after_end_ > 1) {
    ::shutdown(fd_, SHUT_WR);
    shut_ = true;
  }
}

void RelayServer::pump(bool) {
  uint8_t b[64 * 1024];
  ssize_t r;
  while (!real_eof_ && (r = ::recv(real_, b, sizeof b, MSG_DONTWAIT)) != -1) {
    if (r == 0) {
      real_eof_ = true;
      break;
    }
    recording_.insert(recording_.end(), b, b + r);
    to_client_.insert(to_client_.end(), b, b + r);
  }
  if (!to_client_.empty()) {
    r = ::send(fd_, to_client_.data(), to_client_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0)
      to_client_.erase(to_client_.begin(), to_client_.begin() + r);
  }
  while ((r = ::recv(fd_, b, sizeof b, MSG_DONTWAIT)) > 0) {
    for (ssize_t done = 0; done < r;) {
      const ssize_t w = ::send(real_, b + done, static_cast<size_t>(r - done), MSG_NOSIGNAL);
      if (w <= 0)
        break;
      done += w;
    }
  }
  if (r == 0)
    ::shutdown(real_, SHUT_WR);  // the client closed: pass it on
  if (real_eof_ && to_client_.empty() && !shut_) {
    ::shutdown(fd_, SHUT_WR);
    shut_ = true;
  }
}

void RelayServer::poll_fds(std::vector<struct pollfd>& fds) const {
  if (!real_eof_)
    fds.push_back({real_, POLLIN, 0});
  fds.push_back({fd_, static_cast<short>(POLLIN | (to_client_.empty() ? 0 : POLLOUT)), 0});
}

Outcome run_session(const Settings& settings, int client_fd, Server& server) {
  State st;
  nbd_handle* h = nbd_create();
  if (h == nullptr) {
    ::close(client_fd);
    return st.out;
  }
  // Settings first, so the first bytes the client sends already follow them.
  if (settings.debug) {
    nbd_set_debug_callback(h, {on_debug, &st.debug, count_free});
    nbd_set_debug(h, true);
  }
  nbd_set_opt_mode(h, settings.opt_mode);
  nbd_set_request_structured_replies(h, !settings.no_structured);
  if (settings.no_strict)
    nbd_set_strict_mode(h, 0);
  if (settings.export_name)
    nbd_set_handshake_flags(h, 0);
  nbd_set_full_info(h, settings.full_info);
  nbd_add_meta_context(h, "base:allocation");

  if (nbd_aio_connect_socket(h, client_fd) == -1)
    record_error(st.out);
  // Every turn either moves a byte, or the client makes progress, or (after the end of the
  // input) the client reads the end of the stream; a session longer than this never ends.
  const long max_turns = 1000000;
  long turn = 0;
  for (; turn < max_turns; ++turn) {
    if (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1)
      break;
    const bool handshake = !st.out.connected && nbd_aio_is_ready(h) != 1 && nbd_aio_is_processing(h) != 1;
    server.pump(handshake);
    step(h, st);
    if (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1)
      break;
    std::vector<struct pollfd> fds;
    server.poll_fds(fds);
    const unsigned dir = nbd_aio_get_direction(h);
    const int fd = nbd_aio_get_fd(h);
    if (fd >= 0 && dir != 0)
      fds.push_back({fd, static_cast<short>(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                            ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)),
                     0});
    if (server.wait_ms() > 0 && !fds.empty())
      ::poll(fds.data(), fds.size(), server.wait_ms());
    if (dir != 0 && nbd_poll(h, 0) == -1)
      record_error(st.out);
  }
  if (turn == max_turns)
    finding("the session did not end");
  st.out.closed = nbd_aio_is_closed(h) == 1;
  nbd_close(h);
  for (const Command& c : st.cmds)
    if (c.buf && !c.buf->guards_intact())
      finding("bytes were written outside a command's buffer");
  check_lives(st);
  return st.out;
}

}  // namespace nbd_fuzz
