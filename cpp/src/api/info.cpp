// info.cpp: what the handshake learnt about the export (the can_*, is_* and get_* calls).
#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "handle.hpp"
#include "protocol.hpp"
#include "unlocked.hpp"
#include "util.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

// In opt mode the size and flags arrive only with nbd_opt_info or nbd_opt_go.
bool need_info(const nbd_handle& h) {
  if (h.have_info)
    return true;
  set_error(EINVAL, "the server has not sent export information yet (try nbd_opt_info)");
  return false;
}

int flag(const nbd_handle& h, uint16_t bit) { return need_info(h) ? (h.eflags & bit) != 0 : -1; }

}  // namespace

int unlocked_is_read_only(nbd_handle& h) { return flag(h, kFlagReadOnly); }
int unlocked_can_flush(nbd_handle& h) { return flag(h, kFlagSendFlush); }
int unlocked_can_fua(nbd_handle& h) { return flag(h, kFlagSendFua); }
int unlocked_is_rotational(nbd_handle& h) { return flag(h, kFlagRotational); }
int unlocked_can_trim(nbd_handle& h) { return flag(h, kFlagSendTrim); }
int unlocked_can_zero(nbd_handle& h) { return flag(h, kFlagSendWriteZeroes); }
int unlocked_can_fast_zero(nbd_handle& h) { return flag(h, kFlagSendFastZero); }
int unlocked_can_multi_conn(nbd_handle& h) { return flag(h, kFlagCanMultiConn); }
int unlocked_can_cache(nbd_handle& h) { return flag(h, kFlagSendCache); }

int unlocked_can_df(nbd_handle& h) { return flag(h, kFlagSendDf); }
int unlocked_can_block_status_payload(nbd_handle& h) { return flag(h, kFlagBlockStatusPayload); }

int unlocked_can_meta_context(nbd_handle& h, const char* metacontext) {
  // Contexts were asked for but the answer is not (yet, or any more) the current export's.
  if (!h.request_meta_contexts.empty() && !h.meta_valid)
    return set_error(EINVAL, "need a successful server meta context request first");
  return h.meta_context_named(metacontext) != nullptr;
}

int64_t unlocked_get_size(nbd_handle& h) {
  return need_info(h) ? static_cast<int64_t>(h.exportsize) : -1;
}

int64_t unlocked_get_block_size(nbd_handle& h, int size_type) {
  if (!need_info(h))
    return -1;
  switch (size_type) {
    case LIBNBD_SIZE_MINIMUM:
      return h.block_minimum;
    case LIBNBD_SIZE_PREFERRED:
      return h.block_preferred;
    case LIBNBD_SIZE_PAYLOAD:
      return h.payload_maximum();
    default:
      return h.block_maximum;
  }
}

const char* unlocked_get_protocol(nbd_handle& h) {
  if (h.protocol == nullptr) {
    set_error(EINVAL, "the handshake has not got far enough to know the protocol");
    return nullptr;
  }
  return h.protocol;
}

char* unlocked_get_canonical_export_name(nbd_handle& h) {
  if (!need_info(h))
    return nullptr;
  if (!h.canonical_name) {
    set_error(ENOTSUP, "the server did not send a canonical name (nbd_set_full_info asks for one)");
    return nullptr;
  }
  return dup_string(*h.canonical_name);
}

char* unlocked_get_export_description(nbd_handle& h) {
  if (!need_info(h))
    return nullptr;
  if (!h.description) {
    set_error(ENOTSUP, "the server did not send a description (nbd_set_full_info asks for one)");
    return nullptr;
  }
  return dup_string(*h.description);
}

int unlocked_get_tls_negotiated(nbd_handle& h) { return h.tls_negotiated; }

int unlocked_get_structured_replies_negotiated(nbd_handle& h) { return h.structured_replies; }

int unlocked_get_extended_headers_negotiated(nbd_handle& h) { return h.extended_headers; }

uint64_t unlocked_stats_bytes_sent(nbd_handle& h) { return h.out.sent_offset(); }

}  // namespace nbd
