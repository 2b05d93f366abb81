// handshake.cpp: what every handshake state shares: receiving, hang-ups, protocol errors, and
// recording the export's size and flags (proto.md "Handshake").  The states themselves are in
// greeting.cpp, options.cpp, option_go.cpp, option_list.cpp and starttls.cpp.
#include "state/handshake.hpp"

#include <cerrno>
#include <cinttypes>
#include <climits>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;

Transition recv_failed(const nbd_handle& h, Io io) {
  if (io == Io::Eof || (io == Io::Error && is_hang_up(last_errno())))
    return hung_up(h);
  return Transition::Fail;
}

}  // namespace

void expect(nbd_handle& h, size_t len) {
  h.rbuf = h.scratch;
  h.rlen = len;
}

// Right after TLS is up a hang-up is how a server refuses a client certificate under TLS 1.3
// (the client's side of the TLS handshake already finished), so the error says so, with one
// errno whichever way the hang-up showed.
Transition hung_up(const nbd_handle& h) {
  if (h.tls_negotiated)
    set_error(ECONNRESET, "handshake: the server closed the connection after TLS was set up "
                          "(did it refuse the client certificate?)");
  else
    set_error(ECONNRESET, "server closed the connection during the handshake");
  return Transition::Fail;
}

std::optional<Transition> receive(nbd_handle& h) {
  const Io io = recv_into_rbuf(h);
  if (io == Io::Done)
    return std::nullopt;
  if (io == Io::Again)
    return Transition::Block;
  return recv_failed(h, io);
}

Transition protocol_error(const char* what) {
  set_error(EPROTO, "handshake: %s", what);
  return Transition::Fail;
}

bool tls_required(const nbd_handle& h) { return h.tls == LIBNBD_TLS_REQUIRE; }

bool set_export_info(nbd_handle& h, uint64_t size, uint16_t eflags) {
  if (size > static_cast<uint64_t>(INT64_MAX)) {
    set_error(EOVERFLOW, "server export size %" PRIu64 " is larger than INT64_MAX", size);
    return false;
  }
  // NBD_FLAG_HAS_FLAGS must always be set (proto.md "Transmission flags"); as libnbd, only
  // flags of 0 are refused.
  if (eflags == 0) {
    set_error(EINVAL, "handshake: the server sent transmission flags of 0");
    return false;
  }
  // Flags that contradict each other are dropped, as libnbd does: DF needs structured
  // replies, fast zero needs write zeroes.
  if ((eflags & kFlagSendDf) != 0 && !h.structured_replies) {
    if (h.debug_enabled())
      debug(h, "the server lacks structured replies: ignoring its DF flag");
    eflags &= static_cast<uint16_t>(~kFlagSendDf);
  }
  if ((eflags & kFlagSendFastZero) != 0 && (eflags & kFlagSendWriteZeroes) == 0) {
    if (h.debug_enabled())
      debug(h, "the server lacks write zeroes: ignoring its fast zero flag");
    eflags &= static_cast<uint16_t>(~kFlagSendFastZero);
  }
  if ((eflags & kFlagBlockStatusPayload) != 0 && !h.extended_headers) {
    if (h.debug_enabled())
      debug(h, "the server lacks extended headers: ignoring its block status payload flag");
    eflags &= static_cast<uint16_t>(~kFlagBlockStatusPayload);
  }
  // With nothing to ask for, the (empty) set of contexts is as valid as a negotiated one.
  if (h.request_meta_context && (!h.structured_replies || h.request_meta_contexts.empty()))
    h.meta_valid = true;
  h.exportsize = size;
  h.eflags = eflags;
  h.have_info = true;
  return true;
}

}  // namespace nbd
