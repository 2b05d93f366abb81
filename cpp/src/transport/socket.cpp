// socket.cpp: the plain socket transport (TCP_NODELAY on TCP, MSG_MORE, MSG_NOSIGNAL).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "transport/transport.hpp"
#include "util.hpp"

namespace nbd {
namespace {

class SocketTransport final : public Transport {
 public:
  explicit SocketTransport(int fd) : fd_(fd) {}

  int fd() const override { return fd_.get(); }

  ssize_t recv(void* buf, size_t len) override {
    ssize_t r;
    do
      r = ::recv(fd_.get(), buf, len, 0);
    while (r == -1 && errno == EINTR);
    return r;
  }

  ssize_t send(const struct iovec* iov, int iovcnt, bool more) override {
    if (sink_)
      return divert(iov, iovcnt);
    struct msghdr msg {};
    msg.msg_iov = const_cast<struct iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    // MSG_NOSIGNAL: a server that hangs up must give EPIPE, not kill the process.
    const int flags = MSG_NOSIGNAL | (more ? MSG_MORE : 0);
    ssize_t r;
    do
      r = ::sendmsg(fd_.get(), &msg, flags);
    while (r == -1 && errno == EINTR);
    return r;
  }

  void shut_writes() override {
    if (!sink_)
      ::shutdown(fd_.get(), SHUT_WR);
  }

  void divert_sends(SendSink sink) override { sink_ = std::move(sink); }

  void shut_down() override { ::shutdown(fd_.get(), SHUT_RDWR); }

 private:
  // The sink takes everything at once: sends through it never block.
  ssize_t divert(const struct iovec* iov, int iovcnt) {
    size_t total = 0;
    for (int i = 0; i < iovcnt; ++i) {
      if (sink_(iov[i].iov_base, iov[i].iov_len) == -1)
        return -1;
      total += iov[i].iov_len;
    }
    return static_cast<ssize_t>(total);
  }

  UniqueFd fd_;
  SendSink sink_;
};

}  // namespace

std::unique_ptr<Transport> make_socket_transport(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl != -1)
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  // Requests are small and latency-bound; Nagle would hold them back (fails harmlessly on
  // non-TCP sockets).
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return std::make_unique<SocketTransport>(fd);
}

}  // namespace nbd
