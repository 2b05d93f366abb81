// status.cpp: calls that report the handle's state or the library's identity.
// The nbd_aio_is_* calls take no lock: they read the state published when the last locked call
// returned.
#include "handle.hpp"
#include "unlocked.hpp"

namespace nbd {
namespace {

State published(const nbd_handle& h) { return h.public_state.load(std::memory_order_acquire); }

}  // namespace

int unlocked_aio_is_created(nbd_handle& h) { return published(h) == State::Created; }
int unlocked_aio_is_connecting(nbd_handle& h) { return state_group(published(h)) == kConnecting; }
int unlocked_aio_is_negotiating(nbd_handle& h) { return published(h) == State::Negotiating; }
int unlocked_aio_is_ready(nbd_handle& h) { return published(h) == State::Ready; }
// A reconnecting handle is busy with the commands in flight: "processing".
int unlocked_aio_is_processing(nbd_handle& h) {
  const State s = published(h);
  return s == State::Processing || s == State::Reconnect;
}
int unlocked_aio_is_dead(nbd_handle& h) { return published(h) == State::Dead; }
int unlocked_aio_is_closed(nbd_handle& h) { return published(h) == State::Closed; }

unsigned unlocked_aio_get_direction(nbd_handle& h) {
  return h.public_direction.load(std::memory_order_acquire);
}

const char* unlocked_connection_state(nbd_handle& h) {
  return state_summary(h.reconnect.active ? State::Reconnect : h.state);
}

const char* unlocked_get_package_name(nbd_handle&) { return NBDPP_PACKAGE_NAME; }

const char* unlocked_get_version(nbd_handle&) { return NBDPP_LIBRARY_VERSION; }

// The packager's note (CMake -DNBDPP_EXTRA_VERSION=..., libnbd's configure --with-extra).
const char* unlocked_get_version_extra(nbd_handle&) { return NBDPP_EXTRA_VERSION; }

int unlocked_supports_tls(nbd_handle&) { return 1; }

int unlocked_supports_uri(nbd_handle&) { return 1; }

// connect.cpp builds AF_VSOCK addresses unconditionally (<linux/vm_sockets.h>).
int unlocked_supports_vsock(nbd_handle&) { return 1; }

}  // namespace nbd
