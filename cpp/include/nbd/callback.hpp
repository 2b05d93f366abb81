// callback.hpp: boxing C++ callables into libnbd's C closures, and carrying a callback's
// exception back to the nbd::Handle method during which it ran.
#pragma once

#include <cerrno>
#include <concepts>
#include <exception>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace nbd::detail {

// An exception must not unwind through libnbd's C frames, so a trampoline catches it, returns -1
// and parks it here; the Handle method that made the C call rethrows it once the C call has
// returned.  libnbd runs callbacks only on a thread that is inside one of its calls (debug
// messages, the writer, completions while polling or being notified), so a thread-local slot
// reaches the right method.  Unlike a slot in the box or the Handle, it survives the Handle being
// moved or release()d, and needs no lock.  Scopes nest: a callback that uses another Handle gets
// a fresh slot for that call, and the outer one is restored afterwards.
struct CallbackRelay {
  std::exception_ptr pending;  // the first exception of the innermost active scope
  unsigned depth = 0;          // active CallbackScopes on this thread
};

inline thread_local CallbackRelay t_relay;

// Brackets one C call made by a Handle method.
class CallbackScope {
 public:
  CallbackScope() noexcept : outer_(std::exchange(t_relay.pending, nullptr)) { ++t_relay.depth; }
  // An exception not taken by rethrow() (in a destructor, say) is dropped here.
  ~CallbackScope() {
    --t_relay.depth;
    t_relay.pending = std::move(outer_);
  }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

  // Rethrows the first exception a callback threw since this scope began.  It wins over the C
  // call's own result: the C call may have failed because of it, or succeeded (and then its
  // effects stand, e.g. the setting was changed or the command was issued).
  void rethrow() {
    if (t_relay.pending)
      std::rethrow_exception(std::exchange(t_relay.pending, nullptr));
  }

 private:
  std::exception_ptr outer_;
};

// What a callback that threw reports through its `int* error` argument, when it has one and it
// is still 0: ECANCELED, because the client's own code abandoned the operation; it cannot be
// mistaken for an error the server sent (NBD maps those to EPERM, EIO, ENOMEM, EINVAL, ENOSPC,
// EOVERFLOW, ENOTSUP, ESHUTDOWN) nor for libnbd's EPROTO for a misbehaving server.
inline constexpr int kCallbackThrewErrno = ECANCELED;

// Called from a trampoline's catch block.
inline void keep_current_exception() noexcept {
  CallbackRelay& relay = t_relay;
  // The closure was handed to the C API directly (release()) and runs outside any Handle
  // method: there is nowhere to deliver the exception, so it ends the program as an exception
  // leaving a noexcept function would.
  if (relay.depth == 0)
    std::terminate();
  // Later exceptions of the same call are dropped: the first is usually the cause.
  if (!relay.pending)
    relay.pending = std::current_exception();
}

template <class F, class... Args>
concept CallbackFor =
    std::invocable<F&, Args...> &&
    (std::is_void_v<std::invoke_result_t<F&, Args...>> ||
     std::convertible_to<std::invoke_result_t<F&, Args...>, int>);

// The heap box behind a closure's user_data: one type per argument list, whatever the callable.
template <class... Args>
class CallableBase {
 public:
  virtual ~CallableBase() = default;
  virtual int call(Args... args) = 0;
};

template <class F, class... Args>
class Callable final : public CallableBase<Args...> {
 public:
  template <class G>
  explicit Callable(G&& g) : f_(std::forward<G>(g)) {}

  // A callable returning void counts as returning 0 (success).
  int call(Args... args) override {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, Args...>>) {
      std::invoke(f_, args...);
      return 0;
    } else {
      return static_cast<int>(std::invoke(f_, args...));
    }
  }

 private:
  F f_;
};

// Owns a boxed callable until release() hands it to the C library, which then frees it exactly
// once through .free on every path (the call failing included).  C is the C closure struct;
// nbd.hpp derives one class per closure kind that adds the trampoline converting C arguments to
// Args.
template <class C, class... Args>
class Callback {
 public:
  // No callback: release() gives {NULL, NULL, NULL}, the C API's NBD_NULL_*.
  Callback() noexcept = default;

  // Any callable taking Args and returning int (or void, meaning 0).  It is moved or copied into
  // a heap box; it must not throw out of its destructor.
  template <class F>
    requires(!std::is_base_of_v<Callback, std::remove_cvref_t<F>> &&
             CallbackFor<std::decay_t<F>, Args...>)
  Callback(F&& f)  // implicit, so a lambda can be passed where a callback is expected
      : box_(std::make_unique<Callable<std::decay_t<F>, Args...>>(std::forward<F>(f))) {}

  explicit operator bool() const noexcept { return box_ != nullptr; }

 protected:
  using Trampoline = decltype(C::callback);

  C to_c(Trampoline trampoline) && noexcept {
    if (!box_)
      return C{};
    return C{trampoline, box_.release(), &free_box};
  }

  // The body of every trampoline: no exception leaves it.
  static int invoke(void* user_data, int* error, Args... args) noexcept {
    try {
      return static_cast<CallableBase<Args...>*>(user_data)->call(args...);
    } catch (...) {
      if (error != nullptr && *error == 0)
        *error = kCallbackThrewErrno;
      keep_current_exception();
      return -1;
    }
  }

 private:
  static void free_box(void* user_data) noexcept {
    delete static_cast<CallableBase<Args...>*>(user_data);
  }

  std::unique_ptr<CallableBase<Args...>> box_;
};

}  // namespace nbd::detail
