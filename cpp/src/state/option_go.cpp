// option_go.cpp: choosing the export: NBD_OPT_GO and NBD_OPT_INFO with their NBD_REP_INFO
// replies, and NBD_OPT_EXPORT_NAME with its own reply, for servers without NBD_OPT_GO
// (proto.md "Option types", "Newstyle negotiation").
#include <cerrno>
#include <climits>
#include <string>

#include "debug.hpp"
#include "error.hpp"
#include "protocol.hpp"
#include "state/handshake.hpp"

namespace nbd {

using namespace nbd::proto;

namespace {

// The export name and the information asked for; what the server said of an earlier export
// is forgotten.
std::string info_request(nbd_handle& h) {
  uint16_t infos[3];
  size_t n = 0;
  if (h.full_info) {
    infos[n++] = kInfoName;
    infos[n++] = kInfoDescription;
  }
  if (h.request_block_size)
    infos[n++] = kInfoBlockSize;
  std::string data = encode_info_request(h.export_name, {infos, n});
  h.forget_export_info();
  return data;
}

// NBD_INFO_BLOCK_SIZE.  proto.md "Block size constraints": powers of two, min <= 64k, min <=
// pref, max a multiple of min (or 0xffffffff, no limit) and at least pref.  Constraints that
// break these rules are ignored, as libnbd does: they only ever restrict the client.
void read_block_size(nbd_handle& h, const InfoBlockSize& sizes) {
  const uint32_t min = sizes.minimum, pref = sizes.preferred, max = sizes.maximum;
  auto pow2 = [](uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
  if (!pow2(min) || min > 65536 || !pow2(pref) || pref < min || max < pref ||
      (max != UINT32_MAX && max % min != 0)) {
    if (h.debug_enabled())
      debug(h, "ignoring contradictory block size constraints %u/%u/%u", min, pref, max);
    return;
  }
  h.block_minimum = min;
  h.block_preferred = pref;
  h.block_maximum = max;
}

// NBD_REP_INFO: one piece of export information.
bool read_info(nbd_handle& h, std::span<const unsigned char> payload) {
  const unsigned char* p = payload.data();
  const size_t len = payload.size();
  if (len < InfoReply::kSize) {
    protocol_error("NBD_REP_INFO is too short");
    return false;
  }
  switch (InfoReply::decode(p).type) {
    case kInfoExport: {
      if (len != InfoExport::kSize) {
        protocol_error("NBD_INFO_EXPORT has the wrong length");
        return false;
      }
      const InfoExport info = InfoExport::decode(p);
      return set_export_info(h, info.size, info.eflags);
    }
    case kInfoName:
      h.canonical_name = std::string(p + InfoReply::kSize, p + len);
      return true;
    case kInfoDescription:
      h.description = std::string(p + InfoReply::kSize, p + len);
      return true;
    case kInfoBlockSize:
      if (len != InfoBlockSize::kSize) {
        protocol_error("NBD_INFO_BLOCK_SIZE has the wrong length");
        return false;
      }
      read_block_size(h, InfoBlockSize::decode(p));
      return true;
    default:
      return true;  // unknown information may be ignored
  }
}

// NBD_REP_ACK to NBD_OPT_GO or NBD_OPT_INFO: the export information must have come first.
bool acked_with_info(nbd_handle& h) {
  if (!h.have_info) {
    protocol_error("server did not send the export size and flags");
    return false;
  }
  finish_user_option(h, 0);
  return true;
}

Transition go_acked(nbd_handle& h) {
  if (!acked_with_info(h))
    return Transition::Fail;
  enter_transmission(h);
  return Transition::Next;
}

Transition info_acked(nbd_handle& h) {
  if (!acked_with_info(h))
    return Transition::Fail;
  h.state = State::Negotiating;
  return Transition::Next;
}

Transition go_refused(nbd_handle& h, const Refusal& r) {
  // NBD_REP_ERR_UNSUP here means the server predates NBD_OPT_GO: fall back to
  // NBD_OPT_EXPORT_NAME (proto.md "Option types").
  if (r.type == kRepErrUnsup) {
    h.opt_todo.insert(h.opt_todo.begin(), kOptExportName);
    return next_option(h);
  }
  return refuse_option(h, r, refusal_errno(r.type));
}

// NBD_OPT_GO and NBD_OPT_INFO ask the same and differ in how they end: GO enters
// transmission, INFO returns to negotiating; a server without GO is asked with
// NBD_OPT_EXPORT_NAME instead.
constexpr OptionHandler export_option(uint32_t opt, Transition (*ack)(nbd_handle&),
                                      Transition (*refused)(nbd_handle&, const Refusal&)) {
  return {.opt = opt, .selects_export = true, .request = info_request, .read_info = read_info, .ack = ack,
          .refused = refused};
}

}  // namespace

const OptionHandler kGoOption = export_option(kOptGo, go_acked, go_refused);
const OptionHandler kInfoOption = export_option(kOptInfo, info_acked, nullptr);

// The server answers NBD_OPT_EXPORT_NAME with the export's size and flags, not an option
// reply, and transmission follows at once.
const OptionHandler kExportNameOption = {
    .opt = kOptExportName,
    .request = [](nbd_handle& h) { return h.export_name; },
    .sent =
        [](nbd_handle& h) {
          expect(h, ExportNameReply::wire_size((h.gflags & kFlagNoZeroes) != 0));
          h.state = State::ExportNameReply;
          return Transition::Next;
        },
};

Transition h_newstyle_export_name_reply(nbd_handle& h) {
  const Io io = recv_into_rbuf(h);
  if (io == Io::Again)
    return Transition::Block;
  if (io == Io::Eof) {
    // After NBD_OPT_EXPORT_NAME a server can refuse only by hanging up.
    set_error(ENOENT, "server closed the connection: unknown export name \"%s\"?",
              h.export_name.c_str());
    return Transition::Fail;
  }
  if (io != Io::Done)
    return Transition::Fail;
  const ExportNameReply reply = ExportNameReply::decode(h.scratch);
  if (!set_export_info(h, reply.size, reply.eflags))
    return Transition::Fail;
  h.opt_todo.clear();
  finish_user_option(h, 0);
  enter_transmission(h);
  return Transition::Next;
}

}  // namespace nbd
