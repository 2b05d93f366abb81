// copy_endpoint.cpp: what every kind of `nbdpp copy` endpoint shares.
#include "copy_endpoint.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nbdpp {

std::string Endpoint::describe() const {
  std::string d = summary();
  if (size_)
    d += ", " + std::to_string(*size_) + " bytes";
  return d;
}

std::span<const std::byte> Endpoint::zeros() {
  std::call_once(zeros_once_, [this] {
    zeros_ = std::make_unique<std::byte[]>(request_size_);  // value-initialised: zeroes
  });
  return {zeros_.get(), static_cast<size_t>(request_size_)};
}

int Endpoint::write_zeroes(int fd, uint64_t length, std::optional<uint64_t> offset) {
  int error = 0;
  for (uint64_t done = 0; done < length && error == 0;) {
    const auto n = static_cast<size_t>(std::min(length - done, request_size_));
    error = write_full(fd, zeros().first(n), offset ? std::optional{*offset + done} : std::nullopt);
    done += n;
  }
  return error;
}

int write_full(int fd, std::span<const std::byte> buf, std::optional<uint64_t> offset) {
  const std::byte* p = buf.data();
  size_t n = buf.size();
  while (n > 0) {
    const ssize_t r = offset ? ::pwrite(fd, p, n, static_cast<off_t>(*offset))
                             : ::write(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return errno;
    p += r;
    n -= static_cast<size_t>(r);
    if (offset)
      *offset += static_cast<uint64_t>(r);
  }
  return 0;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace nbdpp
