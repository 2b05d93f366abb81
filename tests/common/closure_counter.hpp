// closure_counter.hpp: C closures for every callback type that count their calls and frees.
#pragma once

#include <libnbd.h>

namespace nbd_test {

struct Counter {
  int calls = 0;
  int frees = 0;
};

inline void count_free(void* user_data) { ++static_cast<Counter*>(user_data)->frees; }

inline nbd_chunk_callback chunk_closure(Counter& c) {
  return {[](void* ud, const void*, size_t, uint64_t, unsigned, int*) {
            ++static_cast<Counter*>(ud)->calls;
            return 0;
          },
          &c, count_free};
}

inline nbd_completion_callback completion_closure(Counter& c) {
  return {[](void* ud, int*) {
            ++static_cast<Counter*>(ud)->calls;
            return 0;
          },
          &c, count_free};
}

inline nbd_debug_callback debug_closure(Counter& c) {
  return {[](void* ud, const char*, const char*) {
            ++static_cast<Counter*>(ud)->calls;
            return 0;
          },
          &c, count_free};
}

inline nbd_extent_callback extent_closure(Counter& c) {
  return {[](void* ud, const char*, uint64_t, uint32_t*, size_t, int*) {
            ++static_cast<Counter*>(ud)->calls;
            return 0;
          },
          &c, count_free};
}

inline nbd_list_callback list_closure(Counter& c) {
  return {[](void* ud, const char*, const char*) {
            ++static_cast<Counter*>(ud)->calls;
            return 0;
          },
          &c, count_free};
}

inline nbd_context_callback context_closure(Counter& c) {
  return {[](void* ud, const char*) {
            ++static_cast<Counter*>(ud)->calls;
            return 0;
          },
          &c, count_free};
}

inline nbd_writer_callback writer_closure(Counter& c) {
  return {[](void* ud, const void*, size_t) {
            ++static_cast<Counter*>(ud)->calls;
            return 0;
          },
          &c, count_free};
}

// A closure with only .free set: valid, and still freed exactly once.
template <class C>
C free_only(Counter& c) {
  C closure{};
  closure.user_data = &c;
  closure.free = count_free;
  return closure;
}

}  // namespace nbd_test
