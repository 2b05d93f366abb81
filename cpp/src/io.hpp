// io.hpp: the only ways the state machine moves bytes: recv_into_rbuf and send_from_wbuf.
#pragma once

#include <cerrno>

#include "transport/transport.hpp"

struct nbd_handle;

namespace nbd {

// Whether a failed send or receive means the peer hung up (a reset or a broken pipe).
inline bool is_hang_up(int err) { return err == ECONNRESET || err == EPIPE; }

// Receives into [h.rbuf, h.rbuf + h.rlen), advancing both; small reads go through an internal
// buffer so one recv can carry several replies.
Io recv_into_rbuf(nbd_handle& h);

// Hands h.out to the transport as far as it takes it now (h.send_full says when it did not).
Io send_from_wbuf(nbd_handle& h);

}  // namespace nbd
