// handle.hpp: struct nbd_handle, the state behind every public call.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "buffer_pool.hpp"
#include "closure.hpp"
#include "fast_mutex.hpp"
#include "cmd/command.hpp"
#include "cmd/table.hpp"
#include "io.hpp"
#include "libnbd.h"
#include "state.hpp"
#include "state/blocking.hpp"
#include "state/reconnect.hpp"
#include "subprocess.hpp"
#include "transport/send_queue.hpp"
#include "transport/sender.hpp"
#include "transport/transport.hpp"
#include "uri.hpp"

// Field groups follow the life of a connection: settings chosen before connecting, then what
// the handshake and commands produce.  Fields are guarded by `lock` unless marked atomic.
struct nbd_handle {
  nbd_handle();
  ~nbd_handle();
  nbd_handle(const nbd_handle&) = delete;
  nbd_handle& operator=(const nbd_handle&) = delete;

  nbd::FastMutex lock;

  // Diagnostics.
  std::string name;  // "nbd1", "nbd2", ... unless set
  bool debug = false;
  nbd::Closure<nbd_debug_callback> debug_callback;
  bool debug_enabled() const { return debug; }

  // Not guarded: nbd_set_private_data and nbd_get_private_data take no lock.
  std::atomic<uintptr_t> private_data{0};

  // Settings for the handshake.
  std::string export_name;
  bool request_block_size = true;
  bool full_info = false;
  bool request_structured_replies = true;
  uint32_t handshake_flags = LIBNBD_HANDSHAKE_FLAG_MASK;
  bool opt_mode = false;
  std::vector<std::string> request_meta_contexts;

  // TLS settings.
  int tls = LIBNBD_TLS_DISABLE;
  std::string tls_certificates;  // empty: the system trust store
  bool tls_verify_peer = true;
  std::optional<std::string> tls_username;  // unset: the login name
  std::string tls_psk_file;

  // Command settings.
  bool pread_initialize = true;
  uint32_t strict = LIBNBD_STRICT_MASK;

  // What nbd_connect_uri accepts.
  uint32_t uri_allow_transports = LIBNBD_ALLOW_TRANSPORT_MASK;
  int uri_allow_tls = LIBNBD_TLS_ALLOW;
  bool uri_allow_local_file = false;

  // Settings of libnbd 1.16-1.22.  The generated setters store them and the getters
  // read them (api.yaml `setting:`), except the hand-written ones named below.
  // Socket activation passes it in LISTEN_FDNAMES ("": "unknown"); nbd_set_socket_activation_name
  // checks it.
  std::string socket_activation_name;
  // Checked against the certificate and sent as SNI; "": the TCP host connected to, if any.
  // nbd_get_tls_hostname reports tls_hostname_in_effect.
  std::string tls_hostname;
  bool request_meta_context = true;       // connect / opt_go / opt_info select meta contexts
  bool request_extended_headers = true;   // the handshake asks for NBD_OPT_EXTENDED_HEADERS

  // Traffic statistics (nbd_stats_*): plaintext protocol bytes and messages ("chunks") in each
  // direction, counted by the core as it sends and receives.  Bytes sent are h.out's sent
  // offset.  A chunk received is the greeting or one reply header in transmission (option
  // replies do not count, as in libnbd); a chunk sent is one option or one request.
  uint64_t chunks_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t chunks_received = 0;

  // Where sent bytes go (transport/sender.hpp): straight to the socket, or through a
  // concurrent writer (nbd_set_concurrent_writer, nbd_start_concurrent_writer), whose
  // failures and wake-ups come through writer_signal from other threads.  has_writer: one
  // of them was set, for good.
  nbd::WriterSignal writer_signal;
  // Bounds on blocking calls (state/blocking.hpp): nbd_set_timeout's limit, 0 for none, and
  // nbd_interrupt's target.
  uint64_t timeout_ms = 0;
  nbd::Interrupt interrupt;
  std::unique_ptr<nbd::Sender> sender = nbd::make_direct_sender();
  bool has_writer = false;
  // Reconnection (state/reconnect.hpp): nbd_set_reconnect_delay's setting, the count of
  // reconnections made, and the one in progress.
  uint64_t reconnect_delay_ms = 0;
  uint64_t reconnections = 0;
  nbd::Reconnection reconnect;

  // Connection state.  `state` is the state machine's own; `public_state` is what it was when
  // the last public call returned, for the calls that take no lock (nbd_aio_is_*).
  nbd::State state = nbd::State::Created;
  std::atomic<nbd::State> public_state{nbd::State::Created};
  std::atomic<unsigned> public_direction{0};

  void publish_state();

  // ---- The connection ----
  std::unique_ptr<nbd::Transport> sock;  // a TLS transport (sock->tls()) once STARTTLS succeeded
  // What the connect calls start outside the process, subprocess and sa_dir, are the last
  // fields: see there.
  std::optional<nbd::ParsedUri> uri_info;  // what nbd_get_uri reports (export name added then)
  nbd::ConnectTarget target;  // where the connect call connected, to do it again
  int connect_errno = 0;     // why the last address failed

  // Receiving: rbuf/rlen is the current target of recv_into_rbuf; inbuf holds bytes read
  // ahead, [in_pos, in_end) of it, and is held only while commands are in flight or bytes
  // are still to come (buffer_pool.hpp).
  unsigned char* rbuf = nullptr;
  size_t rlen = 0;
  nbd::PoolBuffer inbuf;
  size_t in_pos = 0;
  size_t in_end = 0;
  bool peek_headers = false;  // large payloads are coming: read no further than a header
  bool direct_rest = false;   // part of the target went straight into it: so does the rest

  unsigned char scratch[256];     // fixed-size headers are received here
  std::vector<unsigned char> payload;  // variable-length replies and option payloads

  // Gives back what only a busy connection needs (buffers, room for many commands): called
  // when no command is left in flight or the connection ends.
  void release_idle_memory();
  // Forgets what the server said of an export (size, flags, block sizes, names): before
  // asking again (NBD_OPT_GO, NBD_OPT_INFO), or when the export name changes.
  void forget_export_info();
  // Forgets what options the server agreed to (structured replies, extended headers, meta
  // contexts, export info): after STARTTLS, where nothing agreed in plaintext survives.
  void forget_negotiation();

  // Sending: the bytes the handle has queued and not yet handed to sock.
  nbd::SendQueue out;
  // Commands answered while the sender still uses their write payload (Sender::released):
  // they complete once it is done with it (complete_released).
  std::vector<uint64_t> unreleased;
  // The last send filled the socket: new requests only queue until it is writable again (a
  // poll or notify), instead of each trying a send that would fail with EAGAIN.
  bool send_full = false;

  // ---- What the handshake learnt ----
  const char* protocol = nullptr;  // "oldstyle", "newstyle", "newstyle-fixed"
  uint16_t gflags = 0;
  bool have_info = false;          // size and eflags are known
  uint64_t exportsize = 0;
  uint16_t eflags = 0;
  bool structured_replies = false;
  bool extended_headers = false;   // implies structured_replies
  bool tls_negotiated = false;
  uint32_t block_minimum = 0, block_preferred = 0, block_maximum = 0;
  // The largest write payload the client sends (LIBNBD_SIZE_PAYLOAD, LIBNBD_STRICT_PAYLOAD):
  // the server's maximum kept within [1 MiB, 64 MiB], since proto.md lets a client send 1 MiB
  // even to a smaller export; 32 MiB when the server names no maximum (as libnbd).
  uint32_t payload_maximum() const {
    constexpr uint32_t kMiB = 1024 * 1024;
    if (block_maximum == 0)
      return 32 * kMiB;
    return block_maximum < kMiB ? kMiB : (block_maximum > 64 * kMiB ? 64 * kMiB : block_maximum);
  }
  std::optional<std::string> canonical_name;
  std::optional<std::string> description;
  using MetaContext = nbd::MetaContext;
  std::vector<MetaContext> meta_contexts;  // negotiated by NBD_OPT_SET_META_CONTEXT
  const MetaContext* meta_context_named(const char* name) const;  // nullptr if not negotiated
  const MetaContext* meta_context_with_id(uint32_t id) const;
  bool meta_valid = false;                 // meta_contexts belongs to the current export

  // ---- The option in progress (handshake and opt mode; state/options.cpp drives it) ----
  std::vector<uint32_t> opt_todo;  // options to send, in order (a deque would cost 576 bytes)
  uint32_t opt_current = 0;        // the option awaiting its reply
  bool opt_user = false;           // started by an opt_* call (else by the automatic handshake)
  int opt_error = 0;               // errno of the last option's failure (0: it succeeded)
  int opt_count = 0;               // replies seen by nbd_opt_list / nbd_opt_list_meta_context
  // What the caller's nbd_opt_* call hands over for its option, kept together until the
  // option ends (or the handle closes) and freed together by reset.
  struct OptionCallbacks {
    nbd::Closure<nbd_completion_callback> completion;
    nbd::Closure<nbd_list_callback> list;
    nbd::Closure<nbd_context_callback> context;
    // The queries of nbd_opt_*_meta_context_queries; unset: request_meta_contexts.
    std::optional<std::vector<std::string>> queries;
    // Frees them all; the completion's free runs last, as for commands.
    void reset() {
      list.reset();
      context.reset();
      completion.reset();
      queries.reset();
    }
    OptionCallbacks() = default;
    OptionCallbacks(const OptionCallbacks&) = delete;
    OptionCallbacks& operator=(const OptionCallbacks&) = delete;
    ~OptionCallbacks() { reset(); }
  };
  OptionCallbacks opt_callbacks;
  uint32_t reply_type = 0;         // option reply header fields
  uint32_t reply_len = 0;

  // ---- Commands ----
  uint64_t next_cookie = 1;
  nbd::CommandTable cmds;                                            // issued, not yet complete
  nbd::CommandList cmds_done;                                        // complete, not retired
  nbd::CommandPool cmd_pool;                                         // retired, for reuse
  // NBD_CMD_DISC: requested by the caller (new commands are refused from then on), and queued
  // for the server.  The request is held back until every command in flight has its reply:
  // a server may stop handling requests it has already read once it reads the disconnect
  // (nbdkit answers them ESHUTDOWN), and their data would be lost.
  bool disconnect_requested = false;
  bool disconnect_queued = false;
  uint32_t disconnect_flags = 0;
  // Reader side of the connected state: the reply being received.
  nbd::ReplyState rstate = nbd::ReplyState::Header;
  nbd::Command* rcmd = nullptr;  // the command the current reply belongs to
  uint16_t rflags = 0, rtype = 0;
  uint32_t rlength = 0;
  uint64_t roffset = 0;          // offset of the current data chunk
  bool rskip = false;            // the current chunk is read only to be dropped

  // ---- Outside the process ----
  // Declared last so they go first, right after the destructor has closed the socket, and
  // in this order: the server is reaped before the directory holding its socket is removed.
  nbd::TmpDir sa_dir;         // socket activation: temporary directory holding the socket
  nbd::Subprocess subprocess;  // server started by nbd_connect_command & co., reaped at close
};

namespace nbd {

// The state group the API sees: a reconnecting handle stays connected, whichever handshake
// state its attempt is in.
inline uint32_t public_group(const nbd_handle& h) {
  return h.reconnect.active ? kConnected : state_group(h.state);
}

// The name a TLS session checks the server's certificate against and sends as SNI, as
// nbd_get_tls_hostname reports it: the one set with nbd_set_tls_hostname (or tls-hostname= in
// a URI), else the TCP host connected to; empty (the chain alone is checked) on a Unix
// socket, vsock, a command or ssh, where no host name names the NBD server.
std::string tls_hostname_in_effect(const nbd_handle& h);

}  // namespace nbd
