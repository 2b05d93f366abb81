// table.cpp: the command table and the pool of spare commands.
#include "cmd/table.hpp"

#include <algorithm>
#include <bit>
#include <utility>

#include "util.hpp"

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
    release_storage(slots_);
    shift_ = 64;
  }
}

void CommandTable::grow() {
  std::vector<std::unique_ptr<Command>> old = std::move(slots_);
  slots_.clear();
  slots_.resize(old.empty() ? kInitialSlots : old.size() * 2);
  shift_ = static_cast<unsigned>(64 - std::countr_zero(slots_.size()));
  size_ = 0;
  for (auto& c : old)
    if (c)
      insert(std::move(c));
}

std::unique_ptr<Command> CommandPool::get() {
  if (spare_.empty())
    return std::make_unique<Command>();
  std::unique_ptr<Command> c = std::move(spare_.back());
  spare_.pop_back();
  low_ = std::min(low_, spare_.size());
  return c;
}

void CommandPool::put(std::unique_ptr<Command> c) {
  // Frees the closures now, the completion last, as destroying the command would.
  c->extent.reset();
  c->chunk.reset();
  c->completion.reset();
  if (spare_.size() >= kMaxSpare)
    return;
  c->clear();
  spare_.push_back(std::move(c));
}

void CommandPool::drop_unused() {
  spare_.resize(spare_.size() - std::min(low_, spare_.size() - kIdleSpare));
  if (spare_.capacity() >= 4 * spare_.size()) {
    std::vector<std::unique_ptr<Command>> keep;
    keep.reserve(spare_.size());
    for (auto& c : spare_)
      keep.push_back(std::move(c));
    spare_.swap(keep);
  }
}

}  // namespace nbd
