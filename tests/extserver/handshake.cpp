// handshake.cpp: the fixed newstyle handshake and its options (proto.md "Option types").
#include <algorithm>
#include <cstdio>

#include "session.hpp"
#include "wire.hpp"

namespace ext_server {
namespace {

// Option data longer than this ends the connection: no option of ours needs a tenth of it, and
// proto.md lets a server hang up on what it deems a denial of service.
constexpr uint32_t kMaxOptionLength = 1024 * 1024;
// proto.md "Size constraints": minimum and preferred block size.
constexpr uint32_t kMinBlockSize = 1;
constexpr uint32_t kPreferredBlockSize = 4096;
// proto.md: a string (export name, context query) is at most 4096 bytes.
constexpr size_t kMaxString = 4096;

std::string hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace

bool Session::handshake() {
  std::string greeting;
  put64(greeting, kNbdMagic);
  put64(greeting, kOptMagic);
  put16(greeting, kFlagFixedNewstyle | kFlagNoZeroes);
  char client_flags[4];
  if (!write_all(greeting) || !read_exact(client_flags, sizeof client_flags))
    return false;
  const uint32_t flags = get32(client_flags);
  // proto.md "Client flags": the server MUST drop the connection on a flag it does not know.
  if ((flags & ~uint32_t{kFlagFixedNewstyle | kFlagNoZeroes}) != 0) {
    violation("unknown client flags " + hex(flags));
    return false;
  }
  no_zeroes_ = (flags & kFlagNoZeroes) != 0;
  for (;;) {
    char head[16];
    if (!read_exact(head, sizeof head))
      return false;
    const uint32_t opt = get32(head + 8);
    const uint32_t length = get32(head + 12);
    log_.line("opt " + std::to_string(opt));
    if (get64(head) != kOptMagic) {
      violation("option magic " + hex(get64(head)) + " is not IHAVEOPT");
      return false;
    }
    if (length > kMaxOptionLength) {
      violation("option " + std::to_string(opt) + " has " + std::to_string(length) + " bytes of data");
      return false;
    }
    std::string data;
    if (!read_string(data, length))
      return false;
    switch (option(opt, data)) {
      case Next::Continue:
        continue;
      case Next::Transmission:
        return true;
      case Next::Close:
        return false;
    }
  }
}

Session::Next Session::reply(uint32_t opt, uint32_t type, std::string_view data) {
  std::string out;
  put64(out, kRepMagic);
  put32(out, opt);
  put32(out, type);
  put32(out, static_cast<uint32_t>(data.size()));
  out += data;
  return write_all(out) ? Next::Continue : Next::Close;
}

Session::Next Session::option(uint32_t opt, const std::string& data) {
  switch (opt) {
    case kOptExportName:
      return export_name(data);
    case kOptAbort:
      // proto.md NBD_OPT_ABORT: ACK (data, if any, is ignored), then the client hangs up.
      reply(opt, kRepAck);
      return Next::Close;
    case kOptList:
      return list_exports(opt, data);
    case kOptStartTls:
      return reply(opt, kRepErrPolicy, "this server does not offer TLS");
    case kOptInfo:
    case kOptGo:
      return info_or_go(opt, data);
    case kOptStructuredReply:
    case kOptExtendedHeaders:
      return reply_style(opt, data);
    case kOptListMetaContext:
    case kOptSetMetaContext:
      return meta_context(opt, data);
    default:
      return reply(opt, kRepErrUnsup, "unknown option " + std::to_string(opt));
  }
}

// NBD_OPT_STRUCTURED_REPLY and NBD_OPT_EXTENDED_HEADERS: no data, and each can be switched off.
Session::Next Session::reply_style(uint32_t opt, const std::string& data) {
  const bool extended = opt == kOptExtendedHeaders;
  if (!(extended ? config_.extended_headers : config_.structured_replies))
    return reply(opt, kRepErrUnsup, extended ? "disabled by --no-extended-headers" : "disabled by --no-structured-replies");
  if (!data.empty())
    return reply(opt, kRepErrInvalid, "the option takes no data");
  // proto.md NBD_OPT_STRUCTURED_REPLY: extended headers take precedence once negotiated.
  if (!extended && extended_)
    return reply(opt, kRepErrExtHeaderReqd, "extended headers are already negotiated");
  (extended ? extended_ : structured_) = true;
  return reply(opt, kRepAck);
}

Session::Next Session::list_exports(uint32_t opt, const std::string& data) {
  if (!data.empty())
    return reply(opt, kRepErrInvalid, "NBD_OPT_LIST takes no data");
  for (const Export& exp : exports_) {
    // NBD_REP_SERVER: the name, then text for humans (proto.md "Option reply types").
    std::string server;
    put32(server, static_cast<uint32_t>(exp.name.size()));
    server += exp.name;
    server += exp.description;
    if (reply(opt, kRepServer, server) == Next::Close)
      return Next::Close;
  }
  return reply(opt, kRepAck);
}

Export* Session::find_export(const std::string& name) {
  for (Export& exp : exports_)
    if (exp.name == name)
      return &exp;
  // The empty name is the default export: the first one (proto.md NBD_OPT_EXPORT_NAME).
  return name.empty() ? &exports_.front() : nullptr;
}

uint16_t Session::transmission_flags(const Export* exp) const {
  uint16_t flags = kFlagHasFlags | kFlagSendFlush | kFlagSendFua | kFlagCanMultiConn | kFlagSendCache;
  flags |= config_.read_only ? kFlagReadOnly : kFlagSendTrim | kFlagSendWriteZeroes | kFlagSendFastZero;
  // proto.md: SEND_DF MUST be clear unless structured replies or extended headers were negotiated;
  // BLOCK_STATUS_PAYLOAD only with extended headers, and SHOULD NOT be set without contexts.
  if (structured_ || extended_)
    flags |= kFlagSendDf;
  if (extended_ && config_.block_status_payload && meta_export_ == exp && !meta_.empty())
    flags |= kFlagBlockStatusPayload;
  return flags;
}

void Session::enter_transmission(Export* exp) {
  export_ = exp;
  tflags_ = transmission_flags(exp);
  // Contexts selected for another export do not apply (proto.md NBD_OPT_SET_META_CONTEXT).
  if (meta_export_ != exp)
    meta_.clear();
  mode_ = extended_ ? Mode::Extended : structured_ ? Mode::Structured : Mode::Simple;
  // Logged before the reply that enters transmission, so a client that has it finds the line.
  log_.line(std::string("transmission mode=") +
            (extended_ ? "extended" : structured_ ? "structured" : "simple") + " export=\"" + exp->name + "\"");
}

Session::Next Session::export_name(const std::string& name) {
  // proto.md NBD_OPT_EXPORT_NAME: no error reply exists, so a refusal is a hang-up.
  if (extended_) {
    violation("NBD_OPT_EXPORT_NAME after extended headers were negotiated");
    return Next::Close;
  }
  Export* exp = find_export(name);
  if (exp == nullptr || config_.require_extended) {
    log_.line(exp == nullptr ? "refused: no export \"" + name + "\""
                             : std::string("refused: NBD_OPT_EXPORT_NAME without extended headers"));
    return Next::Close;
  }
  enter_transmission(exp);
  std::string out;
  put64(out, exp->store->size());
  put16(out, tflags_);
  if (!no_zeroes_)
    out.append(124, '\0');
  return write_all(out) ? Next::Transmission : Next::Close;
}

Session::Next Session::info_or_go(uint32_t opt, const std::string& data) {
  // Data: 32-bit name length, name, 16-bit count, count 16-bit info requests.
  if (data.size() < 6 || get32(data.data()) > data.size() - 6)
    return reply(opt, kRepErrInvalid, "malformed NBD_OPT_INFO/NBD_OPT_GO data");
  const uint32_t name_length = get32(data.data());
  const std::string name = data.substr(4, name_length);
  const uint16_t count = get16(data.data() + 4 + name_length);
  if (6 + size_t{name_length} + 2 * size_t{count} != data.size())
    return reply(opt, kRepErrInvalid, "information request count does not match the option length");
  std::vector<uint16_t> requests;
  for (size_t i = 0; i < count; ++i)
    requests.push_back(get16(data.data() + 6 + name_length + 2 * i));
  const auto requested = [&](uint16_t info) {
    return std::find(requests.begin(), requests.end(), info) != requests.end();
  };

  Export* exp = find_export(name);
  if (exp == nullptr)
    return reply(opt, kRepErrUnknown, "no export \"" + name + "\"");
  if (config_.require_extended && !extended_)
    return reply(opt, kRepErrExtHeaderReqd, "this server requires extended headers (--require-extended)");

  // NBD_INFO_EXPORT, the name and description if asked for, and the block size always (a client
  // that did not ask may still use it: proto.md NBD_REP_INFO).
  std::vector<std::string> infos;
  const auto add = [&](uint16_t type) -> std::string& {
    put16(infos.emplace_back(), type);
    return infos.back();
  };
  std::string& exported = add(kInfoExport);
  put64(exported, exp->store->size());
  put16(exported, transmission_flags(exp));
  if (requested(kInfoName))
    add(kInfoName) += exp->name;
  if (requested(kInfoDescription))
    add(kInfoDescription) += exp->description;
  std::string& sizes = add(kInfoBlockSize);
  put32(sizes, kMinBlockSize);
  put32(sizes, kPreferredBlockSize);
  put32(sizes, config_.max_payload);
  for (const std::string& info : infos)
    if (reply(opt, kRepInfo, info) == Next::Close)
      return Next::Close;
  if (opt != kOptGo)
    return reply(opt, kRepAck);
  enter_transmission(exp);
  return reply(opt, kRepAck) == Next::Close ? Next::Close : Next::Transmission;
}

Session::Next Session::meta_context(uint32_t opt, const std::string& data) {
  const bool set = opt == kOptSetMetaContext;
  // proto.md NBD_OPT_SET_META_CONTEXT replaces the selection even when it fails.
  if (set) {
    meta_export_ = nullptr;
    meta_.clear();
  }
  if (!structured_ && !extended_)
    return reply(opt, kRepErrInvalid, "negotiate structured replies or extended headers first");
  // Data: 32-bit name length, name, 32-bit query count, then each query as length and string.
  std::vector<std::string> fields;
  size_t pos = 0;
  const auto take_string = [&]() {
    if (data.size() - pos < 4 || get32(data.data() + pos) > data.size() - pos - 4)
      return false;
    const uint32_t length = get32(data.data() + pos);
    fields.push_back(data.substr(pos + 4, length));
    pos += 4 + size_t{length};
    return true;
  };
  if (!take_string() || data.size() - pos < 4)
    return reply(opt, kRepErrInvalid, "malformed metadata context option");
  const uint32_t count = get32(data.data() + pos);
  pos += 4;
  for (uint32_t i = 0; i < count; ++i)
    if (!take_string())
      return reply(opt, kRepErrInvalid, "query " + std::to_string(i) + " runs past the option data");
  if (pos != data.size())
    return reply(opt, kRepErrInvalid, "data after the last query");
  const std::vector<std::string> queries(fields.begin() + 1, fields.end());
  for (const std::string& query : queries)
    if (query.size() > kMaxString || query.find(':') == std::string::npos)
      return reply(opt, kRepErrInvalid, "query \"" + query + "\" has no namespace");
  const Export* exp = find_export(fields.front());
  if (exp == nullptr)
    return reply(opt, kRepErrUnknown, "no export \"" + fields.front() + "\"");

  // SET selects exact names (so "base:" selects nothing); LIST also takes "namespace:" as a
  // wildcard and lists everything for no query.  Unknown queries are ignored.
  std::vector<const MetaContext*> found;
  for (const MetaContext& ctx : kMetaContexts) {
    if (ctx.wide && !extended_)
      continue;  // proto.md: a 64-bit context is omitted without extended headers
    const std::string_view name = ctx.name;
    const bool match = (!set && queries.empty()) ||
                       std::any_of(queries.begin(), queries.end(), [&](const std::string& q) {
                         return q == name || (!set && q.back() == ':' && name.substr(0, q.size()) == q);
                       });
    if (match)
      found.push_back(&ctx);
  }
  for (const MetaContext* ctx : found) {
    // LIST replies carry id 0 (proto.md NBD_OPT_LIST_META_CONTEXT).
    std::string out;
    put32(out, set ? ctx->id : 0);
    out += ctx->name;
    if (reply(opt, kRepMetaContext, out) == Next::Close)
      return Next::Close;
  }
  if (set) {
    meta_export_ = exp;
    meta_ = found;
  }
  return reply(opt, kRepAck);
}

}  // namespace ext_server
