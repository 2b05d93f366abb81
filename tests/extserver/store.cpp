// store.cpp: the sparse in-memory disk image.
#include "store.hpp"

#include <algorithm>
#include <cstring>

namespace ext_server {

std::pair<uint64_t, uint64_t> Store::whole_blocks(uint64_t offset, uint64_t length) const {
  const uint64_t end = offset + length;
  const uint64_t first = (offset + kBlockSize - 1) / kBlockSize;
  const uint64_t last = end == size_ ? (size_ + kBlockSize - 1) / kBlockSize : end / kBlockSize;
  return {first, std::max(first, last)};
}

std::vector<Store::Run> Store::runs_locked(uint64_t offset, uint64_t length, size_t max_runs) const {
  std::vector<Run> out;
  const uint64_t end = offset + length;
  auto it = blocks_.lower_bound(offset / kBlockSize);
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t block = pos / kBlockSize;
    Kind kind = Kind::Hole;
    uint64_t next = 0;
    if (it != blocks_.end() && it->first == block) {
      kind = it->second ? Kind::Data : Kind::Zero;
      next = std::min(end, (block + 1) * kBlockSize);
      ++it;
    } else {
      next = it == blocks_.end() ? end : std::min(end, it->first * kBlockSize);
    }
    if (!out.empty() && out.back().kind == kind) {
      out.back().length += next - pos;
    } else if (out.size() == max_runs) {
      break;
    } else {
      out.push_back({next - pos, kind});
    }
    pos = next;
  }
  return out;
}

std::vector<Store::Run> Store::runs(uint64_t offset, uint64_t length, size_t max_runs) {
  std::lock_guard lock(mu_);
  return runs_locked(offset, length, max_runs);
}

std::vector<Store::Run> Store::read(uint64_t offset, char* out, uint64_t length) {
  std::lock_guard lock(mu_);
  std::memset(out, 0, length);
  for (auto it = blocks_.lower_bound(offset / kBlockSize);
       it != blocks_.end() && it->first * kBlockSize < offset + length; ++it) {
    if (!it->second)
      continue;
    const uint64_t start = std::max(offset, it->first * kBlockSize);
    const uint64_t stop = std::min(offset + length, (it->first + 1) * kBlockSize);
    std::memcpy(out + (start - offset), it->second.get() + (start - it->first * kBlockSize), stop - start);
  }
  return runs_locked(offset, length, SIZE_MAX);
}

void Store::write(uint64_t offset, const char* data, uint64_t length) {
  std::lock_guard lock(mu_);
  uint64_t pos = offset;
  while (pos < offset + length) {
    const uint64_t block = pos / kBlockSize;
    const uint64_t stop = std::min(offset + length, (block + 1) * kBlockSize);
    auto& contents = blocks_[block];
    if (!contents)
      contents = std::make_unique<char[]>(kBlockSize);  // value-initialised: zeroes
    std::memcpy(contents.get() + (pos - block * kBlockSize), data + (pos - offset), stop - pos);
    pos = stop;
  }
}

void Store::zero(uint64_t offset, uint64_t length, bool keep_allocated) {
  if (length == 0)
    return;
  std::lock_guard lock(mu_);
  const auto [first, last] = whole_blocks(offset, length);
  // The partly covered blocks at either end: clear the covered bytes of those that hold data.
  for (auto it = blocks_.lower_bound(offset / kBlockSize);
       it != blocks_.end() && it->first * kBlockSize < offset + length; ++it) {
    if ((it->first >= first && it->first < last) || !it->second)
      continue;
    const uint64_t start = std::max(offset, it->first * kBlockSize);
    const uint64_t stop = std::min(offset + length, (it->first + 1) * kBlockSize);
    std::memset(it->second.get() + (start - it->first * kBlockSize), 0, stop - start);
  }
  blocks_.erase(blocks_.lower_bound(first), blocks_.lower_bound(last));
  if (keep_allocated) {
    // NO_HOLE: the whole range is provisioned, the partly covered end blocks included;
    // emplace keeps a block that holds data.
    for (uint64_t block = offset / kBlockSize; block <= (offset + length - 1) / kBlockSize; ++block)
      blocks_.emplace(block, nullptr);
  }
}

void Store::trim(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  const auto [first, last] = whole_blocks(offset, length);
  blocks_.erase(blocks_.lower_bound(first), blocks_.lower_bound(last));
}

}  // namespace ext_server
