// protocol.hpp: NBD wire constants and byte-order helpers (NetworkBlockDevice/nbd doc/proto.md).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace nbd::proto {

// Handshake ("Newstyle negotiation", "Oldstyle negotiation").
constexpr uint64_t kNbdMagic = 0x4e42444d41474943;      // "NBDMAGIC"
constexpr uint64_t kIHaveOpt = 0x49484156454f5054;      // "IHAVEOPT"
constexpr uint64_t kOldstyleMagic = 0x00420281861253;
constexpr uint64_t kOptReplyMagic = 0x3e889045565a9;
constexpr uint16_t kFlagFixedNewstyle = 1;
constexpr uint16_t kFlagNoZeroes = 2;
constexpr size_t kHandshakePadding = 124;
constexpr size_t kMaxString = 4096;  // "MUST be no longer than 4096 bytes"

// Option types.
enum Opt : uint32_t {
  kOptExportName = 1,
  kOptAbort = 2,
  kOptList = 3,
  kOptStartTls = 5,
  kOptInfo = 6,
  kOptGo = 7,
  kOptStructuredReply = 8,
  kOptListMetaContext = 9,
  kOptSetMetaContext = 10,
  kOptExtendedHeaders = 11,  // the EXTENDED_HEADERS extension (extension-ext-header branch)
};

// Option reply types; errors have bit 31 set.
constexpr uint32_t kRepAck = 1;
constexpr uint32_t kRepServer = 2;
constexpr uint32_t kRepInfo = 3;
constexpr uint32_t kRepMetaContext = 4;
constexpr uint32_t kRepErrBit = 0x80000000;
constexpr uint32_t kRepErrUnsup = kRepErrBit | 1;
constexpr uint32_t kRepErrPolicy = kRepErrBit | 2;
constexpr uint32_t kRepErrInvalid = kRepErrBit | 3;
constexpr uint32_t kRepErrPlatform = kRepErrBit | 4;
constexpr uint32_t kRepErrTlsReqd = kRepErrBit | 5;
constexpr uint32_t kRepErrUnknown = kRepErrBit | 6;
constexpr uint32_t kRepErrShutdown = kRepErrBit | 7;
constexpr uint32_t kRepErrBlockSizeReqd = kRepErrBit | 8;
constexpr uint32_t kRepErrTooBig = kRepErrBit | 9;
constexpr uint32_t kRepErrExtHeaderReqd = kRepErrBit | 10;

// NBD_OPT_INFO / NBD_OPT_GO information types.
constexpr uint16_t kInfoExport = 0;
constexpr uint16_t kInfoName = 1;
constexpr uint16_t kInfoDescription = 2;
constexpr uint16_t kInfoBlockSize = 3;

// Transmission flags.
constexpr uint16_t kFlagHasFlags = 1 << 0;
constexpr uint16_t kFlagReadOnly = 1 << 1;
constexpr uint16_t kFlagSendFlush = 1 << 2;
constexpr uint16_t kFlagSendFua = 1 << 3;
constexpr uint16_t kFlagRotational = 1 << 4;
constexpr uint16_t kFlagSendTrim = 1 << 5;
constexpr uint16_t kFlagSendWriteZeroes = 1 << 6;
constexpr uint16_t kFlagSendDf = 1 << 7;
constexpr uint16_t kFlagCanMultiConn = 1 << 8;
constexpr uint16_t kFlagSendCache = 1 << 10;
constexpr uint16_t kFlagSendFastZero = 1 << 11;
constexpr uint16_t kFlagBlockStatusPayload = 1 << 12;  // extended headers only

// Requests.
constexpr uint32_t kRequestMagic = 0x25609513;
enum Cmd : uint16_t {
  kCmdRead = 0,
  kCmdWrite = 1,
  kCmdDisc = 2,
  kCmdFlush = 3,
  kCmdTrim = 4,
  kCmdCache = 5,
  kCmdWriteZeroes = 6,
  kCmdBlockStatus = 7,
};
constexpr size_t kRequestSize = 28;
// With extended headers every request is 32 bytes: the length grows to 64 bits and, with
// NBD_CMD_FLAG_PAYLOAD_LEN, counts the payload that follows instead of the export's bytes.
constexpr uint32_t kExtendedRequestMagic = 0x21e41c71;
constexpr size_t kExtendedRequestSize = 32;
constexpr uint16_t kCmdFlagPayloadLen = 1 << 5;

// Replies.
constexpr uint32_t kSimpleReplyMagic = 0x67446698;
constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;
constexpr size_t kSimpleReplySize = 16;      // magic, error, cookie
constexpr size_t kStructuredReplySize = 20;  // magic, flags, type, cookie, length
// Extended replies: magic, flags, type, cookie, the request's offset, 64-bit length.
constexpr uint32_t kExtendedReplyMagic = 0x6e8a278c;
constexpr size_t kExtendedReplySize = 32;
// The header in front of a chunk's payload in either mode.
constexpr size_t chunk_header_size(bool extended_headers) {
  return extended_headers ? kExtendedReplySize : kStructuredReplySize;
}
constexpr uint16_t kReplyFlagDone = 1;
constexpr uint16_t kReplyTypeNone = 0;
constexpr uint16_t kReplyTypeOffsetData = 1;
constexpr uint16_t kReplyTypeOffsetHole = 2;
constexpr uint16_t kReplyTypeBlockStatus = 5;
constexpr uint16_t kReplyTypeBlockStatusExt = 6;  // extended headers: 64-bit extents
constexpr uint16_t kReplyTypeErrorBit = 1 << 15;
constexpr uint16_t kReplyTypeError = kReplyTypeErrorBit | 1;
constexpr uint16_t kReplyTypeErrorOffset = kReplyTypeErrorBit | 2;

// Error values on the wire ("Error values").
constexpr uint32_t kEperm = 1;
constexpr uint32_t kEio = 5;
constexpr uint32_t kEnomem = 12;
constexpr uint32_t kEinval = 22;
constexpr uint32_t kEnospc = 28;
constexpr uint32_t kEoverflow = 75;
constexpr uint32_t kEnotsup = 95;
constexpr uint32_t kEshutdown = 108;

// Byte order: every field on the wire is big-endian.  Each is one load or store at any
// alignment, and a byte swap on little-endian machines.
inline uint16_t byteswap(uint16_t v) { return __builtin_bswap16(v); }
inline uint32_t byteswap(uint32_t v) { return __builtin_bswap32(v); }
inline uint64_t byteswap(uint64_t v) { return __builtin_bswap64(v); }
template <class T>
inline T from_wire(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little)
    v = byteswap(v);
  return v;
}
template <class T>
inline void to_wire(unsigned char* p, T v) {
  if constexpr (std::endian::native == std::endian::little)
    v = byteswap(v);
  std::memcpy(p, &v, sizeof v);
}
inline uint16_t get16(const unsigned char* p) { return from_wire<uint16_t>(p); }
inline uint32_t get32(const unsigned char* p) { return from_wire<uint32_t>(p); }
inline uint64_t get64(const unsigned char* p) { return from_wire<uint64_t>(p); }
inline void put16(unsigned char* p, uint16_t v) { to_wire(p, v); }
inline void put32(unsigned char* p, uint32_t v) { to_wire(p, v); }
inline void put64(unsigned char* p, uint64_t v) { to_wire(p, v); }

// The errno for an error value a server sent (unknown values become EINVAL, as the spec advises
// clients to treat them).
int errno_of_wire(uint32_t error);

// A printable name for an option, for messages.
const char* opt_name(uint32_t opt);

}  // namespace nbd::proto
