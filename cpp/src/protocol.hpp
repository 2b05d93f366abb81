// protocol.hpp: the NBD wire format (NetworkBlockDevice/nbd doc/proto.md): constants, the
// byte-order helpers, and one struct per fixed header or payload prefix with its size on the
// wire and its big-endian decode or encode.  Nothing else in the core reads or writes a wire
// offset.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace nbd::proto {

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

// The errno for an error value a server sent (unknown values become EINVAL, as the spec advises
// clients to treat them).
int errno_of_wire(uint32_t error);

// A printable name for an option, for messages.
const char* opt_name(uint32_t opt);

// ---- Fixed formats, in the order a connection meets them ----

// The server's greeting (proto.md "Handshake"): NBDMAGIC, then IHAVEOPT (newstyle) or the
// oldstyle magic.
struct Greeting {
  static constexpr size_t kSize = 16;
  uint64_t magic;
  uint64_t version;
  static Greeting decode(const unsigned char* p) { return {get64(p), get64(p + 8)}; }
};

// The rest of an oldstyle greeting: the export's size, 16 bits of handshake flags and 16 of
// transmission flags, then 124 bytes of zeroes.
struct OldstyleRest {
  static constexpr size_t kSize = 8 + 2 + 2 + kHandshakePadding;
  uint64_t size;
  uint16_t gflags;
  uint16_t eflags;
  static OldstyleRest decode(const unsigned char* p) { return {get64(p), get16(p + 8), get16(p + 10)}; }
};

// Newstyle: the server's 16 bits of handshake flags, and the client's 32-bit answer.
struct ServerFlags {
  static constexpr size_t kSize = 2;
  uint16_t flags;
  static ServerFlags decode(const unsigned char* p) { return {get16(p)}; }
};
struct ClientFlags {
  static constexpr size_t kSize = 4;
  uint32_t flags;
  void encode(unsigned char* p) const { put32(p, flags); }
};

// An option request (proto.md "Option haggling"): IHAVEOPT, the option, the length of the
// data that follows.
struct OptionRequest {
  static constexpr size_t kSize = 16;
  uint32_t option;
  uint32_t length;
  void encode(unsigned char* p) const {
    put64(p, kIHaveOpt);
    put32(p + 8, option);
    put32(p + 12, length);
  }
};
// The data of NBD_OPT_GO and NBD_OPT_INFO: the export name (32-bit length first), then the
// number of information requests and each 16-bit NBD_INFO_* type.
std::string encode_info_request(const std::string& export_name, std::span<const uint16_t> infos);
// The data of NBD_OPT_{LIST,SET}_META_CONTEXT: the export name, the number of queries, then
// each query (each string with its 32-bit length first).
std::string encode_meta_context_request(const std::string& export_name, const std::vector<std::string>& queries);

// An option reply header: the reply magic, the option it answers, the reply type, and the
// length of the payload that follows.
struct OptionReply {
  static constexpr size_t kSize = 20;
  uint64_t magic;
  uint32_t option;
  uint32_t type;
  uint32_t length;
  static OptionReply decode(const unsigned char* p) {
    return {get64(p), get32(p + 8), get32(p + 12), get32(p + 16)};
  }
};

// The reply to NBD_OPT_EXPORT_NAME: the export's size and transmission flags, then 124 bytes of
// zeroes unless NBD_FLAG_NO_ZEROES was agreed.
struct ExportNameReply {
  static constexpr size_t kSize = 10;
  uint64_t size;
  uint16_t eflags;
  static constexpr size_t wire_size(bool no_zeroes) { return kSize + (no_zeroes ? 0 : kHandshakePadding); }
  static ExportNameReply decode(const unsigned char* p) { return {get64(p), get16(p + 8)}; }
};

// NBD_REP_INFO payloads: a 16-bit NBD_INFO_* type, then what that type holds.  NBD_INFO_NAME
// and NBD_INFO_DESCRIPTION hold text to the end of the payload.
struct InfoReply {
  static constexpr size_t kSize = 2;
  uint16_t type;
  static InfoReply decode(const unsigned char* p) { return {get16(p)}; }
};
struct InfoExport {  // NBD_INFO_EXPORT: the export's size and transmission flags
  static constexpr size_t kSize = 12;
  uint64_t size;
  uint16_t eflags;
  static InfoExport decode(const unsigned char* p) { return {get64(p + 2), get16(p + 10)}; }
};
struct InfoBlockSize {  // NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum
  static constexpr size_t kSize = 14;
  uint32_t minimum;
  uint32_t preferred;
  uint32_t maximum;
  static InfoBlockSize decode(const unsigned char* p) { return {get32(p + 2), get32(p + 6), get32(p + 10)}; }
};

// NBD_REP_SERVER: the export name's length, the name, then its description to the end.
struct ServerReply {
  static constexpr size_t kSize = 4;
  uint32_t name_length;
  static ServerReply decode(const unsigned char* p) { return {get32(p)}; }
};

// NBD_REP_META_CONTEXT: the context's id, then its name to the end.
struct MetaContextReply {
  static constexpr size_t kSize = 4;
  uint32_t id;
  static MetaContextReply decode(const unsigned char* p) { return {get32(p)}; }
};

// A request header (proto.md "Request message"): compact (32-bit length) or, once extended
// headers are in use, extended (64-bit length).
struct RequestHeader {
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint64_t length;
  // Writes the header to p (room for kExtendedRequestSize bytes); returns its size.
  size_t encode(unsigned char* p, bool extended) const {
    put16(p + 4, flags);
    put16(p + 6, type);
    put64(p + 8, cookie);
    put64(p + 16, offset);
    if (extended) {
      put32(p, kExtendedRequestMagic);
      put64(p + 24, length);
      return kExtendedRequestSize;
    }
    put32(p, kRequestMagic);
    put32(p + 24, static_cast<uint32_t>(length));
    return kRequestSize;
  }
};
// The payload of a filtered NBD_CMD_BLOCK_STATUS (NBD_CMD_FLAG_PAYLOAD_LEN): the effect length,
// then each 32-bit context id.
struct BlockStatusFilter {
  static constexpr size_t kSize = 8;
  static constexpr size_t kIdSize = 4;
  static constexpr uint64_t wire_size(size_t ids) { return kSize + kIdSize * uint64_t{ids}; }
  static void encode_length(unsigned char* p, uint64_t length) { put64(p, length); }
  static void encode_id(unsigned char* p, uint32_t id) { put32(p, id); }
};

// Every reply starts with its magic, which says which header it is.
constexpr size_t kReplyMagicSize = 4;
inline uint32_t reply_magic(const unsigned char* p) { return get32(p); }
// A simple reply: magic, error, cookie (a read's data follows).
struct SimpleReply {
  static constexpr size_t kSize = kSimpleReplySize;
  uint32_t error;
  uint64_t cookie;
  static SimpleReply decode(const unsigned char* p) { return {get32(p + 4), get64(p + 8)}; }
};
// A structured reply chunk's header: magic, flags, type, cookie, the payload's length.
struct StructuredReplyHeader {
  static constexpr size_t kSize = kStructuredReplySize;
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint32_t length;
  static StructuredReplyHeader decode(const unsigned char* p) {
    return {get16(p + 4), get16(p + 6), get64(p + 8), get32(p + 16)};
  }
};
// An extended reply chunk's header: as a structured one, with the request's offset and a
// 64-bit length.
struct ExtendedReplyHeader {
  static constexpr size_t kSize = kExtendedReplySize;
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint64_t length;
  static ExtendedReplyHeader decode(const unsigned char* p) {
    return {get16(p + 4), get16(p + 6), get64(p + 8), get64(p + 16), get64(p + 24)};
  }
};

// Chunk payloads (proto.md "Structured reply types").  NBD_REPLY_TYPE_OFFSET_DATA: the offset,
// then the data.
struct OffsetDataChunk {
  static constexpr size_t kSize = 8;
  uint64_t offset;
  static OffsetDataChunk decode(const unsigned char* p) { return {get64(p)}; }
};
// NBD_REPLY_TYPE_OFFSET_HOLE: the offset and the hole's length.
struct OffsetHoleChunk {
  static constexpr size_t kSize = 12;
  uint64_t offset;
  uint32_t length;
  static OffsetHoleChunk decode(const unsigned char* p) { return {get64(p), get32(p + 8)}; }
};
// NBD_REPLY_TYPE_ERROR and _ERROR_OFFSET: the error, the message's length, the message, and
// (_ERROR_OFFSET only) the offset the error is about.
struct ErrorChunk {
  static constexpr size_t kSize = 6;
  static constexpr size_t kOffsetSize = 8;
  uint32_t error;
  uint16_t message_length;
  static ErrorChunk decode(const unsigned char* p) { return {get32(p), get16(p + 4)}; }
  const unsigned char* message(const unsigned char* p) const { return p + kSize; }
  uint64_t offset(const unsigned char* p) const { return get64(p + kSize + message_length); }
};
// NBD_REPLY_TYPE_BLOCK_STATUS: the context id, then 32-bit descriptors; _EXT (extended
// headers): the context id and the number of descriptors, then 64-bit descriptors.
struct BlockStatusChunk {
  uint32_t context_id;
  uint32_t count;  // _EXT only
  static constexpr size_t size(bool wide) { return wide ? 8 : 4; }
  static BlockStatusChunk decode(const unsigned char* p, bool wide) { return {get32(p), wide ? get32(p + 4) : 0}; }
};
struct BlockDescriptor32 {
  static constexpr size_t kSize = 8;
  uint32_t length;
  uint32_t flags;
  static BlockDescriptor32 decode(const unsigned char* p) { return {get32(p), get32(p + 4)}; }
};
struct BlockDescriptor64 {
  static constexpr size_t kSize = 16;
  uint64_t length;
  uint64_t flags;
  static BlockDescriptor64 decode(const unsigned char* p) { return {get64(p), get64(p + 8)}; }
};
constexpr size_t block_descriptor_size(bool wide) { return wide ? BlockDescriptor64::kSize : BlockDescriptor32::kSize; }
// Descriptor i of the list at p, either width, widened.
inline BlockDescriptor64 block_descriptor(const unsigned char* p, size_t i, bool wide) {
  if (wide)
    return BlockDescriptor64::decode(p + i * BlockDescriptor64::kSize);
  const BlockDescriptor32 d = BlockDescriptor32::decode(p + i * BlockDescriptor32::kSize);
  return {d.length, d.flags};
}

}  // namespace nbd::proto
