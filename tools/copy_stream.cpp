// copy_stream.cpp: standard input or output, a pipe or a character device as a `nbdpp copy`
// endpoint: read and written in order only, by the copy's one worker.
#include "copy_endpoint.hpp"

#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace nbdpp {
namespace {

// Reads up to n bytes, fewer only at the end of the stream; the count, or -errno.
ssize_t read_full(int fd, std::byte* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

class StreamEndpoint final : public Endpoint {
 public:
  // owned is closed at the end; it is empty for standard input and output.
  StreamEndpoint(std::string name, UniqueFd owned, int fd, bool source)
      : Endpoint(std::move(name), std::nullopt),
        owned_(std::move(owned)),
        fd_(fd),
        source_(source) {}

  bool sequential() const override { return true; }

  uint64_t read(unsigned, std::span<std::byte> buf, uint64_t, Done done) override {
    const ssize_t n = read_full(fd_, buf.data(), buf.size());
    if (n < 0) {
      done(static_cast<int>(-n));
      return buf.size();
    }
    done(0);
    return static_cast<uint64_t>(n);
  }

  // Writes and zeroes wait in queued_ until the stream has reached their offset.
  void write(unsigned, std::span<const std::byte> buf, uint64_t offset, Done done) override {
    queued_.insert_or_assign(offset, Pending{buf.data(), buf.size(), std::move(done)});
  }

  void zero(unsigned, uint64_t offset, uint64_t length, Done done) override {
    queued_.insert_or_assign(offset, Pending{nullptr, length, std::move(done)});
  }

  void advance(unsigned) override {
    while (!queued_.empty() && queued_.begin()->first == pos_) {
      Pending p = std::move(queued_.begin()->second);
      queued_.erase(queued_.begin());
      const int error = p.data != nullptr ? write_full(fd_, {p.data, p.length}, std::nullopt)
                                          : write_zeroes(fd_, p.length, std::nullopt);
      pos_ += p.length;
      p.done(error);
    }
  }

  // A source's close cannot lose anything.
  void close() override {
    if (owned_.get() >= 0 && owned_.close() == -1 && !source_)
      throw Failure("closing " + name() + ": " + errno_text(errno));
  }

 private:
  std::string summary() const override { return "stream"; }

  struct Pending {
    const std::byte* data;  // nullptr: zeroes
    uint64_t length;
    Done done;
  };

  UniqueFd owned_;
  const int fd_;
  const bool source_;
  std::map<uint64_t, Pending> queued_;  // by offset
  uint64_t pos_ = 0;                    // where the stream stands
};

}  // namespace

std::unique_ptr<Endpoint> open_stdio(bool source) {
  return std::make_unique<StreamEndpoint>(source ? "standard input" : "standard output",
                                          UniqueFd{}, source ? STDIN_FILENO : STDOUT_FILENO,
                                          source);
}

std::unique_ptr<Endpoint> open_stream(std::string name, UniqueFd fd, bool source) {
  const int raw = fd.get();
  return std::make_unique<StreamEndpoint>(std::move(name), std::move(fd), raw, source);
}

}  // namespace nbdpp
