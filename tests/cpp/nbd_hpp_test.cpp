// nbd_hpp_test.cpp: tests of the generated C++ wrapper nbd/nbd.hpp (no server needed).
#include <nbd/nbd.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

#include <cerrno>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

// Counts how often the one live copy of a callable is destroyed: moved-from shells do not count,
// and copying is impossible, so any count other than 1 means the box was leaked or freed twice.
class Tracker {
 public:
  explicit Tracker(int* destroyed) : destroyed_(destroyed) {}
  Tracker(Tracker&& other) noexcept : destroyed_(std::exchange(other.destroyed_, nullptr)) {}
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;
  Tracker& operator=(Tracker&&) = delete;
  ~Tracker() {
    if (destroyed_ != nullptr)
      ++*destroyed_;
  }

 private:
  int* destroyed_;
};

// Runs f, which must throw nbd::Error, and returns the error.
template <class F>
nbd::Error error_of(F&& f) {
  try {
    f();
  } catch (const nbd::Error& e) {
    return e;
  }
  ADD_FAILURE() << "no nbd::Error thrown";
  return nbd::Error("", 0, false);
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// ---- Compile-time properties ----------------------------------------------------------------

static_assert(!std::is_copy_constructible_v<nbd::Handle>);
static_assert(!std::is_copy_assignable_v<nbd::Handle>);
static_assert(std::is_nothrow_move_constructible_v<nbd::Handle>);
static_assert(std::is_nothrow_move_assignable_v<nbd::Handle>);
static_assert(std::is_base_of_v<std::runtime_error, nbd::Error>);
static_assert(!std::is_copy_constructible_v<nbd::CompletionCallback>);

// Callbacks take callables of their own signature only; int or void results.
struct CompletionFn {
  int operator()(int*) const { return 0; }
};
struct VoidCompletionFn {
  void operator()(int*) const {}
};
struct DebugFn {
  int operator()(std::string_view, std::string_view) const { return 0; }
};
struct ConstExtentFn {
  int operator()(std::string_view, uint64_t, std::span<const uint32_t>, int*) const { return 0; }
};
static_assert(std::is_constructible_v<nbd::CompletionCallback, CompletionFn>);
static_assert(std::is_constructible_v<nbd::CompletionCallback, VoidCompletionFn>);
static_assert(!std::is_constructible_v<nbd::CompletionCallback, DebugFn>);
static_assert(!std::is_constructible_v<nbd::DebugCallback, CompletionFn>);
static_assert(std::is_constructible_v<nbd::ExtentCallback, ConstExtentFn>);
static_assert(!std::is_constructible_v<nbd::CompletionCallback, int>);

// Typed flags: bits of one set combine; other sets and plain integers do not mix in implicitly.
static_assert((nbd::CmdFlag::Fua | nbd::CmdFlag::Df).value() ==
              (LIBNBD_CMD_FLAG_FUA | LIBNBD_CMD_FLAG_DF));
static_assert(std::is_same_v<decltype(nbd::CmdFlag::Fua | nbd::CmdFlag::Df), nbd::CmdFlags>);
static_assert((~nbd::CmdFlags{}) == nbd::CmdFlags::all());
static_assert((~nbd::CmdFlag::Fua).value() == (LIBNBD_CMD_FLAG_MASK & ~LIBNBD_CMD_FLAG_FUA));
static_assert(nbd::StrictFlags::all().has(nbd::StrictFlag::Bounds | nbd::StrictFlag::Align));
static_assert(!nbd::CmdFlags{nbd::CmdFlag::Fua}.has(nbd::CmdFlag::Fua | nbd::CmdFlag::Df));
static_assert(!std::is_convertible_v<uint32_t, nbd::CmdFlags>);
static_assert(!std::is_convertible_v<nbd::StrictFlag, nbd::CmdFlags>);
static_assert(static_cast<int>(nbd::Tls::Require) == LIBNBD_TLS_REQUIRE);
static_assert(nbd::kContextBaseAllocation == "base:allocation");

// ---- Handle lifetime ------------------------------------------------------------------------

TEST(Handle, CreateMoveDestroy) {
  nbd::Handle a;
  nbd_handle* raw = a.get();
  ASSERT_NE(raw, nullptr);
  EXPECT_TRUE(a.aio_is_created());

  nbd::Handle b{std::move(a)};
  EXPECT_EQ(a.get(), nullptr);
  EXPECT_EQ(b.get(), raw);

  nbd::Handle c;
  c = std::move(b);
  EXPECT_EQ(b.get(), nullptr);
  EXPECT_EQ(c.get(), raw);
  EXPECT_FALSE(c.get_handle_name().empty());
}

TEST(Handle, MoveAssignClosesTheOldHandle) {
  int destroyed = 0;
  nbd::Handle a;
  a.set_debug_callback(
      [t = Tracker{&destroyed}](std::string_view, std::string_view) { return 0; });
  a = nbd::Handle{};
  EXPECT_EQ(destroyed, 1);
}

TEST(Handle, ReleaseAndAdopt) {
  nbd::Handle a;
  a.set_handle_name("adopted");
  nbd_handle* raw = a.release();
  EXPECT_EQ(a.get(), nullptr);
  nbd::Handle b{raw};
  EXPECT_EQ(b.get_handle_name(), "adopted");
}

TEST(Handle, StaticStrings) {
  nbd::Handle h;
  EXPECT_FALSE(h.get_version().empty());
  EXPECT_FALSE(h.get_package_name().empty());
  EXPECT_FALSE(h.connection_state().empty());
}

// ---- Settings round trips -------------------------------------------------------------------

TEST(Settings, RoundTrip) {
  nbd::Handle h;
  h.set_handle_name("my handle");
  EXPECT_EQ(h.get_handle_name(), "my handle");

  h.set_export_name("disk/with spaces");
  EXPECT_EQ(h.get_export_name(), "disk/with spaces");
  // A std::string_view need not be NUL-terminated: only its own bytes are passed.
  constexpr std::string_view longer = "exportXYZ";
  h.set_export_name(longer.substr(0, 6));
  EXPECT_EQ(h.get_export_name(), "export");

  EXPECT_EQ(h.get_tls(), nbd::Tls::Disable);
  h.set_tls(nbd::Tls::Require);
  EXPECT_EQ(h.get_tls(), nbd::Tls::Require);

  EXPECT_EQ(h.get_strict_mode(), nbd::StrictFlags::all());
  h.set_strict_mode(nbd::StrictFlag::Commands | nbd::StrictFlag::Bounds);
  EXPECT_EQ(h.get_strict_mode(), nbd::StrictFlag::Commands | nbd::StrictFlag::Bounds);
  EXPECT_TRUE(h.get_strict_mode().has(nbd::StrictFlag::Bounds));
  EXPECT_FALSE(h.get_strict_mode().has(nbd::StrictFlag::Flags));

  h.set_handshake_flags(nbd::HandshakeFlag::FixedNewstyle);
  EXPECT_EQ(h.get_handshake_flags(), nbd::HandshakeFlags{nbd::HandshakeFlag::FixedNewstyle});

  EXPECT_EQ(h.set_private_data(42), 0U);
  EXPECT_EQ(h.set_private_data(7), 42U);
  EXPECT_EQ(h.get_private_data(), 7U);

  h.set_request_structured_replies(false);
  EXPECT_FALSE(h.get_request_structured_replies());
  h.set_pread_initialize(false);
  EXPECT_FALSE(h.get_pread_initialize());
  h.set_opt_mode(true);
  EXPECT_TRUE(h.get_opt_mode());
  h.set_full_info(true);
  EXPECT_TRUE(h.get_full_info());
  h.set_request_block_size(false);
  EXPECT_FALSE(h.get_request_block_size());
  h.set_tls_verify_peer(false);
  EXPECT_FALSE(h.get_tls_verify_peer());
  h.set_tls_username("alice");
  EXPECT_EQ(h.get_tls_username(), "alice");
  h.set_debug(true);
  EXPECT_TRUE(h.get_debug());
  h.set_debug(false);
  EXPECT_FALSE(h.get_debug());
}

TEST(Settings, MetaContexts) {
  nbd::Handle h;
  EXPECT_EQ(h.get_nr_meta_contexts(), 0U);
  h.add_meta_context(nbd::kContextBaseAllocation);
  h.add_meta_context("qemu:dirty-bitmap:b0");
  ASSERT_EQ(h.get_nr_meta_contexts(), 2U);
  EXPECT_EQ(h.get_meta_context(0), "base:allocation");
  EXPECT_EQ(h.get_meta_context(1), "qemu:dirty-bitmap:b0");
  EXPECT_EQ(error_of([&] { h.get_meta_context(2); }).errnum(), EINVAL);
  h.clear_meta_contexts();
  EXPECT_EQ(h.get_nr_meta_contexts(), 0U);
}

// ---- Errors ---------------------------------------------------------------------------------

TEST(Errors, WrongStateIsEnotconn) {
  nbd::Handle h;
  std::vector<std::byte> buf(512);
  const nbd::Error e = error_of([&] { h.pread(buf, 0); });
  EXPECT_EQ(e.errnum(), ENOTCONN);
  EXPECT_TRUE(starts_with(e.what(), "nbd_pread: ")) << e.what();
  EXPECT_FALSE(e.handle_dead());

  EXPECT_EQ(error_of([&] { h.get_size(); }).errnum(), ENOTCONN);
  EXPECT_EQ(error_of([&] { h.opt_go(); }).errnum(), ENOTCONN);
}

TEST(Errors, BadEnumIsEinval) {
  nbd::Handle h;
  const nbd::Error e = error_of([&] { h.set_tls(static_cast<nbd::Tls>(99)); });
  EXPECT_EQ(e.errnum(), EINVAL);
  EXPECT_TRUE(starts_with(e.what(), "nbd_set_tls: ")) << e.what();
  EXPECT_EQ(h.get_tls(), nbd::Tls::Disable);
}

TEST(Errors, UnknownFlagsAreEinval) {
  nbd::Handle h;
  const nbd::Error e = error_of([&] { h.set_strict_mode(nbd::StrictFlags{0x100}); });
  EXPECT_EQ(e.errnum(), EINVAL);
  EXPECT_TRUE(starts_with(e.what(), "nbd_set_strict_mode: ")) << e.what();
}

TEST(Errors, EmbeddedNulIsEinval) {
  nbd::Handle h;
  h.set_export_name("before");
  const nbd::Error e = error_of([&] { h.set_export_name(std::string_view{"a\0b", 3}); });
  EXPECT_EQ(e.errnum(), EINVAL);
  EXPECT_TRUE(starts_with(e.what(), "nbd_set_export_name: export_name: ")) << e.what();
  EXPECT_EQ(h.get_export_name(), "before");

  const std::vector<std::string> argv{"nbdkit", std::string{"x\0y", 3}};
  EXPECT_EQ(error_of([&] { h.connect_command(argv); }).errnum(), EINVAL);
}

TEST(Errors, LongExportNameIsEnametoolong) {
  nbd::Handle h;
  EXPECT_EQ(error_of([&] { h.set_export_name(std::string(4097, 'x')); }).errnum(), ENAMETOOLONG);
}

TEST(Connect, CommandRoundTripThroughSpans) {
  if (std::system("command -v nbdkit >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "nbdkit not installed";
  nbd::Handle h;
  h.connect_command({"nbdkit", "-s", "--exit-with-parent", "memory", "1M"});
  EXPECT_EQ(h.get_size(), 1048576);
  std::vector<std::byte> out(4096), in(4096);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::byte>(i * 7);
  h.pwrite(out, 8192);
  h.pread(in, 8192);
  EXPECT_EQ(in, out);
  // A read past the end is refused before it reaches the server.
  const nbd::Error e = error_of([&] { h.pread(in, 1048576 - 100); });
  EXPECT_EQ(e.errnum(), EINVAL);
  EXPECT_TRUE(starts_with(e.what(), "nbd_pread: request out of bounds")) << e.what();
  EXPECT_FALSE(e.handle_dead());
}

TEST(Errors, ConcurrentWriterErrorZeroIsEinval) {
  nbd::Handle h;
  EXPECT_EQ(error_of([&] { h.concurrent_writer_error(0); }).errnum(), EINVAL);
  h.concurrent_writer_error(EIO);
}

// ---- Callbacks ------------------------------------------------------------------------------

TEST(Callbacks, DebugCallbackSeesMessagesAndIsFreedOnClose) {
  int calls = 0;
  int destroyed = 0;
  std::vector<std::string> contexts;
  {
    nbd::Handle h;
    h.set_debug_callback([&calls, &contexts, t = Tracker{&destroyed}](std::string_view context,
                                                                      std::string_view msg) {
      ++calls;
      contexts.emplace_back(context);
      EXPECT_FALSE(msg.empty());
      return 0;
    });
    EXPECT_EQ(calls, 0);  // debug is off
    h.set_debug(true);
    const int after_set_debug = calls;
    EXPECT_GE(after_set_debug, 1);
    h.set_handle_name("traced");
    EXPECT_GT(calls, after_set_debug);
    EXPECT_EQ(contexts.back(), "nbd_set_handle_name");
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(Callbacks, ClearAndReplaceFreeExactlyOnce) {
  int first = 0;
  int second = 0;
  nbd::Handle h;
  h.set_debug_callback([t = Tracker{&first}](std::string_view, std::string_view) {});
  h.set_debug_callback([t = Tracker{&second}](std::string_view, std::string_view) {});
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
  h.clear_debug_callback();
  EXPECT_EQ(second, 1);
  h = nbd::Handle{};
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
}

TEST(Callbacks, FreedOnceWhenTheCallFails) {
  int destroyed = 0;
  int called = 0;
  nbd::Handle h;
  std::vector<std::byte> buf(512);
  const nbd::Error e = error_of([&] {
    h.aio_pread(buf, 0, [&called, t = Tracker{&destroyed}](int*) { return ++called; });
  });
  EXPECT_EQ(e.errnum(), ENOTCONN);
  EXPECT_EQ(called, 0);
  EXPECT_EQ(destroyed, 1);
}

TEST(Callbacks, EmptyRequiredCallbackIsEfault) {
  nbd::Handle h;
  const nbd::Error e = error_of([&] { h.set_debug_callback(nbd::DebugCallback{}); });
  EXPECT_EQ(e.errnum(), EFAULT);
  EXPECT_TRUE(starts_with(e.what(), "nbd_set_debug_callback: ")) << e.what();
}

TEST(Callbacks, UnusedCallbackIsFreedOnce) {
  int destroyed = 0;
  {
    nbd::CompletionCallback a{[t = Tracker{&destroyed}](int*) { return 0; }};
    EXPECT_TRUE(a);
    nbd::CompletionCallback b{std::move(a)};
    EXPECT_FALSE(a);
    EXPECT_TRUE(b);
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(Callbacks, SecondWriterIsRefusedAndFreed) {
  int first = 0;
  int second = 0;
  {
    nbd::Handle h;
    h.set_concurrent_writer([t = Tracker{&first}](std::span<const std::byte>) { return 0; });
    const nbd::Error e = error_of([&] {
      h.set_concurrent_writer([t = Tracker{&second}](std::span<const std::byte>) { return 0; });
    });
    EXPECT_EQ(e.errnum(), EINVAL);
    EXPECT_EQ(second, 1);
    EXPECT_EQ(first, 0);
  }
  EXPECT_EQ(first, 1);
}

TEST(Callbacks, PlainFunctionPointer) {
  static int calls = 0;
  struct Fn {
    static int debug(std::string_view, std::string_view) { return ++calls; }
  };
  nbd::Handle h;
  h.set_debug_callback(&Fn::debug);
  h.set_debug(true);
  EXPECT_GE(calls, 1);
}

// ---- Exceptions thrown by callbacks ---------------------------------------------------------

TEST(CallbackExceptions, RethrownByTheCallThatRanThem) {
  int thrown = 0;
  nbd::Handle h;
  h.set_debug_callback([&thrown](std::string_view context, std::string_view) {
    if (context == "nbd_set_handle_name")
      throw std::runtime_error("boom " + std::to_string(++thrown));
  });
  h.set_debug(true);
  try {
    h.set_handle_name("renamed");
    FAIL() << "the callback's exception was not rethrown";
  } catch (const std::runtime_error& e) {
    // Entry and exit traces both threw; the first exception is the one reported.
    EXPECT_STREQ(e.what(), "boom 1");
    EXPECT_EQ(thrown, 2);
  }
  // The C call itself succeeded, and nothing is left over for the next call.
  h.set_debug(false);
  EXPECT_EQ(h.get_handle_name(), "renamed");
}

TEST(CallbackExceptions, WinOverTheCallsOwnError) {
  nbd::Handle h;
  h.set_debug_callback([](std::string_view, std::string_view) { throw std::logic_error("cb"); });
  h.set_debug(false);
  // Trace messages run only with debug on; turning it on runs the callback at the exit trace.
  EXPECT_THROW(h.set_debug(true), std::logic_error);
  std::vector<std::byte> buf(16);
  EXPECT_THROW(h.pread(buf, 0), std::logic_error);
}

TEST(CallbackExceptions, DroppedWhileClosing) {
  int thrown = 0;
  {
    nbd::Handle h;
    h.set_debug_callback([&thrown](std::string_view context, std::string_view) {
      if (context == "nbd_close") {
        ++thrown;
        throw std::runtime_error("during close");
      }
    });
    h.set_debug(true);
  }
  EXPECT_EQ(thrown, 1);
  // The dropped exception does not surface in a later call on this thread.
  nbd::Handle other;
  other.set_handle_name("fine");
}

TEST(CallbackExceptions, NestedHandlesKeepTheirOwn) {
  nbd::Handle inner;
  nbd::Handle outer;
  bool caught_inner = false;
  outer.set_debug_callback([&](std::string_view context, std::string_view) {
    if (context != "nbd_set_handle_name")
      return;
    // An error of another handle, caught inside the callback, does not reach the outer call.
    try {
      std::vector<std::byte> buf(16);
      inner.pread(buf, 0);
    } catch (const nbd::Error& e) {
      caught_inner = e.errnum() == ENOTCONN;
    }
  });
  outer.set_debug(true);
  outer.set_handle_name("outer");
  EXPECT_TRUE(caught_inner);

  // One that escapes the callback is rethrown by the outer call.
  outer.set_debug_callback([&](std::string_view context, std::string_view) {
    if (context == "nbd_set_handle_name")
      inner.get_size();
  });
  const nbd::Error e = error_of([&] { outer.set_handle_name("again"); });
  EXPECT_TRUE(starts_with(e.what(), "nbd_get_size: ")) << e.what();
}

TEST(CallbackExceptionsDeathTest, OutsideAnyHandleMethodTerminates) {
  // A callback released to the C API directly has no method to rethrow from.
  EXPECT_DEATH(
      {
        nbd::Handle h;
        nbd::DebugCallback cb{
            [](std::string_view, std::string_view) { throw std::runtime_error("x"); }};
        nbd_set_debug_callback(h.get(), std::move(cb).release());
        nbd_set_debug(h.get(), true);
      },
      "terminat");
}

}  // namespace
