// fake_server.hpp: a scripted NBD server on one end of a socketpair, for feeding the library
// protocol violations.  A thread plays the script; every wait has a deadline and the socket is
// shut down when a script fails or outstays it, so a test never hangs on a misbehaving client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace hostile {

// Wire constants (proto.md "Values"), spelled as the spec does so scripts read like it.
inline constexpr uint64_t NBDMAGIC = 0x4e42444d41474943;
inline constexpr uint64_t IHAVEOPT = 0x49484156454f5054;
inline constexpr uint64_t OLDSTYLE_MAGIC = 0x00420281861253;
inline constexpr uint64_t OPT_REPLY_MAGIC = 0x3e889045565a9;
inline constexpr uint32_t REQUEST_MAGIC = 0x25609513;
inline constexpr uint32_t SIMPLE_REPLY_MAGIC = 0x67446698;
inline constexpr uint32_t STRUCTURED_REPLY_MAGIC = 0x668e33ef;

inline constexpr uint16_t FLAG_FIXED_NEWSTYLE = 1;
inline constexpr uint16_t FLAG_NO_ZEROES = 2;

inline constexpr uint32_t OPT_EXPORT_NAME = 1;
inline constexpr uint32_t OPT_ABORT = 2;
inline constexpr uint32_t OPT_LIST = 3;
inline constexpr uint32_t OPT_STARTTLS = 5;
inline constexpr uint32_t OPT_INFO = 6;
inline constexpr uint32_t OPT_GO = 7;
inline constexpr uint32_t OPT_STRUCTURED_REPLY = 8;
inline constexpr uint32_t OPT_LIST_META_CONTEXT = 9;
inline constexpr uint32_t OPT_SET_META_CONTEXT = 10;
inline constexpr uint32_t OPT_EXTENDED_HEADERS = 11;

inline constexpr uint32_t REP_ACK = 1;
inline constexpr uint32_t REP_SERVER = 2;
inline constexpr uint32_t REP_INFO = 3;
inline constexpr uint32_t REP_META_CONTEXT = 4;
inline constexpr uint32_t REP_ERR_UNSUP = 0x80000001;
inline constexpr uint32_t REP_ERR_POLICY = 0x80000002;
inline constexpr uint32_t REP_ERR_INVALID = 0x80000003;
inline constexpr uint32_t REP_ERR_UNKNOWN = 0x80000006;

inline constexpr uint16_t INFO_EXPORT = 0;
inline constexpr uint16_t INFO_NAME = 1;
inline constexpr uint16_t INFO_DESCRIPTION = 2;
inline constexpr uint16_t INFO_BLOCK_SIZE = 3;

inline constexpr uint16_t TFLAG_HAS_FLAGS = 1 << 0;
inline constexpr uint16_t TFLAG_READ_ONLY = 1 << 1;
inline constexpr uint16_t TFLAG_SEND_FLUSH = 1 << 2;
inline constexpr uint16_t TFLAG_SEND_FUA = 1 << 3;
inline constexpr uint16_t TFLAG_SEND_TRIM = 1 << 5;
inline constexpr uint16_t TFLAG_SEND_WRITE_ZEROES = 1 << 6;
inline constexpr uint16_t TFLAG_SEND_DF = 1 << 7;
inline constexpr uint16_t TFLAG_SEND_CACHE = 1 << 10;
inline constexpr uint16_t TFLAG_SEND_FAST_ZERO = 1 << 11;
// What the scripts advertise unless a test says otherwise: everything the client may send.
inline constexpr uint16_t kAllFlags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA |
                                      TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES | TFLAG_SEND_DF |
                                      TFLAG_SEND_CACHE;

inline constexpr uint16_t CMD_READ = 0;
inline constexpr uint16_t CMD_WRITE = 1;
inline constexpr uint16_t CMD_DISC = 2;
inline constexpr uint16_t CMD_FLUSH = 3;
inline constexpr uint16_t CMD_TRIM = 4;
inline constexpr uint16_t CMD_CACHE = 5;
inline constexpr uint16_t CMD_WRITE_ZEROES = 6;
inline constexpr uint16_t CMD_BLOCK_STATUS = 7;

inline constexpr uint16_t REPLY_FLAG_DONE = 1;
inline constexpr uint16_t REPLY_TYPE_NONE = 0;
inline constexpr uint16_t REPLY_TYPE_OFFSET_DATA = 1;
inline constexpr uint16_t REPLY_TYPE_OFFSET_HOLE = 2;
inline constexpr uint16_t REPLY_TYPE_BLOCK_STATUS = 5;
inline constexpr uint16_t REPLY_TYPE_ERROR = (1 << 15) + 1;
inline constexpr uint16_t REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

// Error values on the wire ("Error values").
inline constexpr uint32_t NBD_EPERM = 1;
inline constexpr uint32_t NBD_EIO = 5;
inline constexpr uint32_t NBD_EINVAL = 22;
inline constexpr uint32_t NBD_ENOSPC = 28;

// Big-endian bytes, built field by field: Bytes().u32(x).u64(y).str("name").
class Bytes {
 public:
  Bytes() = default;
  Bytes(std::initializer_list<unsigned char> b) : v_(b) {}
  Bytes& u8(uint8_t x);
  Bytes& u16(uint16_t x);
  Bytes& u32(uint32_t x);
  Bytes& u64(uint64_t x);
  Bytes& str(std::string_view s);
  Bytes& raw(const void* p, size_t n);
  Bytes& raw(const std::vector<unsigned char>& b) { return raw(b.data(), b.size()); }
  Bytes& fill(size_t n, unsigned char c = 0);
  const unsigned char* data() const { return v_.data(); }
  size_t size() const { return v_.size(); }
  const std::vector<unsigned char>& vec() const { return v_; }

 private:
  std::vector<unsigned char> v_;
};

// Thrown inside a script when the client does something the script did not expect, or a
// deadline passes; it ends the script, and FakeServer::finish reports it.
class ScriptError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Option {
  uint32_t code = 0;
  std::vector<unsigned char> data;
};

struct Request {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  std::vector<unsigned char> data;  // NBD_CMD_WRITE payload
};

struct MetaContext {
  uint32_t id;
  std::string name;
};

// What handshake() offers: an export, and how it answers the usual options.
struct Export {
  uint64_t size = 1 << 20;
  uint16_t eflags = kAllFlags;
  bool structured_replies = true;         // ACK NBD_OPT_STRUCTURED_REPLY (else ERR_UNSUP)
  std::vector<MetaContext> contexts;      // sent for every NBD_OPT_SET_META_CONTEXT
  std::vector<uint32_t> block_size;       // min, pref, max: NBD_INFO_BLOCK_SIZE when not empty
};

// The server's side of the conversation, as a script sees it.  Every call throws ScriptError
// when the client closes early, sends something else, or a deadline passes.
class Peer {
 public:
  Peer(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}

  // ---- Raw bytes ----
  void send(const Bytes& b) { send(b.data(), b.size()); }
  void send(const void* p, size_t n);
  // From now on each byte goes alone and the next waits until the client has read it, so the
  // library sees every message split at every possible point.
  void set_drip(bool on) { drip_ = on; }
  std::vector<unsigned char> read_exact(size_t n);
  // Waits until the client has read every byte sent so far (which the library parses at once).
  void wait_until_read() { wait_until_read("everything sent"); }
  // Waits until the client closes its end; fails if it sends anything first.
  void expect_eof();
  // Closes the sending direction now (the client reads end of stream, even mid-message) and
  // then waits for the client to close, discarding what it sends.
  void hangup();
  // Waits until the client closes its end, discarding what it sends.
  void drain_until_eof();

  // ---- Handshake ----
  void greeting_newstyle(uint16_t gflags = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
  void greeting_oldstyle(uint64_t size, uint16_t eflags);
  void expect_client_flags(uint32_t want);
  Option expect_option();
  Option expect_option(uint32_t want);
  void opt_reply(uint32_t opt, uint32_t type, const Bytes& payload = {});
  // A reply header whose length field says anything, without a payload.
  void opt_reply_header(uint32_t opt, uint32_t type, uint32_t length);
  void opt_ack(uint32_t opt) { opt_reply(opt, REP_ACK); }
  void opt_error(uint32_t opt, uint32_t type, std::string_view msg = {});
  void opt_info_export(uint32_t opt, uint64_t size, uint16_t eflags);
  void opt_info_block_size(uint32_t opt, uint32_t min, uint32_t pref, uint32_t max);
  void export_name_reply(uint64_t size, uint16_t eflags, bool zeroes);
  // A whole fixed-newstyle handshake for e, up to the ACK of NBD_OPT_GO (which enters
  // transmission).  The greeting sets NBD_FLAG_NO_ZEROES.
  void handshake(const Export& e);
  // The option haggling part of handshake() only (after the client flags).
  void serve_options(const Export& e);

  // ---- Transmission ----
  Request read_request();
  void simple_reply(uint64_t cookie, uint32_t error, const Bytes& data = {});
  // A structured chunk: the length field is the payload's size.
  void chunk(uint16_t flags, uint16_t type, uint64_t cookie, const Bytes& payload);
  // A structured chunk header whose length field says anything, without a payload.
  void chunk_header(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length);
  void offset_data(uint64_t cookie, uint64_t offset, const Bytes& data,
                   uint16_t flags = REPLY_FLAG_DONE);
  void offset_hole(uint64_t cookie, uint64_t offset, uint32_t size,
                   uint16_t flags = REPLY_FLAG_DONE);
  void block_status(uint64_t cookie, uint32_t context_id,
                    const std::vector<std::pair<uint32_t, uint32_t>>& extents,
                    uint16_t flags = REPLY_FLAG_DONE);
  void error_chunk(uint64_t cookie, uint32_t error, std::string_view msg = {},
                   uint16_t flags = REPLY_FLAG_DONE);
  void error_offset_chunk(uint64_t cookie, uint32_t error, uint64_t offset,
                          std::string_view msg = {}, uint16_t flags = REPLY_FLAG_DONE);
  void none_chunk(uint64_t cookie) { chunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, {}); }

 private:
  // Waits for events on fd_ until the deadline; throws ScriptError on timeout.
  void wait_for(short events, const char* what);
  void wait_until_read(const char* what);

  int fd_;
  int timeout_ms_;
  bool drip_ = false;
};

// One scripted server.  The script runs in its own thread from construction; the test hands
// take_client_fd() to nbd_connect_socket (which owns it from then on).  When the script returns
// the server keeps reading until the client closes its end; if the script throws, or the client
// outstays the deadline, the socket is shut down so that the client sees the end of the stream.
class FakeServer {
 public:
  using Script = std::function<void(Peer&)>;

  explicit FakeServer(Script script);
  ~FakeServer();
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  int take_client_fd();
  // Waits for the script (and the client's hang-up) and returns what went wrong: "" if nothing.
  std::string finish();

  // Every wait's deadline: 10 s, or $NBD_HOSTILE_TIMEOUT_MS (valgrind runs may want more).
  static int timeout_ms();

 private:
  void run(const Script& script);
  void record(const std::string& what);

  int server_fd_ = -1;
  int client_fd_ = -1;
  std::mutex mu_;
  std::string errors_;
  std::thread thread_;
};

}  // namespace hostile
