// closure_scenarios.cpp: the helpers the misuse suite's closure scenarios share.
#include "misuse/closure_scenarios.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include "common/io_helpers.hpp"

namespace misuse {

bool wait_option(nbd_handle* h) {
  return nbd_test::poll_until(h, [&] { return nbd_aio_is_connecting(h) == 0; });
}

int wait_command(nbd_handle* h, int64_t cookie) {
  int r = 0;
  nbd_test::poll_until(h, [&] { return (r = nbd_aio_command_completed(h, cookie)) != 0; });
  return r;
}

std::unique_ptr<Conn> connect_to(const nbd_test::Server* srv, bool opt_mode, const char* export_name) {
  auto c = std::make_unique<Conn>();
  if (c->h == nullptr || nbd_add_meta_context(c->h, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 ||
      nbd_set_opt_mode(c->h, opt_mode) != 0 || nbd_connect_uri(c->h, srv->uri().c_str()) != 0 ||
      (export_name != nullptr && nbd_set_export_name(c->h, export_name) != 0)) {
    ADD_FAILURE() << "connect: " << nbd_get_error();
    return nullptr;
  }
  return c;
}

bool is_aio_command(const CallInfo& c) {
  return c.name.rfind("aio_", 0) == 0 && c.states == std::vector<std::string>{"connected"} &&
         !closure_indexes(c).empty();
}
bool is_aio_option(const CallInfo& c) {
  return c.name.rfind("aio_opt_", 0) == 0 && !closure_indexes(c).empty();
}
bool is_meta_context_option(const CallInfo& c) { return c.name.find("meta_context") != std::string::npos; }

void aim(const CallInfo& c, Args& a, uint64_t offset) {
  if (int i = arg_index(c, "offset"); i >= 0) a.set_u64(static_cast<size_t>(i), offset);
  if (int i = arg_index(c, "count"); i >= 0) a.set_u64(static_cast<size_t>(i), Args::kBufferSize);
  // Meta context queries and block status filters name the one context connect_to requests.
  for (const char* name : {"queries", "contexts"})
    if (int i = arg_index(c, name); i >= 0) a.set_strv(static_cast<size_t>(i), {LIBNBD_CONTEXT_BASE_ALLOCATION});
}

int completion_index(const CallInfo& c) { return arg_index(c, "completion_callback"); }

std::vector<size_t> other_closures(const CallInfo& c) {
  std::vector<size_t> out;
  for (size_t i : closure_indexes(c))
    if (static_cast<int>(i) != completion_index(c)) out.push_back(i);
  return out;
}

void expect_ended_once(const CallInfo& c, const Args& a, int err, int other_calls) {
  const Tally& done = a.tally(static_cast<size_t>(completion_index(c)));
  EXPECT_EQ(done.calls, 1);
  EXPECT_EQ(done.error, err) << std::strerror(done.error);
  EXPECT_EQ(done.frees, 1);
  for (size_t i : other_closures(c)) {
    EXPECT_EQ(a.tally(i).calls, other_calls) << c.args[i].name;
    EXPECT_EQ(a.tally(i).frees, 1) << c.args[i].name;
  }
}

std::vector<char> pattern(unsigned seed) { return nbd_test::random_bytes(Args::kBufferSize, seed); }

void write_pattern(nbd_handle* h, uint64_t off, unsigned seed) {
  auto p = pattern(seed);
  ASSERT_EQ(nbd_pwrite(h, p.data(), p.size(), off, 0), 0) << nbd_get_error();
}

FailingFor failing_server_for(const CallInfo& c) {
  FailingFor f;
  if (needs_extended(c)) {
    f.ext = nbd_test::start_ext_server(ext_server_args({"--bad=ext-block-status-count-mismatch"}));
    f.want = EPROTO;
    return f;
  }
  f.fs = start_failing_server();
  const std::string base = c.name.rfind("aio_", 0) == 0 ? c.name.substr(4) : c.name;  // aio_pread -> pread
  if (failing_errnos().count(base))
    f.want = failing_errnos().at(base);
  else
    ADD_FAILURE() << "no errno for " << base;
  return f;
}

}  // namespace misuse
