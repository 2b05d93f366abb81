// protocol.cpp: mapping NBD wire values to errno values and names.
#include "protocol.hpp"

#include <cerrno>

namespace nbd::proto {

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
