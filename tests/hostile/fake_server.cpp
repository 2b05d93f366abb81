// fake_server.cpp: the scripted server behind the hostile tests (see fake_server.hpp).
#include "hostile/fake_server.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace hostile {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int e) { return std::strerror(e); }

uint16_t get16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get32(const unsigned char* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
uint64_t get64(const unsigned char* p) { return uint64_t{get32(p)} << 32 | get32(p + 4); }

}  // namespace

// ---- Bytes ----

Bytes& Bytes::u8(uint8_t x) {
  v_.push_back(x);
  return *this;
}

Bytes& Bytes::u16(uint16_t x) {
  v_.push_back(static_cast<unsigned char>(x >> 8));
  v_.push_back(static_cast<unsigned char>(x));
  return *this;
}

Bytes& Bytes::u32(uint32_t x) {
  u16(static_cast<uint16_t>(x >> 16));
  return u16(static_cast<uint16_t>(x));
}

Bytes& Bytes::u64(uint64_t x) {
  u32(static_cast<uint32_t>(x >> 32));
  return u32(static_cast<uint32_t>(x));
}

Bytes& Bytes::str(std::string_view s) { return raw(s.data(), s.size()); }

Bytes& Bytes::raw(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  v_.insert(v_.end(), b, b + n);
  return *this;
}

Bytes& Bytes::fill(size_t n, unsigned char c) {
  v_.insert(v_.end(), n, c);
  return *this;
}

// ---- Peer: raw bytes ----

void Peer::wait_for(short events, const char* what) {
  struct pollfd p {};
  p.fd = fd_;
  p.events = events;
  int r;
  do
    r = ::poll(&p, 1, timeout_ms_);
  while (r == -1 && errno == EINTR);
  if (r == -1)
    throw ScriptError(std::string("poll: ") + errno_text(errno));
  if (r == 0)
    throw ScriptError(std::string("timed out waiting for the client (") + what + ")");
}

void Peer::wait_until_read(const char* what) {
  // SIOCOUTQ on a Unix stream socket counts the bytes the peer has not read yet.  Spinning
  // (with yields) is the only wake-up there is for "the peer has read"; it lasts a few
  // microseconds per byte.
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    int pending = 0;
    if (::ioctl(fd_, SIOCOUTQ, &pending) == -1)
      throw ScriptError(std::string("ioctl SIOCOUTQ: ") + errno_text(errno));
    if (pending == 0)
      return;
    if (Clock::now() > deadline)
      throw ScriptError(std::string("timed out waiting for the client to read (") + what + ")");
    sched_yield();
  }
}

void Peer::send(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  while (n > 0) {
    const ssize_t r = ::send(fd_, b, drip_ ? 1 : n, MSG_NOSIGNAL);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(POLLOUT, "send");
        continue;
      }
      throw ScriptError("send: the client went away (" + errno_text(errno) + ")");
    }
    b += r;
    n -= static_cast<size_t>(r);
    if (drip_)
      wait_until_read("drip");
  }
}

std::vector<unsigned char> Peer::read_exact(size_t n) {
  std::vector<unsigned char> out(n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(POLLIN, "read");
        continue;
      }
      throw ScriptError("recv: " + errno_text(errno));
    }
    if (r == 0)
      throw ScriptError("the client closed the connection (" + std::to_string(got) + " of " +
                        std::to_string(n) + " bytes read)");
    got += static_cast<size_t>(r);
  }
  return out;
}

void Peer::expect_eof() {
  for (;;) {
    unsigned char b[256];
    const ssize_t r = ::recv(fd_, b, sizeof b, 0);
    if (r == 0 || (r == -1 && errno == ECONNRESET))
      return;
    if (r > 0)
      throw ScriptError("the client sent " + std::to_string(r) + " bytes instead of closing");
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      throw ScriptError("recv: " + errno_text(errno));
    wait_for(POLLIN, "end of stream");
  }
}

void Peer::hangup() {
  ::shutdown(fd_, SHUT_WR);
  drain_until_eof();
}

void Peer::drain_until_eof() {
  for (;;) {
    unsigned char b[4096];
    const ssize_t r = ::recv(fd_, b, sizeof b, 0);
    if (r == 0 || (r == -1 && errno == ECONNRESET))
      return;
    if (r > 0 || errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      throw ScriptError("recv: " + errno_text(errno));
    wait_for(POLLIN, "the client to close the connection");
  }
}

// ---- Peer: handshake ----

void Peer::greeting_newstyle(uint16_t gflags) { send(Bytes().u64(NBDMAGIC).u64(IHAVEOPT).u16(gflags)); }

void Peer::greeting_oldstyle(uint64_t size, uint16_t eflags) {
  // The 32-bit flags field holds the handshake flags (0) and then the transmission flags.
  send(Bytes().u64(NBDMAGIC).u64(OLDSTYLE_MAGIC).u64(size).u16(0).u16(eflags).fill(124));
}

void Peer::expect_client_flags(uint32_t want) {
  const uint32_t got = get32(read_exact(4).data());
  if (got != want)
    throw ScriptError("client flags " + std::to_string(got) + ", expected " + std::to_string(want));
}

Option Peer::expect_option() {
  const auto hdr = read_exact(16);
  if (get64(hdr.data()) != IHAVEOPT)
    throw ScriptError("option without IHAVEOPT");
  Option o;
  o.code = get32(hdr.data() + 8);
  const uint32_t len = get32(hdr.data() + 12);
  if (len > 64 * 1024)
    throw ScriptError("option data too long: " + std::to_string(len));
  o.data = read_exact(len);
  return o;
}

Option Peer::expect_option(uint32_t want) {
  Option o = expect_option();
  if (o.code != want)
    throw ScriptError("option " + std::to_string(o.code) + ", expected " + std::to_string(want));
  return o;
}

void Peer::opt_reply_header(uint32_t opt, uint32_t type, uint32_t length) {
  send(Bytes().u64(OPT_REPLY_MAGIC).u32(opt).u32(type).u32(length));
}

void Peer::opt_reply(uint32_t opt, uint32_t type, const Bytes& payload) {
  send(Bytes().u64(OPT_REPLY_MAGIC).u32(opt).u32(type).u32(static_cast<uint32_t>(payload.size()))
           .raw(payload.vec()));
}

void Peer::opt_error(uint32_t opt, uint32_t type, std::string_view msg) {
  opt_reply(opt, type, Bytes().str(msg));
}

void Peer::opt_info_export(uint32_t opt, uint64_t size, uint16_t eflags) {
  opt_reply(opt, REP_INFO, Bytes().u16(INFO_EXPORT).u64(size).u16(eflags));
}

void Peer::opt_info_block_size(uint32_t opt, uint32_t min, uint32_t pref, uint32_t max) {
  opt_reply(opt, REP_INFO, Bytes().u16(INFO_BLOCK_SIZE).u32(min).u32(pref).u32(max));
}

void Peer::export_name_reply(uint64_t size, uint16_t eflags, bool zeroes) {
  Bytes b;
  b.u64(size).u16(eflags);
  if (zeroes)
    b.fill(124);
  send(b);
}

void Peer::handshake(const Export& e) {
  greeting_newstyle();
  expect_client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
  serve_options(e);
}

void Peer::serve_options(const Export& e) {
  for (;;) {
    const Option o = expect_option();
    switch (o.code) {
      case OPT_STRUCTURED_REPLY:
        if (e.structured_replies)
          opt_ack(o.code);
        else
          opt_error(o.code, REP_ERR_UNSUP);
        break;
      case OPT_SET_META_CONTEXT:
      case OPT_LIST_META_CONTEXT:
        for (const MetaContext& m : e.contexts)
          opt_reply(o.code, REP_META_CONTEXT,
                    Bytes().u32(o.code == OPT_SET_META_CONTEXT ? m.id : 0).str(m.name));
        opt_ack(o.code);
        break;
      case OPT_INFO:
      case OPT_GO:
        opt_info_export(o.code, e.size, e.eflags);
        if (e.block_size.size() == 3)
          opt_info_block_size(o.code, e.block_size[0], e.block_size[1], e.block_size[2]);
        opt_ack(o.code);
        if (o.code == OPT_GO)
          return;
        break;
      case OPT_STARTTLS:
        opt_error(o.code, REP_ERR_POLICY, "no TLS here");
        break;
      case OPT_LIST:
        opt_reply(o.code, REP_SERVER, Bytes().u32(0));
        opt_ack(o.code);
        break;
      case OPT_ABORT:
        opt_ack(o.code);
        return;
      default:
        opt_error(o.code, REP_ERR_UNSUP);
        break;
    }
  }
}

// ---- Peer: transmission ----

Request Peer::read_request() {
  const auto hdr = read_exact(28);
  if (get32(hdr.data()) != REQUEST_MAGIC)
    throw ScriptError("request without NBD_REQUEST_MAGIC");
  Request r;
  r.flags = get16(hdr.data() + 4);
  r.type = get16(hdr.data() + 6);
  r.cookie = get64(hdr.data() + 8);
  r.offset = get64(hdr.data() + 16);
  r.length = get32(hdr.data() + 24);
  if (r.type == CMD_WRITE)
    r.data = read_exact(r.length);
  return r;
}

void Peer::simple_reply(uint64_t cookie, uint32_t error, const Bytes& data) {
  send(Bytes().u32(SIMPLE_REPLY_MAGIC).u32(error).u64(cookie).raw(data.vec()));
}

void Peer::chunk_header(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length) {
  send(Bytes().u32(STRUCTURED_REPLY_MAGIC).u16(flags).u16(type).u64(cookie).u32(length));
}

void Peer::chunk(uint16_t flags, uint16_t type, uint64_t cookie, const Bytes& payload) {
  send(Bytes().u32(STRUCTURED_REPLY_MAGIC).u16(flags).u16(type).u64(cookie)
           .u32(static_cast<uint32_t>(payload.size())).raw(payload.vec()));
}

void Peer::offset_data(uint64_t cookie, uint64_t offset, const Bytes& data, uint16_t flags) {
  chunk(flags, REPLY_TYPE_OFFSET_DATA, cookie, Bytes().u64(offset).raw(data.vec()));
}

void Peer::offset_hole(uint64_t cookie, uint64_t offset, uint32_t size, uint16_t flags) {
  chunk(flags, REPLY_TYPE_OFFSET_HOLE, cookie, Bytes().u64(offset).u32(size));
}

void Peer::block_status(uint64_t cookie, uint32_t context_id,
                        const std::vector<std::pair<uint32_t, uint32_t>>& extents, uint16_t flags) {
  Bytes b;
  b.u32(context_id);
  for (const auto& [length, status] : extents)
    b.u32(length).u32(status);
  chunk(flags, REPLY_TYPE_BLOCK_STATUS, cookie, b);
}

void Peer::error_chunk(uint64_t cookie, uint32_t error, std::string_view msg, uint16_t flags) {
  chunk(flags, REPLY_TYPE_ERROR, cookie,
        Bytes().u32(error).u16(static_cast<uint16_t>(msg.size())).str(msg));
}

void Peer::error_offset_chunk(uint64_t cookie, uint32_t error, uint64_t offset,
                              std::string_view msg, uint16_t flags) {
  chunk(flags, REPLY_TYPE_ERROR_OFFSET, cookie,
        Bytes().u32(error).u16(static_cast<uint16_t>(msg.size())).str(msg).u64(offset));
}

// ---- FakeServer ----

int FakeServer::timeout_ms() {
  if (const char* s = std::getenv("NBD_HOSTILE_TIMEOUT_MS")) {
    const int v = std::atoi(s);
    if (v > 0)
      return v;
  }
  return 10000;
}

FakeServer::FakeServer(Script script) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
    throw std::runtime_error("socketpair: " + errno_text(errno));
  server_fd_ = sv[0];
  client_fd_ = sv[1];
  ::fcntl(server_fd_, F_SETFL, ::fcntl(server_fd_, F_GETFL) | O_NONBLOCK);
  thread_ = std::thread([this, s = std::move(script)] { run(s); });
}

FakeServer::~FakeServer() {
  finish();
  if (client_fd_ != -1)
    ::close(client_fd_);
}

int FakeServer::take_client_fd() { return std::exchange(client_fd_, -1); }

void FakeServer::record(const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!errors_.empty())
    errors_ += "; ";
  errors_ += what;
}

void FakeServer::run(const Script& script) {
  Peer peer(server_fd_, timeout_ms());
  try {
    script(peer);
    // Stay until the client leaves, taking whatever it still sends.
    peer.drain_until_eof();
  } catch (const ScriptError& e) {
    record(e.what());
    ::shutdown(server_fd_, SHUT_RDWR);  // the client sees the end of the stream, not a hang
  } catch (const std::exception& e) {
    record(std::string("script threw: ") + e.what());
    ::shutdown(server_fd_, SHUT_RDWR);
  }
}

std::string FakeServer::finish() {
  if (thread_.joinable())
    thread_.join();
  if (server_fd_ != -1) {
    ::close(server_fd_);
    server_fd_ = -1;
  }
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

}  // namespace hostile
