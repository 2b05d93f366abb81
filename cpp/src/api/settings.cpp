// settings.cpp: calls that only store or read a setting of the handle.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "error.hpp"
#include "handle.hpp"
#include "unlocked.hpp"
#include "util.hpp"

namespace nbd {
namespace {

// Longest export name the protocol allows (proto.md: "NBD_OPT_EXPORT_NAME" et al. cap it at 4096).
constexpr size_t kMaxExportName = 4096;

}  // namespace

int unlocked_set_debug(nbd_handle& h, bool debug) {
  h.debug = debug;
  return 0;
}

int unlocked_get_debug(nbd_handle& h) { return h.debug; }

int unlocked_set_debug_callback(nbd_handle& h, Closure<nbd_debug_callback>& debug_callback) {
  h.debug_callback = std::move(debug_callback);
  return 0;
}

int unlocked_clear_debug_callback(nbd_handle& h) {
  h.debug_callback.reset();
  return 0;
}

int unlocked_set_handle_name(nbd_handle& h, const char* handle_name) {
  h.name = handle_name;
  return 0;
}

char* unlocked_get_handle_name(nbd_handle& h) { return dup_string(h.name); }

uintptr_t unlocked_set_private_data(nbd_handle& h, uintptr_t private_data) {
  return h.private_data.exchange(private_data);
}

uintptr_t unlocked_get_private_data(nbd_handle& h) { return h.private_data.load(); }

int unlocked_set_export_name(nbd_handle& h, const char* export_name) {
  if (std::strlen(export_name) > kMaxExportName)
    return set_error(ENAMETOOLONG, "export name too long for NBD protocol");
  h.export_name = export_name;
  return 0;
}

char* unlocked_get_export_name(nbd_handle& h) { return dup_string(h.export_name); }

int unlocked_set_request_block_size(nbd_handle& h, bool request) {
  h.request_block_size = request;
  return 0;
}

int unlocked_get_request_block_size(nbd_handle& h) { return h.request_block_size; }

int unlocked_set_full_info(nbd_handle& h, bool request) {
  h.full_info = request;
  return 0;
}

int unlocked_get_full_info(nbd_handle& h) { return h.full_info; }

int unlocked_set_tls(nbd_handle& h, int tls) {
  h.tls = tls;
  return 0;
}

int unlocked_get_tls(nbd_handle& h) { return h.tls; }

int unlocked_set_tls_certificates(nbd_handle& h, const char* dir) {
  h.tls_certificates = dir;
  return 0;
}

int unlocked_set_tls_verify_peer(nbd_handle& h, bool verify) {
  h.tls_verify_peer = verify;
  return 0;
}

int unlocked_get_tls_verify_peer(nbd_handle& h) { return h.tls_verify_peer; }

int unlocked_set_tls_username(nbd_handle& h, const char* username) {
  h.tls_username = username;
  return 0;
}

char* unlocked_get_tls_username(nbd_handle& h) {
  if (h.tls_username)
    return dup_string(*h.tls_username);
  // Unset means the login name, as for ssh.
  char login[LOGIN_NAME_MAX + 1];
  const int r = getlogin_r(login, sizeof login);
  if (r != 0) {
    set_error(r, "getlogin_r: %s", std::strerror(r));
    return nullptr;
  }
  return dup_string(login);
}

int unlocked_set_tls_psk_file(nbd_handle& h, const char* filename) {
  h.tls_psk_file = filename;
  return 0;
}

int unlocked_set_request_structured_replies(nbd_handle& h, bool request) {
  h.request_structured_replies = request;
  return 0;
}

int unlocked_get_request_structured_replies(nbd_handle& h) { return h.request_structured_replies; }

int unlocked_set_handshake_flags(nbd_handle& h, uint32_t flags) {
  h.handshake_flags = flags;
  return 0;
}

uint32_t unlocked_get_handshake_flags(nbd_handle& h) { return h.handshake_flags; }

int unlocked_set_pread_initialize(nbd_handle& h, bool request) {
  h.pread_initialize = request;
  return 0;
}

int unlocked_get_pread_initialize(nbd_handle& h) { return h.pread_initialize; }

int unlocked_set_strict_mode(nbd_handle& h, uint32_t flags) {
  h.strict = flags;
  return 0;
}

uint32_t unlocked_get_strict_mode(nbd_handle& h) { return h.strict; }

int unlocked_set_opt_mode(nbd_handle& h, bool enable) {
  h.opt_mode = enable;
  return 0;
}

int unlocked_get_opt_mode(nbd_handle& h) { return h.opt_mode; }

int unlocked_add_meta_context(nbd_handle& h, const char* name) {
  h.request_meta_contexts.emplace_back(name);
  return 0;
}

ssize_t unlocked_get_nr_meta_contexts(nbd_handle& h) {
  return static_cast<ssize_t>(h.request_meta_contexts.size());
}

char* unlocked_get_meta_context(nbd_handle& h, size_t i) {
  if (i >= h.request_meta_contexts.size()) {
    set_error(EINVAL, "meta context request out of range");
    return nullptr;
  }
  return dup_string(h.request_meta_contexts[i]);
}

int unlocked_clear_meta_contexts(nbd_handle& h) {
  h.request_meta_contexts.clear();
  return 0;
}

int unlocked_set_uri_allow_transports(nbd_handle& h, uint32_t mask) {
  h.uri_allow_transports = mask;
  return 0;
}

int unlocked_set_uri_allow_tls(nbd_handle& h, int tls) {
  h.uri_allow_tls = tls;
  return 0;
}

int unlocked_set_uri_allow_local_file(nbd_handle& h, bool allow) {
  h.uri_allow_local_file = allow;
  return 0;
}

}  // namespace nbd
