// server.cpp: connecting to servers and reading metadata extents.
#include "server.hpp"

#include <cerrno>
#include <cstring>

namespace nbdpp {

void fail(std::string_view what, const nbd::Error& e) {
  throw Failure(std::string{what} + ": " + e.what());
}

void set_limits(nbd::Handle& h, const Limits& limits) {
  h.set_timeout(limits.timeout_ms);
  if (limits.reconnect_delay_ms > 0)
    h.set_reconnect_delay(limits.reconnect_delay_ms);
}

void connect(nbd::Handle& h, const Operand& op, bool socket_activation, const Limits& limits) {
  try {
    set_limits(h, limits);
    // URIs may name certificate and PSK files (tls-certificates=, tls-psk-file=).
    h.set_uri_allow_local_file(true);
    if (op.kind == Operand::Kind::Uri)
      h.connect_uri(op.text);
    else if (socket_activation)
      h.connect_systemd_socket_activation(op.argv);
    else
      h.connect_command(op.argv);
  } catch (const nbd::Error& e) {
    fail(op.display(), e);
  }
}

std::optional<std::string> another_connection_uri(nbd::Handle& h, const Operand& op,
                                                  bool socket_activation) {
  if (op.kind == Operand::Kind::Uri)
    return op.text;
  if (!socket_activation)
    return std::nullopt;
  // The library made the listening socket and can name it.
  try {
    return h.get_uri();
  } catch (const nbd::Error&) {
    return std::nullopt;
  }
}

namespace {

void append(std::vector<Extent>& out, uint64_t offset, uint64_t length, uint32_t flags) {
  if (!out.empty() && out.back().flags == flags && out.back().offset + out.back().length == offset)
    out.back().length += length;
  else
    out.push_back(Extent{offset, length, flags});
}

}  // namespace

uint64_t fetch_extents(nbd::Handle& h, std::string_view context, uint64_t offset, uint64_t count,
                       std::vector<Extent>& out) {
  const uint64_t end = offset + count;
  uint64_t pos = offset;
  bool answered = false;
  h.block_status(count, offset,
                 [&](std::string_view metacontext, uint64_t start, std::span<uint32_t> entries,
                     int* error) {
                   // Servers answer once per negotiated context; only ours counts, and only its
                   // first answer (a compliant server sends one).
                   if (metacontext != context || answered || *error != 0)
                     return 0;
                   answered = true;
                   pos = start;
                   for (size_t i = 0; i + 1 < entries.size() && pos < end; i += 2) {
                     const uint64_t len = std::min<uint64_t>(entries[i], end - pos);
                     if (len == 0)
                       break;
                     append(out, pos, len, entries[i + 1]);
                     pos += len;
                   }
                   return 0;
                 });
  if (pos <= offset) {
    // A server that describes nothing would make the caller loop for ever.
    throw Failure("the server's block status reply for " + std::string{context} + " at offset " +
                  std::to_string(offset) + " describes no extent");
  }
  return pos;
}

}  // namespace nbdpp
