// table.hpp: the commands in flight, by cookie, and the spare Command objects kept for reuse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "cmd/command.hpp"

namespace nbd {

// Open addressing with linear probing over a power-of-two array, at most half full.  Cookies
// are handed out in sequence; Fibonacci hashing scatters them, so the commands in flight do
// not form one long run of occupied slots that every removal would walk.  Removal shifts the
// entries after it back, so no tombstones build up.  Inserting allocates nothing unless the
// table grows.
class CommandTable {
 public:
  Command* find(uint64_t cookie) const;
  // cookie must not be present.
  void insert(std::unique_ptr<Command> c);
  // Removes and returns the command, or nullptr if it is not here.
  std::unique_ptr<Command> take(uint64_t cookie);
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Some command of the table (nullptr if empty), for draining it.
  Command* any() const;
  template <class F>
  void for_each(F f) const {
    for (const auto& s : slots_)
      if (s)
        f(*s);
  }
  void clear();

 private:
  size_t index(uint64_t cookie) const {
    return static_cast<size_t>((cookie * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  // The slot holding cookie, or the empty slot where its probe ends (the table is not empty).
  size_t probe(uint64_t cookie) const;
  void grow();

  std::vector<std::unique_ptr<Command>> slots_;
  size_t size_ = 0;
  unsigned shift_ = 64;  // 64 - log2(slots_.size())
};

// Command objects are recycled: one that was retired is cleared (its closures freed, in the
// order a destroyed Command frees them) and kept for the next request, up to a limit.
class CommandPool {
 public:
  std::unique_ptr<Command> get();
  void put(std::unique_ptr<Command> c);

 private:
  std::vector<std::unique_ptr<Command>> spare_;
};

}  // namespace nbd
