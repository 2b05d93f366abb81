// copy.cpp: `nbdpp copy SRC DST`: several connections, many requests in flight on each, holes
// and zero blocks sent as zero requests (or skipped on a new file), every completion checked.
//
// Shape: this file reads the options, opens SRC and DST as endpoints of their kind
// (copy_endpoint.hpp: NBD, file or block device, stream), chooses the connections and the
// request size, and starts one worker per connection (copy_worker.hpp), which copy the chunks
// the planner (planner.hpp) cuts the source into.  The main thread only shows progress, then
// ends the copy.
#include "copy.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "copy_endpoint.hpp"
#include "copy_worker.hpp"
#include "progress.hpp"

namespace nbdpp {

const char kCopyUsage[] =
    "usage: nbdpp copy [OPTIONS] SRC DST\n"
    "\n"
    "Copy an NBD export, a file, a block device or a pipe to another.  SRC and DST are\n"
    "each an NBD URI, a server command in brackets ([ CMD ARGS ... ]), a local file or\n"
    "block device, or \"-\" for standard input or output.  A regular file DST is created\n"
    "or truncated.  Holes and blocks of zeroes in SRC are not written as data: they\n"
    "become zero requests on NBD and block devices, and stay holes in files.\n"
    "\n"
    "  -C, --connections N    connections to each NBD server (default 4 when the\n"
    "                         servers offer multi-conn, else 1)\n"
    "  -R, --requests N       requests in flight per connection (default 64)\n"
    "      --request-size S   bytes per request, a power of 2 from 512 to 64M\n"
    "                         (default 256K)\n"
    "      --writer           send to NBD destinations from the library's concurrent\n"
    "                         writer thread\n"
    "      --no-writer        send from the copying thread (the default)\n"
    "      --flush            flush the destination at the end\n"
    "  -p, --progress         show progress on stderr\n"
    "  -v, --verbose          describe the source, destination and connections\n"
    "  -q, --quiet            do not print the closing summary line\n"
    "      --socket-activation  start [ CMD ] servers with systemd socket activation\n"
    "                         (default: they speak NBD on their stdin and stdout)\n";

namespace {

constexpr uint64_t kDefaultRequestSize = 256 * 1024;
constexpr uint64_t kMaxRequestSize = 64 * 1024 * 1024;  // libnbd's limit on a data request
constexpr unsigned kDefaultMultiConn = 4;

struct CopyOptions {
  bool help = false;
  std::optional<Operand> src;
  std::optional<Operand> dst;
  std::optional<unsigned> connections;
  unsigned requests = 64;
  uint64_t request_size = kDefaultRequestSize;
  bool writer = false;
  bool flush = false;
  bool progress = false;
  bool verbose = false;
  bool quiet = false;
  bool socket_activation = false;
  Limits limits;
};

CopyOptions parse(std::vector<std::string> args) {
  CopyOptions o;
  ArgReader r{std::move(args)};
  while (r.next()) {
    if (r.flag("--help", 'h')) {
      o.help = true;
      return o;
    }
    if (r.is_operand()) {
      if (!o.src)
        o.src = r.take_operand();
      else if (!o.dst)
        o.dst = r.take_operand();
      else
        throw UsageError("copy takes two operands, SRC and DST; extra: " +
                         r.take_operand().display());
    } else if (auto v = r.value("--connections", 'C')) {
      o.connections = parse_count("--connections", *v, 64);
    } else if (auto v2 = r.value("--requests", 'R')) {
      o.requests = parse_count("--requests", *v2, 1024);
    } else if (auto v3 = r.value("--request-size")) {
      o.request_size = parse_size("--request-size", *v3);
      const uint64_t s = o.request_size;
      if (s < 512 || s > kMaxRequestSize || (s & (s - 1)) != 0)
        throw UsageError("--request-size: must be a power of 2 from 512 to 64M, not " + *v3);
    } else if (r.flag("--writer")) {
      o.writer = true;
    } else if (r.flag("--no-writer")) {
      o.writer = false;
    } else if (r.flag("--flush")) {
      o.flush = true;
    } else if (r.flag("--progress", 'p')) {
      o.progress = true;
    } else if (r.flag("--verbose", 'v')) {
      o.verbose = true;
    } else if (r.flag("--quiet", 'q')) {
      o.quiet = true;
    } else if (r.flag("--socket-activation")) {
      o.socket_activation = true;
    } else if (limit_option(r, o.limits)) {
    } else {
      throw UsageError("copy: unknown option " + r.current());
    }
  }
  if (!o.dst)
    throw UsageError("copy needs SRC and DST");
  // The writer thread sends on one socket for the handle's life (nbd_set_reconnect_delay).
  if (o.writer && o.limits.reconnect_delay_ms > 0)
    throw UsageError("--writer cannot be combined with --reconnect-delay");
  return o;
}

// Opens SRC (source) or DST as the endpoint of its kind.
std::unique_ptr<Endpoint> open_endpoint(const Operand& op, bool source, const CopyOptions& o) {
  if (op.is_nbd())
    return open_nbd(op, source, o.socket_activation, o.limits);
  if (op.kind == Operand::Kind::Stdio)
    return open_stdio(source);
  return open_path(op, source);
}

// How many connections each NBD endpoint gets, and why, for --verbose.
unsigned choose_connections(const Job& job, const CopyOptions& o, std::string& why) {
  const Endpoint* const eps[] = {job.src.get(), job.dst.get()};
  if (std::none_of(std::begin(eps), std::end(eps),
                   [](const Endpoint* ep) { return ep->has_connections(); })) {
    why = "no NBD endpoint";
    return 1;
  }
  const unsigned wanted = o.connections.value_or(kDefaultMultiConn);
  if (wanted == 1) {
    why = "as asked";
    return 1;
  }
  for (const Endpoint* ep : eps) {
    if (ep->sequential()) {
      why = ep->name() + " is a stream, copied in order";
      return 1;
    }
  }
  for (const Endpoint* ep : eps) {
    if (auto reason = ep->one_connection_only(o.socket_activation)) {
      why = std::move(*reason);
      return 1;
    }
  }
  why = o.connections ? "as asked" : "the servers offer multi-conn";
  return wanted;
}

void finish_destination(Job& job, const CopyOptions& o) {
  if (!job.src->size())
    job.dst->source_size(job.stream_end);
  if (o.flush)
    job.dst->flush();
  job.dst->close();
}

}  // namespace

int run_copy(std::vector<std::string> args) {
  const CopyOptions o = parse(std::move(args));
  if (o.help) {
    print_usage(kCopyUsage);
    return 0;
  }

  Job job;
  job.requests = o.requests;
  job.timeout_ms = o.limits.timeout_ms;
  job.src = open_endpoint(*o.src, true, o);
  job.dst = open_endpoint(*o.dst, false, o);
  if (job.src->size())
    job.dst->source_size(*job.src->size());

  std::string why;
  const unsigned connections = choose_connections(job, o, why);
  if (o.connections && *o.connections > connections)
    std::fprintf(stderr, "nbdpp: using 1 connection: %s\n", why.c_str());
  if (connections > 1) {
    job.src->add_connections(connections, o.socket_activation);
    job.dst->add_connections(connections, o.socket_activation);
  }
  const bool writer = o.writer && job.dst->start_writer();
  job.request_size = job.dst->fit_request_size(job.src->fit_request_size(o.request_size));
  job.src->set_request_size(job.request_size);
  job.dst->set_request_size(job.request_size);
  job.planner.emplace(job.src->size(), job.request_size, job.dst->max_zero(job.request_size));

  if (o.verbose) {
    std::fprintf(stderr, "nbdpp: source %s: %s\n", job.src->name().c_str(),
                 job.src->describe().c_str());
    std::fprintf(stderr, "nbdpp: destination %s: %s\n", job.dst->name().c_str(),
                 job.dst->describe().c_str());
    std::fprintf(stderr,
                 "nbdpp: %u connection%s (%s), %u requests of %llu bytes in flight on each, "
                 "concurrent writer %s\n",
                 connections, connections == 1 ? "" : "s", why.c_str(), o.requests,
                 static_cast<unsigned long long>(job.request_size), writer ? "on" : "off");
  }

  // One worker per connection (one in all when there is no NBD endpoint).
  const auto t0 = std::chrono::steady_clock::now();
  Progress progress{o.progress, job.src->size()};
  for (unsigned i = 0; i < connections; ++i)
    job.workers.push_back(std::make_unique<Worker>(job, i));
  {
    std::vector<std::jthread> threads;
    for (auto& w : job.workers)
      threads.emplace_back([&w] { w->run(); });
    std::unique_lock lock{job.mu};
    while (job.finished < connections) {
      job.finished_cv.wait_for(lock, std::chrono::milliseconds{100});
      lock.unlock();
      progress.update(job.done);
      lock.lock();
    }
  }
  if (job.failed) {
    // Disconnect politely; the copy has failed whatever the servers say now.
    job.src->abandon();
    job.dst->abandon();
    throw Failure(job.error);
  }
  finish_destination(job, o);
  job.src->close();
  progress.finish(job.done);

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet) {
    for (Endpoint* ep : {job.src.get(), job.dst.get()}) {
      if (const uint64_t n = ep->reconnections())
        std::fprintf(stderr, "nbdpp: %s: connected again %llu time%s\n", ep->name().c_str(),
                     static_cast<unsigned long long>(n), n == 1 ? "" : "s");
    }
    const double mib = static_cast<double>(job.done) / (1024.0 * 1024.0);
    std::fprintf(stderr,
                 "nbdpp: copied %llu bytes (%llu data, %llu zero) in %.3f s, %.1f MiB/s\n",
                 static_cast<unsigned long long>(job.done.load()),
                 static_cast<unsigned long long>(job.data_bytes.load()),
                 static_cast<unsigned long long>(job.zero_bytes.load()), seconds,
                 seconds > 0 ? mib / seconds : 0.0);
  }
  return 0;
}

}  // namespace nbdpp
