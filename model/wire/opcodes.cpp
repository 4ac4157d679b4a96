#include "model/wire/opcodes.h"

namespace rn::wire {

namespace {
constexpr uint32_t kCreditCounts[31] = {
    0,   1,   2,   3,   4,    6,    8,    12,   16,   24,   32,   48,    64,    96,    128,  192,
    256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768};

constexpr uint32_t kRnrTimerUs[32] = {655360, 10,    20,    30,     40,     60,     80,     120,
                                      160,    240,   320,   480,    640,    960,    1280,   1920,
                                      2560,   3840,  5120,  7680,   10240,  15360,  20480,  30720,
                                      40960,  61440, 81920, 122880, 163840, 245760, 327680, 491520};
}  // namespace

// Sanity checks of the constexpr opcode table against roce-v2.md.
static_assert(op_info(Opcode::RC_RDMA_WRITE_ONLY).hdr_len == 28);
static_assert(op_info(Opcode::RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE).hdr_len == 32);
static_assert(op_info(Opcode::RC_ATOMIC_ACKNOWLEDGE).hdr_len == 24);
static_assert(op_info(Opcode::RC_COMPARE_SWAP).hdr_len == 40);
static_assert(op_info(Opcode::UD_SEND_ONLY_WITH_IMMEDIATE).hdr_len == 24);
static_assert(op_info(Opcode::CNP).hdr_len == 28);
static_assert(!op_info(0x15).valid && !op_info(0x2C).valid && !op_info(0x40).valid);
static_assert(!op_info(0x36).valid);  // UC has no SEND_*_WITH_INVALIDATE
static_assert(op_info(0x2B).transport == Transport::UC);

uint32_t aeth_credit_count(uint8_t credit_code) {
  credit_code &= 0x1F;
  return credit_code < 31 ? kCreditCounts[credit_code] : kCreditsUnlimited;
}

uint8_t aeth_credit_code(uint32_t credits) {
  uint8_t code = 0;
  for (uint8_t i = 0; i < 31; ++i) {
    if (kCreditCounts[i] <= credits) code = i;
  }
  return code;
}

uint32_t rnr_timer_us(uint8_t timer_code) { return kRnrTimerUs[timer_code & 0x1F]; }

uint8_t rnr_timer_code_for_us(uint32_t us) {
  for (uint8_t i = 1; i < 32; ++i) {
    if (kRnrTimerUs[i] >= us) return i;
  }
  return 0;  // longer than 491.52 ms: code 0 (655.36 ms)
}

const char* aeth_syndrome_name(uint8_t syndrome) {
  switch (aeth_type(syndrome)) {
    case AethType::Ack:
      return "ACK";
    case AethType::RnrNak:
      return "RNR_NAK";
    case AethType::Reserved:
      return "RESERVED";
    case AethType::Nak:
      switch (aeth_value(syndrome)) {
        case 0:
          return "NAK_PSN_SEQ_ERR";
        case 1:
          return "NAK_INV_REQ";
        case 2:
          return "NAK_REM_ACCESS_ERR";
        case 3:
          return "NAK_REM_OP_ERR";
        case 4:
          return "NAK_INV_RD_REQ";
        default:
          return "NAK_RESERVED";
      }
  }
  return "RESERVED";
}

}  // namespace rn::wire
