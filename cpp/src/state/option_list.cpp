// option_list.cpp: the options that list or choose by name: NBD_OPT_LIST (exports) and
// NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT (metadata contexts), each answered by
// one reply per name, each passed to the caller's callback (proto.md "Metadata querying").
#include <cerrno>
#include <string>

#include "protocol.hpp"
#include "state/handshake.hpp"

namespace nbd {

using namespace nbd::proto;

namespace {

// Export name, then the meta context queries: the caller's explicit list
// (nbd_opt_*_meta_context_queries) or the handle's.
std::string meta_context_request(const nbd_handle& h) {
  const auto& queries = h.opt_callbacks.queries;
  return encode_meta_context_request(h.export_name, queries ? *queries : h.request_meta_contexts);
}

// The listing is over: the caller's option ends with its count of names.
Transition list_done(nbd_handle& h) {
  finish_user_option(h, 0);
  h.state = State::Negotiating;
  return Transition::Next;
}

// NBD_REP_SERVER: one export's name and description.
bool read_server(nbd_handle& h, std::span<const unsigned char> payload) {
  const unsigned char* p = payload.data();
  const size_t len = payload.size();
  const uint32_t namelen = ServerReply::decode(p).name_length;
  if (namelen > len - ServerReply::kSize) {
    protocol_error("NBD_REP_SERVER name overruns its reply");
    return false;
  }
  const unsigned char* text = p + ServerReply::kSize;
  const std::string name(text, text + namelen);
  const std::string desc(text + namelen, p + len);
  ++h.opt_count;
  if (h.opt_callbacks.list.has_callback())
    h.opt_callbacks.list(name.c_str(), desc.c_str());
  return true;
}

std::string context_name(std::span<const unsigned char> p) {
  return std::string(p.begin() + MetaContextReply::kSize, p.end());
}

// NBD_REP_META_CONTEXT: one context the server has (or chose).
void report_context(nbd_handle& h, const std::string& name) {
  ++h.opt_count;
  if (h.opt_callbacks.context.has_callback())
    h.opt_callbacks.context(name.c_str());
}

}  // namespace

const OptionHandler kListOption = {
    .opt = kOptList,
    .read_server = read_server,
    .ack = list_done,
    // A refused listing is always ENOTSUP, as libnbd gives it.
    .refused = [](nbd_handle& h, const Refusal& r) { return refuse_option(h, r, ENOTSUP); },
};

const OptionHandler kListMetaContextOption = {
    .opt = kOptListMetaContext,
    .request = [](nbd_handle& h) { return meta_context_request(h); },
    .read_meta_context =
        [](nbd_handle& h, std::span<const unsigned char> p) {
          report_context(h, context_name(p));
          return true;
        },
    .ack = list_done,
};

// The contexts the server chooses are the ones block status reports on, once it
// acknowledges them.
const OptionHandler kSetMetaContextOption = {
    .opt = kOptSetMetaContext,
    .request =
        [](nbd_handle& h) {
          h.meta_contexts.clear();
          h.meta_valid = false;
          return meta_context_request(h);
        },
    .read_meta_context =
        [](nbd_handle& h, std::span<const unsigned char> p) {
          const std::string name = context_name(p);
          h.meta_contexts.push_back({MetaContextReply::decode(p.data()).id, name});
          report_context(h, name);
          return true;
        },
    .ack =
        [](nbd_handle& h) {
          h.meta_valid = true;
          return option_done(h, 0);
        },
    .refused =
        [](nbd_handle& h, const Refusal& r) {
          if (ends_user_option(h))
            return refuse_option(h, r, refusal_errno(r.type));
          // The automatic request, before NBD_OPT_GO or NBD_OPT_INFO: go on without contexts.
          h.meta_contexts.clear();
          h.meta_valid = true;
          return next_option(h);
        },
};

}  // namespace nbd
