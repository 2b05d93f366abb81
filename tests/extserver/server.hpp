// server.hpp: what every connection of the test server shares: its settings, exports and wire log.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store.hpp"

namespace ext_server {

// Deliberate protocol violations (--bad=NAME) for tests of a client's validation; each applies to
// every reply it can affect.  kBadNames holds the command-line name of each.
enum class Bad {
  SimpleReplyInExtendedMode,         // extended mode: simple replies, reads followed by their data
  StructuredReplyInExtendedMode,     // extended mode: 20-byte structured headers instead of 32-byte
  WrongReplyOffset,                  // extended headers carry the request's offset + 1
  CompactBlockStatusInExtendedMode,  // extended mode: NBD_REPLY_TYPE_BLOCK_STATUS (32-bit) chunks
  ExtBlockStatusCountMismatch,       // BLOCK_STATUS_EXT descriptor count one more than sent
  ReplyLengthTooLarge,               // extended headers' length field + 2^32 (over 64 MiB)
  BlockStatusExtInStructuredMode,    // structured mode: NBD_REPLY_TYPE_BLOCK_STATUS_EXT chunks
  BlockStatusIgnoresPayloadFilter,   // block status payload form: a chunk for every context anyway
};

struct BadName {
  Bad bad;
  const char* name;
};
inline constexpr BadName kBadNames[] = {
    {Bad::SimpleReplyInExtendedMode, "simple-reply-in-extended-mode"},
    {Bad::StructuredReplyInExtendedMode, "structured-reply-in-extended-mode"},
    {Bad::WrongReplyOffset, "wrong-reply-offset"},
    {Bad::CompactBlockStatusInExtendedMode, "compact-block-status-in-extended-mode"},
    {Bad::ExtBlockStatusCountMismatch, "ext-block-status-count-mismatch"},
    {Bad::ReplyLengthTooLarge, "reply-length-too-large"},
    {Bad::BlockStatusExtInStructuredMode, "block-status-ext-in-structured-mode"},
    {Bad::BlockStatusIgnoresPayloadFilter, "block-status-ignores-payload-filter"},
};

// The metadata contexts on offer.  nbdpp:test is ours: one extent per 64 KiB block of the request
// (the first and last may be partial), each with status = the extent's offset | 2^40, so a client
// can see 64-bit statuses arrive whole; being wider than 32 bits, it is offered only after
// NBD_OPT_EXTENDED_HEADERS (proto.md NBD_OPT_SET_META_CONTEXT).
struct MetaContext {
  uint32_t id;
  const char* name;
  bool wide;  // statuses need 64 bits
};
inline constexpr MetaContext kMetaContexts[] = {{1, "base:allocation", false}, {2, "nbdpp:test", true}};
inline constexpr uint64_t kTestContextBit = uint64_t{1} << 40;

struct Config {
  uint64_t size = 64 * 1024 * 1024;
  uint32_t max_payload = 32 * 1024 * 1024;
  bool read_only = false;
  bool extended_headers = true;    // --no-extended-headers: NBD_OPT_EXTENDED_HEADERS is unsupported
  bool structured_replies = true;  // --no-structured-replies: NBD_OPT_STRUCTURED_REPLY is unsupported
  bool require_extended = false;   // NBD_OPT_GO and NBD_OPT_INFO need extended headers first
  bool block_status_payload = false;
  std::vector<Bad> bad;

  bool has(Bad b) const {
    for (const Bad x : bad)
      if (x == b)
        return true;
    return false;
  }
};

struct Export {
  std::string name;
  std::string description;
  std::unique_ptr<Store> store;
};

// One line per event, each written with one write(2) as it happens, so a test reads every line
// the server has logged so far; safe from any thread.  Without a file it logs nothing.
class Log {
 public:
  explicit Log(int fd) : fd_(fd) {}
  void line(std::string_view text);

 private:
  std::mutex mu_;
  int fd_;  // -1: no log
};

// Serves one connection on in_fd/out_fd (the same socket, or stdin and stdout) until it ends;
// never throws.  Defined in session.cpp.
void serve_connection(const Config& config, std::vector<Export>& exports, Log& log, int in_fd, int out_fd);

}  // namespace ext_server
