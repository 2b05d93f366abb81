// misuse_model.hpp: the shapes of the generated call table (misuse_calls.hpp) and the argument
// source its invokers read, which hands out harmless values and, on request, one bad argument.
#pragma once

#include <libnbd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace misuse {

// What one closure went through: its callback's calls (and the last *error it was given, for
// callbacks that have one), its frees.  ret is what the callback returns.
struct Tally {
  int calls = 0;
  int frees = 0;
  int error = -1;
  int ret = 0;
};

inline void tally_free(void* user_data) { ++static_cast<Tally*>(user_data)->frees; }

enum class ArgKind {
  Bool, Int, Uint32, Uint64, Size, Uintptr, String, Path, StringList, Fd, Enum, Flags, Closure,
  BytesIn, BytesOut, Sockaddr,
};
enum class RetKind {
  Err, Bool, Int, Int64, Cookie, Size, Fd, Uint, Uint64, Uintptr, Enum, Flags, String,
  StaticString, Void, Handle,
};
enum class HandleKind { Required, Nullable, None };

struct StateInfo {
  std::string name;   // created
  uint32_t bit;       // as in the generated permitted-state masks
  std::string words;  // "newly created", as error messages say it
};

struct ArgInfo {
  std::string name;
  ArgKind kind;
  std::string set;               // enum or flag set of api.yaml
  std::vector<int64_t> values;   // enum values, or the flag bits of the set
  uint32_t mask;                 // flags: every bit of the set
  bool has_allowed;              // flags: the call accepts only a subset of the set ...
  uint32_t allowed;              // ... these bits
  bool optional;                 // closures: the callback may be NULL
  std::string closure;           // closure type: completion, chunk, ...
  std::string lifetime;          // call | command | persistent
  bool pointer;                  // a C pointer that must not be NULL
  bool needs_callback;           // closures: one with only .free set is refused too
};

class Args;

// What an invoker saw: whether the call reported failure, and its result as text (for the
// messages of failed expectations).
struct Outcome {
  bool failed;
  std::string value;
};

struct CallInfo {
  std::string name;
  std::string since;
  HandleKind handle;
  bool may_fail;
  bool locked;
  RetKind ret;
  std::vector<std::string> states;  // permitted; empty means any
  bool pending;
  std::vector<ArgInfo> args;        // args then optargs, in C order
  Outcome (*invoke)(nbd_handle* h, Args& a);

  std::string c_name() const { return "nbd_" + name; }
  bool can_report_failure() const {
    return ret != RetKind::Void && ret != RetKind::Uint && ret != RetKind::Uint64 &&
           ret != RetKind::Uintptr && ret != RetKind::Flags;
  }
};

// Counts the calls of any closure type's callback through its user_data (a Tally), keeping
// the *error of those that have one (completion, chunk and extent callbacks).
inline void note(Tally* t, int* error) { t->error = *error; }
template <class T>
void note(Tally*, T) {}

template <class F>
struct CountingCallback;
template <class... A>
struct CountingCallback<int (*)(void*, A...)> {
  static int fn(void* user_data, A... args) {
    auto* t = static_cast<Tally*>(user_data);
    ++t->calls;
    (note(t, args), ...);
    return t->ret;
  }
};

// A closure of type C whose callback counts into t and whose free is tally_free.
template <class C>
C counting_closure(Tally& t) {
  C c{};
  c.callback = &CountingCallback<decltype(c.callback)>::fn;
  c.user_data = &t;
  c.free = tally_free;
  return c;
}

// How one argument is spoiled.
enum class Fault { None, Null, NullCallback, Value };

// The arguments of one invocation: harmless values for every argument (the generic tests never
// let a call reach the core with them), except the one given a fault; the closure scenarios set
// real offsets and counts with set_u64.  Every closure counts its calls and frees in tally(i).
class Args {
 public:
  explicit Args(const CallInfo& call) : call_(call), tallies_(call.args.size()) {
    std::memset(&addr_, 0, sizeof addr_);
    addr_.sun_family = AF_UNIX;
    std::strcpy(addr_.sun_path, "/nonexistent/misuse.sock");
    argv_storage_ = {"false"};
    for (auto& s : argv_storage_) argv_.push_back(s.data());
    argv_.push_back(nullptr);
  }
  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;

  void fault(size_t i, Fault f, int64_t value = 0) {
    faults_[i] = f;
    values_[i] = value;
  }
  void set_u64(size_t i, uint64_t v) { u64_[i] = v; }
  // A string list argument (queries, contexts) other than the harmless default.
  void set_strv(size_t i, std::vector<std::string> v) {
    strs_[i] = std::move(v);
    auto& ptrs = strps_[i];
    ptrs.clear();
    for (auto& str : strs_[i]) ptrs.push_back(str.data());
    ptrs.push_back(nullptr);
  }
  // The buffer every bytes_in / bytes_out argument points at.
  char* buffer() { return buf_; }
  static constexpr size_t kBufferSize = 512;

  bool boolean(size_t) { return false; }
  int integer(size_t) { return 0; }
  uint32_t u32(size_t) { return 0; }
  uint64_t u64(size_t i) {
    auto it = u64_.find(i);
    return it == u64_.end() ? 0 : it->second;
  }
  size_t size(size_t) { return 0; }
  uintptr_t uptr(size_t) { return 0; }
  int fd(size_t) { return -1; }
  const char* str(size_t i) { return is(i, Fault::Null) ? nullptr : "nbd+unix:///?socket=/nonexistent/misuse.sock"; }
  char** strv(size_t i) {
    if (is(i, Fault::Null)) return nullptr;
    auto it = strps_.find(i);
    return it == strps_.end() ? argv_.data() : it->second.data();
  }
  int enum_value(size_t i) {
    if (is(i, Fault::Value)) return static_cast<int>(values_[i]);
    return static_cast<int>(call_.args[i].values.at(0));
  }
  uint32_t flags(size_t i) { return is(i, Fault::Value) ? static_cast<uint32_t>(values_[i]) : 0; }
  void* out(size_t i) { return is(i, Fault::Null) ? nullptr : buf_; }
  const void* in(size_t i) { return is(i, Fault::Null) ? nullptr : buf_; }
  size_t len(size_t) { return sizeof buf_; }
  const struct sockaddr* addr(size_t i) {
    return is(i, Fault::Null) ? nullptr : reinterpret_cast<const struct sockaddr*>(&addr_);
  }
  socklen_t addr_len(size_t) { return sizeof addr_; }

  template <class C>
  C closure(size_t i) {
    C c = counting_closure<C>(tallies_[i]);
    if (is(i, Fault::NullCallback) || is(i, Fault::Null)) c.callback = nullptr;
    if (is(i, Fault::Null)) c.free = nullptr;  // a NULL closure: neither callback nor free
    return c;
  }

  // Whether argument i was given no closure at all (nothing to free).
  bool null_closure(size_t i) const { return is(i, Fault::Null); }

  Tally& tally(size_t i) { return tallies_[i]; }
  const Tally& tally(size_t i) const { return tallies_[i]; }

 private:
  bool is(size_t i, Fault f) const {
    auto it = faults_.find(i);
    return it != faults_.end() && it->second == f;
  }

  const CallInfo& call_;
  std::vector<Tally> tallies_;
  std::map<size_t, Fault> faults_;
  std::map<size_t, int64_t> values_;
  std::map<size_t, uint64_t> u64_;
  char buf_[kBufferSize] = {};
  struct sockaddr_un addr_;
  std::vector<std::string> argv_storage_;
  std::vector<char*> argv_;
  std::map<size_t, std::vector<std::string>> strs_;
  std::map<size_t, std::vector<char*>> strps_;
};

}  // namespace misuse
