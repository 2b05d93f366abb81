// table.hpp: the commands in flight, by cookie, and the spare Command objects kept for reuse.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "cmd/command.hpp"

namespace nbd {

// Open addressing with linear probing over a power-of-two array, at most half full.  Cookies
// are handed out in sequence; Fibonacci hashing scatters them, so the commands in flight do
// not form one long run of occupied slots that every removal would walk.  Removal shifts the
// entries after it back, so no tombstones build up.  Inserting allocates nothing unless the
// table grows; its first slots are inside it.
class CommandTable {
 public:
  CommandTable() = default;
  CommandTable(const CommandTable&) = delete;  // slots_ may point into the table itself
  CommandTable& operator=(const CommandTable&) = delete;

  Command* find(uint64_t cookie) const;
  // cookie must not be present.
  void insert(std::unique_ptr<Command> c);
  // Removes and returns the command, or nullptr if it is not here.
  std::unique_ptr<Command> take(uint64_t cookie);
  size_t size() const { return size_; }
  size_t slot_count() const { return slots_.size(); }
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
  // Frees the slots if the table is empty, grew beyond its first size, and is four times what
  // was needed since the last call: a handle that stays as busy keeps what it uses.
  void shrink() {
    if (slots_.size() > kInitialSlots)
      shrink_grown();
    peak_ = size_;
  }

 private:
  size_t index(uint64_t cookie) const {
    return static_cast<size_t>((cookie * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  // The slot holding cookie, or the empty slot where its probe ends (the table is not empty).
  size_t probe(uint64_t cookie) const;
  void grow();
  void shrink_grown();

  // Room for four commands: what a handle used one request at a time needs.
  static constexpr size_t kInitialSlots = 8;
  static constexpr unsigned kInitialShift = 64 - std::countr_zero(kInitialSlots);

  std::unique_ptr<Command> first_[kInitialSlots];
  std::unique_ptr<std::unique_ptr<Command>[]> grown_;  // the slots once the table grew
  std::span<std::unique_ptr<Command>> slots_{first_};  // first_ or grown_
  size_t size_ = 0;
  size_t peak_ = 0;                 // the largest size_ since the last shrink()
  unsigned shift_ = kInitialShift;  // 64 - log2(slots_.size())
};

// Commands chained through Command::next and owned by the list: the completed commands waiting
// to be retired, and the pool's spares, take no storage of their own (a handle allocates
// nothing for them, and frees nothing when closed).
class CommandList {
 public:
  CommandList() = default;
  ~CommandList() { clear(); }
  CommandList(const CommandList&) = delete;
  CommandList& operator=(const CommandList&) = delete;

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  const Command* front() const { return head_; }
  void push_back(std::unique_ptr<Command> c);
  void push_front(std::unique_ptr<Command> c);
  std::unique_ptr<Command> pop_front();
  // Removes and returns the command with this cookie, or nullptr if it is not here.
  std::unique_ptr<Command> take(uint64_t cookie);
  void clear();

 private:
  Command* head_ = nullptr;
  Command* tail_ = nullptr;
  size_t size_ = 0;
};

// Command objects are recycled: one that was retired is cleared (its closures freed, in the
// order a destroyed Command frees them) and kept for the next request, up to a limit.
class CommandPool {
 public:
  std::unique_ptr<Command> get();
  void put(std::unique_ptr<Command> c);
  // For a handle with no command in flight: frees the spares no request took since the last
  // call, down to a couple (the load has dropped, and will they be needed again?).
  void trim() {
    if (low_ > 0 && spare_.size() > kIdleSpare)
      drop_unused();
    low_ = spare_.size();
  }

 private:
  void drop_unused();

  static constexpr size_t kIdleSpare = 2;
  CommandList spare_;  // the last one put is the first one got
  size_t low_ = 0;  // the fewest spares since the last trim(): that many were not needed
};

}  // namespace nbd
