// settings.cpp: core bodies of the calls that only store or read a handle field (`setting:` in
// api.yaml).
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
#include "handle.hpp"
#include "unlocked.hpp"
#include "util.hpp"

namespace nbd {

int unlocked_get_mode (nbd_handle& h) {
  return h.mode;
}

int unlocked_set_debug (nbd_handle& h, bool debug) {
  h.debug = debug;
  return 0;
}

int unlocked_get_debug (nbd_handle& h) {
  return h.debug;
}

int unlocked_set_handle_name (nbd_handle& h, const char *handle_name) {
  h.name = handle_name;
  return 0;
}

int unlocked_set_strict_mode (nbd_handle& h, uint32_t flags) {
  h.strict = flags;
  return 0;
}

uint32_t unlocked_get_strict_mode (nbd_handle& h) {
  return h.strict;
}
}  // namespace nbd
