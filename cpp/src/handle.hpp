// handle.hpp: struct nbd_handle, the state behind every public call.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "closure.hpp"
#include "libnbd.h"
#include "state.hpp"

// Field groups follow the life of a connection: settings chosen before connecting, then what
// the handshake and commands produce.  Fields are guarded by `lock` unless marked atomic.
struct nbd_handle {
  nbd_handle();
  ~nbd_handle();
  nbd_handle(const nbd_handle&) = delete;
  nbd_handle& operator=(const nbd_handle&) = delete;

  std::mutex lock;

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

  // The concurrent writer (nbd_set_concurrent_writer).  writer_error is written by any thread
  // without the lock, so it is atomic; only its first non-zero value counts.
  nbd::Closure<nbd_writer_callback> writer;
  std::atomic<int> writer_error{0};

  // Connection state.  `state` is the state machine's own; `public_state` is what it was when
  // the last public call returned, for the calls that take no lock (nbd_aio_is_*).
  nbd::State state = nbd::State::Created;
  std::atomic<nbd::State> public_state{nbd::State::Created};
  std::atomic<unsigned> public_direction{0};

  void publish_state() { public_state.store(state, std::memory_order_release); }
};
