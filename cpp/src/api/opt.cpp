// opt.cpp: opt mode, where the caller drives option haggling (nbd_set_opt_mode).
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

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
    h.opt_callbacks.completion = std::move(*completion);
  const Transition t = begin_user_option(h, opt);
  if (t == Transition::Fail) {
    h.opt_user = false;
    h.opt_callbacks.reset();
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

// Options other than NBD_OPT_GO (sent as NBD_OPT_EXPORT_NAME) need a fixed newstyle server.
int check_fixed_newstyle(nbd_handle& h) {
  return fixed_newstyle(h) ? 0 : set_error(ENOTSUP, "server is not using fixed newstyle protocol");
}

// Copies an explicit list of meta context queries for the option about to start.
void set_queries(nbd_handle& h, char** queries) {
  std::vector<std::string> list;
  for (char** q = queries; *q != nullptr; ++q)
    list.emplace_back(*q);
  h.opt_callbacks.queries = std::move(list);
}

// Metadata contexts travel in structured replies (proto.md "Metadata querying").  The calls
// of libnbd 1.16+ leave it to the server to refuse them without; nbd_opt_list_meta_context
// refuses them itself, as libnbd 1.14 did and its nbdinfo relies on (it then lists none).
// Once the checks pass, the option's queries (queries null: the handle's) and callback are
// set for it to start, by the aio or the sync form.
int prepare_meta_context(nbd_handle& h, uint32_t opt, char** queries, Closure<nbd_context_callback>& context) {
  if (check_fixed_newstyle(h) == -1)
    return -1;
  if (opt == kOptListMetaContext && queries == nullptr && !h.structured_replies)
    return set_error(ENOTSUP, "server lacks structured replies");
  if (queries != nullptr)
    set_queries(h, queries);
  h.opt_callbacks.context = std::move(context);
  return 0;
}

// NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT with the handle's queries (queries
// null) or the given ones.
int start_meta_context(nbd_handle& h, uint32_t opt, char** queries, Closure<nbd_context_callback>& context,
                       Completion* completion) {
  return prepare_meta_context(h, opt, queries, context) == -1 ? -1 : start_aio(h, opt, completion);
}

// NBD_OPT_ABORT to a plain newstyle server: as libnbd, the call succeeds and the handle is
// dead (the server would not understand the option).
int abort_plain_newstyle(nbd_handle& h) {
  set_error(ENOTSUP, "handshake: server is not using fixed newstyle");
  kill_connection(h, ENOTSUP);
  return 0;
}

}  // namespace

int unlocked_aio_opt_go(nbd_handle& h, Completion& completion_callback) {
  return start_aio(h, kOptGo, &completion_callback);
}

int unlocked_aio_opt_info(nbd_handle& h, Completion& completion_callback) {
  if (check_fixed_newstyle(h) == -1)
    return -1;
  return start_aio(h, kOptInfo, &completion_callback);
}

int unlocked_aio_opt_abort(nbd_handle& h) {
  return fixed_newstyle(h) ? start_aio(h, kOptAbort, nullptr) : abort_plain_newstyle(h);
}

int unlocked_aio_opt_list(nbd_handle& h, Closure<nbd_list_callback>& list_callback,
                          Completion& completion_callback) {
  if (check_fixed_newstyle(h) == -1)
    return -1;
  h.opt_callbacks.list = std::move(list_callback);
  return start_aio(h, kOptList, &completion_callback);
}

int unlocked_aio_opt_list_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback,
                                       Completion& completion_callback) {
  return start_meta_context(h, kOptListMetaContext, nullptr, context_callback, &completion_callback);
}

int unlocked_aio_opt_list_meta_context_queries(nbd_handle& h, char** queries,
                                               Closure<nbd_context_callback>& context_callback,
                                               Completion& completion_callback) {
  return start_meta_context(h, kOptListMetaContext, queries, context_callback, &completion_callback);
}

int unlocked_aio_opt_set_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback,
                                      Completion& completion_callback) {
  return start_meta_context(h, kOptSetMetaContext, nullptr, context_callback, &completion_callback);
}

int unlocked_aio_opt_set_meta_context_queries(nbd_handle& h, char** queries,
                                              Closure<nbd_context_callback>& context_callback,
                                              Completion& completion_callback) {
  return start_meta_context(h, kOptSetMetaContext, queries, context_callback, &completion_callback);
}

int unlocked_aio_opt_structured_reply(nbd_handle& h, Completion& completion_callback) {
  return check_fixed_newstyle(h) == -1 ? -1 : start_aio(h, kOptStructuredReply, &completion_callback);
}

int unlocked_aio_opt_extended_headers(nbd_handle& h, Completion& completion_callback) {
  return check_fixed_newstyle(h) == -1 ? -1 : start_aio(h, kOptExtendedHeaders, &completion_callback);
}

int unlocked_aio_opt_starttls(nbd_handle& h, Completion& completion_callback) {
  return check_fixed_newstyle(h) == -1 ? -1 : start_aio(h, kOptStartTls, &completion_callback);
}

namespace {

// The synchronous forms: the option is queued, then answered (or the connection fails).
int start_and_finish(nbd_handle& h, uint32_t opt) {
  Completion none;
  return start(h, opt, &none) != 0 ? -1 : finish(h);
}

// The options a server may refuse without harm (STARTTLS, STRUCTURED_REPLY,
// EXTENDED_HEADERS): true if it accepted, false if it refused, -1 if the connection failed.
int start_and_ask(nbd_handle& h, uint32_t opt) {
  if (check_fixed_newstyle(h) == -1)
    return -1;
  Completion none;
  if (start(h, opt, &none) != 0)
    return -1;
  if (wait_until(h, [](nbd_handle& hh) { return state_group(hh.state) != kConnecting; }) == -1)
    return -1;
  if (state_group(h.state) != kNegotiating)
    return set_error(errno_or(h.opt_error, ENOTCONN), "failed to get a response to %s", opt_name(opt));
  return h.opt_error == 0;
}

// The synchronous meta context calls: the number of contexts the server named.
int meta_context_and_finish(nbd_handle& h, uint32_t opt, char** queries, Closure<nbd_context_callback>& context) {
  if (prepare_meta_context(h, opt, queries, context) == -1)
    return -1;
  return start_and_finish(h, opt) == -1 ? -1 : h.opt_count;
}

}  // namespace

int unlocked_opt_go(nbd_handle& h) {
  if (start_and_finish(h, kOptGo) == -1)
    return -1;
  if (state_group(h.state) != kConnected)
    return set_error(ENOTCONN, "the server did not enter transmission");
  return 0;
}

int unlocked_opt_info(nbd_handle& h) {
  return check_fixed_newstyle(h) == -1 ? -1 : start_and_finish(h, kOptInfo);
}

int unlocked_opt_abort(nbd_handle& h) {
  if (!fixed_newstyle(h))
    return abort_plain_newstyle(h);
  if (start(h, kOptAbort, nullptr) != 0)
    return -1;
  return wait_until(h, [](nbd_handle& hh) { return (state_group(hh.state) & (kClosed | kDead)) != 0; });
}

int unlocked_opt_list(nbd_handle& h, Closure<nbd_list_callback>& list_callback) {
  if (check_fixed_newstyle(h) == -1)
    return -1;
  h.opt_callbacks.list = std::move(list_callback);
  return start_and_finish(h, kOptList) == -1 ? -1 : h.opt_count;
}

int unlocked_opt_list_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback) {
  return meta_context_and_finish(h, kOptListMetaContext, nullptr, context_callback);
}

int unlocked_opt_list_meta_context_queries(nbd_handle& h, char** queries,
                                           Closure<nbd_context_callback>& context_callback) {
  return meta_context_and_finish(h, kOptListMetaContext, queries, context_callback);
}

int unlocked_opt_set_meta_context(nbd_handle& h, Closure<nbd_context_callback>& context_callback) {
  return meta_context_and_finish(h, kOptSetMetaContext, nullptr, context_callback);
}

int unlocked_opt_set_meta_context_queries(nbd_handle& h, char** queries,
                                          Closure<nbd_context_callback>& context_callback) {
  return meta_context_and_finish(h, kOptSetMetaContext, queries, context_callback);
}

int unlocked_opt_structured_reply(nbd_handle& h) { return start_and_ask(h, kOptStructuredReply); }

int unlocked_opt_extended_headers(nbd_handle& h) { return start_and_ask(h, kOptExtendedHeaders); }

int unlocked_opt_starttls(nbd_handle& h) { return start_and_ask(h, kOptStartTls); }

}  // namespace nbd
