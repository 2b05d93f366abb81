// session.hpp: one client connection of the test server, from the greeting to the hang-up.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server.hpp"

namespace ext_server {

// A request header as received, compact or extended (length widened to 64 bits).
struct Request {
  uint32_t magic = 0;
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

class Session {
 public:
  Session(const Config& config, std::vector<Export>& exports, Log& log, int in_fd, int out_fd)
      : config_(config), exports_(exports), log_(log), in_fd_(in_fd), out_fd_(out_fd) {}
  void run();

 private:
  enum class Next { Continue, Transmission, Close };
  enum class Mode { Simple, Structured, Extended };  // which replies the negotiation allows

  // I/O on the connection: false once it failed or the peer hung up.
  bool read_exact(char* buf, size_t n);
  // One read(2) of at most n bytes (retried on EINTR): how many came, 0 at the end or on error.
  size_t read_some(char* buf, size_t n);
  bool read_string(std::string& out, uint64_t n);
  bool write_all(std::string_view data);
  void violation(const std::string& what);  // logs a client's breach of a MUST

  // Handshake (handshake.cpp).
  bool handshake();
  Next option(uint32_t opt, const std::string& data);
  Next reply(uint32_t opt, uint32_t type, std::string_view data = {});
  Next reply_style(uint32_t opt, const std::string& data);
  Next list_exports(uint32_t opt, const std::string& data);
  Next info_or_go(uint32_t opt, const std::string& data);
  Next meta_context(uint32_t opt, const std::string& data);
  Next export_name(const std::string& name);
  Export* find_export(const std::string& name);
  uint16_t transmission_flags(const Export* exp) const;
  void enter_transmission(Export* exp);

  // Transmission (transmission.cpp).
  void transmission();
  bool read_request(Request& req);
  bool command(const Request& req);
  uint16_t allowed_flags(uint16_t type) const;
  bool in_bounds(uint64_t offset, uint64_t length) const;
  bool cmd_read(const Request& req);
  bool cmd_write(const Request& req, const std::string& payload);
  bool cmd_block_status(const Request& req, const std::string& payload);
  bool send_status_chunk(const Request& req, const MetaContext& ctx, uint64_t length, bool last);
  bool send_chunk(const Request& req, uint16_t flags, uint16_t type, std::string_view head,
                  std::string_view data = {});
  bool send_simple(const Request& req, uint32_t error, std::string_view data = {});
  bool send_ok(const Request& req);
  bool send_error(const Request& req, uint32_t error, const std::string& message);
  bool simple_in_extended() const { return mode_ == Mode::Extended && config_.has(Bad::SimpleReplyInExtendedMode); }

  const Config& config_;
  std::vector<Export>& exports_;
  Log& log_;
  const int in_fd_;
  const int out_fd_;

  bool no_zeroes_ = false;
  bool structured_ = false;
  bool extended_ = false;
  const Export* meta_export_ = nullptr;     // named by the last NBD_OPT_SET_META_CONTEXT
  std::vector<const MetaContext*> meta_;    // what it selected
  Export* export_ = nullptr;                // in transmission
  uint16_t tflags_ = 0;                     // the transmission flags sent for it
  Mode mode_ = Mode::Simple;
};

}  // namespace ext_server
