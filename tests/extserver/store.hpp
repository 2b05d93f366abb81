// store.hpp: a sparse in-memory disk image, shared by every connection of one server process.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace ext_server {

// The export's bytes in 64 KiB blocks allocated on first write; a block never written reads as
// zeroes and costs nothing, so a large export (or zeroing 5 GiB of one) needs no memory.  Every call
// takes the lock, so connections on other threads see each other's writes at once.  Callers have
// checked that [offset, offset + length) lies within size().
class Store {
 public:
  static constexpr uint64_t kBlockSize = 64 * 1024;

  // How a run of the export is stored, which is what base:allocation reports.
  enum class Kind { Hole, Zero, Data };  // unallocated; allocated but known zero; written
  struct Run {
    uint64_t length;
    Kind kind;
  };

  explicit Store(uint64_t size) : size_(size) {}

  uint64_t size() const { return size_; }
  // Fills out[0, length) and returns its runs, consistent with the bytes read.
  std::vector<Run> read(uint64_t offset, char* out, uint64_t length);
  void write(uint64_t offset, const char* data, uint64_t length);
  // Blocks wholly inside the range become holes, or with keep_allocated (NBD_CMD_FLAG_NO_HOLE)
  // allocated zeroes; the parts of partly covered blocks that hold data are cleared.
  void zero(uint64_t offset, uint64_t length, bool keep_allocated);
  // Blocks wholly inside the range become holes; partly covered ones stay (proto.md NBD_CMD_TRIM
  // lets the server discard less than asked).
  void trim(uint64_t offset, uint64_t length);
  // The runs from offset, at most max_runs of them, together no longer than length.
  std::vector<Run> runs(uint64_t offset, uint64_t length, size_t max_runs);

 private:
  // Block indexes [first, last) wholly inside [offset, offset + length); the export's last block
  // counts as whole when the range reaches the end of the export.
  std::pair<uint64_t, uint64_t> whole_blocks(uint64_t offset, uint64_t length) const;
  std::vector<Run> runs_locked(uint64_t offset, uint64_t length, size_t max_runs) const;

  const uint64_t size_;
  std::mutex mu_;
  // Block index -> contents; a null pointer is an allocated block that reads as zeroes.
  std::map<uint64_t, std::unique_ptr<char[]>> blocks_;
};

}  // namespace ext_server
