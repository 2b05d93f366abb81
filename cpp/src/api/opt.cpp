// opt.cpp: opt mode, where the caller drives option haggling (nbd_set_opt_mode).
#include <cerrno>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;
using Completion = Closure<nbd_completion_callback>;

// Queues the option and runs the handshake until it blocks.  Returns -1 if the option could
// not be sent (its closures are freed, never called), 1 if the connection failed after it was
// queued (its completion then ran with the error, which is recorded), 0 otherwise.
int start(nbd_handle& h, uint32_t opt, Completion* completion) {
  if (completion != nullptr)
    h.opt_completion = std::move(*completion);
  const Transition t = begin_user_option(h, opt);
  if (t == Transition::Fail) {
    h.opt_user = false;
    h.opt_completion.reset();
    h.opt_list_cb.reset();
    h.opt_context_cb.reset();
    kill_connection(h, errno_or(last_errno(), ENOTCONN));
    return -1;
  }
  return run(h) == -1 ? 1 : 0;
}

// The aio form: once the option is queued the call succeeds, as a command's does; a failure
// of the connection reaches the caller through the completion (libnbd behaves the same).
int start_aio(nbd_handle& h, uint32_t opt, Completion* completion) {
  const int r = start(h, opt, completion);
  if (r == 1 && h.debug_enabled())
    debug(h, "option queued; the connection failed after it: %s", last_error());
  return r == -1 ? -1 : 0;
}

// Waits until the option is answered.  The error of a refused option was recorded when its
// reply arrived; errno is set again here in case a callback changed it.
int finish(nbd_handle& h) {
  if (wait_until(h, [](nbd_handle& hh) { return state_group(hh.state) != kConnecting; }) == -1)
    return -1;
  if (h.opt_error != 0) {
    errno = h.opt_error;
    return -1;
  }
  return 0;
}

// Metadata contexts travel in structured replies only (proto.md "Metadata querying").
int check_meta_context_listable(nbd_handle& h) {
  return h.structured_replies ? 0 : set_error(ENOTSUP, "server lacks structured replies");
}

}  // namespace

int unlocked_aio_opt_go(nbd_handle& h, Completion& completion_callback) {
  return start_aio(h, kOptGo, &completion_callback);
}

int unlocked_aio_opt_info(nbd_handle& h, Completion& completion_callback) {
  return start_aio(h, kOptInfo, &completion_callback);
}

int unlocked_aio_opt_abort(nbd_handle& h) { return start_aio(h, kOptAbort, nullptr); }

int unlocked_aio_opt_list(nbd_handle& h, Closure<nbd_list_callback>& list_callback,
                          Completion& completion_callback) {
  h.opt_list_cb = std::move(list_callback);
  return start_aio(h, kOptList, &completion_callback);
}

int unlocked_aio_opt_list_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback,
                                       Completion& completion_callback) {
  if (check_meta_context_listable(h) == -1)
    return -1;
  h.opt_context_cb = std::move(context_callback);
  return start_aio(h, kOptListMetaContext, &completion_callback);
}

namespace {

// The synchronous forms: the option is queued, then answered (or the connection fails).
int start_and_finish(nbd_handle& h, uint32_t opt) {
  Completion none;
  return start(h, opt, &none) != 0 ? -1 : finish(h);
}

}  // namespace

int unlocked_opt_go(nbd_handle& h) {
  if (start_and_finish(h, kOptGo) == -1)
    return -1;
  if (state_group(h.state) != kConnected)
    return set_error(ENOTCONN, "the server did not enter transmission");
  return 0;
}

int unlocked_opt_info(nbd_handle& h) { return start_and_finish(h, kOptInfo); }

int unlocked_opt_abort(nbd_handle& h) {
  if (start(h, kOptAbort, nullptr) != 0)
    return -1;
  return wait_until(h, [](nbd_handle& hh) { return (state_group(hh.state) & (kClosed | kDead)) != 0; });
}

int unlocked_opt_list(nbd_handle& h, Closure<nbd_list_callback>& list_callback) {
  h.opt_list_cb = std::move(list_callback);
  return start_and_finish(h, kOptList) == -1 ? -1 : h.opt_count;
}

int unlocked_opt_list_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback) {
  if (check_meta_context_listable(h) == -1)
    return -1;
  h.opt_context_cb = std::move(context_callback);
  return start_and_finish(h, kOptListMetaContext) == -1 ? -1 : h.opt_count;
}

}  // namespace nbd
