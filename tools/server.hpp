// server.hpp: connecting nbd::Handles to an operand (a URI or a server command), and reading
// an export's metadata extents with block status.
#pragma once

#include <nbd/nbd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"

namespace nbdpp {

// Sets limits on h, before it connects (nbd_set_timeout, nbd_set_reconnect_delay).
void set_limits(nbd::Handle& h, const Limits& limits);

// Connects h, configured beforehand (opt mode, metadata contexts...), to op: a URI with
// connect_uri (which may name TLS files), a command with connect_command (the server speaks
// NBD on its stdin/stdout, e.g. `nbdkit -s`) or, with socket_activation, with
// connect_systemd_socket_activation.  Sets limits first.  Throws Failure naming op.
void connect(nbd::Handle& h, const Operand& op, bool socket_activation, const Limits& limits);

// A URI that reaches the same server as h for one more connection: op's URI, or the socket of
// a server started with socket activation.  nullopt when there is none: a server on a command's
// stdin/stdout serves that one connection only.
std::optional<std::string> another_connection_uri(nbd::Handle& h, const Operand& op,
                                                  bool socket_activation);

// Failure("WHAT: nbd_CALL: message") from an nbd::Error.
[[noreturn]] void fail(std::string_view what, const nbd::Error& e);

// One run of an export with the same metadata flags.
struct Extent {
  uint64_t offset;
  uint64_t length;
  uint32_t flags;
};

// One block status command for context over [offset, offset + count): appends what the server
// reports, clipped to that range, to out (joining runs of equal flags, also with out's last
// extent) and returns where the answer ends, which is past offset.  The context must have
// been negotiated (nbd_can_meta_context).
uint64_t fetch_extents(nbd::Handle& h, std::string_view context, uint64_t offset, uint64_t count,
                       std::vector<Extent>& out);

// The largest block status request worth sending: the reply covers at most this much anyway,
// and NBD lengths are 32 bits.
inline constexpr uint64_t kMaxBlockStatus = uint64_t{1} << 30;

}  // namespace nbdpp
