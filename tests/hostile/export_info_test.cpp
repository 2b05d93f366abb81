// export_info_test.cpp: hostile NBD_OPT_GO replies: bad NBD_INFO lengths, export sizes over
// INT64_MAX, transmission flags and block size constraints that contradict themselves.
#include <libnbd.h>

#include <cerrno>
#include <cstdint>
#include <ostream>
#include <string>

#include "common/api_fixture.hpp"
#include "hostile/hostile_fixture.hpp"

using namespace hostile;
using nbd_test::last_error_is;

namespace {

// ---------------------------------------------------------------------------------------------
// Handshake: what the server says of the export

TEST_F(Hostile, InfoExportWithBadLength) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_go(p);
              p.opt_reply(OPT_GO, REP_INFO, Bytes().u16(INFO_EXPORT).u64(1 << 20));  // 10, not 12
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: NBD_INFO_EXPORT has the wrong length"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, InfoTooShortForItsType) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_go(p);
              p.opt_reply(OPT_GO, REP_INFO, Bytes().u8(0));
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: NBD_REP_INFO is too short"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, InfoBlockSizeWithBadLength) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_go(p);
              p.opt_reply(OPT_GO, REP_INFO, Bytes().u16(INFO_BLOCK_SIZE).u32(512).u32(4096));
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: NBD_INFO_BLOCK_SIZE has the wrong length"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, GoAckedWithoutExportInfo) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_go(p);
              p.opt_ack(OPT_GO);
            }),
            -1);
  EXPECT_TRUE(last_error_is(EPROTO, "nbd_connect_socket: handshake: server did not send the export size and flags"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, ExportSizeOverInt64Max) {
  EXPECT_EQ(connect([](Peer& p) {
              greet_until_go(p);
              p.opt_info_export(OPT_GO, uint64_t{1} << 63, kAllFlags);
            }),
            -1);
  EXPECT_TRUE(last_error_is(EOVERFLOW, "nbd_connect_socket: server export size 9223372036854775808 is larger than INT64_MAX"));
  EXPECT_TRUE(dead());
}

// Transmission flags of 0 (not even NBD_FLAG_HAS_FLAGS) are refused, as libnbd does.
TEST_F(Hostile, TransmissionFlagsOfZero) {
  EXPECT_EQ(connect([](Peer& p) { p.greeting_oldstyle(1 << 20, 0); }), -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_connect_socket: handshake: the server sent transmission flags of 0"));
  EXPECT_TRUE(dead());
}

// Flags that contradict the rest of what the server said are dropped, as libnbd drops them:
// fast zero without write zeroes, DF without structured replies.
TEST_F(Hostile, ContradictoryTransmissionFlagsAreMasked) {
  Export e = simple_export();
  e.eflags = static_cast<uint16_t>((kAllFlags | TFLAG_SEND_FAST_ZERO) & ~TFLAG_SEND_WRITE_ZEROES);
  connect_ok(e, [](Peer&) {});
  EXPECT_EQ(nbd_can_zero(h), 0);
  EXPECT_EQ(nbd_can_fast_zero(h), 0);
  EXPECT_EQ(nbd_can_df(h), 0);
  EXPECT_EQ(nbd_can_trim(h), 1);
  char buf[512];
  EXPECT_EQ(nbd_pread_structured(h, buf, sizeof buf, 0, nbd_chunk_callback{nullptr, nullptr, [](void*) {}},
                                 LIBNBD_CMD_FLAG_DF),
            -1);
  EXPECT_TRUE(last_error_is(EINVAL, "nbd_pread_structured: server does not support the DF flag"));
}

TEST_F(Hostile, ExportSizeOverInt64MaxOldstyle) {
  EXPECT_EQ(connect([](Peer& p) { p.greeting_oldstyle(UINT64_MAX, kAllFlags); }), -1);
  EXPECT_TRUE(last_error_is(EOVERFLOW, "nbd_connect_socket: server export size 18446744073709551615 is larger than INT64_MAX"));
  EXPECT_TRUE(dead());
}

TEST_F(Hostile, ExportSizeOverInt64MaxExportName) {
  ASSERT_EQ(nbd_set_handshake_flags(h, 0), 0) << nbd_get_error();
  EXPECT_EQ(connect([](Peer& p) {
              p.greeting_newstyle(FLAG_FIXED_NEWSTYLE);
              p.expect_client_flags(0);
              p.expect_option(OPT_EXPORT_NAME);
              p.export_name_reply(uint64_t{1} << 63, kAllFlags, true);
            }),
            -1);
  EXPECT_TRUE(last_error_is(EOVERFLOW, "nbd_connect_socket: server export size 9223372036854775808 is larger than INT64_MAX"));
  EXPECT_TRUE(dead());
}

// Block size constraints that contradict themselves are ignored (proto.md "Block size
// constraints"; as libnbd): the connection works and nbd_get_block_size reports nothing.
struct BlockSizes {
  const char* name;
  uint32_t min, pref, max;
};

void PrintTo(const BlockSizes& b, std::ostream* os) { *os << b.min << "/" << b.pref << "/" << b.max; }

class HostileBlockSize : public Hostile, public ::testing::WithParamInterface<BlockSizes> {};

TEST_P(HostileBlockSize, ContradictoryBlockSizesAreIgnored) {
  Export e = sr_export();
  e.block_size = {GetParam().min, GetParam().pref, GetParam().max};
  const auto data = pattern(512, 1);
  connect_ok(e, [data](Peer& p) {
    const Request r = p.read_request();
    if (r.type != CMD_READ || r.offset != 1 || r.length != 512)
      throw ScriptError("unexpected request");
    p.offset_data(r.cookie, 1, bytes(data));
  });
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 0);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED), 0);
  EXPECT_EQ(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), 0);
  // An unaligned read is not refused on the strength of the ignored constraints.
  Guarded buf(512);
  ASSERT_EQ(nbd_pread(h, buf.data(), 512, 1, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf.contents(), data);
  EXPECT_TRUE(buf.guards_intact());
}

INSTANTIATE_TEST_SUITE_P(Hostile, HostileBlockSize,
                         ::testing::Values(BlockSizes{"PreferredBelowMinimum", 4096, 512, 65536},
                                           BlockSizes{"MinimumNotAPowerOf2", 3000, 4096, 65536},
                                           BlockSizes{"PreferredNotAPowerOf2", 512, 3000, 65536},
                                           BlockSizes{"MaximumBelowPreferred", 512, 4096, 1024},
                                           BlockSizes{"MinimumOver64K", 131072, 131072, 262144},
                                           BlockSizes{"MinimumZero", 0, 4096, 65536},
                                           BlockSizes{"MaximumNotAMultipleOfMinimum", 4096, 4096, 4096 + 512}),
                         [](const ::testing::TestParamInfo<BlockSizes>& p) { return std::string(p.param.name); });

}  // namespace
