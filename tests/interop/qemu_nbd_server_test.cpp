// qemu_nbd_server_test.cpp: the C API against real qemu-nbd and nbd-server.
#include <libnbd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/io_helpers.hpp"
#include "common/servers.hpp"

namespace {

using nbd_test::Handle;
using nbd_test::random_bytes;
using nbd_test::round_trip;



// Extents per context: list of (length, flags) with starting offset.
struct Extents {
  std::map<std::string, std::vector<std::pair<uint64_t, uint32_t>>> by_ctx;
  std::map<std::string, uint64_t> start;
  std::map<std::string, int> calls;
};

int extent_cb(void* ud, const char* ctx, uint64_t offset, uint32_t* entries, size_t n, int* /*error*/) {
  auto* e = static_cast<Extents*>(ud);
  e->calls[ctx]++;
  e->start[ctx] = offset;
  for (size_t i = 0; i + 1 < n; i += 2) e->by_ctx[ctx].emplace_back(entries[i], entries[i + 1]);
  return 0;
}

// Flags at byte offset off in the extent list of a context, or -1 when not covered.
int64_t flags_at(const Extents& e, const std::string& ctx, uint64_t off) {
  auto it = e.by_ctx.find(ctx);
  if (it == e.by_ctx.end()) return -1;
  uint64_t pos = e.start.at(ctx);
  for (auto [len, flags] : it->second) {
    if (off >= pos && off < pos + len) return flags;
    pos += len;
  }
  return -1;
}

std::vector<std::string> list_exports(nbd_handle* h) {
  std::vector<std::string> names;
  nbd_list_callback cb{[](void* ud, const char* name, const char*) {
                         static_cast<std::vector<std::string>*>(ud)->push_back(name);
                         return 0;
                       },
                       &names, nullptr};
  EXPECT_GE(nbd_opt_list(h, cb), 0) << nbd_get_error();
  return names;
}


}  // namespace

TEST(QemuNbd, RawImageIo) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  nbd_test::TmpDir dir;
  const std::string img = dir.path() + "/disk.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "4M"}));
  auto srv = nbd_test::start_qemu_nbd(img, "raw");
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 4 << 20);
  const char* proto = nbd_get_protocol(h);
  ASSERT_NE(proto, nullptr) << nbd_get_error();
  EXPECT_STREQ(proto, "newstyle-fixed");
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 1);
  EXPECT_EQ(nbd_is_read_only(h), 0);
  EXPECT_EQ(nbd_can_flush(h), 1);
  EXPECT_EQ(nbd_can_trim(h), 1);
  EXPECT_EQ(nbd_can_zero(h), 1);
  EXPECT_EQ(nbd_can_fua(h), 1);
  EXPECT_EQ(nbd_can_multi_conn(h), 0);  // qemu-nbd without --shared>1 / read-only
  EXPECT_EQ(nbd_can_cache(h), 1);
  EXPECT_GE(nbd_can_df(h), 0) << nbd_get_error();
  EXPECT_GE(nbd_can_fast_zero(h), 0) << nbd_get_error();

  round_trip(h, 12345, 100000, 1);
  round_trip(h, (4 << 20) - 65536, 65536, 2);

  ASSERT_EQ(nbd_zero(h, 65536, 65536, 0), 0) << nbd_get_error();
  std::vector<char> back(65536, 'x');
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 65536, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, std::vector<char>(65536, 0));
  // Bytes before the zeroed range stay.
  auto data = random_bytes(100000, 1);
  std::vector<char> head(65536 - 12345);
  ASSERT_EQ(nbd_pread(h, head.data(), head.size(), 12345, 0), 0) << nbd_get_error();
  EXPECT_EQ(0, std::memcmp(head.data(), data.data(), head.size()));

  ASSERT_EQ(nbd_trim(h, 1 << 20, 1 << 20, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();
  ASSERT_EQ(nbd_pwrite(h, data.data(), 4096, 0, LIBNBD_CMD_FLAG_FUA), 0) << nbd_get_error();
  ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
}

TEST(QemuNbd, Qcow2DirtyBitmapAndAllocationDepth) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  NBD_TEST_REQUIRE_PROGRAM("qemu-io");
  nbd_test::TmpDir dir;
  const std::string base = dir.path() + "/base.qcow2";
  const std::string top = dir.path() + "/top.qcow2";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "qcow2", base, "64M"}));
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", base}));
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "qcow2", top}));
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "bitmap", "--add", "-f", "qcow2", top, "b0"}));
  ASSERT_TRUE(nbd_test::run_or_fail(
      {"qemu-io", "-f", "qcow2", "-c", "write -P 0x22 4M 64k", "-c", "write -z 8M 1M", top}));
  auto srv = nbd_test::start_qemu_nbd(top, "qcow2", {"-B", "b0", "-A"});
  ASSERT_TRUE(srv);

  Handle h;
  const char* ctxs[] = {"base:allocation", "qemu:dirty-bitmap:b0", "qemu:allocation-depth"};
  for (const char* c : ctxs) ASSERT_EQ(nbd_add_meta_context(h, c), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_nr_meta_contexts(h), 3);
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 64 << 20);
  for (const char* c : ctxs) EXPECT_EQ(nbd_can_meta_context(h, c), 1) << c;
  EXPECT_EQ(nbd_can_meta_context(h, "qemu:dirty-bitmap:nope"), 0);

  Extents e;
  ASSERT_EQ(nbd_block_status(h, 16 << 20, 0, nbd_extent_callback{extent_cb, &e, nullptr}, 0), 0)
      << nbd_get_error();
  ASSERT_EQ(e.calls.size(), 3u);
  for (const char* c : ctxs) {
    EXPECT_EQ(e.calls[c], 1) << c;
    EXPECT_EQ(e.start[c], 0u) << c;
  }
  const std::string bm = "qemu:dirty-bitmap:b0", ad = "qemu:allocation-depth", al = "base:allocation";
  // Dirty bitmap: clean before 4M, dirty [4M,4M+64k), clean, dirty [8M,9M), clean after.
  EXPECT_EQ(flags_at(e, bm, 0), 0);
  EXPECT_EQ(flags_at(e, bm, (4 << 20) - 1), 0);
  EXPECT_EQ(flags_at(e, bm, 4 << 20), 1);
  EXPECT_EQ(flags_at(e, bm, (4 << 20) + 65535), 1);
  EXPECT_EQ(flags_at(e, bm, (4 << 20) + 65536), 0);
  EXPECT_EQ(flags_at(e, bm, 8 << 20), 1);
  EXPECT_EQ(flags_at(e, bm, (9 << 20) - 1), 1);
  EXPECT_EQ(flags_at(e, bm, 9 << 20), 0);
  // Allocation depth: backing (2) in [0,1M), local (1) at 4M and 8M, absent (0) at 2M.
  EXPECT_EQ(flags_at(e, ad, 0), 2);
  EXPECT_EQ(flags_at(e, ad, (1 << 20) - 1), 2);
  EXPECT_EQ(flags_at(e, ad, 2 << 20), 0);
  EXPECT_EQ(flags_at(e, ad, 4 << 20), 1);
  EXPECT_EQ(flags_at(e, ad, 8 << 20), 1);
  // base:allocation: data at 0 and 4M, zero at 8M.
  EXPECT_EQ(flags_at(e, al, 0), 0);
  EXPECT_EQ(flags_at(e, al, 4 << 20), 0);
  EXPECT_EQ(flags_at(e, al, 8 << 20) & 2, 2);  // LIBNBD_STATE_ZERO

  std::vector<char> buf(65536);
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 0, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, std::vector<char>(65536, 0x11));
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 4 << 20, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, std::vector<char>(65536, 0x22));
  ASSERT_EQ(nbd_pread(h, buf.data(), buf.size(), 8 << 20, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, std::vector<char>(65536, 0));
}

TEST(QemuNbd, SystemdSocketActivation) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  nbd_test::TmpDir dir;
  const std::string img = dir.path() + "/disk.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "1M"}));
  {
    Handle h;
    char* argv[] = {const_cast<char*>("qemu-nbd"), const_cast<char*>("-f"), const_cast<char*>("raw"),
                    const_cast<char*>(img.c_str()), nullptr};
    ASSERT_EQ(nbd_connect_systemd_socket_activation(h, argv), 0) << nbd_get_error();
    EXPECT_EQ(nbd_get_size(h), 1 << 20);
    round_trip(h, 4096, 65536, 7);
    ASSERT_EQ(nbd_flush(h, 0), 0) << nbd_get_error();
    ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  }
  // A second server on the same image sees what the first wrote.
  Handle h;
  char* argv[] = {const_cast<char*>("qemu-nbd"), const_cast<char*>("-f"), const_cast<char*>("raw"),
                  const_cast<char*>(img.c_str()), nullptr};
  ASSERT_EQ(nbd_connect_systemd_socket_activation(h, argv), 0) << nbd_get_error();
  auto data = random_bytes(65536, 7);
  std::vector<char> back(65536);
  ASSERT_EQ(nbd_pread(h, back.data(), back.size(), 4096, 0), 0) << nbd_get_error();
  EXPECT_EQ(back, data);
}

TEST(QemuNbd, OptModeListInfoGo) {
  NBD_TEST_REQUIRE_PROGRAM("qemu-nbd");
  nbd_test::TmpDir dir;
  const std::string img = dir.path() + "/disk.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", img, "2M"}));
  auto srv = nbd_test::start_qemu_nbd(img, "raw", {}, false, "name");
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_set_opt_mode(h, true), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  auto names = list_exports(h);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0], "name");
  ASSERT_EQ(nbd_set_export_name(h, "name"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_info(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 2 << 20);
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  // An unknown name fails opt_info but leaves the handle negotiating.
  ASSERT_EQ(nbd_set_export_name(h, "other"), 0) << nbd_get_error();
  EXPECT_EQ(nbd_opt_info(h), -1);
  EXPECT_EQ(nbd_aio_is_negotiating(h), 1);
  ASSERT_EQ(nbd_set_export_name(h, "name"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_opt_go(h), 0) << nbd_get_error();
  EXPECT_EQ(nbd_aio_is_ready(h), 1);
  EXPECT_EQ(nbd_get_size(h), 2 << 20);
  round_trip(h, 0, 8192, 3);
}

TEST(NbdServer, TwoExports) {
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");
  nbd_test::TmpDir dir;
  const std::string d1 = dir.path() + "/disk1.img", d2 = dir.path() + "/disk2.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", d1, "4M"}));
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", d2, "1M"}));
  auto srv = nbd_test::start_nbd_server({{"disk1", d1, false}, {"ro", d2, true}});
  ASSERT_TRUE(srv);

  {
    Handle h;
    ASSERT_EQ(nbd_connect_uri(h, srv->export_uri("disk1").c_str()), 0) << nbd_get_error();
    EXPECT_EQ(nbd_get_size(h), 4 << 20);
    EXPECT_EQ(nbd_get_structured_replies_negotiated(h), 0);
    EXPECT_EQ(nbd_is_read_only(h), 0);
    round_trip(h, 1000, 70000, 11);
    auto data = random_bytes(70000, 11);
    struct Chunks {
      int n = 0;
      unsigned status = 0;
      uint64_t offset = 0;
      size_t count = 0;
    } ch;
    std::vector<char> buf(70000);
    nbd_chunk_callback cb{[](void* ud, const void*, size_t count, uint64_t off, unsigned st, int*) {
                            auto* c = static_cast<Chunks*>(ud);
                            c->n++;
                            c->status = st;
                            c->offset = off;
                            c->count = count;
                            return 0;
                          },
                          &ch, nullptr};
    ASSERT_EQ(nbd_pread_structured(h, buf.data(), buf.size(), 1000, cb, 0), 0) << nbd_get_error();
    EXPECT_EQ(ch.n, 1);
    EXPECT_EQ(ch.status, unsigned{LIBNBD_READ_DATA});
    EXPECT_EQ(ch.offset, 1000u);
    EXPECT_EQ(ch.count, 70000u);
    EXPECT_EQ(buf, data);
    EXPECT_EQ(nbd_can_flush(h), 0);  // nbd-server without "flush = true"
    EXPECT_EQ(nbd_flush(h, 0), -1);
    EXPECT_EQ(nbd_get_errno(), EINVAL) << nbd_get_error();
    ASSERT_EQ(nbd_shutdown(h, 0), 0) << nbd_get_error();
  }
  {
    Handle h;
    ASSERT_EQ(nbd_connect_uri(h, srv->export_uri("ro").c_str()), 0) << nbd_get_error();
    EXPECT_EQ(nbd_get_size(h), 1 << 20);
    EXPECT_EQ(nbd_is_read_only(h), 1);
    char b[512] = {1};
    EXPECT_EQ(nbd_pwrite(h, b, sizeof b, 0, 0), -1);
    EXPECT_EQ(nbd_get_errno(), EPERM) << nbd_get_error();
    EXPECT_EQ(nbd_aio_is_ready(h), 1);  // rejected client-side, connection still fine
    EXPECT_EQ(nbd_pread(h, b, sizeof b, 0, 0), 0) << nbd_get_error();
    EXPECT_EQ(b[0], 0);
  }
  {
    Handle h;
    ASSERT_EQ(nbd_set_opt_mode(h, true), 0) << nbd_get_error();
    ASSERT_EQ(nbd_connect_uri(h, srv->uri().c_str()), 0) << nbd_get_error();
    auto names = list_exports(h);
    EXPECT_EQ(names.size(), 2u);
    EXPECT_NE(std::find(names.begin(), names.end(), "disk1"), names.end());
    EXPECT_NE(std::find(names.begin(), names.end(), "ro"), names.end());
    ASSERT_EQ(nbd_opt_abort(h), 0) << nbd_get_error();
  }
  {
    Handle h;
    EXPECT_EQ(nbd_connect_uri(h, srv->export_uri("nosuch").c_str()), -1);
    const char* msg = nbd_get_error();
    ASSERT_NE(msg, nullptr);
    EXPECT_NE(std::string(msg).find("nosuch"), std::string::npos) << msg;
    EXPECT_NE(nbd_get_errno(), 0) << msg;
    EXPECT_EQ(nbd_aio_is_dead(h), 1);
    EXPECT_EQ(nbd_get_size(h), -1);
  }
}

TEST(NbdServer, ConnectTcpWithExportName) {
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");
  nbd_test::TmpDir dir;
  const std::string d1 = dir.path() + "/a.img", d2 = dir.path() + "/b.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", d1, "1M"}));
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", d2, "3M"}));
  auto srv = nbd_test::start_nbd_server({{"a", d1, false}, {"b", d2, false}});
  ASSERT_TRUE(srv);
  Handle h;
  ASSERT_EQ(nbd_set_export_name(h, "b"), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_tcp(h, srv->host().c_str(), srv->port().c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(h), 3 << 20);
  char* name = nbd_get_export_name(h);
  ASSERT_NE(name, nullptr) << nbd_get_error();
  EXPECT_STREQ(name, "b");
  free(name);
  round_trip(h, (3 << 20) - 4096, 4096, 5);
}

// nbd-server's named exports over its Unix socket (unixsock in [generic]).
TEST(NbdServer, NamedExportsOverUnixSocket) {
  NBD_TEST_REQUIRE_PROGRAM("nbd-server");
  NBD_TEST_REQUIRE_PROGRAM("qemu-img");
  nbd_test::TmpDir dir;
  const std::string d1 = dir.path() + "/a.img", d2 = dir.path() + "/b.img";
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", d1, "2M"}));
  ASSERT_TRUE(nbd_test::run_or_fail({"qemu-img", "create", "-f", "raw", d2, "3M"}));
  auto srv = nbd_test::start_nbd_server({{"first", d1, false}, {"second", d2, false}}, true);
  ASSERT_TRUE(srv);
  ASSERT_FALSE(srv->unix_socket().empty());
  Handle a, b;
  ASSERT_EQ(nbd_set_export_name(a, "first"), 0);
  ASSERT_EQ(nbd_connect_unix(a, srv->unix_socket().c_str()), 0) << nbd_get_error();
  ASSERT_EQ(nbd_connect_uri(b, srv->export_uri("second").c_str()), 0) << nbd_get_error();
  EXPECT_EQ(nbd_get_size(a), 2 << 20);
  EXPECT_EQ(nbd_get_size(b), 3 << 20);
  round_trip(a, 4096, 65536, 21);
  round_trip(b, 8192, 65536, 22);
  EXPECT_EQ(nbd_shutdown(a, 0), 0) << nbd_get_error();
  EXPECT_EQ(nbd_shutdown(b, 0), 0) << nbd_get_error();
}
