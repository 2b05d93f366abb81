// protocol.cpp: mapping NBD wire values to errno values and names, and encoding the
// variable-length option requests.
#include "protocol.hpp"

#include <cerrno>

namespace nbd::proto {
namespace {

void append16(std::string& s, uint16_t v) {
  unsigned char b[2];
  put16(b, v);
  s.append(reinterpret_cast<const char*>(b), sizeof b);
}

void append32(std::string& s, uint32_t v) {
  unsigned char b[4];
  put32(b, v);
  s.append(reinterpret_cast<const char*>(b), sizeof b);
}

// A string as option data carries it: its 32-bit length, then its bytes.
void append_string(std::string& s, const std::string& v) {
  append32(s, static_cast<uint32_t>(v.size()));
  s += v;
}

}  // namespace

std::string encode_info_request(const std::string& export_name, std::span<const uint16_t> infos) {
  std::string d;
  append_string(d, export_name);
  append16(d, static_cast<uint16_t>(infos.size()));
  for (const uint16_t info : infos)
    append16(d, info);
  return d;
}

std::string encode_meta_context_request(const std::string& export_name, const std::vector<std::string>& queries) {
  std::string d;
  append_string(d, export_name);
  append32(d, static_cast<uint32_t>(queries.size()));
  for (const std::string& q : queries)
    append_string(d, q);
  return d;
}

int errno_of_wire(uint32_t error) {
  switch (error) {
    case kEperm:
      return EPERM;
    case kEio:
      return EIO;
    case kEnomem:
      return ENOMEM;
    case kEinval:
      return EINVAL;
    case kEnospc:
      return ENOSPC;
    case kEoverflow:
      return EOVERFLOW;
    case kEnotsup:
      return ENOTSUP;
    case kEshutdown:
      return ESHUTDOWN;
    default:
      return EINVAL;
  }
}

const char* opt_name(uint32_t opt) {
  switch (opt) {
    case kOptExportName:
      return "NBD_OPT_EXPORT_NAME";
    case kOptAbort:
      return "NBD_OPT_ABORT";
    case kOptList:
      return "NBD_OPT_LIST";
    case kOptStartTls:
      return "NBD_OPT_STARTTLS";
    case kOptInfo:
      return "NBD_OPT_INFO";
    case kOptGo:
      return "NBD_OPT_GO";
    case kOptStructuredReply:
      return "NBD_OPT_STRUCTURED_REPLY";
    case kOptListMetaContext:
      return "NBD_OPT_LIST_META_CONTEXT";
    case kOptSetMetaContext:
      return "NBD_OPT_SET_META_CONTEXT";
    case kOptExtendedHeaders:
      return "NBD_OPT_EXTENDED_HEADERS";
    default:
      return "unknown option";
  }
}

}  // namespace nbd::proto
