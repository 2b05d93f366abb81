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
}  // namespace nbd
