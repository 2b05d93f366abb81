// tls.cpp: the client side of TLS with GnuTLS, as a decorator over the socket transport.
// Records are written and read through the wrapped transport (so with a concurrent writer they
// go to the writer too).  Certificates are always verified when verify_peer is on: the chain
// against the CA, and the host name on TCP connections.
#include "transport/tls.hpp"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "error.hpp"
#include "transport/send_queue.hpp"

namespace nbd {
namespace {

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The hex key of user in a psktool file ("user:hexkey" lines), or nullopt.
std::optional<std::string> find_psk(const std::string& file, const std::string& user, bool* readable) {
  std::ifstream in(file);
  *readable = static_cast<bool>(in);
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon != std::string::npos && line.compare(0, colon, user) == 0 && colon == user.size())
      return line.substr(colon + 1);
  }
  return std::nullopt;
}

// Owners of what GnuTLS allocates.  A failed allocation may still leave its result set, which
// is then freed as any other.
struct SessionDeleter {
  void operator()(gnutls_session_int* p) const { gnutls_deinit(p); }
};
struct CertificateDeleter {
  void operator()(gnutls_certificate_credentials_st* p) const { gnutls_certificate_free_credentials(p); }
};
struct PskDeleter {
  void operator()(gnutls_psk_client_credentials_st* p) const { gnutls_psk_free_client_credentials(p); }
};
// Memory GnuTLS hands over, such as a verification status printed.
struct GnutlsFree {
  void operator()(void* p) const { gnutls_free(p); }
};
using Session = std::unique_ptr<gnutls_session_int, SessionDeleter>;
using CertificateCredentials = std::unique_ptr<gnutls_certificate_credentials_st, CertificateDeleter>;
using PskCredentials = std::unique_ptr<gnutls_psk_client_credentials_st, PskDeleter>;

class GnutlsTransport final : public TlsTransport {
 public:
  GnutlsTransport() = default;
  GnutlsTransport(const GnutlsTransport&) = delete;
  GnutlsTransport& operator=(const GnutlsTransport&) = delete;

  bool init(const TlsSettings& s) {
    hostname_ = s.hostname;
    verify_ = s.verify_peer;
    gnutls_session_t session = nullptr;
    int r = gnutls_init(&session, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
    session_.reset(session);
    if (r < 0)
      return gnutls_failed("gnutls_init", r);
    if (!s.psk_file.empty()) {
      if (!load_psk(s))
        return false;
      r = gnutls_priority_set_direct(session_.get(), "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", nullptr);
      if (r >= 0)
        r = gnutls_credentials_set(session_.get(), GNUTLS_CRD_PSK, psk_.get());
    } else {
      if (!load_certificates(s))
        return false;
      r = gnutls_set_default_priority(session_.get());
      if (r >= 0)
        r = gnutls_credentials_set(session_.get(), GNUTLS_CRD_CERTIFICATE, cert_.get());
      // SNI, and the name the certificate must carry; none on Unix sockets, where only the
      // chain is checked.
      if (r >= 0 && !hostname_.empty())
        r = gnutls_server_name_set(session_.get(), GNUTLS_NAME_DNS, hostname_.data(), hostname_.size());
      if (r >= 0 && verify_)
        gnutls_session_set_verify_cert(session_.get(), hostname_.empty() ? nullptr : hostname_.c_str(), 0);
    }
    if (r < 0)
      return gnutls_failed("setting up the TLS session", r);
    gnutls_transport_set_ptr(session_.get(), this);
    gnutls_transport_set_vec_push_function(session_.get(), &GnutlsTransport::push);
    gnutls_transport_set_pull_function(session_.get(), &GnutlsTransport::pull);
    return true;
  }

  void adopt(std::unique_ptr<Transport> inner) { inner_ = std::move(inner); }

  int fd() const override { return inner_->fd(); }

  TlsStep handshake() override {
    const int r = gnutls_handshake(session_.get());
    if (r == GNUTLS_E_SUCCESS)
      return TlsStep::Done;
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
      return wants_write() ? TlsStep::WantWrite : TlsStep::WantRead;
    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
      gnutls_datum_t why{};
      const unsigned status = gnutls_session_get_verify_cert_status(session_.get());
      gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
      const std::unique_ptr<unsigned char, GnutlsFree> why_data(why.data);
      std::string text = why.data != nullptr ? reinterpret_cast<const char*>(why.data) : "unknown reason";
      while (!text.empty() && (text.back() == ' ' || text.back() == '.'))
        text.pop_back();  // GnuTLS ends it with ". "; ours adds ": strerror"
      set_error(EACCES, "TLS: the server's certificate was not accepted: %s", text.c_str());
      return TlsStep::Error;
    }
    if (last_io_errno_ != 0) {  // the socket failed under the handshake
      set_error(last_io_errno_, "TLS handshake: %s", gnutls_strerror(r));
      return TlsStep::Error;
    }
    // Garbage where TLS records belong is a protocol violation (a downgrade attempt, or not
    // a TLS server at all); anything else is the peer refusing us (a wrong PSK, a client
    // certificate it does not accept, no common cipher...).
    const bool garbage = r == GNUTLS_E_UNEXPECTED_PACKET || r == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
                         r == GNUTLS_E_UNSUPPORTED_VERSION_PACKET || r == GNUTLS_E_DECRYPTION_FAILED;
    set_error(garbage ? EPROTO : ECONNREFUSED, "TLS handshake failed: %s", gnutls_strerror(r));
    return TlsStep::Error;
  }

  bool wants_write() const override { return gnutls_record_get_direction(session_.get()) == 1; }

  ssize_t recv(void* buf, size_t len) override {
    const ssize_t r = gnutls_record_recv(session_.get(), buf, len);
    if (r >= 0)
      return r;
    return record_error(r);
  }

  void connected() override { inner_->connected(); }

  // One record of the first iovec at a time: a record sent short says nothing about the
  // socket, so this goes on until GnuTLS would block.
  Io send(SendQueue& q) override {
    while (!q.empty()) {
      struct iovec iov[1];
      const ssize_t r = send_raw(iov, q.gather(iov, 1));
      if (r == -1) {
        if (errno == EAGAIN)
          return Io::Again;
        set_error(errno, "send");
        return Io::Error;
      }
      q.consume(static_cast<size_t>(r));
    }
    return Io::Done;
  }

  ssize_t send_raw(const struct iovec* iov, int iovcnt) override {
    if (iovcnt == 0)
      return 0;
    // After GNUTLS_E_AGAIN the same record must be offered again; NULL/0 resumes it.
    const ssize_t r = resend_ ? gnutls_record_send(session_.get(), nullptr, 0)
                              : gnutls_record_send(session_.get(), iov[0].iov_base, iov[0].iov_len);
    resend_ = r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED;
    if (r >= 0)
      return r;
    return record_error(r);
  }

  void shut_writes() override {
    gnutls_bye(session_.get(), GNUTLS_SHUT_WR);  // best effort: close_notify, then the socket
    inner_->shut_writes();
  }

  void use_sender(Sender& sender) override { inner_->use_sender(sender); }

  void shut_down() override { inner_->shut_down(); }

 private:
  bool load_psk(const TlsSettings& s) {
    bool readable = false;
    const std::optional<std::string> key = find_psk(s.psk_file, s.username, &readable);
    if (!readable) {
      set_error(errno_or(errno, ENOENT), "TLS: cannot read the PSK file %s", s.psk_file.c_str());
      return false;
    }
    if (!key) {
      set_error(EINVAL, "TLS: username %s was not found in the PSK file %s", s.username.c_str(),
                s.psk_file.c_str());
      return false;
    }
    gnutls_psk_client_credentials_t psk = nullptr;
    int r = gnutls_psk_allocate_client_credentials(&psk);
    psk_.reset(psk);
    if (r >= 0) {
      const gnutls_datum_t k{reinterpret_cast<unsigned char*>(const_cast<char*>(key->data())),
                             static_cast<unsigned>(key->size())};
      r = gnutls_psk_set_client_credentials(psk_.get(), s.username.c_str(), &k, GNUTLS_PSK_KEY_HEX);
    }
    if (r < 0)
      return gnutls_failed("loading the PSK", r);
    return true;
  }

  bool load_certificates(const TlsSettings& s) {
    gnutls_certificate_credentials_t cert = nullptr;
    int r = gnutls_certificate_allocate_credentials(&cert);
    cert_.reset(cert);
    if (r < 0)
      return gnutls_failed("gnutls_certificate_allocate_credentials", r);
    if (s.certificates.empty()) {
      r = gnutls_certificate_set_x509_system_trust(cert_.get());
      if (r < 0)
        return gnutls_failed("loading the system's trusted certificates", r);
      return true;
    }
    const std::string dir = s.certificates + "/";
    if (!file_exists(dir + "ca-cert.pem")) {
      set_error(ENOENT, "TLS: no ca-cert.pem in the certificate directory %s", s.certificates.c_str());
      return false;
    }
    r = gnutls_certificate_set_x509_trust_file(cert_.get(), (dir + "ca-cert.pem").c_str(), GNUTLS_X509_FMT_PEM);
    if (r < 0)
      return gnutls_failed("loading ca-cert.pem", r);
    if (file_exists(dir + "ca-crl.pem")) {
      r = gnutls_certificate_set_x509_crl_file(cert_.get(), (dir + "ca-crl.pem").c_str(), GNUTLS_X509_FMT_PEM);
      if (r < 0)
        return gnutls_failed("loading ca-crl.pem", r);
    }
    // A client certificate is optional; servers that verify their clients need one.
    if (file_exists(dir + "client-cert.pem") && file_exists(dir + "client-key.pem")) {
      r = gnutls_certificate_set_x509_key_file(cert_.get(), (dir + "client-cert.pem").c_str(),
                                               (dir + "client-key.pem").c_str(), GNUTLS_X509_FMT_PEM);
      if (r < 0)
        return gnutls_failed("loading client-cert.pem and client-key.pem", r);
    }
    return true;
  }

  static bool gnutls_failed(const char* what, int r) {
    set_error(r == GNUTLS_E_FILE_ERROR ? ENOENT : EINVAL, "TLS: %s: %s", what, gnutls_strerror(r));
    return false;
  }

  // Maps a failed record call to -1 with errno.
  ssize_t record_error(ssize_t r) {
    switch (r) {
      case GNUTLS_E_AGAIN:
      case GNUTLS_E_INTERRUPTED:
        errno = EAGAIN;
        break;
      case GNUTLS_E_PREMATURE_TERMINATION:
        errno = ECONNRESET;
        break;
      default:
        errno = last_io_errno_ != 0 ? last_io_errno_ : EPROTO;
        break;
    }
    return -1;
  }

  static ssize_t push(gnutls_transport_ptr_t p, const giovec_t* iov, int iovcnt) {
    auto* self = static_cast<GnutlsTransport*>(p);
    const ssize_t r = self->inner_->send_raw(reinterpret_cast<const struct iovec*>(iov), iovcnt);
    self->note_io(r);
    return r;
  }

  static ssize_t pull(gnutls_transport_ptr_t p, void* buf, size_t len) {
    auto* self = static_cast<GnutlsTransport*>(p);
    const ssize_t r = self->inner_->recv(buf, len);
    self->note_io(r);
    return r;
  }

  // Keeps the errno of a failed socket call (GnuTLS reports it only as a generic error) and
  // tells GnuTLS about would-block.
  void note_io(ssize_t r) {
    if (r != -1)
      return;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      gnutls_transport_set_errno(session_.get(), EAGAIN);
      return;
    }
    last_io_errno_ = errno;
    gnutls_transport_set_errno(session_.get(), errno);
  }

  // Destroyed bottom up: the session before the credentials it uses, and the socket last.
  std::unique_ptr<Transport> inner_;
  PskCredentials psk_;
  CertificateCredentials cert_;
  Session session_;
  std::string hostname_;
  bool verify_ = true;
  bool resend_ = false;
  int last_io_errno_ = 0;
};

}  // namespace

std::unique_ptr<TlsTransport> make_tls_transport(std::unique_ptr<Transport>& inner,
                                                 const TlsSettings& settings) {
  auto t = std::make_unique<GnutlsTransport>();
  // Set up everything that can fail before taking the socket, so a failure leaves it with
  // the caller.
  if (!t->init(settings))
    return nullptr;
  t->adopt(std::move(inner));
  return t;
}

}  // namespace nbd
