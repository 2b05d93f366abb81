// debug.hpp: debug messages, to the debug callback if set, otherwise to stderr.
#pragma once

struct nbd_handle;

namespace nbd {

// Emits one debug message for h, tagged with the public call in progress.  Callers test
// h.debug_enabled() first so disabled debugging costs one branch.
void debug(nbd_handle& h, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// The "leave:" line of a failed call: the error message just recorded.
void debug_leave_error(nbd_handle& h);

// A string argument for the debug trace: never NULL.
inline const char* printable(const char* s) { return s != nullptr ? s : "(null)"; }

}  // namespace nbd
