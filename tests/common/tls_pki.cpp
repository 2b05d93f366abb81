// tls_pki.cpp: making the TLS tests' certificates and pre-shared keys with certtool and psktool.
#include "common/tls_pki.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "common/servers.hpp"

namespace nbd_test {
namespace {

namespace fs = std::filesystem;

// certtool templates (certtool(1) "Certtool's template file format").  ECDSA keys are made in
// milliseconds where 2048-bit RSA takes a good part of a second, and nbdkit, qemu-nbd and
// nbd-server all accept them.
constexpr const char* kCaTemplate =
    "ca\n"
    "cert_signing_key\n"
    "expiration_days = 3650\n";
constexpr const char* kServerTemplate =
    "organization = nbdpp tests\n"
    "cn = localhost\n"
    "dns_name = localhost\n"
    "ip_address = 127.0.0.1\n"
    "ip_address = ::1\n"
    "tls_www_server\n"
    "encryption_key\n"
    "signing_key\n"
    "expiration_days = 3650\n";
// Valid for the year 2000 only; certtool signs it although the CA is younger.
constexpr const char* kExpiredServerTemplate =
    "organization = nbdpp tests\n"
    "cn = localhost\n"
    "dns_name = localhost\n"
    "ip_address = 127.0.0.1\n"
    "ip_address = ::1\n"
    "tls_www_server\n"
    "encryption_key\n"
    "signing_key\n"
    "activation_date = \"2000-01-01 00:00:00\"\n"
    "expiration_date = \"2001-01-01 00:00:00\"\n";
// A certificate for another host and for no IP address, so neither localhost nor 127.0.0.1 match.
constexpr const char* kWrongHostTemplate =
    "organization = nbdpp tests\n"
    "cn = wrong.example\n"
    "dns_name = wrong.example\n"
    "tls_www_server\n"
    "encryption_key\n"
    "signing_key\n"
    "expiration_days = 3650\n";
constexpr const char* kClientTemplate =
    "organization = nbdpp tests\n"
    "cn = client\n"
    "tls_www_client\n"
    "encryption_key\n"
    "signing_key\n"
    "expiration_days = 3650\n";

// Makes the PKI under root; false after an ADD_FAILURE (run_or_fail's, or ours).
class Builder {
 public:
  explicit Builder(const std::string& root) : root_(root) {}

  bool build(Pki& pki) {
    pki.dir = root_ + "/good";
    pki.other_ca_dir = root_ + "/other-ca";
    pki.expired_dir = root_ + "/expired";
    pki.wrong_host_dir = root_ + "/wrong-host";
    pki.no_client_cert_dir = root_ + "/no-client-cert";
    pki.foreign_client_dir = root_ + "/foreign-client";
    pki.psk_dir = root_ + "/psk";
    pki.psk_file = pki.psk_dir + "/keys.psk";
    pki.wrong_psk_file = root_ + "/wrong-psk/keys.psk";
    pki.unknown_user_psk_file = root_ + "/unknown-user/keys.psk";
    // The unrelated CA's key stays out of other_ca_dir, which a client reads.
    const std::string other_ca_keys = root_ + "/other-ca-keys";
    for (const auto& d : {pki.dir, pki.other_ca_dir, pki.expired_dir, pki.wrong_host_dir,
                          pki.no_client_cert_dir, pki.foreign_client_dir, pki.psk_dir,
                          root_ + "/wrong-psk", root_ + "/unknown-user", other_ca_keys}) {
      std::error_code ec;
      if (!fs::create_directory(d, ec)) {
        ADD_FAILURE() << "tls_pki: cannot make " << d << ": " << ec.message();
        return false;
      }
    }
    return make_ca(pki.dir, pki.dir, "nbdpp test CA") &&
           make_ca(other_ca_keys, pki.other_ca_dir, "unrelated nbdpp test CA") &&
           make_cert(pki.dir, pki.dir, pki.dir, "server", kServerTemplate) &&
           make_cert(pki.dir, pki.dir, pki.dir, "client", kClientTemplate) &&
           make_cert(pki.dir, pki.dir, pki.expired_dir, "server", kExpiredServerTemplate) &&
           make_cert(pki.dir, pki.dir, pki.wrong_host_dir, "server", kWrongHostTemplate) &&
           make_cert(pki.other_ca_dir, other_ca_keys, pki.foreign_client_dir, "client", kClientTemplate) &&
           copy_ca(pki.dir, {pki.expired_dir, pki.wrong_host_dir, pki.no_client_cert_dir,
                             pki.foreign_client_dir}) &&
           make_psk(pki.psk_file, kPskUser) && make_psk(pki.wrong_psk_file, kPskUser) &&
           make_psk(pki.unknown_user_psk_file, kUnknownPskUser);
  }

 private:
  // A self-signed CA: key_dir/ca-key.pem, cert_dir/ca-cert.pem.
  bool make_ca(const std::string& key_dir, const std::string& cert_dir, const std::string& cn) {
    const std::string info = write_template("cn = " + cn + "\n" + kCaTemplate);
    return !info.empty() && make_key(key_dir + "/ca-key.pem") &&
           run_or_fail({"certtool", "--generate-self-signed", "--load-privkey", key_dir + "/ca-key.pem",
                        "--template", info, "--outfile", cert_dir + "/ca-cert.pem"});
  }

  // out_dir/WHO-key.pem and out_dir/WHO-cert.pem, signed by the CA in ca_cert_dir/ca_key_dir.
  bool make_cert(const std::string& ca_cert_dir, const std::string& ca_key_dir, const std::string& out_dir,
                 const std::string& who, const char* templ) {
    const std::string info = write_template(templ);
    const std::string key = out_dir + "/" + who + "-key.pem";
    return !info.empty() && make_key(key) &&
           run_or_fail({"certtool", "--generate-certificate", "--load-ca-certificate",
                        ca_cert_dir + "/ca-cert.pem", "--load-ca-privkey", ca_key_dir + "/ca-key.pem",
                        "--load-privkey", key, "--template", info, "--outfile",
                        out_dir + "/" + who + "-cert.pem"});
  }

  bool make_key(const std::string& path) {
    if (!run_or_fail({"certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", path}))
      return false;
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace, ec);
    if (ec)
      ADD_FAILURE() << "tls_pki: chmod 0600 " << path << ": " << ec.message();
    return !ec;
  }

  bool copy_ca(const std::string& from_dir, const std::vector<std::string>& to_dirs) {
    for (const auto& to : to_dirs) {
      std::error_code ec;
      fs::copy_file(from_dir + "/ca-cert.pem", to + "/ca-cert.pem", ec);
      if (ec) {
        ADD_FAILURE() << "tls_pki: cannot copy ca-cert.pem to " << to << ": " << ec.message();
        return false;
      }
    }
    return true;
  }

  // psktool appends a random key for user to file (making the file).
  static bool make_psk(const std::string& file, const char* user) {
    return run_or_fail({"psktool", "-u", user, "-p", file});
  }

  // The path of a new template file holding text, or "" after an ADD_FAILURE.
  std::string write_template(const std::string& text) {
    const std::string path = root_ + "/template" + std::to_string(++templates_) + ".info";
    std::ofstream out(path);
    out << text;
    out.close();
    if (!out) {
      ADD_FAILURE() << "tls_pki: cannot write " << path;
      return "";
    }
    return path;
  }

  std::string root_;
  int templates_ = 0;
};

// The PKI and the directory it lives in, for the rest of the process.
struct Made {
  TmpDir dir;
  Pki pki;
  bool ok = false;
};

}  // namespace

bool have_pki_tools() { return have_program("certtool") && have_program("psktool"); }

const Pki* test_pki() {
  static const std::unique_ptr<Made> made = [] {
    auto m = std::make_unique<Made>();
    m->ok = Builder(m->dir.path()).build(m->pki);
    return m;
  }();
  if (!made->ok) {
    // The first caller saw the tools' output; later ones only learn that it failed.
    ADD_FAILURE() << "tls_pki: the test PKI could not be made (see the first test that needed it)";
    return nullptr;
  }
  return &made->pki;
}

}  // namespace nbd_test
