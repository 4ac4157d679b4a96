// The InfiniBand BTH opcode table for RoCEv2 (RC, UC, UD and the RoCEv2 CNP), AETH syndrome
// helpers and 24-bit PSN arithmetic. Everything here is constexpr and stateless.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "model/wire/headers.h"

namespace rn::wire {

enum class Opcode : uint8_t {
  RC_SEND_FIRST = 0x00,
  RC_SEND_MIDDLE = 0x01,
  RC_SEND_LAST = 0x02,
  RC_SEND_LAST_WITH_IMMEDIATE = 0x03,
  RC_SEND_ONLY = 0x04,
  RC_SEND_ONLY_WITH_IMMEDIATE = 0x05,
  RC_RDMA_WRITE_FIRST = 0x06,
  RC_RDMA_WRITE_MIDDLE = 0x07,
  RC_RDMA_WRITE_LAST = 0x08,
  RC_RDMA_WRITE_LAST_WITH_IMMEDIATE = 0x09,
  RC_RDMA_WRITE_ONLY = 0x0A,
  RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE = 0x0B,
  RC_RDMA_READ_REQUEST = 0x0C,
  RC_RDMA_READ_RESPONSE_FIRST = 0x0D,
  RC_RDMA_READ_RESPONSE_MIDDLE = 0x0E,
  RC_RDMA_READ_RESPONSE_LAST = 0x0F,
  RC_RDMA_READ_RESPONSE_ONLY = 0x10,
  RC_ACKNOWLEDGE = 0x11,
  RC_ATOMIC_ACKNOWLEDGE = 0x12,
  RC_COMPARE_SWAP = 0x13,
  RC_FETCH_ADD = 0x14,
  RC_SEND_LAST_WITH_INVALIDATE = 0x16,
  RC_SEND_ONLY_WITH_INVALIDATE = 0x17,

  UC_SEND_FIRST = 0x20,
  UC_SEND_MIDDLE = 0x21,
  UC_SEND_LAST = 0x22,
  UC_SEND_LAST_WITH_IMMEDIATE = 0x23,
  UC_SEND_ONLY = 0x24,
  UC_SEND_ONLY_WITH_IMMEDIATE = 0x25,
  UC_RDMA_WRITE_FIRST = 0x26,
  UC_RDMA_WRITE_MIDDLE = 0x27,
  UC_RDMA_WRITE_LAST = 0x28,
  UC_RDMA_WRITE_LAST_WITH_IMMEDIATE = 0x29,
  UC_RDMA_WRITE_ONLY = 0x2A,
  UC_RDMA_WRITE_ONLY_WITH_IMMEDIATE = 0x2B,

  UD_SEND_ONLY = 0x64,
  UD_SEND_ONLY_WITH_IMMEDIATE = 0x65,

  CNP = 0x81,
};
constexpr uint8_t to_u8(Opcode op) { return static_cast<uint8_t>(op); }

// Extension-header bits of OpInfo::ext_mask. On the wire they follow the BTH in the order
// DETH, RETH, AtomicETH, AETH, AtomicAckETH, ImmDt, IETH, CNP-reserved (IBA 9.2 / rxe_opcode.c).
enum ExtMask : uint8_t {
  kExtReth = 1u << 0,
  kExtAeth = 1u << 1,
  kExtImmDt = 1u << 2,
  kExtAtomicEth = 1u << 3,
  kExtAtomicAckEth = 1u << 4,
  kExtIeth = 1u << 5,
  kExtDeth = 1u << 6,
  kExtCnpRsvd = 1u << 7,  // the 16 reserved zero bytes of a CNP, treated as a header
};

enum class Transport : uint8_t { RC = 0, UC = 1, RD = 2, UD = 3, CNP = 4 };

struct OpInfo {
  enum class Pos : uint8_t { First, Middle, Last, Only, None };
  enum class Kind : uint8_t {
    Send,
    Write,
    ReadReq,
    ReadResp,
    Ack,
    AtomicAck,
    CmpSwap,
    FetchAdd,
    Cnp
  };

  bool valid = false;
  const char* name = "UNKNOWN";
  uint8_t ext_mask = 0;      // ExtMask bits
  bool has_payload = false;  // the packet may carry payload bytes (false: must carry none)
  Pos pos = Pos::None;       // None for ACK, ATOMIC_ACK and CNP (not part of a message)
  Kind kind = Kind::Send;
  Transport transport = Transport::RC;
  uint8_t hdr_len = 0;  // BTH + extension headers, bytes (0 if !valid)

  constexpr bool has(uint8_t ext) const { return (ext_mask & ext) != 0; }
  constexpr bool is_first() const { return pos == Pos::First || pos == Pos::Only; }
  constexpr bool is_last() const { return pos == Pos::Last || pos == Pos::Only; }
};

namespace detail {
constexpr uint8_t ext_len_sum(uint8_t m) {
  size_t n = kBthLen;
  if (m & kExtReth) n += kRethLen;
  if (m & kExtAeth) n += kAethLen;
  if (m & kExtImmDt) n += kImmDtLen;
  if (m & kExtAtomicEth) n += kAtomicEthLen;
  if (m & kExtAtomicAckEth) n += kAtomicAckEthLen;
  if (m & kExtIeth) n += kIethLen;
  if (m & kExtDeth) n += kDethLen;
  if (m & kExtCnpRsvd) n += kCnpRsvdLen;
  return static_cast<uint8_t>(n);
}

struct OpDef {
  uint8_t op;  // operation (low 5 bits)
  const char* suffix;
  uint8_t ext;
  bool payload;
  OpInfo::Pos pos;
  OpInfo::Kind kind;
  bool rc_only;  // not available on UC
};

using P = OpInfo::Pos;
using K = OpInfo::Kind;
inline constexpr OpDef kOps[] = {
    {0x00, "SEND_FIRST", 0, true, P::First, K::Send, false},
    {0x01, "SEND_MIDDLE", 0, true, P::Middle, K::Send, false},
    {0x02, "SEND_LAST", 0, true, P::Last, K::Send, false},
    {0x03, "SEND_LAST_WITH_IMMEDIATE", kExtImmDt, true, P::Last, K::Send, false},
    {0x04, "SEND_ONLY", 0, true, P::Only, K::Send, false},
    {0x05, "SEND_ONLY_WITH_IMMEDIATE", kExtImmDt, true, P::Only, K::Send, false},
    {0x06, "RDMA_WRITE_FIRST", kExtReth, true, P::First, K::Write, false},
    {0x07, "RDMA_WRITE_MIDDLE", 0, true, P::Middle, K::Write, false},
    {0x08, "RDMA_WRITE_LAST", 0, true, P::Last, K::Write, false},
    {0x09, "RDMA_WRITE_LAST_WITH_IMMEDIATE", kExtImmDt, true, P::Last, K::Write, false},
    {0x0A, "RDMA_WRITE_ONLY", kExtReth, true, P::Only, K::Write, false},
    {0x0B, "RDMA_WRITE_ONLY_WITH_IMMEDIATE", kExtReth | kExtImmDt, true, P::Only, K::Write, false},
    {0x0C, "RDMA_READ_REQUEST", kExtReth, false, P::Only, K::ReadReq, true},
    {0x0D, "RDMA_READ_RESPONSE_FIRST", kExtAeth, true, P::First, K::ReadResp, true},
    {0x0E, "RDMA_READ_RESPONSE_MIDDLE", 0, true, P::Middle, K::ReadResp, true},
    {0x0F, "RDMA_READ_RESPONSE_LAST", kExtAeth, true, P::Last, K::ReadResp, true},
    {0x10, "RDMA_READ_RESPONSE_ONLY", kExtAeth, true, P::Only, K::ReadResp, true},
    {0x11, "ACKNOWLEDGE", kExtAeth, false, P::None, K::Ack, true},
    {0x12, "ATOMIC_ACKNOWLEDGE", kExtAeth | kExtAtomicAckEth, false, P::None, K::AtomicAck, true},
    {0x13, "COMPARE_SWAP", kExtAtomicEth, false, P::Only, K::CmpSwap, true},
    {0x14, "FETCH_ADD", kExtAtomicEth, false, P::Only, K::FetchAdd, true},
    {0x16, "SEND_LAST_WITH_INVALIDATE", kExtIeth, true, P::Last, K::Send, true},
    {0x17, "SEND_ONLY_WITH_INVALIDATE", kExtIeth, true, P::Only, K::Send, true},
};

// Full names, indexed like kOps (string literals must exist as whole strings).
inline constexpr const char* kRcNames[] = {
    "RC_SEND_FIRST",
    "RC_SEND_MIDDLE",
    "RC_SEND_LAST",
    "RC_SEND_LAST_WITH_IMMEDIATE",
    "RC_SEND_ONLY",
    "RC_SEND_ONLY_WITH_IMMEDIATE",
    "RC_RDMA_WRITE_FIRST",
    "RC_RDMA_WRITE_MIDDLE",
    "RC_RDMA_WRITE_LAST",
    "RC_RDMA_WRITE_LAST_WITH_IMMEDIATE",
    "RC_RDMA_WRITE_ONLY",
    "RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE",
    "RC_RDMA_READ_REQUEST",
    "RC_RDMA_READ_RESPONSE_FIRST",
    "RC_RDMA_READ_RESPONSE_MIDDLE",
    "RC_RDMA_READ_RESPONSE_LAST",
    "RC_RDMA_READ_RESPONSE_ONLY",
    "RC_ACKNOWLEDGE",
    "RC_ATOMIC_ACKNOWLEDGE",
    "RC_COMPARE_SWAP",
    "RC_FETCH_ADD",
    "RC_SEND_LAST_WITH_INVALIDATE",
    "RC_SEND_ONLY_WITH_INVALIDATE",
};
inline constexpr const char* kUcNames[] = {
    "UC_SEND_FIRST",       "UC_SEND_MIDDLE",
    "UC_SEND_LAST",        "UC_SEND_LAST_WITH_IMMEDIATE",
    "UC_SEND_ONLY",        "UC_SEND_ONLY_WITH_IMMEDIATE",
    "UC_RDMA_WRITE_FIRST", "UC_RDMA_WRITE_MIDDLE",
    "UC_RDMA_WRITE_LAST",  "UC_RDMA_WRITE_LAST_WITH_IMMEDIATE",
    "UC_RDMA_WRITE_ONLY",  "UC_RDMA_WRITE_ONLY_WITH_IMMEDIATE",
};

constexpr std::array<OpInfo, 256> make_op_table() {
  std::array<OpInfo, 256> t{};
  constexpr size_t n_ops = sizeof(kOps) / sizeof(kOps[0]);
  static_assert(n_ops == sizeof(kRcNames) / sizeof(kRcNames[0]));
  for (size_t i = 0; i < n_ops; ++i) {
    const OpDef& d = kOps[i];
    OpInfo rc{true,  kRcNames[i], d.ext,         d.payload,
              d.pos, d.kind,      Transport::RC, ext_len_sum(d.ext)};
    t[0x00 | d.op] = rc;
    if (!d.rc_only) {
      OpInfo uc = rc;
      uc.name = kUcNames[d.op];
      uc.transport = Transport::UC;
      t[0x20 | d.op] = uc;
    }
  }
  const uint8_t ud = kExtDeth;
  t[0x64] =
      OpInfo{true, "UD_SEND_ONLY", ud, true, P::Only, K::Send, Transport::UD, ext_len_sum(ud)};
  t[0x65] =
      OpInfo{true,          "UD_SEND_ONLY_WITH_IMMEDIATE", ud | kExtImmDt, true, P::Only, K::Send,
             Transport::UD, ext_len_sum(ud | kExtImmDt)};
  t[0x81] = OpInfo{true,    "CNP",  kExtCnpRsvd,    false,
                   P::None, K::Cnp, Transport::CNP, ext_len_sum(kExtCnpRsvd)};
  return t;
}
}  // namespace detail

// One entry per opcode value; entries with valid == false are unknown/unsupported opcodes
// (RD 0x40-0x5F, RESYNC 0x15, FLUSH 0x1C, ATOMIC_WRITE 0x1D, manufacturer-specific 0xC0-0xFF..).
inline constexpr std::array<OpInfo, 256> kOpTable = detail::make_op_table();
// A UC opcode is its RC counterpart's plus this (SEND and WRITE kinds only).
inline constexpr uint8_t kUcOpcodeBase = 0x20;

constexpr const OpInfo& op_info(uint8_t opcode) { return kOpTable[opcode]; }
constexpr const OpInfo& op_info(Opcode opcode) { return kOpTable[to_u8(opcode)]; }

// ---------------------------------------------------------------------------------------------
// AETH syndrome: bit 7 reserved, bits 6:5 type, bits 4:0 value.
enum class AethType : uint8_t { Ack = 0, RnrNak = 1, Reserved = 2, Nak = 3 };
enum class NakCode : uint8_t {
  PsnSeqError = 0,        // 0x60
  InvalidRequest = 1,     // 0x61
  RemoteAccessError = 2,  // 0x62
  RemoteOpError = 3,      // 0x63
  InvalidRdRequest = 4,   // 0x64 (spec only, never sent by rxe)
};
inline constexpr uint8_t kAethCreditInvalid = 0x1F;  // "no credits / unlimited": rxe's ACK
inline constexpr uint8_t kAethSynAck = 0x1F;         // rxe ACK syndrome
inline constexpr uint8_t kAethSynNakPsnSeq = 0x60;
inline constexpr uint8_t kAethSynNakInvReq = 0x61;
inline constexpr uint8_t kAethSynNakRemAccess = 0x62;
inline constexpr uint8_t kAethSynNakRemOp = 0x63;
inline constexpr uint8_t kAethSynNakInvRdReq = 0x64;

constexpr uint8_t aeth_ack(uint8_t credit_code = kAethCreditInvalid) {
  return static_cast<uint8_t>(credit_code & 0x1F);
}
constexpr uint8_t aeth_rnr_nak(uint8_t timer_code) {
  return static_cast<uint8_t>(0x20 | (timer_code & 0x1F));
}
constexpr uint8_t aeth_nak(NakCode code) {
  return static_cast<uint8_t>(0x60 | (static_cast<uint8_t>(code) & 0x1F));
}
constexpr AethType aeth_type(uint8_t syndrome) {
  return static_cast<AethType>((syndrome >> 5) & 0x3);
}
constexpr uint8_t aeth_value(uint8_t syndrome) { return syndrome & 0x1F; }
constexpr bool aeth_is_ack(uint8_t s) { return aeth_type(s) == AethType::Ack; }
constexpr bool aeth_is_rnr_nak(uint8_t s) { return aeth_type(s) == AethType::RnrNak; }
constexpr bool aeth_is_nak(uint8_t s) { return aeth_type(s) == AethType::Nak; }

// The RNR NAK timer of a 5-bit code (IBA table "RNR NAK timer field encodings"), in nanoseconds:
// how long a requester waits before it sends the refused request again. Code 0 is the longest.
constexpr uint64_t rnr_timer_ns(uint8_t code) {
  constexpr uint32_t tens_of_ns[32] = {
      65536000, 1000,    2000,    3000,     4000,     6000,     8000,     12000,
      16000,    24000,   32000,   48000,    64000,    96000,    128000,   192000,
      256000,   384000,  512000,  768000,   1024000,  1536000,  2048000,  3072000,
      4096000,  6144000, 8192000, 12288000, 16384000, 24576000, 32768000, 49152000};
  return uint64_t(tens_of_ns[code & 0x1F]) * 10;
}

// AETH MSN is 24 bits.
inline constexpr uint32_t kMsnMask = 0xFFFFFF;

// Credit code (0..30) -> number of receive WQEs; 31 -> kCreditsUnlimited.
inline constexpr uint32_t kCreditsUnlimited = 0xFFFFFFFFu;
uint32_t aeth_credit_count(uint8_t credit_code);
// Largest credit code whose count is <= credits (0 credits -> code 0).
uint8_t aeth_credit_code(uint32_t credits);
// RNR NAK timer code (0..31) -> microseconds (code 0 = 655.36 ms, the longest).
uint32_t rnr_timer_us(uint8_t timer_code);
// Smallest timer code whose delay is >= us (code 0 if none, as it is the longest).
uint8_t rnr_timer_code_for_us(uint32_t us);
const char* aeth_syndrome_name(uint8_t syndrome);  // "ACK", "RNR_NAK", "NAK_PSN_SEQ_ERR", ...

// ---------------------------------------------------------------------------------------------
// PSNs are 24 bits and wrap.
inline constexpr uint32_t kPsnMask = 0xFFFFFF;
constexpr uint32_t psn_add(uint32_t psn, uint32_t n) { return (psn + n) & kPsnMask; }
// > 0: a is ahead of b, < 0: a is behind b, 0: equal (window of +-2^23).
constexpr int32_t psn_cmp(uint32_t a, uint32_t b) { return static_cast<int32_t>((a - b) << 8); }
// Signed distance a - b in PSNs, in [-2^23, 2^23).
constexpr int32_t psn_diff(uint32_t a, uint32_t b) { return psn_cmp(a, b) / 256; }

}  // namespace rn::wire
