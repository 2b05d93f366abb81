// uri_test.cpp: parse_uri and format_uri against doc/uri.md, libnbd's forms and hostile input.
#include "uri.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace {

using nbd::format_uri;
using nbd::parse_uri;
using nbd::ParsedUri;
using Transport = nbd::ParsedUri::Transport;

// Parses a URI that must be accepted; a failure reports the recorded message.
ParsedUri parse_ok(std::string_view uri) {
  std::optional<ParsedUri> p = parse_uri(uri);
  EXPECT_TRUE(p.has_value()) << uri << ": " << (nbd::last_error() ? nbd::last_error() : "");
  return p.value_or(ParsedUri{});
}

// uri is refused with EINVAL and exactly this message, recorded under the public call's name.
// A stale error is planted first so that a refusal which records nothing cannot pass.
::testing::AssertionResult rejected(std::string_view uri, const std::string& message) {
  nbd::set_error(0, "stale");
  std::optional<ParsedUri> p;
  {
    nbd::ApiScope scope{"nbd_connect_uri"};
    p = parse_uri(uri);
  }
  if (p.has_value()) return ::testing::AssertionFailure() << uri << " was accepted";
  if (nbd::last_errno() != EINVAL)
    return ::testing::AssertionFailure() << uri << ": errno " << nbd::last_errno();
  std::string got = nbd::last_error() ? nbd::last_error() : "";
  if (got.rfind("nbd_connect_uri: ", 0) != 0)
    return ::testing::AssertionFailure() << uri << ": message lacks the call name: " << got;
  if (got != "nbd_connect_uri: " + message + ": Invalid argument")
    return ::testing::AssertionFailure() << uri << ": message \"" << got << "\"";
  return ::testing::AssertionSuccess();
}

// ---- schemes --------------------------------------------------------------------------------

TEST(Uri, ParsesEveryScheme) {
  struct Case {
    const char* uri;
    Transport transport;
    bool tls;
  };
  const Case cases[] = {
      {"nbd://example.com", Transport::Tcp, false},
      {"nbds://example.com", Transport::Tcp, true},
      {"nbd+unix:///?socket=/tmp/s", Transport::Unix, false},
      {"nbds+unix:///?socket=/tmp/s", Transport::Unix, true},
      {"nbd+vsock://3", Transport::Vsock, false},
      {"nbds+vsock://3", Transport::Vsock, true},
      {"nbd+ssh://h", Transport::Ssh, false},
      {"nbds+ssh://h", Transport::Ssh, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri);
    ParsedUri p = parse_ok(c.uri);
    EXPECT_EQ(p.transport, c.transport);
    EXPECT_EQ(p.tls, c.tls);
  }
}

TEST(Uri, SchemeIsCaseInsensitiveAsInLibnbd116) {
  // RFC 3986 3.1, and libnbd since 1.16: any case is the same scheme, and the canonical form
  // (what nbd_get_uri returns) is lower case.
  struct Case {
    const char* uri;
    Transport transport;
    bool tls;
    const char* canonical;
  };
  const Case cases[] = {
      {"NBD://h/", Transport::Tcp, false, "nbd://h:10809/"},
      {"Nbds://h/", Transport::Tcp, true, "nbds://h:10809/"},
      {"Nbd+Unix:///?socket=/s", Transport::Unix, false, "nbd+unix:///?socket=/s"},
      {"NBDS+UNIX:///?socket=/s", Transport::Unix, true, "nbds+unix:///?socket=/s"},
      {"nBd+VsOcK://3", Transport::Vsock, false, "nbd+vsock://3:10809/"},
      {"NBD+SSH://h", Transport::Ssh, false, "nbd+ssh://h:22/"},
      {"nbdS+sSh://h:2222/e", Transport::Ssh, true, "nbds+ssh://h:2222/e"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri);
    ParsedUri p = parse_ok(c.uri);
    EXPECT_EQ(p.transport, c.transport);
    EXPECT_EQ(p.tls, c.tls);
    EXPECT_EQ(format_uri(p), c.canonical);
  }
  // Messages name the scheme in its canonical spelling.
  EXPECT_TRUE(rejected("NBD:/x", "nbd: URIs must start with nbd://"));
  EXPECT_TRUE(rejected("NBD+UNIX:///", "nbd+unix: URIs need a socket= query parameter"));
}

// nbd_is_uri: libnbd 1.22's rule is a case-insensitive prefix test against the eight
// "scheme://" strings; nothing after them is examined.  Each row checked by hand against
// lib/uri.c nbd_unlocked_is_uri.
TEST(Uri, IsUriTable) {
  struct Case {
    std::string_view uri;
    bool expected;
  };
  const Case cases[] = {
      {"nbd://", true},
      {"nbd://example.com", true},
      {"nbds://h:1/x", true},
      {"nbd+unix:///?socket=/s", true},
      {"nbds+unix://", true},
      {"nbd+vsock:///", true},
      {"nbds+vsock://2", true},
      {"nbd+ssh://h", true},
      {"nbds+ssh://h", true},
      {"NBD://H", true},                  // any case
      {"Nbd+Unix://", true},
      {"NBDS+SSH://", true},
      {"nbd://%%%garbage [] \\", true},  // only the prefix counts
      {"nbd://\x01", true},
      {"nbd:", false},                    // no "//"
      {"nbd:/x", false},
      {"nbd:x", false},
      {"nbd:/", false},
      {"nbd", false},
      {"", false},
      {"nbd+tcp://h", false},            // unknown schemes
      {"http://h", false},
      {"nbd+unixx://", false},
      {"xnbd://h", false},
      {" nbd://h", false},                // no leading blanks skipped
      {"/tmp/disk.img", false},
      {"disk.img", false},
      {"localhost:10809", false},
      {"nbd:\\/h", false},
      {std::string_view("nbd:/\0/", 7), false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.uri));
    EXPECT_EQ(nbd::is_uri(c.uri), c.expected);
  }
}

// ---- TCP ------------------------------------------------------------------------------------

TEST(Uri, ParsesTcpHostNameWithDefaultPort) {
  ParsedUri p = parse_ok("nbd://example.com");
  EXPECT_EQ(p.host, "example.com");
  EXPECT_EQ(p.port, "10809");
  EXPECT_EQ(p.export_name, "");
  EXPECT_FALSE(p.username.has_value());
  EXPECT_FALSE(p.tls_certificates.has_value());
  EXPECT_FALSE(p.tls_psk_file.has_value());
  EXPECT_FALSE(p.tls_verify_peer.has_value());
}

TEST(Uri, ParsesTcpIpv4WithExplicitPort) {
  ParsedUri p = parse_ok("nbd://192.0.2.7:1234/disk");
  EXPECT_EQ(p.host, "192.0.2.7");
  EXPECT_EQ(p.port, "1234");
  EXPECT_EQ(p.export_name, "disk");
}

TEST(Uri, ParsesTcpIpv6Literal) {
  ParsedUri p = parse_ok("nbd://[::1]/x");
  EXPECT_EQ(p.host, "::1");
  EXPECT_EQ(p.port, "10809");
  EXPECT_EQ(p.export_name, "x");
  p = parse_ok("nbds://[2001:db8::42]:10810");
  EXPECT_EQ(p.host, "2001:db8::42");
  EXPECT_EQ(p.port, "10810");
  p = parse_ok("nbd://[::ffff:192.0.2.1]:99/");
  EXPECT_EQ(p.host, "::ffff:192.0.2.1");
  EXPECT_EQ(p.port, "99");
}

TEST(Uri, ParsesIpv6ZoneAsGetaddrinfoSpellsIt) {
  // RFC 6874: the '%' before a zone is itself escaped as %25.
  ParsedUri p = parse_ok("nbd://[fe80::1%25eth0]:10810/");
  EXPECT_EQ(p.host, "fe80::1%eth0");
  EXPECT_EQ(p.port, "10810");
}

TEST(Uri, PortEdgesAndForms) {
  EXPECT_EQ(parse_ok("nbd://h:1").port, "1");
  EXPECT_EQ(parse_ok("nbd://h:65535").port, "65535");
  EXPECT_EQ(parse_ok("nbd://h:00080").port, "80");  // leading zeros are valid digits
  EXPECT_EQ(parse_ok("nbd://h:/").port, "10809");   // RFC 3986 3.2.3: an empty port is the default
  EXPECT_EQ(parse_ok("nbd://h:nbd/").port, "nbd");  // a service name, as nbd_connect_tcp takes
}

// ---- Unix -----------------------------------------------------------------------------------

TEST(Uri, ParsesUnixSocketWithExport) {
  ParsedUri p = parse_ok("nbd+unix:///foo?socket=/tmp/nbd.sock");
  EXPECT_EQ(p.transport, Transport::Unix);
  EXPECT_EQ(p.socket, "/tmp/nbd.sock");
  EXPECT_EQ(p.export_name, "foo");
  EXPECT_EQ(p.host, "");
}

TEST(Uri, ParsesUnixWithoutPathAndWithUser) {
  // The man page's example: a user name with an empty host.
  ParsedUri p = parse_ok("nbds+unix://alice@/?socket=/tmp/nbd.sock&tls-certificates=certs");
  EXPECT_EQ(p.username, "alice");
  EXPECT_EQ(p.socket, "/tmp/nbd.sock");
  EXPECT_EQ(p.tls_certificates, "certs");
  EXPECT_EQ(parse_ok("nbd+unix://?socket=s").export_name, "");
}

TEST(Uri, ParsesUnixSocketWithEscapes) {
  ParsedUri p = parse_ok("nbd+unix:///?socket=/run/my%20dir/a%26b%3Bc.sock");
  EXPECT_EQ(p.socket, "/run/my dir/a&b;c.sock");
  // '+' is a plain character in a URI, not a space.
  EXPECT_EQ(parse_ok("nbd+unix:///?socket=/a+b").socket, "/a+b");
}

// ---- vsock ----------------------------------------------------------------------------------

TEST(Uri, ParsesVsockCidAndPort) {
  ParsedUri p = parse_ok("nbd+vsock://3:1234/exp");
  EXPECT_EQ(p.transport, Transport::Vsock);
  EXPECT_EQ(p.vsock_cid, 3u);
  EXPECT_EQ(p.vsock_port, 1234u);
  EXPECT_EQ(p.port, "1234");
  EXPECT_EQ(p.export_name, "exp");
  p = parse_ok("nbd+vsock://4294967295:4294967295");
  EXPECT_EQ(p.vsock_cid, 4294967295u);
  EXPECT_EQ(p.vsock_port, 4294967295u);
}

TEST(Uri, VsockDefaultsToHypervisorAndPort10809) {
  // libnbd's man page: "nbd+vsock:///" connects to the hypervisor (CID 2).
  ParsedUri p = parse_ok("nbd+vsock:///");
  EXPECT_EQ(p.vsock_cid, 2u);
  EXPECT_EQ(p.vsock_port, 10809u);
  EXPECT_EQ(p.port, "10809");
  EXPECT_EQ(parse_ok("nbd+vsock://7").vsock_port, 10809u);
}

// ---- export names ---------------------------------------------------------------------------

TEST(Uri, ExportNameTable) {
  // doc/uri.md "NBD URI export name", plus escapes.
  struct Case {
    const char* uri;
    const char* export_name;
  };
  const Case cases[] = {
      {"nbd://example.com/disk", "disk"},
      {"nbd+unix:///disk?socket=sock", "disk"},
      {"nbd://example.com/", ""},
      {"nbd://example.com", ""},
      {"nbd://example.com//disk", "/disk"},
      {"nbd://example.com/hello%20world", "hello world"},
      {"nbd://h/%2Fdisk", "/disk"},
      {"nbd://h/a/b/c", "a/b/c"},
      {"nbd://h/%e2%82%ac", "\xe2\x82\xac"},  // lowercase hex is fine; UTF-8 passes through
      {"nbd://h/%3F%23%25", "?#%"},
      {"nbd://h/a:b@c!$&'()*+,;=", "a:b@c!$&'()*+,;="},
      {"nbd://h/%0A", "\n"},  // export names are free text; only NUL is refused
      {"nbd://h/x?", "x"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri);
    EXPECT_EQ(parse_ok(c.uri).export_name, c.export_name);
  }
}

// ---- userinfo -------------------------------------------------------------------------------

TEST(Uri, ParsesUserName) {
  EXPECT_EQ(parse_ok("nbds://alice@host/").username, "alice");
  EXPECT_EQ(parse_ok("nbds://al%40ice@[::1]:7/").username, "al@ice");
  EXPECT_EQ(parse_ok("nbds://@host/").username, "");
  EXPECT_EQ(parse_ok("nbds+vsock://bob@3/").username, "bob");
  ParsedUri p = parse_ok("nbds://alice@host:99/e");
  EXPECT_EQ(p.host, "host");
  EXPECT_EQ(p.port, "99");
}

// ---- query keys -----------------------------------------------------------------------------

TEST(Uri, ParsesEveryQueryKey) {
  ParsedUri p = parse_ok(
      "nbds+unix:///e?socket=/s&tls-certificates=/etc/pki/nbd&tls-psk-file=/k%20s.psk"
      "&tls-verify-peer=false&tls-hostname=nbd.example.com");
  EXPECT_EQ(p.socket, "/s");
  EXPECT_EQ(p.tls_certificates, "/etc/pki/nbd");
  EXPECT_EQ(p.tls_psk_file, "/k s.psk");
  EXPECT_EQ(p.tls_verify_peer, false);
  EXPECT_EQ(p.tls_hostname, "nbd.example.com");
  p = parse_ok("nbds://h/?tls-psk-file=keys.psk;tls-certificates=c");  // ';' separates too
  EXPECT_EQ(p.tls_psk_file, "keys.psk");
  EXPECT_EQ(p.tls_certificates, "c");
}

TEST(Uri, QueryKeysAndValuesArePercentDecoded) {
  ParsedUri p = parse_ok("nbd+unix:///?%73ocket=%2Ftmp%2Fs&tls%2Dpsk%2Dfile=a%3Db");
  EXPECT_EQ(p.socket, "/tmp/s");
  EXPECT_EQ(p.tls_psk_file, "a=b");
  // '=' after the first belongs to the value.
  EXPECT_EQ(parse_ok("nbd://h/?tls-certificates=a=b").tls_certificates, "a=b");
}

TEST(Uri, UnknownQueryKeysAndEmptyPairsAreIgnored) {
  ParsedUri p = parse_ok("nbd://h/?x-foo=1&&tls-type=psk&=v&bare&tls-user=h;");
  EXPECT_EQ(p, parse_ok("nbd://h/"));
}

TEST(Uri, KeyWithoutValueIsEmpty) {
  EXPECT_EQ(parse_ok("nbd://h/?tls-certificates").tls_certificates, "");
}

TEST(Uri, TlsVerifyPeerValues) {
  struct Case {
    const char* value;
    bool expected;
  };
  const Case cases[] = {
      {"true", true}, {"false", false}, {"yes", true}, {"no", false},  {"on", true},
      {"off", false}, {"1", true},      {"0", false},  {"TRUE", true}, {"Off", false},
      {"t", true},    {"F", false},     {"y", true},   {"N", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    ParsedUri p = parse_ok(std::string("nbds://h/?tls-verify-peer=") + c.value);
    EXPECT_EQ(p.tls_verify_peer, c.expected);
  }
}

// ---- rejections -----------------------------------------------------------------------------

TEST(Uri, RejectsMissingOrEmptyScheme) {
  const std::string msg =
      "missing URI scheme: NBD URIs start with nbd://, nbds://, nbd+unix:// or nbd+vsock://";
  EXPECT_TRUE(rejected("", msg));
  EXPECT_TRUE(rejected("://host/", msg));
  EXPECT_TRUE(rejected("example.com", msg));
  EXPECT_TRUE(rejected("/tmp/sock:1", msg));
  EXPECT_TRUE(rejected("1nbd://h/", msg));
}

TEST(Uri, RejectsUnknownScheme) {
  EXPECT_TRUE(rejected("http://example.com/", "unknown NBD URI scheme: http"));
  EXPECT_TRUE(rejected("nbd+tcp://h/", "unknown NBD URI scheme: nbd+tcp"));
  EXPECT_TRUE(rejected("localhost:10809", "unknown NBD URI scheme: localhost"));
}

TEST(Uri, RejectsSchemeWithoutSlashes) {
  EXPECT_TRUE(rejected("nbd:/x", "nbd: URIs must start with nbd://"));
  EXPECT_TRUE(rejected("nbd+unix:x?socket=s", "nbd+unix: URIs must start with nbd+unix://"));
}

TEST(Uri, RejectsControlCharacters) {
  EXPECT_TRUE(rejected("nbd://h/a\nb", "control character in URI at offset 9"));
  EXPECT_TRUE(rejected("\x7fnbd://h/", "control character in URI at offset 0"));
  EXPECT_TRUE(
      rejected(std::string_view("nbd://h/\0x", 10), "control character in URI at offset 8"));
  EXPECT_TRUE(rejected("nbd+unix:///?socket=/s\t", "control character in URI at offset 22"));
}

TEST(Uri, RejectsCharactersOutsideTheirComponent) {
  EXPECT_TRUE(rejected("nbd://h/a b", "invalid character in URI export name: ' '"));
  EXPECT_TRUE(rejected("nbd://h/\xc3\xa9", "invalid character in URI export name: '\\xC3'"));
  EXPECT_TRUE(rejected("nbd://h/a\"b", "invalid character in URI export name: '\"'"));
  EXPECT_TRUE(rejected("nbd://h_/x<", "invalid character in URI export name: '<'"));
  EXPECT_TRUE(rejected("nbd://ho st/", "invalid character in URI host: ' '"));
  EXPECT_TRUE(rejected("nbd://h%41/", "invalid character in URI host: '%'"));
  EXPECT_TRUE(rejected("nbd://a@b@h/", "invalid character in URI host: '@'"));
  EXPECT_TRUE(rejected("nbd://u{@h/", "invalid character in URI user name: '{'"));
  EXPECT_TRUE(rejected("nbd://h/?socket=a|b", "invalid character in URI query: '|'"));
}

TEST(Uri, RejectsBadPercentEscapes) {
  EXPECT_TRUE(rejected("nbd://h/%zz", "invalid percent escape in URI export name: %zz"));
  EXPECT_TRUE(rejected("nbd://h/%4", "invalid percent escape in URI export name: %4"));
  EXPECT_TRUE(rejected("nbd://h/%", "invalid percent escape in URI export name: %"));
  EXPECT_TRUE(rejected("nbd://h/%4g", "invalid percent escape in URI export name: %4g"));
  EXPECT_TRUE(rejected("nbd://u%2@h/", "invalid percent escape in URI user name: %2"));
  EXPECT_TRUE(rejected("nbd+unix:///?socket=%G1", "invalid percent escape in URI query: %G1"));
  EXPECT_TRUE(rejected("nbd+unix:///?sock%et=/s", "invalid percent escape in URI query: %et"));
  // Unknown keys are ignored, but not their malformed escapes.
  EXPECT_TRUE(rejected("nbd://h/?x-foo=%", "invalid percent escape in URI query: %"));
}

TEST(Uri, RejectsDecodedNul) {
  EXPECT_TRUE(rejected("nbd://h/a%00b", "NUL byte (%00) in URI export name"));
  EXPECT_TRUE(rejected("nbd+unix:///?socket=%00/abstract", "NUL byte (%00) in URI query"));
  EXPECT_TRUE(rejected("nbds://a%00@h/", "NUL byte (%00) in URI user name"));
}

TEST(Uri, RejectsBadTcpPorts) {
  EXPECT_TRUE(rejected("nbd://h:0/", "invalid port in URI: 0"));
  EXPECT_TRUE(rejected("nbd://h:65536/", "invalid port in URI: 65536"));
  EXPECT_TRUE(
      rejected("nbd://h:99999999999999999999999/", "invalid port in URI: 99999999999999999999999"));
  EXPECT_TRUE(rejected("nbd://h:-1/", "invalid port in URI: -1"));
  EXPECT_TRUE(rejected("nbd://h:80:81/", "invalid port in URI: 80:81"));
  EXPECT_TRUE(rejected("nbd://h:nbd_x/", "invalid port in URI: nbd_x"));  // not a service name
  EXPECT_TRUE(rejected("nbd://h:-nbd/", "invalid port in URI: -nbd"));
  EXPECT_TRUE(rejected("nbd://h:a--b/", "invalid port in URI: a--b"));
  EXPECT_TRUE(rejected("nbd://h:abcdefghijklmnop/", "invalid port in URI: abcdefghijklmnop"));
  EXPECT_TRUE(rejected("nbd://[::1]:x%41/", "invalid port in URI: x%41"));
}

TEST(Uri, RejectsBadIpv6Literals) {
  EXPECT_TRUE(rejected("nbd://[::1/", "unterminated IPv6 address in URI: [::1"));
  EXPECT_TRUE(rejected("nbd://[]/", "invalid IPv6 address in URI: "));
  EXPECT_TRUE(rejected("nbd://[1:2:3]/", "invalid IPv6 address in URI: 1:2:3"));
  EXPECT_TRUE(rejected("nbd://[v1.x]/", "invalid IPv6 address in URI: v1.x"));
  EXPECT_TRUE(rejected("nbd://[::1]x/", "invalid character after IPv6 address in URI: 'x'"));
  EXPECT_TRUE(rejected("nbd://[fe80::1%eth0]/",
                       "invalid IPv6 zone in URI (write it as %25 followed by the zone): %eth0"));
  EXPECT_TRUE(rejected("nbd://[fe80::1%25]/",
                       "invalid IPv6 zone in URI (write it as %25 followed by the zone): %25"));
  EXPECT_TRUE(rejected("nbd://[fe80::1%25a/b]/", "unterminated IPv6 address in URI: [fe80::1%25a"));
  EXPECT_TRUE(rejected("nbd://[fe80::1%25a:b]/", "invalid character in URI IPv6 zone: ':'"));
}

TEST(Uri, RejectsBadVsockCidsAndPorts) {
  EXPECT_TRUE(rejected("nbd+vsock://host/", "invalid vsock CID in URI: host"));
  EXPECT_TRUE(rejected("nbd+vsock://4294967296/", "invalid vsock CID in URI: 4294967296"));
  EXPECT_TRUE(rejected("nbd+vsock://-1/", "invalid vsock CID in URI: -1"));
  EXPECT_TRUE(rejected("nbd+vsock://0x2/", "invalid vsock CID in URI: 0x2"));
  EXPECT_TRUE(rejected("nbd+vsock://[::1]/", "invalid vsock CID in URI: [::1]"));
  EXPECT_TRUE(rejected("nbd+vsock://2:4294967296/", "invalid vsock port in URI: 4294967296"));
  EXPECT_TRUE(rejected("nbd+vsock://2:nbd/", "invalid vsock port in URI: nbd"));
}

TEST(Uri, UnixIgnoresHostAndPortAsLibnbdDoes) {
  for (const char* uri : {"nbd+unix://localhost/?socket=/s", "nbd+unix://:10809/?socket=/s",
                          "nbd+unix://:/?socket=/s"}) {
    SCOPED_TRACE(uri);
    ParsedUri p = parse_ok(uri);
    EXPECT_EQ(p.transport, Transport::Unix);
    EXPECT_EQ(p.socket, "/s");
    EXPECT_EQ(p.host, "");
  }
  ParsedUri p = parse_ok("nbds+unix://u@[::1]/?socket=/s");
  EXPECT_EQ(p.username, "u");
}

TEST(Uri, TcpWithoutHostMeansLocalhost) {
  for (const char* uri : {"nbd:///", "nbds://", "nbds://alice@/"}) {
    SCOPED_TRACE(uri);
    ParsedUri p = parse_ok(uri);
    EXPECT_EQ(p.host, "localhost");
    EXPECT_EQ(p.port, "10809");
  }
  EXPECT_EQ(parse_ok("nbd://:10810/").port, "10810");
}

TEST(Uri, RejectsUnixWithoutSocket) {
  EXPECT_TRUE(rejected("nbd+unix:///foo", "nbd+unix: URIs need a socket= query parameter"));
  EXPECT_TRUE(
      rejected("nbds+unix:///?sockets=/s", "nbds+unix: URIs need a socket= query parameter"));
  EXPECT_TRUE(
      rejected("nbd+unix:///?socket=", "nbd+unix: the socket= query parameter must not be empty"));
  EXPECT_TRUE(
      rejected("nbd+unix:///?socket", "nbd+unix: the socket= query parameter must not be empty"));
}

TEST(Uri, RejectsSocketOnOtherTransports) {
  EXPECT_TRUE(
      rejected("nbd://h/?socket=/s",
               "nbd: URIs must not have a socket= query parameter (did you mean nbd+unix://?)"));
  EXPECT_TRUE(rejected("nbds+vsock://2/?socket=/s",
                       "nbds+vsock: URIs must not have a socket= query parameter (did you mean "
                       "nbds+unix://?)"));
}

TEST(Uri, QueryKeysCompareWithoutCaseAsInLibnbd) {
  ParsedUri p = parse_ok("nbds+unix:///?SOCKET=/s&Tls-Certificates=/c&TLS-HOSTNAME=n&tls-Verify-Peer=0");
  EXPECT_EQ(p.socket, "/s");
  EXPECT_EQ(p.tls_certificates, "/c");
  EXPECT_EQ(p.tls_hostname, "n");
  EXPECT_EQ(p.tls_verify_peer, false);
}

// ---- ssh ------------------------------------------------------------------------------------

TEST(Uri, ParsesSshServerPortAndRemoteSocket) {
  ParsedUri p = parse_ok("nbd+ssh://server.example.com/disk");
  EXPECT_EQ(p.transport, Transport::Ssh);
  EXPECT_FALSE(p.tls);
  EXPECT_EQ(p.host, "server.example.com");
  EXPECT_EQ(p.port, "22");  // ssh's port, not NBD's
  EXPECT_EQ(p.socket, "");
  EXPECT_EQ(p.export_name, "disk");
  p = parse_ok("nbds+ssh://alice@[::1]:2222/?socket=/run/nbd.sock&tls-certificates=/c");
  EXPECT_TRUE(p.tls);
  EXPECT_EQ(p.host, "::1");
  EXPECT_EQ(p.port, "2222");
  EXPECT_EQ(p.username, "alice");  // the TLS user name, as in libnbd: ssh is not told
  EXPECT_EQ(p.socket, "/run/nbd.sock");
  EXPECT_EQ(p.tls_certificates, "/c");
}

TEST(Uri, RejectsSshWithoutServerOrWithOptionLikeServer) {
  EXPECT_TRUE(rejected("nbd+ssh:///", "nbd+ssh: URIs need the name of the ssh server"));
  EXPECT_TRUE(rejected("nbds+ssh://alice@:22/", "nbds+ssh: URIs need the name of the ssh server"));
  // Would reach ssh as an option: ssh -p 22 -oProxyCommand=... runs a local command.
  EXPECT_TRUE(rejected("nbd+ssh://-oProxyCommand=touch/",
                       "invalid ssh server name in URI (it must not start with '-'): "
                       "-oProxyCommand=touch"));
  EXPECT_TRUE(rejected("nbd+ssh://h:0/", "invalid port in URI: 0"));
  EXPECT_TRUE(rejected("nbd+ssh://h/?socket=", "nbd+ssh: the socket= query parameter must not be empty"));
}

TEST(Uri, SshCommandIsLibnbds) {
  // lib/uri.c: ssh -p PORT HOST nc (-U SOCKET | localhost 10809).
  using V = std::vector<std::string>;
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbd+ssh://h")), (V{"ssh", "-p", "22", "h", "nc", "localhost", "10809"}));
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbds+ssh://u@h:2222/e?socket=/run/n.sock")),
            (V{"ssh", "-p", "2222", "h", "nc", "-U", "/run/n.sock"}));
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbd+ssh://[::1]/?socket=rel/s")),
            (V{"ssh", "-p", "22", "::1", "nc", "-U", "rel/s"}));
  // The remote words go through the remote shell: quoted when they need it, and a path that
  // nc would read as an option made relative instead.
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbd+ssh://h/?socket=/a%20b%3Brm%20-rf%20~")).back(),
            "'/a b;rm -rf ~'");
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbd+ssh://h/?socket=/it's")).back(), "'/it'\\''s'");
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbd+ssh://h/?socket=$HOME")).back(), "'$HOME'");
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbd+ssh://h/?socket=-x")).back(), "./-x");
  EXPECT_EQ(nbd::ssh_command(parse_ok("nbd+ssh://h/?socket==x")).back(), "'=x'");
}

TEST(Uri, RepeatedKeysTakeTheLastValue) {
  // libnbd 1.14 keeps the last of repeated query keys; so do we (nbdinfo depends on neither).
  EXPECT_EQ(parse_ok("nbd+unix:///?socket=/a&socket=/b").socket, "/b");
  EXPECT_EQ(parse_ok("nbd://h/?tls-psk-file=a;tls-psk-file=b").tls_psk_file, "b");
  EXPECT_EQ(parse_ok("nbd://h/?tls-certificates=a&%74ls-certificates=b").tls_certificates, "b");
  EXPECT_EQ(parse_ok("nbd://h/?tls-verify-peer=1&tls-verify-peer=0").tls_verify_peer, false);
}

TEST(Uri, RejectsBadTlsVerifyPeer) {
  const std::string msg =
      "invalid tls-verify-peer value in URI (expected true/false, yes/no, on/off or 1/0): ";
  EXPECT_TRUE(rejected("nbds://h/?tls-verify-peer=maybe", msg + "maybe"));
  EXPECT_TRUE(rejected("nbds://h/?tls-verify-peer=", msg));
  EXPECT_TRUE(rejected("nbds://h/?tls-verify-peer=2", msg + "2"));
  EXPECT_TRUE(rejected("nbds://h/?tls-verify-peer=%01", msg + "\\x01"));
}

TEST(Uri, RejectsPasswordsAndIgnoresFragments) {
  EXPECT_TRUE(
      rejected("nbds://alice:secret@h/", "passwords in URIs are not supported (user:password@)"));
  // A fragment ends the URI, as in libnbd; a '#' inside a value is written %23.
  EXPECT_EQ(parse_ok("nbd://h/x#frag").export_name, "x");
  EXPECT_EQ(parse_ok("nbd+unix:///?socket=/a#b").socket, "/a");
  EXPECT_EQ(parse_ok("nbd+unix:///?socket=/a%23b").socket, "/a#b");
}

TEST(Uri, EchoedValuesAreBoundedAndPrintable) {
  std::string huge = "nbd://h:" + std::string(10000, '9') + "/";
  EXPECT_TRUE(rejected(huge, "invalid port in URI: " + std::string(80, '9') + "..."));
  EXPECT_TRUE(rejected("nbd+unix://%C3%A9/?socket=/s", "invalid character in URI host: '%'"));
}

TEST(Uri, ErrorIsPrefixedByTheCallInProgress) {
  nbd::ApiScope scope{"nbd_aio_connect_uri"};
  EXPECT_FALSE(parse_uri("gopher://h/").has_value());
  EXPECT_STREQ(nbd::last_error(), "nbd_aio_connect_uri: unknown NBD URI scheme: gopher: Invalid argument");
}

// ---- formatting -----------------------------------------------------------------------------

TEST(Uri, FormatsCanonicalUris) {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {"nbd://example.com", "nbd://example.com:10809/"},
      {"nbd://example.com:10809/", "nbd://example.com:10809/"},
      {"nbds://example.com:00080/disk", "nbds://example.com:80/disk"},
      {"nbd://[::1]:10810/x", "nbd://[::1]:10810/x"},
      {"nbd://[fe80::1%25eth0]/", "nbd://[fe80::1%25eth0]:10809/"},
      {"nbd://h/hello%20world", "nbd://h:10809/hello%20world"},
      {"nbd://h/%e2%82%ac", "nbd://h:10809/%E2%82%AC"},
      {"nbd://h/%3F%23%25", "nbd://h:10809/%3F%23%25"},
      {"nbd://h//x", "nbd://h:10809//x"},
      {"nbd://h:nbd/", "nbd://h:nbd/"},
      {"nbd+unix:///foo?socket=/tmp/nbd.sock", "nbd+unix:///foo?socket=/tmp/nbd.sock"},
      {"nbd+unix://?socket=/a%26b%3Bc%3Dd+e%20f", "nbd+unix:///?socket=/a%26b%3Bc%3Dd%2Be%20f"},
      {"nbds+unix://alice@/?socket=/s&tls-certificates=certs",
       "nbds+unix://alice@/?socket=/s&tls-certificates=certs"},
      {"nbds://al%40ice@h/?tls-psk-file=/k.psk&tls-certificates=/c&x-other=1",
       "nbds://al%40ice@h:10809/?tls-certificates=/c&tls-psk-file=/k.psk"},
      {"nbds://h/?tls-verify-peer=off", "nbds://h:10809/?tls-verify-peer=false"},
      {"nbd+vsock:///", "nbd+vsock://2:10809/"},
      {"nbds+vsock://3:1234/e", "nbds+vsock://3:1234/e"},
      {"nbd+vsock://3:10809", "nbd+vsock://3:10809/"},
      {"nbds://h/?tls-hostname=n.example&tls-verify-peer=1",
       "nbds://h:10809/?tls-hostname=n.example&tls-verify-peer=true"},
      {"nbds://h/?tls-verify-peer=0&tls-hostname=n&tls-psk-file=/k",
       "nbds://h:10809/?tls-psk-file=/k&tls-hostname=n&tls-verify-peer=false"},
      {"nbd+ssh://h", "nbd+ssh://h:22/"},
      {"nbds+ssh://u@[::1]:2222/e?socket=/s%20t&tls-hostname=n",
       "nbds+ssh://u@[::1]:2222/e?socket=/s%20t&tls-hostname=n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    EXPECT_EQ(format_uri(parse_ok(c.in)), c.out);
  }
}

TEST(Uri, FormatsAConnectionMadeWithoutAUri) {
  // What nbd_get_uri builds after nbd_connect_tcp(h, "fe80::1%eth0", "nbd"): a raw IPv6 host
  // with a zone and a port name.
  ParsedUri u;
  u.host = "fe80::1%eth0";
  u.port = "nbd";
  u.export_name = "a b/c?d";
  u.username = "bob:x";
  EXPECT_EQ(format_uri(u), "nbd://bob%3Ax@[fe80::1%25eth0]:nbd/a%20b/c%3Fd");
  ParsedUri back = parse_ok(format_uri(u));
  EXPECT_EQ(back, u);

  ParsedUri unix_u;
  unix_u.transport = Transport::Unix;
  unix_u.socket = "/run/x#y";
  EXPECT_EQ(format_uri(unix_u), "nbd+unix:///?socket=/run/x%23y");
}

TEST(Uri, RoundTripsThroughFormat) {
  const char* uris[] = {
      "nbd://example.com",
      "nbds://example.com:1/",
      "nbd://192.0.2.7:65535/disk",
      "nbd://[::1]/x",
      "nbds://[2001:db8::42]:10810//abs",
      "nbd://[fe80::1%25eth0]:7/",
      "nbd://h:nbd/",
      "nbd://h/hello%20world%2F%3F%23%25%e2%82%ac%0A",
      "nbd://h/a:b@c!$&'()*+,;=",
      "nbds://alice@h/?tls-certificates=/etc/pki&tls-psk-file=k%20s.psk&tls-verify-peer=yes",
      "nbds://@h/",
      "nbds://a%3Ab%25c@h/",
      "nbd+unix:///foo?socket=/tmp/nbd.sock",
      "nbds+unix://alice@/?socket=/s&tls-certificates=certs",
      "nbd+unix://?socket=/a%26b%3Bc%3Dd+e%20f%23g&tls-verify-peer=0",
      "nbd+vsock:///",
      "nbds+vsock://3:1234/e?tls-psk-file=/p",
      "nbd+vsock://4294967295:4294967295/x%2Fy",
      "nbd+ssh://h",
      "nbds+ssh://alice@[::1]:2222/e%20x?socket=/r%26s&tls-hostname=a.b&tls-verify-peer=off",
      "NBD+SSH://h:ssh/?socket=rel",
  };
  for (const char* uri : uris) {
    SCOPED_TRACE(uri);
    ParsedUri first = parse_ok(uri);
    std::string formatted = format_uri(first);
    SCOPED_TRACE(formatted);
    EXPECT_EQ(parse_ok(formatted), first);
    EXPECT_EQ(format_uri(parse_ok(formatted)), formatted);  // canonical form is a fixed point
  }
}

}  // namespace
