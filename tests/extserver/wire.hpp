// wire.hpp: the NBD protocol's numbers and byte order for the test server, written from the spec
// (proto.md of the extension-ext-header branch), not taken from the library under test.
#pragma once

#include <cstdint>
#include <string>

namespace ext_server {

// proto.md "Newstyle negotiation" and "Fixed newstyle negotiation".
constexpr uint64_t kNbdMagic = 0x4e42444d41474943;  // "NBDMAGIC"
constexpr uint64_t kOptMagic = 0x49484156454f5054;  // "IHAVEOPT"
constexpr uint64_t kRepMagic = 0x3e889045565a9;

// proto.md "Request message", "Simple reply message", "Structured reply chunk message",
// "Extended reply chunk message".
constexpr uint32_t kRequestMagic = 0x25609513;
constexpr uint32_t kExtendedRequestMagic = 0x21e41c71;
constexpr uint32_t kSimpleReplyMagic = 0x67446698;
constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;
constexpr uint32_t kExtendedReplyMagic = 0x6e8a278c;
constexpr size_t kCompactRequestSize = 28;
constexpr size_t kExtendedRequestSize = 32;

// Handshake and client flags (proto.md "Handshake flags", "Client flags").
constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
constexpr uint16_t kFlagNoZeroes = 1 << 1;

// Transmission flags (proto.md "Transmission flags").
constexpr uint16_t kFlagHasFlags = 1 << 0;
constexpr uint16_t kFlagReadOnly = 1 << 1;
constexpr uint16_t kFlagSendFlush = 1 << 2;
constexpr uint16_t kFlagSendFua = 1 << 3;
constexpr uint16_t kFlagSendTrim = 1 << 5;
constexpr uint16_t kFlagSendWriteZeroes = 1 << 6;
constexpr uint16_t kFlagSendDf = 1 << 7;
constexpr uint16_t kFlagCanMultiConn = 1 << 8;
constexpr uint16_t kFlagSendCache = 1 << 10;
constexpr uint16_t kFlagSendFastZero = 1 << 11;
constexpr uint16_t kFlagBlockStatusPayload = 1 << 12;

// Option types (proto.md "Option types").
constexpr uint32_t kOptExportName = 1;
constexpr uint32_t kOptAbort = 2;
constexpr uint32_t kOptList = 3;
constexpr uint32_t kOptStartTls = 5;
constexpr uint32_t kOptInfo = 6;
constexpr uint32_t kOptGo = 7;
constexpr uint32_t kOptStructuredReply = 8;
constexpr uint32_t kOptListMetaContext = 9;
constexpr uint32_t kOptSetMetaContext = 10;
constexpr uint32_t kOptExtendedHeaders = 11;

// Option reply types (proto.md "Option reply types").
constexpr uint32_t kRepAck = 1;
constexpr uint32_t kRepServer = 2;
constexpr uint32_t kRepInfo = 3;
constexpr uint32_t kRepMetaContext = 4;
constexpr uint32_t kRepErrUnsup = 0x80000001;
constexpr uint32_t kRepErrPolicy = 0x80000002;
constexpr uint32_t kRepErrInvalid = 0x80000003;
constexpr uint32_t kRepErrUnknown = 0x80000006;
constexpr uint32_t kRepErrTooBig = 0x80000009;
constexpr uint32_t kRepErrExtHeaderReqd = 0x8000000a;

// NBD_REP_INFO types.
constexpr uint16_t kInfoExport = 0;
constexpr uint16_t kInfoName = 1;
constexpr uint16_t kInfoDescription = 2;
constexpr uint16_t kInfoBlockSize = 3;

// Request types (proto.md "Request types").
constexpr uint16_t kCmdRead = 0;
constexpr uint16_t kCmdWrite = 1;
constexpr uint16_t kCmdDisc = 2;
constexpr uint16_t kCmdFlush = 3;
constexpr uint16_t kCmdTrim = 4;
constexpr uint16_t kCmdCache = 5;
constexpr uint16_t kCmdWriteZeroes = 6;
constexpr uint16_t kCmdBlockStatus = 7;

// Command flags (proto.md "Command flags").
constexpr uint16_t kCmdFlagFua = 1 << 0;
constexpr uint16_t kCmdFlagNoHole = 1 << 1;
constexpr uint16_t kCmdFlagDf = 1 << 2;
constexpr uint16_t kCmdFlagReqOne = 1 << 3;
constexpr uint16_t kCmdFlagFastZero = 1 << 4;
constexpr uint16_t kCmdFlagPayloadLen = 1 << 5;

// Reply flags and structured/extended reply types (proto.md "Structured reply types").
constexpr uint16_t kReplyFlagDone = 1 << 0;
constexpr uint16_t kReplyTypeNone = 0;
constexpr uint16_t kReplyTypeOffsetData = 1;
constexpr uint16_t kReplyTypeOffsetHole = 2;
constexpr uint16_t kReplyTypeBlockStatus = 5;
constexpr uint16_t kReplyTypeBlockStatusExt = 6;
constexpr uint16_t kReplyTypeError = 0x8001;

// Error values (proto.md "Error values").
constexpr uint32_t kEperm = 1;
constexpr uint32_t kEinval = 22;
constexpr uint32_t kEnospc = 28;
constexpr uint32_t kEoverflow = 75;

// base:allocation flags (proto.md "base:allocation metadata context").
constexpr uint64_t kStateHole = 1 << 0;
constexpr uint64_t kStateZero = 1 << 1;

// Big-endian appends to and reads from a byte string: all wire integers are network byte order.
inline void put16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
inline void put32(std::string& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v & 0xffff));
}
inline void put64(std::string& out, uint64_t v) {
  put32(out, static_cast<uint32_t>(v >> 32));
  put32(out, static_cast<uint32_t>(v & 0xffffffff));
}
inline uint16_t get16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] << 8 | u[1]);
}
inline uint32_t get32(const char* p) { return uint32_t{get16(p)} << 16 | get16(p + 2); }
inline uint64_t get64(const char* p) { return uint64_t{get32(p)} << 32 | get32(p + 4); }

}  // namespace ext_server
