// handle.cpp: creating and closing handles, and the calls that need no handle.
#include "handle.hpp"

#include <cstdlib>
#include <cstring>

#include "debug.hpp"
#include "error.hpp"
#include "unlocked.hpp"
#include "util.hpp"

namespace {

std::atomic<unsigned> g_handle_count{0};

}  // namespace

nbd_handle::nbd_handle() : name("nbd" + std::to_string(++g_handle_count)) {
  const char* env = std::getenv("LIBNBD_DEBUG");
  debug = env != nullptr && std::strcmp(env, "1") == 0;
}

nbd_handle::~nbd_handle() {
  // The sender goes first: a writer's thread may still be sending from its queue (write
  // payloads included, which a command's free callback may release) or to the socket.  The
  // socket is shut down before, so a send blocked in a writer's thread returns and the
  // writer's free function may wait for that thread to end.
  if (sock)
    sender->connection_over(std::move(sock));
  sender.reset();
  // Commands still in flight are dropped: their closures are freed (never called).  Their
  // buffers are not touched: a program may already have released them, as libnbd allows.
  cmds.clear();
  cmds_done.clear();
  // Closing the socket tells a server on a socketpair (nbd_connect_command) to exit; a
  // socket-activated server keeps listening, so it is asked to stop straight away.  Both are
  // reaped by subprocess, destroyed first of all the fields, and then sa_dir goes.
  sock.reset();
}

const nbd_handle::MetaContext* nbd_handle::meta_context_named(const char* wanted) const {
  for (const MetaContext& m : meta_contexts)
    if (m.name == wanted)
      return &m;
  return nullptr;
}

const nbd_handle::MetaContext* nbd_handle::meta_context_with_id(uint32_t id) const {
  for (const MetaContext& m : meta_contexts)
    if (m.id == id)
      return &m;
  return nullptr;
}

void nbd_handle::release_idle_memory() {
  // inbuf is not here: it goes back when the socket runs dry with no command in flight
  // (recv_into_rbuf).
  out.trim();
  // Small ones stay (a request at a time would allocate them again and again).
  if (payload.capacity() > 1024)  // block status and error chunks can be large
    nbd::release_storage(payload);
  cmds.shrink();
  cmd_pool.trim();
}

void nbd_handle::forget_negotiation() {
  structured_replies = false;
  extended_headers = false;
  meta_valid = false;
  meta_contexts.clear();
  have_info = false;
}

void nbd_handle::forget_export_info() {
  have_info = false;
  exportsize = 0;
  eflags = 0;
  canonical_name.reset();
  description.reset();
  block_minimum = block_preferred = block_maximum = 0;
}

namespace nbd {

std::string tls_hostname_in_effect(const nbd_handle& h) {
  if (!h.tls_hostname.empty())
    return h.tls_hostname;
  if (h.uri_info && h.uri_info->transport == ParsedUri::Transport::Tcp)
    return h.uri_info->host;
  return "";
}

nbd_handle* unlocked_create() {
  auto* h = new nbd_handle;
  if (h->debug_enabled())
    debug(*h, "opening handle");
  return h;
}

void unlocked_close(nbd_handle* h) {
  if (h == nullptr)
    return;
  ApiScope scope{"nbd_close"};
  if (h->debug_enabled())
    debug(*h, "closing handle");
  // Destruction frees every closure the handle still owns, each exactly once.
  delete h;
}

const char* unlocked_get_error() { return last_error(); }

int unlocked_get_errno() { return last_errno(); }

}  // namespace nbd
