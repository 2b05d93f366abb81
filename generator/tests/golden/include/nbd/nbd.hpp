// nbd.hpp: header-only C++20 wrapper of libnbd.h (nbd::Handle, enums, flags, callables).
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
//
// Every call of api.yaml with a handle is a method of nbd::Handle with the same name; see its man
// page, nbd_NAME(3).  Failures throw nbd::Error; a callback's exception is rethrown by the method
// during which the callback ran (nbd/callback.hpp says how).  Calls that cannot fail are noexcept.
#pragma once

#include <libnbd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nbd/callback.hpp>
#include <nbd/convert.hpp>
#include <nbd/error.hpp>
#include <nbd/flags.hpp>

namespace nbd {

enum class Mode : int {
  // do nothing
  Idle = 0,
  // do something
  Busy = 1,
};
static_assert(static_cast<int>(Mode::Idle) == LIBNBD_MODE_IDLE);
static_assert(static_cast<int>(Mode::Busy) == LIBNBD_MODE_BUSY);

enum class CmdFlag : uint32_t {
  // force unit access
  Fua = 0x1U,
  // do not fragment
  Df = 0x4U,
};
template <>
struct FlagTraits<CmdFlag> {
  static constexpr uint32_t kMask = 0x5U;
};
using CmdFlags = Flags<CmdFlag>;
static_assert(static_cast<uint32_t>(CmdFlag::Fua) == LIBNBD_CMD_FLAG_FUA);
static_assert(static_cast<uint32_t>(CmdFlag::Df) == LIBNBD_CMD_FLAG_DF);
static_assert(CmdFlags::all().value() == LIBNBD_CMD_FLAG_MASK);

enum class StrictFlag : uint32_t {
  // refuse commands the server did not advertise
  Commands = 0x1U,
  // refuse requests past the end of the export
  Bounds = 0x4U,
};
template <>
struct FlagTraits<StrictFlag> {
  static constexpr uint32_t kMask = 0x5U;
};
using StrictFlags = Flags<StrictFlag>;
static_assert(static_cast<uint32_t>(StrictFlag::Commands) == LIBNBD_STRICT_COMMANDS);
static_assert(static_cast<uint32_t>(StrictFlag::Bounds) == LIBNBD_STRICT_BOUNDS);
static_assert(StrictFlags::all().value() == LIBNBD_STRICT_MASK);

// Plain constants: values of unsigned results and callback arguments.
inline constexpr unsigned kReadData = 1;
static_assert(kReadData == LIBNBD_READ_DATA);
inline constexpr unsigned kReadHole = 2;
static_assert(kReadHole == LIBNBD_READ_HOLE);

// The "base" metadata namespace.
inline constexpr std::string_view kNamespaceBase = "base:";
static_assert(kNamespaceBase == LIBNBD_NAMESPACE_BASE);
inline constexpr std::string_view kContextBaseAllocation = "base:allocation";
static_assert(kContextBaseAllocation == LIBNBD_CONTEXT_BASE_ALLOCATION);
inline constexpr std::string_view kContextBaseDirtyBitmap = "base:dirty-bitmap:";
static_assert(kContextBaseDirtyBitmap == LIBNBD_CONTEXT_BASE_DIRTY_BITMAP);
inline constexpr uint32_t kStateHole = 1;
static_assert(kStateHole == LIBNBD_STATE_HOLE);

// One callback type per closure kind: each accepts any callable with the signature shown (or
// returning void, meaning 0), boxes it on the heap and gives it to the C library, which frees the
// box exactly once.  An exception the callable throws is caught before it reaches C: the callback
// then returns -1 (setting *error to ECANCELED if it has one and it was 0) and the exception is
// rethrown by the Handle method during which it ran.

// nbd_completion_callback: callables of the form
//   int(int* error)
class CompletionCallback
    : public detail::Callback<nbd_completion_callback, int*> {
 public:
  using Callback::Callback;

  // Hands the callable to the C library; this object is left empty.
  nbd_completion_callback release() && noexcept { return std::move(*this).to_c(&trampoline); }

 private:
  static int trampoline(void *user_data, int *error) noexcept {
    return invoke(user_data, error, error);
  }
};

// nbd_chunk_callback: callables of the form
//   int(std::span<const std::byte> subbuf, uint64_t offset, unsigned status, int* error)
class ChunkCallback
    : public detail::Callback<nbd_chunk_callback, std::span<const std::byte>, uint64_t, unsigned,
                              int*> {
 public:
  using Callback::Callback;

  // Hands the callable to the C library; this object is left empty.
  nbd_chunk_callback release() && noexcept { return std::move(*this).to_c(&trampoline); }

 private:
  static int trampoline(void *user_data, const void *subbuf, size_t count, uint64_t offset,
                        unsigned status, int *error) noexcept {
    return invoke(user_data, error,
                  std::span<const std::byte>{static_cast<const std::byte*>(subbuf), count}, offset,
                  status, error);
  }
};

// nbd_debug_callback: callables of the form
//   int(std::string_view context, std::string_view msg)
class DebugCallback
    : public detail::Callback<nbd_debug_callback, std::string_view, std::string_view> {
 public:
  using Callback::Callback;

  // Hands the callable to the C library; this object is left empty.
  nbd_debug_callback release() && noexcept { return std::move(*this).to_c(&trampoline); }

 private:
  static int trampoline(void *user_data, const char *context, const char *msg) noexcept {
    return invoke(user_data, nullptr, detail::view(context), detail::view(msg));
  }
};

// nbd_extent_callback: callables of the form
//   int(std::string_view metacontext, uint64_t offset, std::span<uint32_t> entries, int* error)
class ExtentCallback
    : public detail::Callback<nbd_extent_callback, std::string_view, uint64_t, std::span<uint32_t>,
                              int*> {
 public:
  using Callback::Callback;

  // Hands the callable to the C library; this object is left empty.
  nbd_extent_callback release() && noexcept { return std::move(*this).to_c(&trampoline); }

 private:
  static int trampoline(void *user_data, const char *metacontext, uint64_t offset,
                        uint32_t *entries, size_t nr_entries, int *error) noexcept {
    return invoke(user_data, error, detail::view(metacontext), offset,
                  std::span<uint32_t>{entries, nr_entries}, error);
  }
};

// nbd_writer_callback: callables of the form
//   int(std::span<const std::byte> buf)
class WriterCallback
    : public detail::Callback<nbd_writer_callback, std::span<const std::byte>> {
 public:
  using Callback::Callback;

  // Hands the callable to the C library; this object is left empty.
  nbd_writer_callback release() && noexcept { return std::move(*this).to_c(&trampoline); }

 private:
  static int trampoline(void *user_data, const void *buf, size_t len) noexcept {
    return invoke(user_data, nullptr,
                  std::span<const std::byte>{static_cast<const std::byte*>(buf), len});
  }
};

// nbd_extent64_callback: callables of the form
//   int(std::string_view metacontext, uint64_t offset, std::span<const nbd_extent> entries, int* error)
class Extent64Callback
    : public detail::Callback<nbd_extent64_callback, std::string_view, uint64_t,
                              std::span<const nbd_extent>, int*> {
 public:
  using Callback::Callback;

  // Hands the callable to the C library; this object is left empty.
  nbd_extent64_callback release() && noexcept { return std::move(*this).to_c(&trampoline); }

 private:
  static int trampoline(void *user_data, const char *metacontext, uint64_t offset,
                        nbd_extent *entries, size_t nr_entries, int *error) noexcept {
    return invoke(user_data, error, detail::view(metacontext), offset,
                  std::span<const nbd_extent>{entries, nr_entries}, error);
  }
};

// An open libnbd handle.  Move-only; the destructor closes it (nbd_close), which also frees every
// callback the handle still holds.  A moved-from or release()d Handle may only be destroyed or
// assigned to.
class Handle {
 public:
  // nbd_create(3); throws nbd::Error if it fails.
  Handle() : h_(::nbd_create()) {
    if (h_ == nullptr)
      detail::throw_last_error(nullptr);
  }
  // Takes ownership of h (from nbd_create or another Handle's release()).
  explicit Handle(nbd_handle* h) noexcept : h_(h) {}

  Handle(Handle&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      destroy();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { destroy(); }

  nbd_handle* get() const noexcept { return h_; }
  // Gives up ownership without closing; the caller must nbd_close the result.
  nbd_handle* release() noexcept { return std::exchange(h_, nullptr); }

  // nbd_set_mode(3): choose the mode
  void set_mode(Mode mode) {
    detail::CallbackScope scope;
    const auto r = ::nbd_set_mode(h_, static_cast<int>(mode));
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_get_mode(3): read the mode
  Mode get_mode() noexcept {
    const auto r = ::nbd_get_mode(h_);
    return static_cast<Mode>(r);
  }

  // nbd_get_version(3): the library version
  std::string_view get_version() noexcept {
    const auto r = ::nbd_get_version(h_);
    return detail::view(r);
  }

  // nbd_pread(3): read data
  void pread(std::span<std::byte> buf, uint64_t offset, CmdFlags flags = {}) {
    detail::CallbackScope scope;
    const auto r = ::nbd_pread(h_, buf.data(), buf.size(), offset, flags.value());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_aio_pread(3): start reading data
  // buf must stay valid until the command completes.
  int64_t aio_pread(std::span<std::byte> buf, uint64_t offset, ChunkCallback chunk_callback,
                    CompletionCallback completion_callback = {}, CmdFlags flags = {}) {
    detail::CallbackScope scope;
    const auto r = ::nbd_aio_pread(h_, buf.data(), buf.size(), offset,
                                   std::move(chunk_callback).release(),
                                   std::move(completion_callback).release(), flags.value());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
    return r;
  }

  // nbd_set_debug_callback(3): set the debug callback
  void set_debug_callback(DebugCallback debug_callback) {
    detail::CallbackScope scope;
    const auto r = ::nbd_set_debug_callback(h_, std::move(debug_callback).release());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_block_status_64(3): describe a range
  void block_status_64(uint64_t count, uint64_t offset, const std::vector<std::string>& contexts,
                       Extent64Callback extent64_callback) {
    detail::CStringList contexts_c{contexts, "nbd_block_status_64", "contexts"};
    detail::CallbackScope scope;
    const auto r = ::nbd_block_status_64(h_, count, offset, contexts_c.get(),
                                         std::move(extent64_callback).release());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_get_name(3): get the handle name
  std::string get_name() {
    detail::CallbackScope scope;
    const detail::MallocedString r{::nbd_get_name(h_)};
    scope.rethrow();
    if (r == nullptr)
      detail::throw_last_error(h_);
    return std::string{r.get()};
  }

  // nbd_stats_bytes_sent(3): count bytes sent
  uint64_t stats_bytes_sent() noexcept {
    const auto r = ::nbd_stats_bytes_sent(h_);
    return r;
  }

  // nbd_connect_vsock(3): connect over AF_VSOCK
  void connect_vsock(uint32_t cid, uint32_t port) {
    detail::CallbackScope scope;
    const auto r = ::nbd_connect_vsock(h_, cid, port);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_set_debug(3): turn debug messages on or off
  void set_debug(bool debug) {
    detail::CallbackScope scope;
    const auto r = ::nbd_set_debug(h_, debug);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_get_debug(3): whether debug messages are on
  bool get_debug() noexcept {
    const auto r = ::nbd_get_debug(h_);
    return r != 0;
  }

  // nbd_set_handle_name(3): name the handle
  void set_handle_name(std::string_view handle_name) {
    const detail::CString handle_name_c{handle_name, "nbd_set_handle_name", "handle_name"};
    detail::CallbackScope scope;
    const auto r = ::nbd_set_handle_name(h_, handle_name_c.get());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_set_strict_mode(3): choose the client-side checks
  void set_strict_mode(StrictFlags flags) {
    detail::CallbackScope scope;
    const auto r = ::nbd_set_strict_mode(h_, flags.value());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_get_strict_mode(3): the client-side checks in force
  StrictFlags get_strict_mode() noexcept {
    const auto r = ::nbd_get_strict_mode(h_);
    return StrictFlags{r};
  }

  // nbd_set_private_data(3): keep a value in the handle
  uintptr_t set_private_data(uintptr_t private_data) noexcept {
    const auto r = ::nbd_set_private_data(h_, private_data);
    return r;
  }

  // nbd_connect_unix(3): connect over a Unix domain socket
  void connect_unix(std::string_view unixsocket) {
    const detail::CString unixsocket_c{unixsocket, "nbd_connect_unix", "unixsocket"};
    detail::CallbackScope scope;
    const auto r = ::nbd_connect_unix(h_, unixsocket_c.get());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_connect_socket(3): connect over a connected socket
  void connect_socket(int sock) {
    detail::CallbackScope scope;
    const auto r = ::nbd_connect_socket(h_, sock);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_aio_connect(3): start connecting to a socket address
  void aio_connect(const struct sockaddr* addr, socklen_t addrlen) {
    detail::CallbackScope scope;
    const auto r = ::nbd_aio_connect(h_, addr, addrlen);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_get_protocol(3): the protocol the server speaks
  std::string_view get_protocol() {
    detail::CallbackScope scope;
    const auto r = ::nbd_get_protocol(h_);
    scope.rethrow();
    if (r == nullptr)
      detail::throw_last_error(h_);
    return detail::view(r);
  }

  // nbd_get_size(3): the size of the export
  int64_t get_size() {
    detail::CallbackScope scope;
    const auto r = ::nbd_get_size(h_);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
    return r;
  }

  // nbd_get_nr_meta_contexts(3): count the metadata contexts
  size_t get_nr_meta_contexts() {
    detail::CallbackScope scope;
    const auto r = ::nbd_get_nr_meta_contexts(h_);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
    return static_cast<size_t>(r);
  }

  // nbd_get_meta_context(3): a metadata context by index
  std::string get_meta_context(size_t i) {
    detail::CallbackScope scope;
    const detail::MallocedString r{::nbd_get_meta_context(h_, i)};
    scope.rethrow();
    if (r == nullptr)
      detail::throw_last_error(h_);
    return std::string{r.get()};
  }

  // nbd_pwrite(3): write data
  void pwrite(std::span<const std::byte> buf, uint64_t offset, CmdFlags flags = {}) {
    detail::CallbackScope scope;
    const auto r = ::nbd_pwrite(h_, buf.data(), buf.size(), offset, flags.value());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_aio_pwrite(3): start writing data
  // buf must stay valid until the command completes.
  int64_t aio_pwrite(std::span<const std::byte> buf, uint64_t offset,
                     CompletionCallback completion_callback = {}, CmdFlags flags = {}) {
    detail::CallbackScope scope;
    const auto r = ::nbd_aio_pwrite(h_, buf.data(), buf.size(), offset,
                                    std::move(completion_callback).release(), flags.value());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
    return r;
  }

  // nbd_poll(3): wait for the handle
  int poll(int timeout) {
    detail::CallbackScope scope;
    const auto r = ::nbd_poll(h_, timeout);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
    return r;
  }

  // nbd_aio_get_fd(3): the socket of the handle
  int aio_get_fd() {
    detail::CallbackScope scope;
    const auto r = ::nbd_aio_get_fd(h_);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
    return r;
  }

  // nbd_aio_get_direction(3): what the handle waits for
  unsigned aio_get_direction() noexcept {
    const auto r = ::nbd_aio_get_direction(h_);
    return r;
  }

  // nbd_set_concurrent_writer(3): send outgoing data through an application thread
  void set_concurrent_writer(WriterCallback writer) {
    detail::CallbackScope scope;
    const auto r = ::nbd_set_concurrent_writer(h_, std::move(writer).release());
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

  // nbd_concurrent_writer_error(3): report a send failure from the concurrent writer
  void concurrent_writer_error(int err) {
    detail::CallbackScope scope;
    const auto r = ::nbd_concurrent_writer_error(h_, err);
    scope.rethrow();
    if (r == -1)
      detail::throw_last_error(h_);
  }

 private:
  // A callback may run while the handle closes (a debug message); a destructor must not throw,
  // so its exception is dropped with the scope.
  void destroy() noexcept {
    detail::CallbackScope scope;
    ::nbd_close(std::exchange(h_, nullptr));
  }

  nbd_handle* h_;
};

}  // namespace nbd
