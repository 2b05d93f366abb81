// copy_file.cpp: a regular file or block device as a `nbdpp copy` endpoint, read and written
// synchronously at any offset; and opening a local path as the endpoint it turns out to be.
#include "copy_endpoint.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace nbdpp {
namespace {

// Whole-buffer pread: 0, or the errno.
int pread_full(int fd, std::byte* buf, size_t n, uint64_t off) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return errno;
    if (r == 0)
      return EIO;  // the file shrank under us
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return 0;
}

uint64_t block_device_size(int fd, const std::string& name) {
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) == -1)
    throw Failure(name + ": cannot get the block device size: " + errno_text(errno));
  return size;
}

class FileEndpoint final : public Endpoint {
 public:
  // fresh: a destination file just created or truncated, whose holes need no writing.
  FileEndpoint(std::string name, UniqueFd fd, std::optional<uint64_t> size, bool source,
               bool block_device, bool fresh)
      : Endpoint(std::move(name), size),
        fd_(std::move(fd)),
        source_(source),
        block_device_(block_device),
        fresh_(fresh) {}

  // A new file takes the size now (before copying, or at the end of a stream source, whose
  // trailing zeroes were skipped).
  void source_size(uint64_t bytes) override {
    if (block_device_) {
      if (*size() < bytes)
        throw Failure(name() + ": the block device (" + std::to_string(*size()) +
                      " bytes) is smaller than the source (" + std::to_string(bytes) + " bytes)");
      return;
    }
    set_size(bytes);
    if (ftruncate(fd_.get(), static_cast<off_t>(bytes)) == -1)
      throw Failure("cannot set the size of " + name() + ": " + errno_text(errno));
  }

  // A block device has no holes to find.
  Planner::Fetch extents(unsigned) override {
    if (block_device_)
      return {};
    return [this](uint64_t offset, uint64_t count, std::vector<Extent>& out) {
      return file_extents(fd_.get(), *size(), offset, count, out);
    };
  }

  uint64_t read(unsigned, std::span<std::byte> buf, uint64_t offset, Done done) override {
    done(pread_full(fd_.get(), buf.data(), buf.size(), offset));
    return buf.size();
  }

  void write(unsigned, std::span<const std::byte> buf, uint64_t offset, Done done) override {
    done(write_full(fd_.get(), buf, offset));
  }

  void zero(unsigned, uint64_t offset, uint64_t length, Done done) override {
    if (fresh_) {
      done(0);  // a hole already
      return;
    }
    // A block device: let it zero the range (punching a hole where it can), else write.
    if (fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset), static_cast<off_t>(length)) == 0 ||
        fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
      done(0);
      return;
    }
    done(write_zeroes(fd_.get(), length, offset));
  }

  void flush() override {
    if (fdatasync(fd_.get()) == -1)
      throw Failure("flushing " + name() + ": " + errno_text(errno));
  }

  // A source's close cannot lose anything.
  void close() override {
    if (fd_.get() >= 0 && fd_.close() == -1 && !source_)
      throw Failure("closing " + name() + ": " + errno_text(errno));
  }

 private:
  std::string summary() const override {
    return block_device_ ? "block device" : fresh_ ? "new file" : "file";
  }

  UniqueFd fd_;
  const bool source_;
  const bool block_device_;
  const bool fresh_;
};

}  // namespace

// A regular file destination is made afresh, so that its holes need no writing and stay holes;
// block devices and streams are used in place.
std::unique_ptr<Endpoint> open_path(const Operand& op, bool source) {
  const std::string name = op.display();
  const std::string is_a_directory =
      std::string{"cannot copy "} + (source ? "from " : "to ") + op.text + ": it is a directory";
  struct stat st {};
  int flags = O_RDONLY | O_CLOEXEC;
  if (!source) {
    const bool exists = ::stat(op.text.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
      throw Failure(is_a_directory);
    const bool in_place = exists && !S_ISREG(st.st_mode);
    flags = in_place ? O_WRONLY | O_CLOEXEC : O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  }
  UniqueFd fd{::open(op.text.c_str(), flags, 0666)};
  if (fd.get() < 0)
    throw Failure("cannot open " + op.text + (source ? "" : " for writing") + ": " +
                  errno_text(errno));
  if (fstat(fd.get(), &st) == -1)
    throw Failure("cannot stat " + op.text + ": " + errno_text(errno));
  if (S_ISREG(st.st_mode)) {
    const auto size = source ? std::optional{static_cast<uint64_t>(st.st_size)} : std::nullopt;
    return std::make_unique<FileEndpoint>(name, std::move(fd), size, source, false, !source);
  }
  if (S_ISBLK(st.st_mode)) {
    const uint64_t size = block_device_size(fd.get(), name);
    return std::make_unique<FileEndpoint>(name, std::move(fd), size, source, true, false);
  }
  if (S_ISDIR(st.st_mode))
    throw Failure(is_a_directory);
  return open_stream(name, std::move(fd), source);
}

}  // namespace nbdpp
