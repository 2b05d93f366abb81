// block_status_test.cpp: hostile block status replies: extents past the request or the export,
// of length 0, for contexts never negotiated, in chunks that do not parse.
#include <libnbd.h>

#include <cerrno>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/api_fixture.hpp"
#include "hostile/hostile_fixture.hpp"

using namespace hostile;
using nbd_test::last_error_is;

namespace {

// ---------------------------------------------------------------------------------------------
// Transmission: block status

class HostileBlockStatus : public Hostile {
 protected:
  void SetUp() override {
    Hostile::SetUp();
    ASSERT_EQ(nbd_add_meta_context(h, "base:allocation"), 0) << nbd_get_error();
  }
  // Connects, then answers the first block status request with extents for context id.
  void serve_extents(uint32_t id, std::vector<std::pair<uint32_t, uint32_t>> extents) {
    connect_ok(sr_export(), [id, extents](Peer& p) {
      const Request r = p.read_request();
      if (r.type != CMD_BLOCK_STATUS)
        throw ScriptError("expected NBD_CMD_BLOCK_STATUS");
      p.block_status(r.cookie, id, extents);
    });
  }
  Extents ext;
};

TEST_F(HostileBlockStatus, FinalExtentMayRunPastTheRequest) {
  // proto.md "NBD_REPLY_TYPE_BLOCK_STATUS": the last extent may end past the request.
  serve_extents(7, {{256, 0}, {4096, 3}});
  ASSERT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), 0) << nbd_get_error();
  EXPECT_EQ(ext.counter.calls, 1);
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{256, 0, 4096, 3}));
  EXPECT_EQ(ext.counter.frees, 1);
}

// libnbd 1.18+ reads block status leniently and so do we: what the server sends beyond the
// request, or despite NBD_CMD_FLAG_REQ_ONE, reaches the callback; an extent of length 0 or
// one reaching past the export ends the list (an error only if nothing came before it); a
// chunk that does not parse fails the command and the connection goes on.

TEST_F(HostileBlockStatus, ExtentsPastTheRequestEndReachTheCallback) {
  serve_extents(7, {{512, 0}, {512, 3}, {512, 0}});
  ASSERT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), 0) << nbd_get_error();
  EXPECT_EQ(ext.counter.calls, 1);
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{512, 0, 512, 3, 512, 0}));
  EXPECT_EQ(ext.counter.frees, 1);
}

TEST_F(HostileBlockStatus, ExtentsPastTheExportEndAreCutThere) {
  connect_ok(sr_export(), [](Peer& p) {
    const Request r = p.read_request();
    p.block_status(r.cookie, 7, {{512, 0}, {1 << 20, 0}});
  });
  EXPECT_EQ(nbd_block_status(h, 1024, (1 << 20) - 1024, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status: block-status: command failed"));
  EXPECT_EQ(ext.counter.calls, 1);
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{512, 0, 512, 0}));  // cut at the export's end
  EXPECT_EQ(ext.last_error, EPROTO);
  EXPECT_FALSE(dead());
}

TEST_F(HostileBlockStatus, SeveralExtentsDespiteReqOneReachTheCallback) {
  serve_extents(7, {{256, 0}, {256, 3}});
  ASSERT_EQ(nbd_block_status(h, 512, 0, ext.closure(), LIBNBD_CMD_FLAG_REQ_ONE), 0) << nbd_get_error();
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{256, 0, 256, 3}));
}

TEST_F(HostileBlockStatus, ReqOneExtentLongerThanTheRequestReachesTheCallback) {
  serve_extents(7, {{1024, 0}});
  ASSERT_EQ(nbd_block_status(h, 512, 0, ext.closure(), LIBNBD_CMD_FLAG_REQ_ONE), 0) << nbd_get_error();
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{1024, 0}));
}

TEST_F(HostileBlockStatus, ZeroLengthExtent) {
  serve_extents(7, {{0, 0}});
  EXPECT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status: block-status: command failed"));
  EXPECT_EQ(ext.counter.calls, 1);  // shown, with the error, since nothing came before it
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{0, 0}));
  EXPECT_EQ(ext.last_error, EPROTO);
  EXPECT_EQ(ext.counter.frees, 1);
  EXPECT_FALSE(dead());
}

TEST_F(HostileBlockStatus, ZeroLengthExtentAfterAGoodOneEndsTheList) {
  serve_extents(7, {{256, 0}, {0, 1}, {256, 0}});
  ASSERT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), 0) << nbd_get_error();
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{256, 0}));
}

TEST_F(HostileBlockStatus, ContextNeverNegotiatedIsIgnored) {
  serve_extents(99, {{512, 0}});
  ASSERT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), 0) << nbd_get_error();
  EXPECT_FALSE(dead());
  EXPECT_EQ(ext.counter.calls, 0);
  EXPECT_EQ(ext.counter.frees, 1);
}

TEST_F(HostileBlockStatus, ChunkLengthNotWholeExtents) {
  connect_ok(sr_export(), [](Peer& p) {
    const Request r = p.read_request();
    p.chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, r.cookie, Bytes().u32(7).u32(512).u32(0).u32(512));
    const Request again = p.read_request();
    p.block_status(again.cookie, 7, {{512, 0}});
  });
  EXPECT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status: block-status: command failed"));
  EXPECT_EQ(ext.counter.calls, 0);
  // The chunk was read whole, so the connection is still in step.
  Extents next;
  ASSERT_EQ(nbd_block_status(h, 512, 0, next.closure(), 0), 0) << nbd_get_error();
  EXPECT_EQ(next.entries, (std::vector<uint32_t>{512, 0}));
}

TEST_F(HostileBlockStatus, ChunkWithNoExtents) {
  connect_ok(sr_export(), [](Peer& p) {
    const Request r = p.read_request();
    p.chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, r.cookie, Bytes().u32(7));
  });
  EXPECT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status: block-status: command failed"));
  EXPECT_FALSE(dead());
}

TEST_F(HostileBlockStatus, ExtentsSummingPast32Bits) {
  // Many huge extents: the running total must not wrap (4 x 0xffffffff > 2^32); the first is
  // cut at the end of the 1 MiB export and ends the list.
  serve_extents(7, {{0xffffffff, 0}, {0xffffffff, 0}, {0xffffffff, 0}, {0xffffffff, 0}});
  EXPECT_EQ(nbd_block_status(h, 512, 0, ext.closure(), 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_block_status: block-status: command failed"));
  EXPECT_EQ(ext.entries, (std::vector<uint32_t>{1 << 20, 0}));
}

TEST_F(HostileBlockStatus, BlockStatusChunkForARead) {
  connect_ok(sr_export(), [](Peer& p) {
    const Request r = p.read_request();
    p.block_status(r.cookie, 7, {{512, 0}});
  });
  Guarded buf(512);
  EXPECT_EQ(nbd_pread(h, buf.data(), 512, 0, 0), -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_pread: read: command failed"));
  EXPECT_FALSE(dead());
  EXPECT_TRUE(buf.guards_intact());
}

}  // namespace
