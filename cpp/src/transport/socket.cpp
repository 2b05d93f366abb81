// socket.cpp: the plain socket transport (TCP_NODELAY on TCP), whose sends go through the
// handle's Sender.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

#include "transport/sender.hpp"
#include "transport/transport.hpp"
#include "util.hpp"

namespace nbd {
namespace {

class SocketTransport final : public Transport {
 public:
  SocketTransport(int fd, Sender& sender) : fd_(fd), sender_(&sender) {}

  int fd() const override { return fd_.get(); }

  void connected() override {
    connected_ = true;
    sender_->connected(fd_.get());
  }

  ssize_t recv(void* buf, size_t len) override {
    // MSG_DONTWAIT: an application's writer thread may want the descriptor blocking.
    ssize_t r;
    do
      r = ::recv(fd_.get(), buf, len, MSG_DONTWAIT);
    while (r == -1 && errno == EINTR);
    return r;
  }

  Io send(SendQueue& q) override { return sender_->send(fd_.get(), q); }

  ssize_t send_raw(const struct iovec* iov, int iovcnt) override {
    return sender_->send_raw(fd_.get(), iov, iovcnt);
  }

  void shut_writes() override { sender_->shut_writes(fd_.get()); }

  void use_sender(Sender& sender) override {
    sender_ = &sender;
    if (connected_)
      sender.connected(fd_.get());
  }

  void shut_down() override { ::shutdown(fd_.get(), SHUT_RDWR); }

 private:
  UniqueFd fd_;
  Sender* sender_;
  bool connected_ = false;
};

}  // namespace

std::unique_ptr<Transport> make_socket_transport(int fd, Sender& sender) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl != -1)
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  // Requests are small and latency-bound; Nagle would hold them back (fails harmlessly on
  // non-TCP sockets).
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return std::make_unique<SocketTransport>(fd, sender);
}

}  // namespace nbd
