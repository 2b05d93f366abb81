// ext_server_test.cpp: tests/extserver's nbd_ext_server is right, shown with clients that exist
// today: our library (compact headers), Debian's nbdinfo, and a raw-socket client written here
// that negotiates NBD_OPT_EXTENDED_HEADERS and checks every byte the server sends back.
#include <libnbd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

using nbd_test::ext_server_wire_log;
using nbd_test::ext_server_log_lines;
using nbd_test::wait_for_ext_server_log;
using nbd_test::Handle;
using nbd_test::random_bytes;
using nbd_test::Server;
using nbd_test::start_ext_server;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kBlock = 64 * 1024;  // the server's allocation unit
constexpr uint64_t kTestBit = uint64_t{1} << 40;  // in every nbdpp:test status

// The protocol's numbers, spelled out here again rather than taken from the server's source, so
// that a wrong constant there shows up as a failure here (proto.md of the extension branch).
constexpr uint32_t kCompactMagic = 0x25609513;
constexpr uint32_t kExtendedMagic = 0x21e41c71;
constexpr uint32_t kSimpleReply = 0x67446698;
constexpr uint32_t kStructuredReply = 0x668e33ef;
constexpr uint32_t kExtendedReply = 0x6e8a278c;
constexpr uint32_t kOptGo = 7, kOptStructured = 8, kOptListMeta = 9, kOptSetMeta = 10, kOptExtended = 11;
constexpr uint32_t kRepAck = 1, kRepInfo = 3, kRepMetaContext = 4;
constexpr uint32_t kRepErrUnsup = 0x80000001, kRepErrInvalid = 0x80000003, kRepErrExtHeaderReqd = 0x8000000a;
constexpr uint16_t kCmdRead = 0, kCmdWrite = 1, kCmdFlush = 3, kCmdWriteZeroes = 6, kCmdBlockStatus = 7;
constexpr uint16_t kFlagReqOne = 1 << 3, kFlagPayloadLen = 1 << 5;
constexpr uint16_t kTFlagBlockStatusPayload = 1 << 12;
constexpr uint16_t kDone = 1;
constexpr uint16_t kTypeNone = 0, kTypeData = 1, kTypeHole = 2, kTypeBs = 5, kTypeBsExt = 6, kTypeError = 0x8001;
constexpr uint32_t kEinval = 22;

void put16(std::string& s, uint16_t v) {
  s += static_cast<char>(v >> 8);
  s += static_cast<char>(v);
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v >> 16));
  put16(s, static_cast<uint16_t>(v));
}
void put64(std::string& s, uint64_t v) {
  put32(s, static_cast<uint32_t>(v >> 32));
  put32(s, static_cast<uint32_t>(v));
}
uint16_t get16(std::string_view s, size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(s[at]) << 8 | static_cast<unsigned char>(s[at + 1]));
}
uint32_t get32(std::string_view s, size_t at) { return uint32_t{get16(s, at)} << 16 | get16(s, at + 2); }
uint64_t get64(std::string_view s, size_t at) { return uint64_t{get32(s, at)} << 32 | get32(s, at + 4); }

// One reply message: a simple reply, or a structured or extended chunk with its payload.
struct Reply {
  uint32_t magic = 0;
  uint32_t error = 0;  // simple replies
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;  // extended replies
  uint64_t length = 0;
  std::string payload;
};

// A block status chunk decoded: context id, descriptor count field (extended), (length, status).
struct StatusChunk {
  uint32_t id = 0;
  uint32_t count = 0;
  std::vector<std::pair<uint64_t, uint64_t>> extents;
};

StatusChunk decode_status(const Reply& r) {
  StatusChunk c;
  const std::string& p = r.payload;
  c.id = get32(p, 0);
  if (r.type == kTypeBsExt) {
    c.count = get32(p, 4);
    for (size_t at = 8; at + 16 <= p.size(); at += 16)
      c.extents.emplace_back(get64(p, at), get64(p, at + 8));
  } else {
    for (size_t at = 4; at + 8 <= p.size(); at += 8)
      c.extents.emplace_back(get32(p, at), get32(p, at + 4));
  }
  return c;
}

// A client on a raw Unix socket: every byte it sends is spelled out by the test, every reply is
// decoded here.  Reads time out after 10 s, so a server that fails to answer fails the test.
class RawClient {
 public:
  explicit RawClient(const Server& server) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", server.unix_socket().c_str());
    const timeval limit{10, 0};
    EXPECT_EQ(::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<const sockaddr*>(&sun), sizeof sun), 0) << std::strerror(errno);
    // Greeting: NBDMAGIC, IHAVEOPT, handshake flags; we answer FIXED_NEWSTYLE | NO_ZEROES.
    const std::string greeting = recv(18);
    EXPECT_EQ(greeting.substr(0, 16), "NBDMAGICIHAVEOPT");
    EXPECT_EQ(get16(greeting, 16), 3);
    std::string flags;
    put32(flags, 3);
    send(flags);
  }
  ~RawClient() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        ADD_FAILURE() << "send: " << std::strerror(errno);
        return;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
  }
  // Exactly n bytes, or fewer (with a failure recorded) if the server hung up or went quiet.
  std::string recv(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
      if (r <= 0) {
        ADD_FAILURE() << "recv: " << (r == 0 ? "server hung up" : std::strerror(errno));
        out.resize(got);
        break;
      }
      got += static_cast<size_t>(r);
    }
    return out;
  }
  // Whether the server has closed the connection (reads nothing more within the timeout).
  bool hung_up() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

  // One option and its (final) reply type; replies before the final one go to *before.
  uint32_t option(uint32_t opt, std::string_view data = {}, std::vector<std::string>* before = nullptr) {
    std::string out = "IHAVEOPT";
    put32(out, opt);
    put32(out, static_cast<uint32_t>(data.size()));
    out += data;
    send(out);
    for (;;) {
      const std::string head = recv(20);
      if (head.size() < 20)
        return 0;
      EXPECT_EQ(get64(head, 0), 0x3e889045565a9u);
      EXPECT_EQ(get32(head, 8), opt);
      const uint32_t type = get32(head, 12);
      const std::string body = recv(get32(head, 16));
      if (type == kRepAck || (type & 0x80000000) != 0)
        return type;
      if (before != nullptr)
        before->push_back(put_type(type) + body);
    }
  }
  // NBD_OPT_SET_META_CONTEXT on export "" for queries: context name -> id.
  std::map<std::string, uint32_t> set_meta(const std::vector<std::string>& queries) {
    std::vector<std::string> replies;
    EXPECT_EQ(option(kOptSetMeta, meta_data(queries), &replies), kRepAck);
    std::map<std::string, uint32_t> ids;
    for (const std::string& r : replies) {
      EXPECT_EQ(get32(r, 0), kRepMetaContext);
      ids[r.substr(8)] = get32(r, 4);
    }
    return ids;
  }
  static std::string meta_data(const std::vector<std::string>& queries) {
    std::string data;
    put32(data, 0);  // export ""
    put32(data, static_cast<uint32_t>(queries.size()));
    for (const std::string& q : queries) {
      put32(data, static_cast<uint32_t>(q.size()));
      data += q;
    }
    return data;
  }
  // NBD_OPT_GO on export "" asking for nothing; returns the final reply type and fills size and
  // transmission flags from NBD_INFO_EXPORT.
  uint32_t go(uint64_t* size = nullptr, uint16_t* tflags = nullptr) {
    std::string data;
    put32(data, 0);
    put16(data, 0);
    std::vector<std::string> infos;
    const uint32_t type = option(kOptGo, data, &infos);
    for (const std::string& info : infos) {
      EXPECT_EQ(get32(info, 0), kRepInfo);
      if (get16(info, 4) == 0 && info.size() == 4 + 12) {
        if (size != nullptr)
          *size = get64(info, 6);
        if (tflags != nullptr)
          *tflags = get16(info, 14);
      }
    }
    return type;
  }

  void request(bool extended, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset, uint64_t length,
               std::string_view payload = {}) {
    std::string out;
    put32(out, extended ? kExtendedMagic : kCompactMagic);
    put16(out, flags);
    put16(out, type);
    put64(out, cookie);
    put64(out, offset);
    if (extended)
      put64(out, length);
    else
      put32(out, static_cast<uint32_t>(length));
    out += payload;
    send(out);
  }
  // The next reply; simple replies carry simple_data bytes of data when error is 0 (a read's).
  // An extended header claiming more than 64 MiB is returned without reading its payload.
  Reply reply(size_t simple_data = 0) {
    Reply r;
    const std::string magic = recv(4);
    if (magic.size() < 4)
      return r;
    r.magic = get32(magic, 0);
    if (r.magic == kSimpleReply) {
      const std::string rest = recv(12);
      r.error = get32(rest, 0);
      r.cookie = get64(rest, 4);
      if (r.error == 0)
        r.payload = recv(simple_data);
      return r;
    }
    const bool extended = r.magic == kExtendedReply;
    EXPECT_TRUE(extended || r.magic == kStructuredReply) << std::hex << r.magic;
    const std::string rest = recv(extended ? 28 : 16);
    r.flags = get16(rest, 0);
    r.type = get16(rest, 2);
    r.cookie = get64(rest, 4);
    r.offset = extended ? get64(rest, 12) : 0;
    r.length = extended ? get64(rest, 20) : get32(rest, 12);
    if (r.length <= 64 * kMiB)
      r.payload = recv(r.length);
    return r;
  }
  // Replies up to and including the one with NBD_REPLY_FLAG_DONE (or a simple one).
  std::vector<Reply> replies(size_t simple_data = 0) {
    std::vector<Reply> out;
    for (int i = 0; i < 100000; ++i) {
      out.push_back(reply(simple_data));
      const Reply& r = out.back();
      if (r.magic == 0 || r.magic == kSimpleReply || (r.flags & kDone) != 0 || r.length > 64 * kMiB)
        break;
    }
    return out;
  }

 private:
  static std::string put_type(uint32_t type) {
    std::string s;
    put32(s, type);
    return s;
  }

  int fd_ = -1;
};

// A client in extended mode on export "", with both contexts selected: name -> id in *ids.
void negotiate_extended(RawClient& c, std::map<std::string, uint32_t>* ids = nullptr, uint16_t* tflags = nullptr) {
  ASSERT_EQ(c.option(kOptExtended), kRepAck);
  const auto selected = c.set_meta({"base:allocation", "nbdpp:test"});
  ASSERT_EQ(selected.size(), 2u);
  if (ids != nullptr)
    *ids = selected;
  ASSERT_EQ(c.go(nullptr, tflags), kRepAck);
}

// A server started with args and a raw client on it in extended mode, with both contexts
// selected; call start() through ASSERT_NO_FATAL_FAILURE.
class ExtendedClient : public ::testing::Test {
 protected:
  void start(std::vector<std::string> args) {
    server_ = start_ext_server(std::move(args));
    ASSERT_TRUE(server_);
    client_ = std::make_unique<RawClient>(*server_);
    negotiate_extended(*client_, &ids_, &tflags_);
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<RawClient> client_;
  std::map<std::string, uint32_t> ids_;  // context name -> id
  uint16_t tflags_ = 0;
};
class ExtServerRaw : public ExtendedClient {};
class ExtServerBad : public ExtendedClient {};

// ---------------------------------------------------------------------------------------------
// Our library as it is today (compact requests, structured replies).

struct LibraryCase {
  const char* name;
  std::vector<std::string> args;
  bool tcp;
};

void PrintTo(const LibraryCase& c, std::ostream* os) { *os << c.name; }

class ExtServerLibrary : public ::testing::TestWithParam<LibraryCase> {};

// (offset, length, flags) of each base:allocation extent, as the library reports them.
int collect_extents(void* user_data, const char* metacontext, uint64_t /*offset*/, uint32_t* entries, size_t n,
                    int* /*error*/) {
  auto* out = static_cast<std::map<std::string, std::vector<std::pair<uint64_t, uint32_t>>>*>(user_data);
  for (size_t i = 0; i + 1 < n; i += 2)
    (*out)[metacontext].emplace_back(entries[i], entries[i + 1]);
  return 0;
}

TEST_P(ExtServerLibrary, ReadWriteZeroTrimFlushBlockStatus) {
  const LibraryCase& param = GetParam();
  auto server = start_ext_server(param.args, param.tcp);
  ASSERT_TRUE(server);
  Handle h;
  // Only base:allocation: nbdpp:test's 64-bit statuses do not fit nbd_block_status's 32-bit
  // callback (extended_headers_test.cpp reads them with nbd_block_status_64).
  ASSERT_EQ(nbd_add_meta_context(h, "base:allocation"), 0);
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), int64_t(64 * kMiB));
  const auto modes = ext_server_log_lines(*server, "transmission mode=");
  ASSERT_EQ(modes.size(), 1u);
  const bool extended = modes[0].find("mode=extended") != std::string::npos;
  if (!param.args.empty()) {
    EXPECT_FALSE(extended) << "--no-extended-headers";
  }
  EXPECT_EQ(nbd_can_meta_context(h, "base:allocation"), 1);
  EXPECT_EQ(extended, param.args.empty()) << "our library asks for extended headers";

  // Blocks 1 and 2 (64 KiB each) hold data; 100 bytes of block 1 are zeroed, block 2 trimmed.
  const auto data = random_bytes(2 * kBlock, 17);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), kBlock, 0), 0) << nbd_get_error();
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), kBlock, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
  ASSERT_EQ(nbd_zero(h, 100, kBlock + 10, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_pread(h, back.data(), kBlock, kBlock, 0), 0) << nbd_get_error();
  EXPECT_EQ(std::vector<char>(back.begin(), back.begin() + 10), std::vector<char>(data.begin(), data.begin() + 10));
  EXPECT_EQ(std::vector<char>(back.begin() + 10, back.begin() + 110), std::vector<char>(100, 0));
  EXPECT_EQ(std::vector<char>(back.begin() + 110, back.begin() + kBlock),
            std::vector<char>(data.begin() + 110, data.begin() + kBlock));
  ASSERT_EQ(nbd_trim(h, kBlock, 2 * kBlock, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_cache(h, 4096, 0, 0), 0) << nbd_get_error();

  std::map<std::string, std::vector<std::pair<uint64_t, uint32_t>>> extents;
  ASSERT_EQ(nbd_block_status(h, 64 * kMiB, 0, nbd_extent_callback{collect_extents, &extents, nullptr}, 0), 0)
      << nbd_get_error();
  const std::vector<std::pair<uint64_t, uint32_t>> expected{{kBlock, 3}, {kBlock, 0}, {64 * kMiB - 2 * kBlock, 3}};
  EXPECT_EQ(extents["base:allocation"], expected);
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();

  // The wire log shows each request with the header the mode calls for, and the write as sent.
  const std::string magic = extended ? "req magic=0x21e41c71 " : "req magic=0x25609513 ";
  ASSERT_TRUE(wait_for_ext_server_log(*server, magic + "type=2 ")) << ext_server_wire_log(*server);  // NBD_CMD_DISC
  const auto requests = ext_server_log_lines(*server, "req ");
  for (const std::string& line : requests)
    EXPECT_EQ(line.rfind(magic, 0), 0u) << line;
  const std::string write_line = magic + "type=1 flags=0x" + (extended ? "20" : "0") + " offset=65536 length=131072";
  EXPECT_EQ(std::count(requests.begin(), requests.end(), write_line), 1) << ext_server_wire_log(*server);
  EXPECT_EQ(requests.back().find(" type=2 "), magic.size() - 1) << requests.back();
  EXPECT_TRUE(ext_server_log_lines(*server, "violation").empty()) << ext_server_wire_log(*server);
}

INSTANTIATE_TEST_SUITE_P(Modes, ExtServerLibrary,
                         ::testing::Values(LibraryCase{"Unix", {}, false},
                                           LibraryCase{"NoExtendedHeaders", {"--no-extended-headers"}, false},
                                           LibraryCase{"Tcp", {}, true}),
                         [](const auto& test) { return std::string(test.param.name); });

TEST(ExtServerLibraryMore, SimpleRepliesWhenNothingIsNegotiated) {
  auto server = start_ext_server({"--no-structured-replies", "--no-extended-headers"});
  ASSERT_TRUE(server);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 0);
  EXPECT_EQ(nbd_can_df(h), 0);  // proto.md: SEND_DF stays clear without structured replies
  nbd_test::round_trip(h, 3 * kBlock - 512, 4096, 5);
  EXPECT_EQ(ext_server_log_lines(*server, "transmission mode=simple").size(), 1u) << ext_server_wire_log(*server);
}

TEST(ExtServerLibraryMore, ConnectionsShareTheExport) {
  auto server = start_ext_server({"--export", "a", "--export", "b", "--size", "1M"}, false, "b");
  ASSERT_TRUE(server);
  Handle writer, reader, other;
  ASSERT_EQ(nbd_connect_uri(writer, server->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(reader, server->uri().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(other, server->export_uri("a").c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(reader), int64_t(kMiB));
  const auto data = random_bytes(4096, 3);
  ASSERT_EQ(nbd_pwrite(writer, data.data(), data.size(), 8192, 0), 0) << nbd_get_error();
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(reader, back.data(), back.size(), 8192, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
  ASSERT_EQ(nbd_pread(other, back.data(), back.size(), 8192, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, std::vector<char>(4096, 0)) << "export a is separate from export b";
}

TEST(ExtServerLibraryMore, ServesOneConnectionOnStdio) {
  Handle h;
  std::vector<char*> argv{const_cast<char*>(nbd_test::ext_server_path()), const_cast<char*>("--stdio"),
                          const_cast<char*>("--size"), const_cast<char*>("1M"), nullptr};
  ASSERT_EQ(nbd_connect_command(h, argv.data()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), int64_t(kMiB));
  nbd_test::round_trip(h, 4096, 8192, 9);
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

// ---------------------------------------------------------------------------------------------
// Debian's nbdinfo (libnbd 1.14: compact headers).

// Runs a command through the shell with its output captured; returns the exit status.
int capture(const std::string& command, std::string& output) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr)
    return -1;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
    output.append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }  // our URIs hold no quote

TEST(ExtServerNbdinfo, JsonAndMap) {
  NBD_TEST_REQUIRE_PROGRAM("nbdinfo");
  auto server = start_ext_server({"--size", "8M"});
  ASSERT_TRUE(server);
  {
    Handle h;
    ASSERT_EQ(nbd_connect_uri(h, server->uri().c_str()), 0) << nbd_get_error();
    const auto data = random_bytes(2 * kBlock, 1);
    ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), kMiB, 0), 0) << nbd_get_error();
  }
  std::string json;
  ASSERT_EQ(capture("/usr/bin/nbdinfo --json " + quoted(server->uri()), json), 0) << json;
  EXPECT_NE(json.find("\"export-size\": 8388608"), std::string::npos) << json;
  EXPECT_NE(json.find("\"base:allocation\""), std::string::npos) << json;
  EXPECT_EQ(json.find("nbdpp:test"), std::string::npos) << "offered without extended headers\n" << json;
  EXPECT_NE(json.find("\"block_size_maximum\": 33554432"), std::string::npos) << json;
  std::string map;
  ASSERT_EQ(capture("/usr/bin/nbdinfo --map " + quoted(server->uri()), map), 0) << map;
  std::istringstream in(map);
  std::vector<std::vector<uint64_t>> rows;
  for (uint64_t offset, length, type; in >> offset >> length >> type;) {
    rows.push_back({offset, length, type});
    std::string description;
    std::getline(in, description);
  }
  const std::vector<std::vector<uint64_t>> expected{
      {0, kMiB, 3}, {kMiB, 2 * kBlock, 0}, {kMiB + 2 * kBlock, 7 * kMiB - 2 * kBlock, 3}};
  EXPECT_EQ(rows, expected) << map;
}

// ---------------------------------------------------------------------------------------------
// A raw client in extended mode.

TEST_F(ExtServerRaw, NegotiatesExtendedHeaders) {
  auto server = start_ext_server({});
  ASSERT_TRUE(server);
  RawClient c(*server);
  EXPECT_EQ(c.option(kOptExtended, "x"), kRepErrInvalid);  // proto.md: no data allowed
  // LIST before either reply style is negotiated is refused; after it, nbdpp:test is offered.
  EXPECT_EQ(c.option(kOptListMeta, RawClient::meta_data({})), kRepErrInvalid);
  EXPECT_EQ(c.option(kOptExtended), kRepAck);
  // proto.md NBD_OPT_STRUCTURED_REPLY: refused once extended headers are in use.
  EXPECT_EQ(c.option(kOptStructured), kRepErrExtHeaderReqd);
  std::vector<std::string> listed;
  EXPECT_EQ(c.option(kOptListMeta, RawClient::meta_data({}), &listed), kRepAck);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].substr(4), std::string("\0\0\0\0base:allocation", 19));  // LIST ids are 0
  EXPECT_EQ(listed[1].substr(4), std::string("\0\0\0\0nbdpp:test", 14));
  const auto ids = c.set_meta({"base:allocation", "nbdpp:test", "base:", "other:thing"});
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_NE(ids.at("base:allocation"), ids.at("nbdpp:test"));
  uint64_t size = 0;
  uint16_t tflags = 0;
  ASSERT_EQ(c.go(&size, &tflags), kRepAck);
  EXPECT_EQ(size, 64 * kMiB);
  EXPECT_EQ(tflags, 0x0ded);  // HAS_FLAGS FLUSH FUA TRIM WRITE_ZEROES DF MULTI_CONN CACHE FAST_ZERO
  EXPECT_EQ(ext_server_log_lines(*server, "opt ").size(), 7u);
  // Logged before the ACK goes out, so a client that has it can rely on the line.
  EXPECT_EQ(ext_server_log_lines(*server, "transmission mode=extended").size(), 1u) << ext_server_wire_log(*server);
}

TEST_F(ExtServerRaw, WriteAndReadBackWithExtendedReplies) {
  ASSERT_NO_FATAL_FAILURE(start({}));
  RawClient& c = *client_;
  const std::string data = [] {
    auto v = random_bytes(8192, 4);
    return std::string(v.begin(), v.end());
  }();
  c.request(true, kFlagPayloadLen, kCmdWrite, 0x1111, 70000, data.size(), data);
  Reply w = c.reply();
  EXPECT_EQ(w.magic, kExtendedReply);
  EXPECT_EQ(w.flags, kDone);
  EXPECT_EQ(w.type, kTypeNone);
  EXPECT_EQ(w.cookie, 0x1111u);
  EXPECT_EQ(w.offset, 70000u);
  EXPECT_EQ(w.length, 0u);

  // Block 1 now holds data, block 2 is a hole: one OFFSET_DATA and one OFFSET_HOLE chunk, each
  // with the request's offset in its header and the content's offset in its payload.
  c.request(true, 0, kCmdRead, 0x2222, kBlock, 2 * kBlock);
  const auto chunks = c.replies();
  ASSERT_EQ(chunks.size(), 2u);
  std::string image(2 * kBlock, '\0');
  for (const Reply& r : chunks) {
    EXPECT_EQ(r.magic, kExtendedReply);
    EXPECT_EQ(r.cookie, 0x2222u);
    EXPECT_EQ(r.offset, kBlock) << "the header's offset is the request's";
  }
  EXPECT_EQ(chunks[0].type, kTypeData);
  EXPECT_EQ(chunks[0].flags, 0);
  EXPECT_EQ(chunks[0].length, 8 + kBlock);
  EXPECT_EQ(get64(chunks[0].payload, 0), kBlock);
  EXPECT_EQ(chunks[0].payload.substr(8 + 70000 - kBlock, data.size()), data);
  EXPECT_EQ(chunks[1].type, kTypeHole);
  EXPECT_EQ(chunks[1].flags, kDone);
  EXPECT_EQ(chunks[1].length, 12u);
  EXPECT_EQ(get64(chunks[1].payload, 0), 2 * kBlock);
  EXPECT_EQ(get32(chunks[1].payload, 8), kBlock);

  // NBD_CMD_FLAG_DF: one data chunk with the hole's zeroes in it.
  c.request(true, 1 << 2, kCmdRead, 0x3333, kBlock, 2 * kBlock);
  const auto whole = c.replies();
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].type, kTypeData);
  EXPECT_EQ(whole[0].length, 8 + 2 * kBlock);
  EXPECT_EQ(whole[0].payload.substr(8 + 70000 - kBlock, data.size()), data);
  EXPECT_EQ(whole[0].payload.substr(8 + kBlock), std::string(kBlock, '\0'));

  // Flush and an error: both extended chunks, never simple replies.
  c.request(true, 0, kCmdFlush, 4, 0, 0);
  EXPECT_EQ(c.reply().magic, kExtendedReply);
  c.request(true, 0, kCmdRead, 5, 64 * kMiB - 512, 1024);
  const Reply err = c.reply();
  EXPECT_EQ(err.magic, kExtendedReply);
  EXPECT_EQ(err.type, kTypeError);
  EXPECT_EQ(err.offset, 64 * kMiB - 512);
  EXPECT_EQ(get32(err.payload, 0), kEinval);

  const auto requests = ext_server_log_lines(*server_, "req ");
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[0], "req magic=0x21e41c71 type=1 flags=0x20 offset=70000 length=8192");
  EXPECT_EQ(requests[1], "req magic=0x21e41c71 type=0 flags=0x0 offset=65536 length=131072");
}

TEST_F(ExtServerRaw, WriteWithoutPayloadLenIsRefusedAndLogged) {
  ASSERT_NO_FATAL_FAILURE(start({}));
  RawClient& c = *client_;
  // Without the flag the length is an effect length and nothing follows: EINVAL, stream in step.
  c.request(true, 0, kCmdWrite, 7, 0, 4096);
  const Reply r = c.reply();
  EXPECT_EQ(r.type, kTypeError);
  EXPECT_EQ(r.flags, kDone);
  EXPECT_EQ(get32(r.payload, 0), kEinval);
  c.request(true, kFlagPayloadLen, kCmdFlush, 8, 0, 3, "abc");  // payload consumed, then EINVAL
  EXPECT_EQ(get32(c.reply().payload, 0), kEinval);
  c.request(true, 0, kCmdFlush, 9, 0, 0);
  const Reply ok = c.reply();
  EXPECT_EQ(ok.type, kTypeNone);
  EXPECT_EQ(ok.cookie, 9u);
  const auto violations = ext_server_log_lines(*server_, "violation: ");
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0], "violation: NBD_CMD_WRITE without NBD_CMD_FLAG_PAYLOAD_LEN in extended mode");
}

TEST_F(ExtServerRaw, CompactRequestAfterExtendedHeadersIsAViolation) {
  ASSERT_NO_FATAL_FAILURE(start({}));
  RawClient& c = *client_;
  c.request(false, 0, kCmdFlush, 1, 0, 0);
  EXPECT_TRUE(c.hung_up());
  EXPECT_EQ(ext_server_log_lines(*server_, "req ").at(0).rfind("req magic=0x25609513 type=3 ", 0), 0u);
  EXPECT_EQ(ext_server_log_lines(*server_, "violation: ").size(), 1u) << ext_server_wire_log(*server_);
}

TEST_F(ExtServerRaw, BlockStatusExtCarries64BitStatus) {
  ASSERT_NO_FATAL_FAILURE(start({}));
  RawClient& c = *client_;
  c.request(true, kFlagPayloadLen, kCmdWrite, 1, 2 * kBlock, 512, std::string(512, 'x'));
  c.reply();
  c.request(true, 0, kCmdBlockStatus, 2, 0, 4 * kBlock);
  const auto chunks = c.replies();
  ASSERT_EQ(chunks.size(), 2u);
  std::map<uint32_t, StatusChunk> by_id;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].magic, kExtendedReply);
    EXPECT_EQ(chunks[i].type, kTypeBsExt);
    EXPECT_EQ(chunks[i].offset, 0u);
    EXPECT_EQ(chunks[i].flags, i + 1 == chunks.size() ? kDone : 0);
    const StatusChunk s = decode_status(chunks[i]);
    EXPECT_EQ(chunks[i].length, 8 + 16 * uint64_t{s.count}) << "descriptor count matches the length";
    EXPECT_EQ(s.count, s.extents.size());
    by_id[s.id] = s;
  }
  const std::vector<std::pair<uint64_t, uint64_t>> base{{2 * kBlock, 3}, {kBlock, 0}, {kBlock, 3}};
  EXPECT_EQ(by_id[ids_["base:allocation"]].extents, base);
  const std::vector<std::pair<uint64_t, uint64_t>> test{
      {kBlock, kTestBit}, {kBlock, kTestBit | kBlock}, {kBlock, kTestBit | 2 * kBlock}, {kBlock, kTestBit | 3 * kBlock}};
  EXPECT_EQ(by_id[ids_["nbdpp:test"]].extents, test);

  // NBD_CMD_FLAG_REQ_ONE from an unaligned offset: one descriptor each, within the request.
  c.request(true, kFlagReqOne, kCmdBlockStatus, 3, 100, 3 * kBlock);
  for (const Reply& r : c.replies()) {
    const StatusChunk s = decode_status(r);
    ASSERT_EQ(s.extents.size(), 1u);
    EXPECT_EQ(s.extents[0], s.id == ids_["nbdpp:test"] ? std::make_pair(kBlock - 100, kTestBit | 100)
                                                      : std::make_pair(2 * kBlock - 100, uint64_t{3}));
  }
}

TEST_F(ExtServerRaw, WriteZeroesTakesA64BitLengthWithoutAllocating) {
  ASSERT_NO_FATAL_FAILURE(start({"--size", "8G"}));
  RawClient& c = *client_;
  constexpr uint64_t kGiB = 1024 * kMiB;
  c.request(true, kFlagPayloadLen, kCmdWrite, 1, 2 * kGiB, 4096, std::string(4096, 'y'));
  EXPECT_EQ(c.reply().type, kTypeNone);
  c.request(true, 0, kCmdWriteZeroes, 2, kGiB, 5 * kGiB);  // effect length over 32 bits
  const Reply z = c.reply();
  EXPECT_EQ(z.type, kTypeNone);
  EXPECT_EQ(z.offset, kGiB);
  c.request(true, 0, kCmdRead, 3, 2 * kGiB, 4096);
  const auto chunks = c.replies();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, kTypeHole);
  // The whole export is one hole: a single extent longer than 32 bits can say.
  c.request(true, 0, kCmdBlockStatus, 4, 0, 8 * kGiB);
  for (const Reply& r : c.replies()) {
    const StatusChunk s = decode_status(r);
    if (s.id == ids_["base:allocation"]) {
      EXPECT_EQ(s.extents, (std::vector<std::pair<uint64_t, uint64_t>>{{8 * kGiB, 3}}));
    }
  }
  // The server's memory stays small (it never allocated the zeroed range).
  std::string status;
  ASSERT_EQ(capture("grep VmRSS /proc/" + std::to_string(server_->pid()) + "/status", status), 0);
  EXPECT_LT(std::stoul(status.substr(status.find(':') + 1)), 100u * 1024) << status;  // kB
}

TEST_F(ExtServerRaw, BlockStatusPayloadFiltersContexts) {
  auto server = start_ext_server({"--block-status-payload"});
  ASSERT_TRUE(server);
  {
    // proto.md: not advertised without metadata contexts.
    RawClient c(*server);
    ASSERT_EQ(c.option(kOptExtended), kRepAck);
    uint16_t tflags = 0;
    ASSERT_EQ(c.go(nullptr, &tflags), kRepAck);
    EXPECT_EQ(tflags & kTFlagBlockStatusPayload, 0);
  }
  RawClient c(*server);
  std::map<std::string, uint32_t> ids;
  uint16_t tflags = 0;
  negotiate_extended(c, &ids, &tflags);
  EXPECT_EQ(tflags & kTFlagBlockStatusPayload, kTFlagBlockStatusPayload);
  const auto payload = [](uint64_t length, std::vector<uint32_t> wanted) {
    std::string p;
    put64(p, length);
    for (uint32_t id : wanted)
      put32(p, id);
    return p;
  };
  const std::string only_test = payload(2 * kBlock, {ids["nbdpp:test"]});
  // The header's length is the payload's; the effect length is in the payload.
  c.request(true, kFlagPayloadLen, kCmdBlockStatus, 1, kBlock, only_test.size(), only_test);
  const auto chunks = c.replies();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].flags, kDone);
  const StatusChunk s = decode_status(chunks[0]);
  EXPECT_EQ(s.id, ids["nbdpp:test"]);
  EXPECT_EQ(s.extents, (std::vector<std::pair<uint64_t, uint64_t>>{{kBlock, kTestBit | kBlock},
                                                                   {kBlock, kTestBit | 2 * kBlock}}));
  // Duplicate and unknown ids: EINVAL after the payload is consumed, and the stream goes on.
  for (const std::string& bad : {payload(kBlock, {ids["base:allocation"], ids["base:allocation"]}),
                                 payload(kBlock, {99}), payload(kBlock, {})}) {
    c.request(true, kFlagPayloadLen, kCmdBlockStatus, 2, 0, bad.size(), bad);
    const Reply r = c.reply();
    EXPECT_EQ(r.type, kTypeError);
    EXPECT_EQ(get32(r.payload, 0), kEinval);
  }
  c.request(true, 0, kCmdBlockStatus, 3, 0, kBlock);
  EXPECT_EQ(c.replies().size(), 2u);
  EXPECT_TRUE(ext_server_log_lines(*server, "violation").empty()) << ext_server_wire_log(*server);
}

TEST_F(ExtServerRaw, BlockStatusPayloadFormIsRefusedUnlessAdvertised) {
  ASSERT_NO_FATAL_FAILURE(start({}));
  RawClient& c = *client_;
  EXPECT_EQ(tflags_ & kTFlagBlockStatusPayload, 0);
  std::string p;
  put64(p, kBlock);
  put32(p, 1);
  c.request(true, kFlagPayloadLen, kCmdBlockStatus, 1, 0, p.size(), p);
  EXPECT_EQ(get32(c.reply().payload, 0), kEinval);
  c.request(true, 0, kCmdFlush, 2, 0, 0);
  EXPECT_EQ(c.reply().cookie, 2u);
}

TEST_F(ExtServerRaw, NoExtendedHeadersAnswersUnsup) {
  auto server = start_ext_server({"--no-extended-headers"});
  ASSERT_TRUE(server);
  RawClient c(*server);
  EXPECT_EQ(c.option(kOptExtended), kRepErrUnsup);
  EXPECT_EQ(c.option(kOptStructured), kRepAck);
  std::vector<std::string> listed;
  EXPECT_EQ(c.option(kOptListMeta, RawClient::meta_data({}), &listed), kRepAck);
  ASSERT_EQ(listed.size(), 1u);  // nbdpp:test needs extended headers
  EXPECT_EQ(listed[0].substr(8), "base:allocation");
  EXPECT_EQ(c.set_meta({"nbdpp:test"}).size(), 0u);
}

TEST_F(ExtServerRaw, RequireExtendedRefusesGoUntilNegotiated) {
  auto server = start_ext_server({"--require-extended"});
  ASSERT_TRUE(server);
  RawClient c(*server);
  EXPECT_EQ(c.option(kOptStructured), kRepAck);
  EXPECT_EQ(c.go(), kRepErrExtHeaderReqd);
  EXPECT_EQ(c.option(kOptExtended), kRepAck);
  EXPECT_EQ(c.go(), kRepAck);
}

// ---------------------------------------------------------------------------------------------
// Each --bad= switch really sends its misbehaviour.

TEST_F(ExtServerBad, SimpleReplyInExtendedMode) {
  ASSERT_NO_FATAL_FAILURE(start({"--bad=simple-reply-in-extended-mode"}));
  RawClient& c = *client_;
  c.request(true, 0, kCmdFlush, 1, 0, 0);
  EXPECT_EQ(c.reply().magic, kSimpleReply);
  c.request(true, 0, kCmdRead, 2, 0, 512);
  const Reply r = c.reply(512);
  EXPECT_EQ(r.magic, kSimpleReply);
  EXPECT_EQ(r.payload, std::string(512, '\0'));
}

TEST_F(ExtServerBad, StructuredReplyInExtendedMode) {
  ASSERT_NO_FATAL_FAILURE(start({"--bad=structured-reply-in-extended-mode"}));
  RawClient& c = *client_;
  c.request(true, 0, kCmdFlush, 1, 0, 0);
  const Reply r = c.reply();
  EXPECT_EQ(r.magic, kStructuredReply);
  EXPECT_EQ(r.type, kTypeNone);
}

TEST_F(ExtServerBad, WrongReplyOffset) {
  ASSERT_NO_FATAL_FAILURE(start({"--bad=wrong-reply-offset"}));
  RawClient& c = *client_;
  c.request(true, 0, kCmdRead, 1, 4096, 512);
  const Reply r = c.reply();
  EXPECT_EQ(r.magic, kExtendedReply);
  EXPECT_NE(r.offset, 4096u);
  EXPECT_EQ(get64(r.payload, 0), 4096u) << "only the header is wrong";
}

TEST_F(ExtServerBad, CompactBlockStatusInExtendedMode) {
  ASSERT_NO_FATAL_FAILURE(start({"--bad=compact-block-status-in-extended-mode"}));
  RawClient& c = *client_;
  c.request(true, 0, kCmdBlockStatus, 1, 0, kBlock);
  for (const Reply& r : c.replies()) {
    EXPECT_EQ(r.magic, kExtendedReply);
    EXPECT_EQ(r.type, kTypeBs);
    EXPECT_EQ(r.length, 4u + 8);
  }
}

TEST_F(ExtServerBad, ExtBlockStatusCountMismatch) {
  ASSERT_NO_FATAL_FAILURE(start({"--bad=ext-block-status-count-mismatch"}));
  RawClient& c = *client_;
  c.request(true, 0, kCmdBlockStatus, 1, 0, kBlock);
  for (const Reply& r : c.replies()) {
    EXPECT_EQ(r.type, kTypeBsExt);
    EXPECT_NE(r.length, 8 + 16 * uint64_t{decode_status(r).count});
  }
}

TEST_F(ExtServerBad, ReplyLengthTooLarge) {
  ASSERT_NO_FATAL_FAILURE(start({"--bad=reply-length-too-large"}));
  RawClient& c = *client_;
  c.request(true, 0, kCmdFlush, 1, 0, 0);
  EXPECT_GT(c.reply().length, 64 * kMiB);
}

TEST_F(ExtServerBad, BlockStatusExtInStructuredMode) {
  auto server = start_ext_server({"--bad=block-status-ext-in-structured-mode"});
  ASSERT_TRUE(server);
  RawClient c(*server);
  ASSERT_EQ(c.option(kOptStructured), kRepAck);
  ASSERT_EQ(c.set_meta({"base:allocation"}).size(), 1u);
  ASSERT_EQ(c.go(), kRepAck);
  c.request(false, 0, kCmdBlockStatus, 1, 0, kBlock);
  const Reply r = c.reply();
  EXPECT_EQ(r.magic, kStructuredReply);
  EXPECT_EQ(r.type, kTypeBsExt);
  EXPECT_EQ(decode_status(r).extents, (std::vector<std::pair<uint64_t, uint64_t>>{{kBlock, 3}}));
}

TEST_F(ExtServerBad, BlockStatusIgnoresPayloadFilter) {
  ASSERT_NO_FATAL_FAILURE(start({"--block-status-payload", "--bad=block-status-ignores-payload-filter"}));
  RawClient& c = *client_;
  std::string p;
  put64(p, kBlock);
  put32(p, ids_["nbdpp:test"]);
  c.request(true, kFlagPayloadLen, kCmdBlockStatus, 1, 0, p.size(), p);
  EXPECT_EQ(c.replies().size(), 2u);
}


// ---------------------------------------------------------------------------------------------
// libnbd 1.22 (built from source into /opt/libnbd-new, shared/recipes.md section 10), whose
// tools request extended headers: an implementation of the extension we did not write, reading
// the same spec, agrees with the server.

constexpr const char* kNewLibnbd = "/opt/libnbd-new";

#define NBD_REQUIRE_NEW_LIBNBD()                                                                        \
  do {                                                                                                  \
    if (!nbd_test::have_program("/opt/libnbd-new/bin/nbdinfo"))                                         \
      GTEST_SKIP() << "libnbd 1.22 is not installed in " << kNewLibnbd << " (shared/recipes.md section 10)"; \
  } while (0)

// Every request in the wire log used the extended header.
void expect_only_extended_requests(const Server& server) {
  const auto requests = ext_server_log_lines(server, "req ");
  EXPECT_FALSE(requests.empty());
  for (const std::string& line : requests)
    EXPECT_EQ(line.rfind("req magic=0x21e41c71 ", 0), 0u) << line;
  EXPECT_TRUE(ext_server_log_lines(server, "violation").empty()) << ext_server_wire_log(server);
}

TEST(ExtServerLibnbd122, NbdinfoNegotiatesExtendedHeaders) {
  NBD_REQUIRE_NEW_LIBNBD();
  auto server = start_ext_server({"--size", "4M"});
  ASSERT_TRUE(server);
  std::string json;
  ASSERT_EQ(capture(std::string(kNewLibnbd) + "/bin/nbdinfo --json " + quoted(server->uri()), json), 0) << json;
  EXPECT_NE(json.find("\"extended\": true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"nbdpp:test\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"export-size\": 4194304"), std::string::npos) << json;
  // nbdpp:test's statuses arrive with bit 40 set: the 64 bits travel whole.
  std::string map;
  ASSERT_EQ(capture(std::string(kNewLibnbd) + "/bin/nbdinfo --map=nbdpp:test " + quoted(server->uri()), map), 0)
      << map;
  std::istringstream in(map);
  uint64_t offset = 0, length = 0, status = 0;
  ASSERT_TRUE(in >> offset >> length >> status) << map;
  EXPECT_EQ(std::make_tuple(offset, length, status), std::make_tuple(uint64_t{0}, kBlock, kTestBit)) << map;
  EXPECT_FALSE(ext_server_log_lines(*server, "transmission mode=extended").empty());
  expect_only_extended_requests(*server);
}

TEST(ExtServerLibnbd122, NbdcopyRoundTripsWithPayloadLen) {
  NBD_REQUIRE_NEW_LIBNBD();
  auto server = start_ext_server({"--size", "2M"});
  ASSERT_TRUE(server);
  // 300 KiB of data, then zeroes: nbdcopy writes the data and zeroes (or skips) the rest.
  const std::string in = server->dir() + "/in.img", out = server->dir() + "/out.img";
  auto data = random_bytes(300 * 1024, 8);
  data.resize(2 * kMiB);
  {
    FILE* f = std::fopen(in.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(data.data(), 1, data.size(), f), data.size());
    std::fclose(f);
  }
  std::string output;
  const std::string nbdcopy = std::string(kNewLibnbd) + "/bin/nbdcopy ";
  ASSERT_EQ(capture(nbdcopy + quoted(in) + " " + quoted(server->uri()), output), 0) << output;
  ASSERT_EQ(capture(nbdcopy + quoted(server->uri()) + " " + quoted(out), output), 0) << output;
  std::vector<char> back(data.size());
  FILE* f = std::fopen(out.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(std::fread(back.data(), 1, back.size(), f), back.size());
  std::fclose(f);
  EXPECT_EQ(back, data);
  // Its writes carried NBD_CMD_FLAG_PAYLOAD_LEN (0x20), as extended headers require.
  const auto writes = ext_server_log_lines(*server, "req magic=0x21e41c71 type=1 ");
  ASSERT_FALSE(writes.empty()) << ext_server_wire_log(*server);
  for (const std::string& line : writes)
    EXPECT_NE(line.find(" flags=0x20 "), std::string::npos) << line;
  expect_only_extended_requests(*server);
}

TEST(ExtServerLibnbd122, BlockStatusFilterUsesThePayloadForm) {
  NBD_REQUIRE_NEW_LIBNBD();
  auto server = start_ext_server({"--block-status-payload"});
  ASSERT_TRUE(server);
  // libnbd's Python binding: block_status_filter sends the payload form, and libnbd fails the
  // call if a chunk arrives for a context it did not ask for.
  const std::string script =
      "import nbd\n"
      "h = nbd.NBD()\n"
      "h.add_meta_context('base:allocation')\n"
      "h.add_meta_context('nbdpp:test')\n"
      "h.connect_uri('" + server->uri() + "')\n"
      "assert h.get_extended_headers_negotiated() and h.can_block_status_payload()\n"
      "seen = []\n"
      "h.block_status_filter(3 * 65536, 0, ['nbdpp:test'],\n"
      "                      lambda meta, off, entries, err: seen.append((meta, entries[0])) or 0)\n"
      "print(seen)\n"
      "h.shutdown()\n";
  const std::string path = server->dir() + "/filter.py";
  {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(script.c_str(), f);
    std::fclose(f);
  }
  std::string output;
  ASSERT_EQ(capture("PYTHONPATH=" + std::string(kNewLibnbd) + "/lib/python3/dist-packages /usr/bin/python3 " +
                        quoted(path),
                    output),
            0)
      << output;
  EXPECT_EQ(output, "[('nbdpp:test', (65536, 1099511627776))]\n");
  EXPECT_EQ(ext_server_log_lines(*server, "req magic=0x21e41c71 type=7 flags=0x20 offset=0 length=12").size(), 1u)
      << ext_server_wire_log(*server);
  expect_only_extended_requests(*server);
}

}  // namespace
