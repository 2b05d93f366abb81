// closure_paths_test.cpp: every closure-taking call on each path a closure can take, each
// closure called as due and freed once; the scenario of each kind of call and path is chosen here.
#include "misuse/closure_scenarios.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace misuse {
namespace {

// Pending: the only path of a call still marked `status: pending` in api.yaml.
enum class Path { Success, ServerFailure, KilledInFlight, CloseInFlight, Pending };
const char* path_name(Path p) {
  switch (p) {
    case Path::Pending: return "Pending";
    case Path::Success: return "Success";
    case Path::ServerFailure: return "ServerFailure";
    case Path::KilledInFlight: return "KilledInFlight";
    case Path::CloseInFlight: return "CloseInFlight";
  }
  return "?";
}

using Scenario = std::function<void(const CallInfo&)>;

// The scenario of each closure-taking call on each path.  Calls are matched by kind first
// (every aio command, every aio option, ...), so a new call of a known kind is covered at once;
// one of a new kind fails ClosurePaths until it gets scenarios here or a reason below.
Scenario scenario_for(const CallInfo& c, Path p) {
  if (c.pending) return p == Path::Pending ? pending_refused : nullptr;
  if (is_aio_command(c)) {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return [](const CallInfo& cc) { aio_command_success(cc, false); };
      case Path::ServerFailure: return [](const CallInfo& cc) { aio_command_server_failure(cc, false); };
      case Path::KilledInFlight: return [](const CallInfo& cc) { aio_command_killed(cc, false); };
      case Path::CloseInFlight: return [](const CallInfo& cc) { aio_in_flight_at_close(cc, false); };
    }
  }
  if (is_aio_option(c)) {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return c.name == "aio_opt_starttls" ? nullptr : aio_option_success;
      case Path::ServerFailure: return aio_option_server_failure;
      case Path::KilledInFlight: return aio_option_killed;
      case Path::CloseInFlight: return [](const CallInfo& cc) { aio_in_flight_at_close(cc, true); };
    }
  }
  const std::vector<size_t> closures = closure_indexes(c);
  const bool sync_call = !closures.empty() && std::all_of(closures.begin(), closures.end(), [&](size_t i) {
    return c.args[i].lifetime == "call";
  });
  if (sync_call) {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return sync_success;
      case Path::ServerFailure: return sync_server_failure;
      case Path::KilledInFlight: return sync_killed;
      case Path::CloseInFlight: return nullptr;
    }
  }
  if (c.name == "set_debug_callback") {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return debug_success;
      case Path::KilledInFlight: return debug_killed;
      case Path::CloseInFlight: return debug_close_in_flight;
      case Path::ServerFailure: return nullptr;
    }
  }
  if (c.name == "set_concurrent_writer") {
    switch (p) {
      case Path::Pending: return nullptr;
      case Path::Success: return writer_success;
      case Path::ServerFailure: return writer_send_failure;
      case Path::KilledInFlight: return writer_killed;
      case Path::CloseInFlight: return writer_close_in_flight;
    }
  }
  return nullptr;
}

// Paths that do not exist for a call, with the reason.
const std::map<std::pair<std::string, Path>, std::string>& not_applicable() {
  static const std::map<std::pair<std::string, Path>, std::string> m = {
      {{"opt_list", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_list_meta_context", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"pread_structured", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"block_status", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"block_status_64", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"block_status_filter", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_list_meta_context_queries", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_set_meta_context", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"opt_set_meta_context_queries", Path::CloseInFlight}, "sync call: its closure is gone when it returns"},
      {{"aio_opt_starttls", Path::Success},
       "accepting TLS needs a TLS server: tls_test's OptStarttls* cover it (here the server refuses)"},
      {{"set_debug_callback", Path::ServerFailure}, "a handle setting: no request to fail"},
  };
  return m;
}

struct PathCase {
  const CallInfo* call;
  Path path;
  std::string label;
};
void PrintTo(const PathCase& c, std::ostream* os) { *os << c.label; }

std::vector<PathCase> path_cases() {
  std::vector<PathCase> out;
  for (const CallInfo& c : model_calls()) {
    if (closure_indexes(c).empty()) continue;
    if (c.pending) {
      out.push_back({&c, Path::Pending, c.name + "_" + path_name(Path::Pending)});
      continue;
    }
    for (Path p : {Path::Success, Path::ServerFailure, Path::KilledInFlight, Path::CloseInFlight})
      if (!not_applicable().count({c.name, p})) out.push_back({&c, p, c.name + "_" + path_name(p)});
  }
  return out;
}

class ClosurePaths : public ::testing::TestWithParam<PathCase> {};

TEST_P(ClosurePaths, EachClosureCalledAsDueAndFreedOnce) {
  NBD_TEST_REQUIRE_PROGRAM("nbdkit");
  const PathCase& p = GetParam();
  const Scenario s = scenario_for(*p.call, p.path);
  ASSERT_TRUE(s) << p.call->c_name() << " takes a closure but has no " << path_name(p.path)
                 << " scenario: write one (closure_scenarios.hpp), or say in not_applicable() why there is none";
  s(*p.call);
}

INSTANTIATE_TEST_SUITE_P(Calls, ClosurePaths, ::testing::ValuesIn(path_cases()),
                         [](const ::testing::TestParamInfo<PathCase>& i) { return i.param.label; });

TEST(Model, NotApplicablePathsNameClosureCalls) {
  for (const auto& [key, reason] : not_applicable()) {
    const CallInfo* c = nullptr;
    for (const CallInfo& cc : model_calls())
      if (cc.name == key.first) c = &cc;
    ASSERT_NE(c, nullptr) << key.first << " is not in api.yaml";
    EXPECT_FALSE(closure_indexes(*c).empty()) << key.first << " takes no closure";
    EXPECT_FALSE(scenario_for(*c, key.second)) << key.first << " " << path_name(key.second)
                                               << " has a scenario and a reason not to: " << reason;
  }
}

}  // namespace
}  // namespace misuse
