// planner.cpp: cutting the source of a copy into data and zero chunks.
#include "planner.hpp"

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <nbd/nbd.hpp>

namespace nbdpp {

std::optional<Chunk> Planner::next(const Fetch& fetch) {
  std::lock_guard lock{mu_};
  if (!size_) {
    if (ended_)
      return std::nullopt;
    Chunk c{pos_, request_size_, false};
    pos_ += request_size_;
    return c;
  }
  if (pos_ >= *size_)
    return std::nullopt;
  uint64_t end = std::min(pos_ + request_size_, *size_);
  Chunk c{pos_, end - pos_, false};
  if (fetch && reads_as_zero(pos_, end, fetch)) {
    c.zero = true;
    while (end < *size_ && end - pos_ < max_zero_) {
      const uint64_t next_end = std::min(end + request_size_, *size_);
      if (!reads_as_zero(end, next_end, fetch))
        break;
      end = next_end;
    }
    c.length = end - pos_;
  }
  pos_ = end;
  while (!known_.empty() && known_.front().offset + known_.front().length <= pos_)
    known_.pop_front();
  return c;
}

void Planner::end_of_stream(uint64_t size) {
  std::lock_guard lock{mu_};
  ended_ = true;
  size_.reset();
  pos_ = size;
}

bool Planner::reads_as_zero(uint64_t from, uint64_t to, const Fetch& fetch) {
  std::vector<Extent> fetched;
  while (known_end_ < to) {
    fetched.clear();
    known_end_ = fetch(known_end_, std::min(*size_ - known_end_, kMaxBlockStatus), fetched);
    known_.insert(known_.end(), fetched.begin(), fetched.end());
  }
  for (const Extent& e : known_) {
    if (e.offset >= to)
      break;
    if (e.offset + e.length > from && (e.flags & nbd::kStateZero) == 0)
      return false;
  }
  return true;
}

uint64_t file_extents(int fd, uint64_t size, uint64_t offset, uint64_t count,
                      std::vector<Extent>& out) {
  const uint64_t end = std::min(size, offset + count);
  const auto add = [&](uint64_t to, bool zero) {
    to = std::min(std::max(to, offset + 1), end);
    out.push_back(Extent{offset, to - offset, zero ? nbd::kStateHole | nbd::kStateZero : 0U});
    return to;
  };
  const off_t data = lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0)
    return add(end, errno == ENXIO);  // ENXIO: only a hole follows; otherwise: cannot tell
  if (static_cast<uint64_t>(data) > offset)
    return add(static_cast<uint64_t>(data), true);
  const off_t hole = lseek(fd, static_cast<off_t>(offset), SEEK_HOLE);
  return add(hole < 0 ? end : static_cast<uint64_t>(hole), false);
}

}  // namespace nbdpp
