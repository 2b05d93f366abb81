// table.cpp: the command table and the pool of spare commands.
#include "cmd/table.hpp"

#include <algorithm>
#include <bit>
#include <utility>


namespace nbd {
namespace {

constexpr size_t kMaxSpare = 256;

}  // namespace

size_t CommandTable::probe(uint64_t cookie) const {
  const size_t mask = slots_.size() - 1;
  size_t i = index(cookie);
  while (slots_[i] && slots_[i]->cookie != cookie)
    i = (i + 1) & mask;
  return i;
}

Command* CommandTable::find(uint64_t cookie) const {
  return size_ == 0 ? nullptr : slots_[probe(cookie)].get();
}

void CommandTable::insert(std::unique_ptr<Command> c) {
  if ((size_ + 1) * 2 > slots_.size())
    grow();
  const size_t mask = slots_.size() - 1;
  size_t i = index(c->cookie);
  while (slots_[i])
    i = (i + 1) & mask;
  slots_[i] = std::move(c);
  peak_ = std::max(peak_, ++size_);
}

std::unique_ptr<Command> CommandTable::take(uint64_t cookie) {
  if (size_ == 0)
    return nullptr;
  size_t i = probe(cookie);
  if (!slots_[i])
    return nullptr;
  const size_t mask = slots_.size() - 1;
  std::unique_ptr<Command> out = std::move(slots_[i]);
  --size_;
  // Backward shift: an entry further on moves into the hole unless its home slot lies
  // (cyclically) after the hole and at or before where it sits.
  for (size_t j = (i + 1) & mask; slots_[j]; j = (j + 1) & mask) {
    const size_t home = index(slots_[j]->cookie);
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      slots_[i] = std::move(slots_[j]);
      i = j;
    }
  }
  return out;
}

Command* CommandTable::any() const {
  if (size_ != 0)
    for (const auto& s : slots_)
      if (s)
        return s.get();
  return nullptr;
}

void CommandTable::clear() {
  for (auto& s : slots_)
    s.reset();
  size_ = 0;
}

void CommandTable::shrink_grown() {
  // peak_ commands needed 2 * peak_ slots.
  if (size_ == 0 && peak_ * 8 <= slots_.size()) {
    slots_ = first_;  // all empty: their commands moved on when the table grew
    grown_.reset();
    shift_ = kInitialShift;
  }
}

void CommandTable::grow() {
  const size_t n = slots_.size() * 2;
  const std::span<std::unique_ptr<Command>> old = slots_;
  std::unique_ptr<std::unique_ptr<Command>[]> old_storage = std::move(grown_);  // freed on return
  grown_ = std::make_unique<std::unique_ptr<Command>[]>(n);
  slots_ = {grown_.get(), n};
  shift_ = static_cast<unsigned>(64 - std::countr_zero(n));
  size_ = 0;
  for (auto& c : old)
    if (c)
      insert(std::move(c));
}

void CommandList::push_back(std::unique_ptr<Command> c) {
  Command* p = c.release();
  p->next = nullptr;
  if (tail_ != nullptr)
    tail_->next = p;
  else
    head_ = p;
  tail_ = p;
  ++size_;
}

void CommandList::push_front(std::unique_ptr<Command> c) {
  Command* p = c.release();
  p->next = head_;
  head_ = p;
  if (tail_ == nullptr)
    tail_ = p;
  ++size_;
}

std::unique_ptr<Command> CommandList::pop_front() {
  std::unique_ptr<Command> c(head_);
  head_ = head_->next;
  if (head_ == nullptr)
    tail_ = nullptr;
  c->next = nullptr;
  --size_;
  return c;
}

std::unique_ptr<Command> CommandList::take(uint64_t cookie) {
  Command* prev = nullptr;
  for (Command* p = head_; p != nullptr; prev = p, p = p->next) {
    if (p->cookie != cookie)
      continue;
    (prev != nullptr ? prev->next : head_) = p->next;
    if (tail_ == p)
      tail_ = prev;
    p->next = nullptr;
    --size_;
    return std::unique_ptr<Command>(p);
  }
  return nullptr;
}

void CommandList::clear() {
  while (!empty())
    pop_front();
}

std::unique_ptr<Command> CommandPool::get() {
  if (spare_.empty())
    return std::make_unique<Command>();
  std::unique_ptr<Command> c = spare_.pop_front();
  low_ = std::min(low_, spare_.size());
  return c;
}

void CommandPool::put(std::unique_ptr<Command> c) {
  c->free_closures();
  if (spare_.size() >= kMaxSpare)
    return;
  c->clear();
  spare_.push_front(std::move(c));
}

void CommandPool::drop_unused() {
  for (size_t n = std::min(low_, spare_.size() - kIdleSpare); n > 0; --n)
    spare_.pop_front();
}

}  // namespace nbd
