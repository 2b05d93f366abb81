// handshake.hpp: what the handshake's files share (handshake.cpp, greeting.cpp, options.cpp,
// option_go.cpp, option_list.cpp, starttls.cpp): receiving and failing during the handshake,
// and the record that says how each option is sent, read and ended (proto.md "Option
// haggling").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "state/machine.hpp"

namespace nbd {

// ---- Receiving and failing (handshake.cpp) ----

// The next len bytes go to h.scratch.
void expect(nbd_handle& h, size_t len);
// Receives into rbuf: nullopt once it is complete, otherwise the transition to return now.
std::optional<Transition> receive(nbd_handle& h);
// The server hung up (EOF, a reset or a broken pipe): records why, returns Fail.
Transition hung_up(const nbd_handle& h);
// Records EPROTO "handshake: <what>" and returns Fail.
Transition protocol_error(const char* what);
bool tls_required(const nbd_handle& h);
// Records the export's size and flags from the handshake.  false (error recorded) if the
// server's values cannot be used.
bool set_export_info(nbd_handle& h, uint64_t size, uint16_t eflags);

// ---- Options ----

// An error reply to the current option: its NBD_REP_ERR_* type and the server's message.
struct Refusal {
  uint32_t type;
  std::string message;
  // ": <message>", or "" without one, for the error text.
  const char* separator() const { return message.empty() ? "" : ": "; }
  // The errno of a refusal that leaves the connection as it was (nbd_opt_starttls and the
  // like report false with it).
  int harmless_errno() const;
};

// How one option is handled, from its request to its end.  A null reader makes that reply
// type a protocol error for the option; a null ack makes NBD_REP_ACK one.
struct OptionHandler {
  uint32_t opt = 0;
  // Whether the automatic handshake leaves it out now (null: never).
  bool (*skip)(const nbd_handle& h) = nullptr;
  // NBD_OPT_GO and NBD_OPT_INFO choose an export: the metadata contexts are set just before
  // them, and their refusals name the export.
  bool selects_export = false;
  // The request's data; may forget what the answer will replace (null: no data).
  std::string (*request)(nbd_handle& h) = nullptr;
  // Once the request has gone (null: wait for its first reply header).
  Transition (*sent)(nbd_handle& h) = nullptr;
  // NBD_REP_INFO, NBD_REP_SERVER and NBD_REP_META_CONTEXT, each followed by more replies;
  // false: the connection fails (error recorded).  The last two get at least their fixed part.
  bool (*read_info)(nbd_handle& h, std::span<const unsigned char> p) = nullptr;
  bool (*read_server)(nbd_handle& h, std::span<const unsigned char> p) = nullptr;
  bool (*read_meta_context)(nbd_handle& h, std::span<const unsigned char> p) = nullptr;
  // How it ends: NBD_REP_ACK, or an error reply (null: refuse_option with refusal_errno).
  Transition (*ack)(nbd_handle& h) = nullptr;
  Transition (*refused)(nbd_handle& h, const Refusal& r) = nullptr;
};

// The records, each beside the code it names.
extern const OptionHandler kExportNameOption, kGoOption, kInfoOption;                // option_go.cpp
extern const OptionHandler kListOption, kListMetaContextOption, kSetMetaContextOption;  // option_list.cpp
extern const OptionHandler kStartTlsOption;                                          // starttls.cpp
// options.cpp holds NBD_OPT_STRUCTURED_REPLY, NBD_OPT_EXTENDED_HEADERS, NBD_OPT_ABORT and the
// handler of opt 0, which stands for the client flags sent with no option after them.

// The option driver (options.cpp).
// Sends the next queued option, or decides what follows when none is left.
Transition next_option(nbd_handle& h);
// The current option succeeded (or was refused harmlessly): the caller's option ends here,
// the automatic handshake goes on with the next one.
Transition option_done(nbd_handle& h, int err);
// Whether the current option is the caller's own (opt mode), not one the handshake or the
// caller's nbd_opt_go or nbd_opt_info sends first by itself.
bool ends_user_option(const nbd_handle& h);
// Ends the caller's option (opt mode): runs its completion and frees its callbacks.
void finish_user_option(nbd_handle& h, int err);
// A refusal that ends the option with err: the error is recorded; the automatic handshake
// fails, the caller's option returns to negotiating.
Transition refuse_option(nbd_handle& h, const Refusal& r, int err);
// The errno of a refusal, as libnbd gives it.
int refusal_errno(uint32_t type);

}  // namespace nbd
