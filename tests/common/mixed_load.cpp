// mixed_load.cpp: one handle driven with hundreds of mixed aio reads and writes in flight.
#include "common/mixed_load.hpp"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

namespace nbd_test {
namespace {

void fill_random(std::mt19937& rng, char* p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = static_cast<char>(rng());
}

// One slot of a region: owned by at most one command at a time.
struct Slot {
  std::vector<char> expected = std::vector<char>(65536, 0);  // what the server holds
  std::vector<char> buf = std::vector<char>(65536);          // the in-flight command's buffer
  bool busy = false;
  bool is_read = false;
  size_t off_in_slot = 0, len = 0;
};

struct Driver {
  std::vector<Slot> slots;
  int completed = 0;
  int verified_reads = 0;
  int verified_writes = 0;
  std::string error;
};

struct Ctx {
  Driver* d;
  size_t slot;
};

int on_complete(void* ud, int* error) {
  auto* c = static_cast<Ctx*>(ud);
  Driver& d = *c->d;
  Slot& s = d.slots[c->slot];
  if (!s.busy && d.error.empty()) d.error = "completion for idle slot " + std::to_string(c->slot);
  if (*error != 0 && d.error.empty()) d.error = "command error " + std::to_string(*error);
  if (*error == 0) {
    if (s.is_read) {
      if (std::memcmp(s.buf.data(), s.expected.data() + s.off_in_slot, s.len) != 0 && d.error.empty())
        d.error = "read mismatch in slot " + std::to_string(c->slot);
      d.verified_reads++;
    } else {
      std::memcpy(s.expected.data() + s.off_in_slot, s.buf.data(), s.len);
      d.verified_writes++;
    }
  }
  s.busy = false;
  d.completed++;
  return 1;  // retire
}

void free_ctx(void* ud) { delete static_cast<Ctx*>(ud); }

}  // namespace

std::string drive_mixed_load(const std::string& uri, uint64_t base, unsigned seed,
                             const std::function<std::string(nbd_handle*)>& setup) {
  constexpr size_t kSlots = 256;
  constexpr int kTotal = 3000;
  nbd_handle* h = nbd_create();
  if (h == nullptr) return std::string("create: ") + nbd_get_error();
  struct Closer {
    nbd_handle* h;
    ~Closer() { nbd_close(h); }
  } closer{h};
  if (nbd_connect_uri(h, uri.c_str()) != 0) return std::string("connect: ") + nbd_get_error();
  if (setup) {
    std::string err = setup(h);
    if (!err.empty()) return "setup: " + err;
  }
  Driver d;
  d.slots.resize(kSlots);
  std::mt19937 rng(seed);
  int issued = 0, max_in_flight = 0;
  int issued_in_call = 0;  // completions fired from inside nbd_aio_pread/pwrite
  while (d.completed < kTotal) {
    // Sweep until no slot is free (a completion inside the issuing call frees one; that is a
    // bug, counted in issued_in_call).
    bool again = true;
    while (again) {
    again = false;
    for (size_t i = 0; i < kSlots && issued < kTotal; i++) {
      Slot& s = d.slots[i];
      if (s.busy) continue;
      s.busy = true;
      s.is_read = rng() % 2 == 0;
      s.len = 4096 + rng() % (65536 - 4096 + 1);
      s.off_in_slot = rng() % (65536 - s.len + 1);
      const uint64_t off = base + i * 65536 + s.off_in_slot;
      auto* ctx = new Ctx{&d, i};
      nbd_completion_callback cb{on_complete, ctx, free_ctx};
      int64_t cookie;
      if (s.is_read) {
        std::memset(s.buf.data(), 0xee, s.len);
        cookie = nbd_aio_pread(h, s.buf.data(), s.len, off, cb, 0);
      } else {
        fill_random(rng, s.buf.data(), s.len);
        cookie = nbd_aio_pwrite(h, s.buf.data(), s.len, off, cb, 0);
      }
      if (cookie < 0) return std::string("aio issue: ") + nbd_get_error();
      issued++;
      if (!s.busy) {
        issued_in_call++;
        again = true;
      }
    }
    }
    max_in_flight = std::max(max_in_flight, nbd_aio_in_flight(h));
    if (!d.error.empty()) return d.error;
    if (d.completed >= kTotal) break;
    if (nbd_aio_in_flight(h) == 0) return "nothing in flight but only " + std::to_string(d.completed) + " completed";
    const int pr = nbd_poll(h, 10000);
    if (pr < 0) return std::string("poll: ") + nbd_get_error();
    if (pr == 0)
      return "nbd_poll timed out after 10 s: in_flight " + std::to_string(nbd_aio_in_flight(h)) + " issued " +
             std::to_string(issued) + " completed " + std::to_string(d.completed) + " direction " +
             std::to_string(nbd_aio_get_direction(h));
  }
  if (!d.error.empty()) return d.error;
  if (nbd_aio_in_flight(h) != 0) return "in flight after all completed: " + std::to_string(nbd_aio_in_flight(h));
  // libnbd 1.14 runs completion callbacks only from nbd_poll / aio_notify_* / sync calls, never from
  // inside nbd_aio_pread/pwrite, so all kSlots commands are in flight after the first sweep.
  if (max_in_flight != int(kSlots) || issued_in_call != 0)
    return "max in flight " + std::to_string(max_in_flight) + " (want " + std::to_string(kSlots) + "), " +
           std::to_string(issued_in_call) + " completion callbacks ran inside nbd_aio_pread/pwrite";
  // Every byte of the region read back synchronously matches.
  std::vector<char> all(kSlots * 65536);
  if (nbd_pread(h, all.data(), all.size(), base, 0) != 0) return std::string("final pread: ") + nbd_get_error();
  for (size_t i = 0; i < kSlots; i++)
    if (std::memcmp(all.data() + i * 65536, d.slots[i].expected.data(), 65536) != 0)
      return "final mismatch in slot " + std::to_string(i);
  if (d.verified_reads + d.verified_writes != kTotal) return "verified count wrong";
  if (nbd_shutdown(h, 0) != 0) return std::string("shutdown: ") + nbd_get_error();
  return "";
}

}  // namespace nbd_test
