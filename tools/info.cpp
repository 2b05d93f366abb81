// info.cpp: `nbdpp info`: size, export name and description, capability flags, block sizes,
// protocol, TLS and structured replies, metadata contexts and extent maps, one export or all.
#include "info.hpp"

#include <nbd/nbd.hpp>

#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "json.hpp"
#include "server.hpp"

namespace nbdpp {

const char kInfoUsage[] =
    "usage: nbdpp info [OPTIONS] SOURCE\n"
    "\n"
    "Show what an NBD server and its export offer.  SOURCE is an NBD URI or a server\n"
    "command in brackets: [ CMD ARGS ... ] (e.g. [ nbdkit -s memory 1G ]).\n"
    "\n"
    "  --json                 print JSON instead of text\n"
    "  --list                 list every export of the server and describe each\n"
    "  --map[=CONTEXT]        add the extent map of CONTEXT (default base:allocation)\n"
    "  --size                 print only the export size in bytes\n"
    "  --socket-activation    start a [ CMD ] server with systemd socket activation\n"
    "                         (default: it speaks NBD on its stdin and stdout)\n";

namespace {

struct InfoOptions {
  bool help = false;
  std::optional<Operand> source;
  bool json = false;
  bool list = false;
  bool size_only = false;
  bool socket_activation = false;
  Limits limits;
  std::optional<std::string> map_context;
};

struct ExportInfo {
  std::string name;
  std::optional<std::string> description;
  int64_t size = 0;
  std::optional<std::string> uri;
  std::vector<std::pair<std::string_view, bool>> flags;
  int64_t block_minimum = 0;
  int64_t block_preferred = 0;
  int64_t block_maximum = 0;
  std::optional<std::vector<std::string>> contexts;  // nullopt: the server cannot list them
  std::optional<std::vector<Extent>> map;
};

struct ServerInfo {
  std::string protocol;
  bool tls = false;
  bool structured_replies = false;
  std::vector<ExportInfo> exports;
};

InfoOptions parse(std::vector<std::string> args) {
  InfoOptions o;
  ArgReader r{std::move(args)};
  while (r.next()) {
    if (r.flag("--help", 'h')) {
      o.help = true;
      return o;
    }
    if (r.is_operand()) {
      if (o.source)
        throw UsageError("info takes one SOURCE");
      o.source = r.take_operand();
    } else if (r.flag("--json")) {
      o.json = true;
    } else if (r.flag("--list", 'L')) {
      o.list = true;
    } else if (r.flag("--size")) {
      o.size_only = true;
    } else if (r.flag("--socket-activation")) {
      o.socket_activation = true;
    } else if (limit_option(r, o.limits)) {
    } else if (auto ctx = r.optional_value("--map", nbd::kContextBaseAllocation)) {
      if (ctx->empty())
        throw UsageError("--map=: empty metadata context name");
      o.map_context = std::move(*ctx);
    } else {
      throw UsageError("info: unknown option " + r.current());
    }
  }
  if (!o.source)
    throw UsageError("info needs a SOURCE (an NBD URI or [ CMD ARGS ])");
  if (!o.source->is_nbd())
    throw UsageError("info: not an NBD URI: " + o.source->display());
  if (o.size_only && (o.list || o.json || o.map_context))
    throw UsageError("info: --size cannot be combined with --list, --json or --map");
  return o;
}

// The metadata contexts the server offers for the handle's current export, or nullopt when it
// cannot say (no structured replies, an old server).  Run before add_meta_context: the query
// list it sends is the handle's contexts, and an empty list asks for all of them.
std::optional<std::vector<std::string>> list_contexts(nbd::Handle& h) {
  std::vector<std::string> names;
  try {
    h.opt_list_meta_context([&](std::string_view name) { names.emplace_back(name); });
  } catch (const nbd::Error& e) {
    if (e.handle_dead())
      throw;
    return std::nullopt;
  }
  return names;
}

// Everything the handle knows about its export, after opt_info or opt_go.
void describe(nbd::Handle& h, ExportInfo& e) {
  e.size = h.get_size();
  if (!e.description) {
    try {
      e.description = h.get_export_description();
    } catch (const nbd::Error&) {
      // The server sent none.
    }
  }
  e.flags = {
      {"is_read_only", h.is_read_only()}, {"can_flush", h.can_flush()},
      {"can_fua", h.can_fua()},           {"is_rotational", h.is_rotational()},
      {"can_trim", h.can_trim()},         {"can_zero", h.can_zero()},
      {"can_fast_zero", h.can_fast_zero()}, {"can_df", h.can_df()},
      {"can_multi_conn", h.can_multi_conn()}, {"can_cache", h.can_cache()},
  };
  e.block_minimum = h.get_block_size(nbd::BlockSize::Minimum);
  e.block_preferred = h.get_block_size(nbd::BlockSize::Preferred);
  e.block_maximum = h.get_block_size(nbd::BlockSize::Maximum);
}

// The whole export's extents for context; the handle is connected with context negotiated.
std::vector<Extent> read_map(const InfoOptions& o, nbd::Handle& h, const std::string& context,
                             uint64_t size) {
  if (!h.can_meta_context(context))
    throw Failure(o.source->display() + ": the server does not offer metadata context " + context);
  std::vector<Extent> map;
  for (uint64_t pos = 0; pos < size;)
    pos = fetch_extents(h, context, pos, std::min(size - pos, kMaxBlockStatus), map);
  return map;
}

// A fresh connection to one export of a listed server, for its map.
std::vector<Extent> read_map_of(const InfoOptions& o, const std::string& name, uint64_t size) {
  nbd::Handle h;
  h.set_opt_mode(true);
  connect(h, *o.source, o.socket_activation, o.limits);
  try {
    h.set_export_name(name);
    h.add_meta_context(*o.map_context);
    h.opt_go();
  } catch (const nbd::Error& e) {
    fail("export \"" + name + "\"", e);
  }
  auto map = read_map(o, h, *o.map_context, size);
  h.shutdown();
  return map;
}

ServerInfo gather(const InfoOptions& o) {
  ServerInfo s;
  nbd::Handle h;
  h.set_full_info(true);
  h.set_opt_mode(true);
  connect(h, *o.source, o.socket_activation, o.limits);
  const bool negotiating = h.aio_is_negotiating();
  s.protocol = std::string{h.get_protocol()};
  s.tls = h.get_tls_negotiated();
  s.structured_replies = h.get_structured_replies_negotiated();

  if (!o.list) {
    ExportInfo e;
    if (negotiating) {
      e.contexts = list_contexts(h);
      if (o.map_context)
        h.add_meta_context(*o.map_context);
      h.opt_go();
    }
    e.name = h.get_export_name();
    try {
      e.uri = h.get_uri();
    } catch (const nbd::Error&) {
      // A command's stdin/stdout has no URI.
    }
    describe(h, e);
    if (o.map_context)
      e.map = read_map(o, h, *o.map_context, static_cast<uint64_t>(e.size));
    s.exports.push_back(std::move(e));
    h.shutdown();
    return s;
  }

  if (!negotiating)
    throw Failure(o.source->display() + ": the server cannot list exports (protocol " +
                  s.protocol + ")");
  std::vector<std::pair<std::string, std::string>> listed;
  h.opt_list([&](std::string_view name, std::string_view description) {
    listed.emplace_back(name, description);
  });
  for (auto& [name, description] : listed) {
    ExportInfo e;
    e.name = name;
    try {
      h.set_export_name(name);
      e.contexts = list_contexts(h);
      h.opt_info();
      describe(h, e);
    } catch (const nbd::Error& err) {
      fail("export \"" + name + "\"", err);
    }
    if (!e.description && !description.empty())
      e.description = description;
    if (o.map_context)
      e.map = read_map_of(o, name, static_cast<uint64_t>(e.size));
    s.exports.push_back(std::move(e));
  }
  h.opt_abort();
  return s;
}

// What the flags of an extent mean in the contexts whose meaning is known.
std::string describe_flags(std::string_view context, uint32_t flags) {
  if (context == nbd::kContextBaseAllocation) {
    std::string d;
    if (flags & nbd::kStateHole)
      d = "hole";
    if (flags & nbd::kStateZero)
      d += d.empty() ? "zero" : ",zero";
    if (const uint32_t rest = flags & ~(nbd::kStateHole | nbd::kStateZero))
      d += (d.empty() ? "" : ",") + std::to_string(rest);
    return d.empty() ? "data" : d;
  }
  if (context.starts_with("qemu:dirty-bitmap:"))
    return flags == 0 ? "clean" : flags == 1 ? "dirty" : std::to_string(flags);
  if (context == "qemu:allocation-depth")
    return flags == 0 ? "absent" : flags == 1 ? "local" : "backing depth " + std::to_string(flags);
  return "";
}

std::string to_json(const ServerInfo& s, const InfoOptions& o) {
  std::string out;
  JsonWriter j{out};
  j.begin_object();
  j.member("protocol", s.protocol);
  j.member("tls", s.tls);
  j.member("structured_replies", s.structured_replies);
  j.key("exports");
  j.begin_array();
  for (const auto& e : s.exports) {
    j.begin_object();
    j.member("export_name", e.name);
    j.member("description", e.description);
    j.member("export_size", e.size);
    j.member("uri", e.uri);
    for (const auto& [name, value] : e.flags)
      j.member(name, value);
    j.member("block_size_minimum", e.block_minimum);
    j.member("block_size_preferred", e.block_preferred);
    j.member("block_size_maximum", e.block_maximum);
    j.key("contexts");
    if (e.contexts) {
      j.begin_array();
      for (const auto& c : *e.contexts)
        j.string(c);
      j.end_array();
    } else {
      j.null();
    }
    j.key("map");
    if (e.map) {
      j.begin_object();
      j.member("context", *o.map_context);
      j.key("extents");
      j.begin_array();
      for (const auto& x : *e.map) {
        j.begin_object();
        j.member("offset", x.offset);
        j.member("length", x.length);
        j.member("flags", x.flags);
        j.member("description", describe_flags(*o.map_context, x.flags));
        j.end_object();
      }
      j.end_array();
      j.end_object();
    } else {
      j.null();
    }
    j.end_object();
  }
  j.end_array();
  j.end_object();
  return out;
}

std::string to_text(const ServerInfo& s, const InfoOptions& o) {
  std::string out;
  const auto line = [&](const char* fmt, auto... args) {
    char buf[512];
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
  };
  const auto yes = [](bool b) { return b ? "yes" : "no"; };
  line("protocol: %s\n", s.protocol.c_str());
  line("TLS: %s\n", yes(s.tls));
  line("structured replies: %s\n", yes(s.structured_replies));
  for (const auto& e : s.exports) {
    out += "export \"" + e.name + "\":\n";
    line("  export size: %" PRId64 "\n", e.size);
    if (e.description)
      out += "  description: " + *e.description + "\n";
    if (e.uri)
      out += "  uri: " + *e.uri + "\n";
    for (const auto& [name, value] : e.flags)
      line("  %s: %s\n", std::string{name}.c_str(), value ? "true" : "false");
    line("  block_size_minimum: %" PRId64 "\n", e.block_minimum);
    line("  block_size_preferred: %" PRId64 "\n", e.block_preferred);
    line("  block_size_maximum: %" PRId64 "\n", e.block_maximum);
    if (e.contexts) {
      out += "  contexts:";
      for (const auto& c : *e.contexts)
        out += " " + c;
      out += e.contexts->empty() ? " (none)\n" : "\n";
    } else {
      out += "  contexts: (the server cannot list them)\n";
    }
    if (e.map) {
      out += "  map of " + *o.map_context + ":\n";
      for (const auto& x : *e.map)
        line("  %14" PRIu64 " %14" PRIu64 " %4" PRIu32 "  %s\n", x.offset, x.length, x.flags,
             describe_flags(*o.map_context, x.flags).c_str());
    }
  }
  return out;
}

}  // namespace

int run_info(std::vector<std::string> args) {
  const InfoOptions o = parse(std::move(args));
  if (o.help) {
    print_usage(kInfoUsage);
    return 0;
  }
  ServerInfo s;
  try {
    s = gather(o);
  } catch (const nbd::Error& e) {
    fail(o.source->display(), e);
  }
  std::string out;
  if (o.size_only)
    out = std::to_string(s.exports.at(0).size) + "\n";
  else
    out = o.json ? to_json(s, o) : to_text(s, o);
  std::fputs(out.c_str(), stdout);
  if (std::fflush(stdout) != 0)
    throw Failure("writing to standard output failed");
  return 0;
}

}  // namespace nbdpp
