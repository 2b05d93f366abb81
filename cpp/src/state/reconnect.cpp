// reconnect.cpp: connecting again after a lost connection (nbd_set_reconnect_delay).  The
// commands in flight stay in h.cmds; the handshake runs again through the usual states, with
// the lost connection's settings; once it reaches transmission, the export is checked against
// what the commands relied on and every command without its reply is sent again.
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <string>
#include <vector>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"

namespace nbd {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kFirstBackoffMs = 20;
constexpr uint32_t kMaxBackoffMs = 1000;

// Transmission flags a command may have relied on: none may go away.
constexpr uint16_t kReliedFlags = proto::kFlagSendFlush | proto::kFlagSendFua | proto::kFlagSendTrim |
                                  proto::kFlagSendWriteZeroes | proto::kFlagSendDf |
                                  proto::kFlagSendCache | proto::kFlagSendFastZero |
                                  proto::kFlagBlockStatusPayload;

// The errors of a connection that was lost, rather than of a server that broke the protocol
// (EPROTO and the like), which is not asked again.
bool lost_connection(int err) {
  switch (err) {
    case ENOTCONN:  // the server closed the connection
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ESHUTDOWN:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case ENETRESET:
      return true;
    default:
      return false;
  }
}

// The last error's message without the name of the call it was recorded in.
std::string last_error_text() {
  const char* e = last_error();
  if (e == nullptr)
    return "";
  std::string s = e;
  const char* call = current_call();
  if (call != nullptr && s.starts_with(std::string(call) + ": "))
    s.erase(0, std::strlen(call) + 2);
  return s;
}

ExportFacts facts_of(const nbd_handle& h) {
  ExportFacts f;
  f.size = h.exportsize;
  f.eflags = h.eflags;
  f.structured_replies = h.structured_replies;
  f.extended_headers = h.extended_headers;
  f.tls = h.tls_negotiated;
  f.block_minimum = h.block_minimum;
  f.block_maximum = h.block_maximum;
  f.meta_valid = h.meta_valid;
  f.contexts = h.meta_contexts;
  return f;
}

// The handshake of a reconnection asks for what the lost connection had, and no more: a
// server that now offers extended headers where it did not before would change how the
// commands are sent again.
void use_reconnect_settings(nbd_handle& h) {
  HandshakeSettings& s = h.reconnect.saved;
  const ExportFacts& f = h.reconnect.before;
  s.opt_mode = std::exchange(h.opt_mode, false);
  s.request_meta_context = std::exchange(h.request_meta_context, !f.contexts.empty());
  std::vector<std::string> names;
  for (const MetaContext& c : f.contexts)
    names.push_back(c.name);
  s.meta_contexts = std::exchange(h.request_meta_contexts, std::move(names));
  s.structured_replies = std::exchange(h.request_structured_replies, f.structured_replies);
  s.extended_headers = std::exchange(h.request_extended_headers, f.extended_headers);
  s.tls = h.tls;
  if (f.tls)
    h.tls = LIBNBD_TLS_REQUIRE;  // never fall back to plaintext
}

void restore_settings(nbd_handle& h) {
  HandshakeSettings& s = h.reconnect.saved;
  h.opt_mode = s.opt_mode;
  h.request_meta_context = s.request_meta_context;
  h.request_meta_contexts = std::move(s.meta_contexts);
  h.request_structured_replies = s.structured_replies;
  h.request_extended_headers = s.extended_headers;
  h.tls = s.tls;
}

// Arms the timer an event loop watches between attempts (made on first use).
void arm_timer(nbd_handle& h, uint32_t ms) {
  Reconnection& r = h.reconnect;
  if (!r.timer)
    r.timer.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!r.timer)
    return;  // nbd_poll still waits the right time; an event loop sees no descriptor
  struct itimerspec its {};
  its.it_value.tv_sec = ms / 1000;
  its.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000L + 1;  // never 0: that disarms
  timerfd_settime(r.timer.get(), 0, &its, nullptr);
}

void wait_before_next_attempt(nbd_handle& h, uint32_t ms) {
  Reconnection& r = h.reconnect;
  r.next_attempt = Clock::now() + milliseconds(ms);
  arm_timer(h, ms);
  h.state = State::Reconnect;
}

// What the new connection lost of what the old one's commands relied on, or "".
std::string what_changed(const nbd_handle& h) {
  const ExportFacts& f = h.reconnect.before;
  char why[256];
  if (h.exportsize < f.size) {
    std::snprintf(why, sizeof why, "the export shrank from %" PRIu64 " to %" PRIu64 " bytes", f.size,
                  h.exportsize);
    return why;
  }
  if ((h.eflags & proto::kFlagReadOnly) != 0 && (f.eflags & proto::kFlagReadOnly) == 0)
    return "the export became read-only";
  if (const uint16_t gone = f.eflags & kReliedFlags & ~h.eflags; gone != 0) {
    std::snprintf(why, sizeof why, "the server no longer sends transmission flags 0x%x", gone);
    return why;
  }
  if (f.structured_replies && !h.structured_replies)
    return "the server no longer offers structured replies";
  if (f.extended_headers != h.extended_headers)
    return "the server no longer offers extended headers";
  if (f.tls && !h.tls_negotiated)
    return "the server no longer offers TLS";
  if (h.block_minimum > std::max<uint32_t>(f.block_minimum, 1)) {
    std::snprintf(why, sizeof why, "the minimum block size grew from %" PRIu32 " to %" PRIu32,
                  f.block_minimum, h.block_minimum);
    return why;
  }
  if (f.block_maximum != 0 && h.block_maximum != 0 && h.block_maximum < f.block_maximum) {
    std::snprintf(why, sizeof why, "the maximum block size shrank from %" PRIu32 " to %" PRIu32,
                  f.block_maximum, h.block_maximum);
    return why;
  }
  for (const MetaContext& c : f.contexts) {
    if (!h.meta_valid || h.meta_context_named(c.name.c_str()) == nullptr)
      return "the meta context " + c.name + " is no longer negotiated";
  }
  return "";
}

// A filtered block status names contexts by id, which the new connection may number anew.
void renumber_filter(const nbd_handle& h, Command& c) {
  const ExportFacts& f = h.reconnect.before;
  for (uint32_t& id : c.filter_ids) {
    const auto old = std::find_if(f.contexts.begin(), f.contexts.end(),
                                  [id](const MetaContext& x) { return x.id == id; });
    if (old != f.contexts.end())
      id = h.meta_context_named(old->name.c_str())->id;  // what_changed checked it is there
  }
}

// Queues every command in flight again, in the order they were issued.
void resend_commands(nbd_handle& h) {
  std::vector<Command*> cmds;
  h.cmds.for_each([&](Command& c) { cmds.push_back(&c); });
  std::sort(cmds.begin(), cmds.end(), [](const Command* a, const Command* b) { return a->cookie < b->cookie; });
  for (Command* c : cmds) {
    renumber_filter(h, *c);
    queue_request(h, *c);
  }
}

}  // namespace

void swap_export_facts(nbd_handle& h, ExportFacts& f) {
  std::swap(h.exportsize, f.size);
  std::swap(h.eflags, f.eflags);
  std::swap(h.structured_replies, f.structured_replies);
  std::swap(h.extended_headers, f.extended_headers);
  std::swap(h.tls_negotiated, f.tls);
  std::swap(h.block_minimum, f.block_minimum);
  std::swap(h.block_maximum, f.block_maximum);
  std::swap(h.meta_valid, f.meta_valid);
  std::swap(h.meta_contexts, f.contexts);
}

bool begin_reconnect(nbd_handle& h, int err) {
  if (h.reconnect_delay_ms == 0 || !h.target.redoable() || h.has_writer || h.disconnect_requested ||
      !lost_connection(err))
    return false;
  Reconnection& r = h.reconnect;
  r.active = true;
  r.refused = false;
  r.lost_error = last_error_text();
  r.deadline = Clock::now() + milliseconds(h.reconnect_delay_ms);
  r.backoff_ms = kFirstBackoffMs;
  r.before = facts_of(h);
  if (h.debug_enabled())
    debug(h, "connection lost (%s): reconnecting for up to %" PRIu64 " ms", std::strerror(err),
          h.reconnect_delay_ms);
  // The connection goes, the commands stay: each is sent again whole, its reply read anew.
  drop_transport(h);
  h.rcmd = nullptr;
  h.rskip = h.peek_headers = h.direct_rest = false;
  std::vector<uint64_t> retired;
  h.cmds.for_each([&](Command& c) {
    if (c.abandoned)
      retired.push_back(c.cookie);  // nobody waits for it
    c.error = 0;
    c.covered.reset(c.offset);
  });
  for (const uint64_t cookie : retired)
    complete_command(h, cookie);
  use_reconnect_settings(h);
  wait_before_next_attempt(h, 0);
  return true;
}

bool retry_reconnect(nbd_handle& h) {
  Reconnection& r = h.reconnect;
  if (r.refused)
    return false;
  drop_transport(h);  // the failed attempt's, with anything it read ahead
  const auto now = Clock::now();
  if (now >= r.deadline) {
    // The commands fail with ENOTCONN, as on any lost connection, and so does the call.
    std::string last = last_error_text();
    if (last.empty())
      last = r.lost_error;
    set_error(ENOTCONN, "reconnect: no connection within %" PRIu64 " ms (nbd_set_reconnect_delay): %s",
              h.reconnect_delay_ms, last.c_str());
    return false;
  }
  if (h.debug_enabled())
    debug(h, "reconnect attempt failed: %s", last_error_text().c_str());
  const auto left = std::chrono::duration_cast<milliseconds>(r.deadline - now).count();
  const uint32_t wait = static_cast<uint32_t>(std::min<int64_t>(r.backoff_ms, left));
  r.backoff_ms = std::min(r.backoff_ms * 2, kMaxBackoffMs);
  wait_before_next_attempt(h, wait);
  return true;
}

Transition finish_reconnect(nbd_handle& h) {
  Reconnection& r = h.reconnect;
  const std::string changed = what_changed(h);
  if (!changed.empty()) {
    r.refused = true;
    set_error(ESTALE, "reconnect: %s", changed.c_str());
    return Transition::Fail;
  }
  end_reconnect(h);
  ++h.reconnections;
  if (h.debug_enabled())
    debug(h, "reconnected (%" PRIu64 " so far): sending %zu commands again", h.reconnections, h.cmds.size());
  resend_commands(h);
  update_connected_state(h);
  return Transition::Next;
}

void end_reconnect(nbd_handle& h) {
  if (!h.reconnect.active)
    return;
  h.reconnect.active = false;
  restore_settings(h);
}

Transition h_reconnect(nbd_handle& h) {
  if (Clock::now() < h.reconnect.next_attempt)
    return Transition::Block;
  if (h.reconnect.timer) {
    struct itimerspec off {};
    timerfd_settime(h.reconnect.timer.get(), 0, &off, nullptr);
  }
  return connect_target(h);  // whose handshake starts from nothing agreed (start_handshake)
}

int reconnect_poll_ms(const nbd_handle& h, int timeout_ms) {
  const Reconnection& r = h.reconnect;
  const auto until = h.state == State::Reconnect ? r.next_attempt : r.deadline;
  const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count() + 1;
  const int ms = static_cast<int>(std::clamp<int64_t>(left, 0, INT32_MAX));
  return timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
}

bool reconnect_overdue(const nbd_handle& h) {
  return h.state != State::Reconnect && Clock::now() >= h.reconnect.deadline;
}

}  // namespace nbd
