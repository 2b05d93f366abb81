// planner.hpp: how `nbdpp copy` cuts the source into requests, using what it knows about
// where the source reads as zeroes.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "server.hpp"

namespace nbdpp {

// One piece of work: copy [offset, offset + length).  zero: the source reads as zeroes there
// (a hole or a zero extent), so nothing needs reading.
struct Chunk {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool zero = false;
};

// Hands out chunks to the copy's workers, in offset order, under a lock.  Data chunks are one
// request long and start on a multiple of the request size, so requests stay aligned to any
// block size that divides it.  A run of whole requests that read as zeroes becomes one zero
// chunk of up to max_zero bytes.  A stream source (unknown size) gets data chunks until
// end_of_stream says where it ended.
class Planner {
 public:
  // Appends the source's extents from offset on (at most count bytes, at least one extent;
  // kStateZero in flags marks zeroes) to out and returns where they end.  Runs with the
  // planner's lock held, on the calling worker's own connection.
  using Fetch = std::function<uint64_t(uint64_t offset, uint64_t count, std::vector<Extent>& out)>;

  Planner(std::optional<uint64_t> size, uint64_t request_size, uint64_t max_zero)
      : size_(size), request_size_(request_size), max_zero_(max_zero) {}

  // The next chunk, or nullopt when the whole source has been handed out.  An empty fetch
  // means the source is all data.
  std::optional<Chunk> next(const Fetch& fetch);

  // A stream source ended at size: no chunk is handed out past it.
  void end_of_stream(uint64_t size);

 private:
  bool reads_as_zero(uint64_t from, uint64_t to, const Fetch& fetch);

  std::mutex mu_;
  std::optional<uint64_t> size_;
  const uint64_t request_size_;
  const uint64_t max_zero_;
  uint64_t pos_ = 0;
  std::deque<Extent> known_;  // the source's extents over [pos_, known_end_), roughly
  uint64_t known_end_ = 0;
  bool ended_ = false;
};

// Fetch for a local file: SEEK_DATA and SEEK_HOLE.  A file system that cannot tell reports
// everything as data.
uint64_t file_extents(int fd, uint64_t size, uint64_t offset, uint64_t count,
                      std::vector<Extent>& out);

}  // namespace nbdpp
