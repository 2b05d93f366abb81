// opt.cpp: opt mode, where the caller drives option haggling (nbd_set_opt_mode).
#include <cerrno>

#include "error.hpp"
#include "protocol.hpp"
#include "state/machine.hpp"
#include "unlocked.hpp"

namespace nbd {
namespace {

using namespace nbd::proto;
using Completion = Closure<nbd_completion_callback>;

int start(nbd_handle& h, uint32_t opt, Completion* completion) {
  if (completion != nullptr)
    h.opt_completion = std::move(*completion);
  const Transition t = begin_user_option(h, opt);
  if (t == Transition::Fail) {
    kill_connection(h, errno_or(last_errno(), ENOTCONN));
    return -1;
  }
  return run(h);
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

}  // namespace

int unlocked_aio_opt_go(nbd_handle& h, Completion& completion_callback) {
  return start(h, kOptGo, &completion_callback);
}

int unlocked_aio_opt_info(nbd_handle& h, Completion& completion_callback) {
  return start(h, kOptInfo, &completion_callback);
}

int unlocked_aio_opt_abort(nbd_handle& h) { return start(h, kOptAbort, nullptr); }

int unlocked_aio_opt_list(nbd_handle& h, Closure<nbd_list_callback>& list_callback,
                          Completion& completion_callback) {
  h.opt_list_cb = std::move(list_callback);
  return start(h, kOptList, &completion_callback);
}

int unlocked_aio_opt_list_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback,
                                       Completion& completion_callback) {
  // Metadata contexts travel in structured replies only (proto.md "Metadata querying").
  if (!h.structured_replies)
    return set_error(ENOTSUP, "server lacks structured replies");
  h.opt_context_cb = std::move(context_callback);
  return start(h, kOptListMetaContext, &completion_callback);
}

int unlocked_opt_go(nbd_handle& h) {
  Completion none;
  if (unlocked_aio_opt_go(h, none) == -1 || finish(h) == -1)
    return -1;
  if (state_group(h.state) != kConnected)
    return set_error(ENOTCONN, "the server did not enter transmission");
  return 0;
}

int unlocked_opt_info(nbd_handle& h) {
  Completion none;
  return unlocked_aio_opt_info(h, none) == -1 ? -1 : finish(h);
}

int unlocked_opt_abort(nbd_handle& h) {
  if (unlocked_aio_opt_abort(h) == -1)
    return -1;
  return wait_until(h, [](nbd_handle& hh) { return (state_group(hh.state) & (kClosed | kDead)) != 0; });
}

int unlocked_opt_list(nbd_handle& h, Closure<nbd_list_callback>& list_callback) {
  Completion none;
  if (unlocked_aio_opt_list(h, list_callback, none) == -1 || finish(h) == -1)
    return -1;
  return h.opt_count;
}

int unlocked_opt_list_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback) {
  Completion none;
  if (unlocked_aio_opt_list_meta_context(h, context_callback, none) == -1 || finish(h) == -1)
    return -1;
  return h.opt_count;
}

}  // namespace nbd
