// closure_scenarios.hpp: the closure paths of the misuse suite: one scenario per kind of
// closure-taking call and path (success, the server failing the request, the server killed
// with it in flight, nbd_close with it pending), which closure_paths_test.cpp picks per call,
// and the helpers the scenarios share.
#pragma once

// First, as in every file of the suite (misuse_support.hpp says why).
#include "misuse/misuse_support.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace misuse {

// ---------------------------------------------------------------- helpers

// Polls until the handle has no option or command left in its connecting phase.
bool wait_option(nbd_handle* h);

// Polls until the command completed, retires it and returns nbd_aio_command_completed's answer
// (1 success, -1 failure with the error recorded), 0 if polling gave up.
int wait_command(nbd_handle* h, int64_t cookie);

// A handle for the closure paths, closed when the scenario ends unless it closed it itself.
struct Conn {
  nbd_handle* h = nbd_create();
  ~Conn() { nbd_close(h); }
  void close_now() {
    nbd_close(h);
    h = nullptr;
  }
};

// Connected to srv, in opt mode if asked, with base:allocation requested so block status works;
// in opt mode, export_name (when given) replaces the URI's once connected.
std::unique_ptr<Conn> connect_to(const nbd_test::Server* srv, bool opt_mode, const char* export_name = nullptr);

// The aio commands: the closure-taking calls that need a connected handle.  Their arguments are
// set for one 512-byte request at offset (aim).
bool is_aio_command(const CallInfo& c);
bool is_aio_option(const CallInfo& c);
bool is_meta_context_option(const CallInfo& c);

void aim(const CallInfo& c, Args& a, uint64_t offset);

int completion_index(const CallInfo& c);

// The closures other than the completion (chunk, extent, list, context).
std::vector<size_t> other_closures(const CallInfo& c);

// Once c's command or option has ended and been retired: its completion ran once, with err,
// and was freed once; every other closure ran other_calls times and was freed once.
void expect_ended_once(const CallInfo& c, const Args& a, int err, int other_calls);

std::vector<char> pattern(unsigned seed);
void write_pattern(nbd_handle* h, uint64_t off, unsigned seed);

// A server that fails the call's request: the failing plugin, or for the calls that need
// extended headers nbd_ext_server sending block status with a wrong descriptor count (EPROTO).
struct FailingFor {
  FailingServer fs;
  std::unique_ptr<nbd_test::Server> ext;
  int want = 0;
  const nbd_test::Server* server() const { return ext ? ext.get() : fs.server.get(); }
};
FailingFor failing_server_for(const CallInfo& c);

// ---------------------------------------------------------------- scenarios

// aio_command_scenarios.cpp.  check_retirement: also require the closures to be kept until the
// command is retired (the FreedAtRetirement tests; the closure paths only count calls and frees).
void aio_command_success(const CallInfo& c, bool check_retirement);
void aio_command_server_failure(const CallInfo& c, bool check_retirement);
void aio_command_killed(const CallInfo& c, bool check_retirement);
// An aio command or option (opt_mode) in flight at nbd_close.
void aio_in_flight_at_close(const CallInfo& c, bool opt_mode);

// aio_option_scenarios.cpp.
void aio_option_success(const CallInfo& c);
void aio_option_server_failure(const CallInfo& c);
void aio_option_killed(const CallInfo& c);

// sync_scenarios.cpp: calls whose closures live for the call, and calls still pending.
void pending_refused(const CallInfo& c);
void sync_success(const CallInfo& c);
void sync_server_failure(const CallInfo& c);
void sync_killed(const CallInfo& c);

// persistent_scenarios.cpp: the debug callback and the concurrent writer.
void debug_success(const CallInfo& c);
void debug_killed(const CallInfo& c);
void debug_close_in_flight(const CallInfo& c);
void writer_success(const CallInfo& c);
void writer_send_failure(const CallInfo& c);
void writer_killed(const CallInfo& c);
void writer_close_in_flight(const CallInfo& c);

}  // namespace misuse
