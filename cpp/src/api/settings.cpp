// settings.cpp: setting calls with more to do than store or read a field (the plain ones are
// generated from api.yaml's `setting:` into the build tree's settings.cpp).
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

// Longest export or metadata context name the protocol allows (proto.md caps strings at 4096).
constexpr size_t kMaxName = 4096;
// Longest socket activation name libnbd accepts (LISTEN_FDNAMES, sd_listen_fds_with_names(3)).
constexpr size_t kMaxSocketActivationName = 32;

}  // namespace

int unlocked_set_debug_callback(nbd_handle& h, Closure<nbd_debug_callback>& debug_callback) {
  h.debug_callback = std::move(debug_callback);
  return 0;
}

int unlocked_clear_debug_callback(nbd_handle& h) {
  h.debug_callback.reset();
  return 0;
}

uintptr_t unlocked_set_private_data(nbd_handle& h, uintptr_t private_data) {
  return h.private_data.exchange(private_data);
}

uintptr_t unlocked_get_private_data(nbd_handle& h) { return h.private_data.load(); }

int unlocked_set_export_name(nbd_handle& h, const char* export_name) {
  if (std::strlen(export_name) > kMaxName)
    return set_error(ENAMETOOLONG, "export name too long for NBD protocol");
  // Another export: what the server said of the last one (nbd_opt_info) and the contexts
  // it selected no longer hold, as in libnbd.
  if (h.export_name != export_name) {
    h.export_name = export_name;
    h.forget_export_info();
    h.meta_valid = false;
  }
  return 0;
}

// The same limits as libnbd: at most 32 ASCII letters or digits; "" clears the name.
int unlocked_set_socket_activation_name(nbd_handle& h, const char* socket_name) {
  const size_t len = std::strlen(socket_name);
  if (len > kMaxSocketActivationName)
    return set_error(ENAMETOOLONG, "socket activation name should be <= %zu characters",
                     kMaxSocketActivationName);
  for (size_t i = 0; i < len; ++i) {
    const char c = socket_name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return set_error(EINVAL, "socket activation name should contain only alphanumeric ASCII "
                               "characters");
  }
  h.socket_activation_name = socket_name;
  return 0;
}

char* unlocked_get_tls_hostname(nbd_handle& h) { return dup_string(tls_hostname_in_effect(h)); }

char* unlocked_get_tls_username(nbd_handle& h) {
  if (h.tls_username)
    return dup_string(*h.tls_username);
  // Unset means the login name, as for ssh.
  char login[LOGIN_NAME_MAX + 1];
  const int r = getlogin_r(login, sizeof login);
  if (r != 0) {
    set_error(r, "getlogin_r");
    return nullptr;
  }
  return dup_string(login);
}

uint32_t unlocked_get_handshake_flags(nbd_handle& h) {
  // Once the server's flags arrived, the ones both sides agreed on (h.gflags); before, the
  // ones the client is prepared to use.
  return h.protocol != nullptr ? h.gflags : h.handshake_flags;
}

int unlocked_add_meta_context(nbd_handle& h, const char* name) {
  if (std::strlen(name) > kMaxName)
    return set_error(ENAMETOOLONG, "meta context name too long for NBD protocol");
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

int unlocked_set_reconnect_delay(nbd_handle& h, uint64_t delay_ms) {
  if (delay_ms != 0 && h.target.kind == ConnectTarget::Kind::Socket)
    return set_error(ENOTSUP, "a connection made with nbd_connect_socket cannot be made again");
  if (delay_ms != 0 && h.has_writer)
    return set_error(ENOTSUP, "a handle with a concurrent writer cannot connect again: its "
                              "writer is bound to one socket");
  h.reconnect_delay_ms = delay_ms;
  return 0;
}

}  // namespace nbd
