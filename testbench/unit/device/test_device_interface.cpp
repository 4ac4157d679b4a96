// Unit tests of what tools/gen_device_interface.py generates from device_interface.toml beyond the
// layouts: the register bit-field structs (pack, unpack, masks) and the WQE geometry helpers.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <ios>
#include <string>
#include <type_traits>
#include <vector>

#include "model/device/device_interface.h"

namespace dev = rn::dev;

namespace {

// Checks one field of a register's Bits struct and adds its mask to `covered`: the generated
// constants agree with each other, the field packs to exactly its bits and back, a value too wide
// for it keeps its low bits, and no other field or reserved bit moves.
template <class Bits, class T>
void check_field(T Bits::*field, uint32_t shift, uint32_t width, uint32_t max, uint32_t mask,
                 uint32_t& covered) {
  INFO("field at bit " << shift << ", " << width << " wide");
  REQUIRE(width >= 1);
  REQUIRE(shift + width <= 32);
  CHECK(max == (width == 32 ? 0xFFFFFFFFu : (uint32_t(1) << width) - 1));
  CHECK(mask == max << shift);
  CHECK((mask & Bits::kReservedMask) == 0);
  CHECK((mask & Bits::kFieldsMask) == mask);
  CHECK((mask & covered) == 0);  // fields do not overlap
  covered |= mask;
  CHECK(std::is_same_v<T, bool> == (width == 1));

  // The largest value: exactly the field's bits, and back.
  Bits b{};
  b.*field = static_cast<T>(max);
  CHECK(b.pack() == mask);
  CHECK(Bits::unpack(mask) == b);
  CHECK(Bits::unpack(mask).*field == static_cast<T>(max));
  // Every other bit set: this field reads 0.
  CHECK(Bits::unpack(~mask).*field == static_cast<T>(0));
  CHECK((Bits::unpack(~mask).pack() & mask) == 0);
  if constexpr (!std::is_same_v<T, bool>) {
    // A pattern, and one bit above the field (a free-running index written modulo its width).
    const uint32_t v = 0x5A5A5A5Au & max;
    b.*field = v;
    CHECK(b.pack() == v << shift);
    CHECK(Bits::unpack(v << shift).*field == v);
    b.*field = max + 1 + v;
    CHECK(b.pack() == v << shift);
    b.*field = 1;
    CHECK(b.pack() == uint32_t(1) << shift);
  }
}

// Checks the struct as a whole once its fields have been checked.
template <class Bits>
void check_register(uint32_t covered) {
  CHECK(covered == Bits::kFieldsMask);  // every field was checked
  CHECK((Bits::kFieldsMask & Bits::kReservedMask) == 0);
  CHECK((Bits::kFieldsMask | Bits::kReservedMask) == 0xFFFFFFFFu);
  CHECK(Bits{}.pack() == 0);
  CHECK(Bits::unpack(0) == Bits{});
  CHECK(Bits::unpack(Bits::kReservedMask) == Bits{});  // reserved bits are ignored by unpack
  CHECK(Bits::unpack(0xFFFFFFFFu).pack() == Bits::kFieldsMask);
  for (uint32_t v : {0x12345678u, 0x9ABCDEF0u, 0xDEADBEEFu, 0x80000001u}) {
    INFO("value " << std::hex << v);
    CHECK(Bits::unpack(v).pack() == (v & Bits::kFieldsMask));
    CHECK(Bits::unpack(Bits::unpack(v).pack()) == Bits::unpack(v));
  }
}

#define FIELD(Bits, f, K) \
  check_field(&Bits::f, Bits::K##Shift, Bits::K##Width, Bits::K##Max, Bits::K##Mask, covered)

}  // namespace

TEST_CASE("Register bit fields: every field packs and unpacks alone, nothing else moves",
          "[bits]") {
  uint32_t covered = 0;
  SECTION("CMD_STATUS") {
    FIELD(dev::CmdStatusBits, busy, kBusy);
    FIELD(dev::CmdStatusBits, status, kStatus);
    FIELD(dev::CmdStatusBits, token, kToken);
    check_register<dev::CmdStatusBits>(covered);
  }
  SECTION("EQ_ADDR_LO") {
    FIELD(dev::EqAddrLoBits, addr, kAddr);
    check_register<dev::EqAddrLoBits>(covered);
  }
  SECTION("EQ_LOG_SIZE") {
    FIELD(dev::EqLogSizeBits, log_size, kLogSize);
    check_register<dev::EqLogSizeBits>(covered);
  }
  SECTION("EQ_DOORBELL") {
    FIELD(dev::EqDoorbellBits, ci, kCi);
    FIELD(dev::EqDoorbellBits, arm, kArm);
    check_register<dev::EqDoorbellBits>(covered);
  }
  SECTION("MSIX_ADDR_LO") {
    FIELD(dev::MsixAddrLoBits, addr, kAddr);
    check_register<dev::MsixAddrLoBits>(covered);
  }
  SECTION("MSIX_CTRL") {
    FIELD(dev::MsixCtrlBits, masked, kMasked);
    check_register<dev::MsixCtrlBits>(covered);
  }
  SECTION("QP_DOORBELL") {
    FIELD(dev::QpDoorbellBits, pi, kPi);
    check_register<dev::QpDoorbellBits>(covered);
  }
  SECTION("CQ_DOORBELL") {
    FIELD(dev::CqDoorbellBits, ci, kCi);
    FIELD(dev::CqDoorbellBits, solicited, kSolicited);
    FIELD(dev::CqDoorbellBits, arm, kArm);
    check_register<dev::CqDoorbellBits>(covered);
  }
  SECTION("CAPS") {
    FIELD(dev::CapsBits, inline_data, kInlineData);
    FIELD(dev::CapsBits, wqe_doorbell, kWqeDoorbell);
    FIELD(dev::CapsBits, srq, kSrq);
    FIELD(dev::CapsBits, device_control, kDeviceControl);
    FIELD(dev::CapsBits, eq_moderation, kEqModeration);
    FIELD(dev::CapsBits, icm, kIcm);
    FIELD(dev::CapsBits, max_inline_data, kMaxInlineData);
    check_register<dev::CapsBits>(covered);
  }
  SECTION("SRQ_DOORBELL") {
    FIELD(dev::SrqDoorbellBits, pi, kPi);
    check_register<dev::SrqDoorbellBits>(covered);
  }
  SECTION("CTRL") {
    FIELD(dev::CtrlBits, enable, kEnable);
    FIELD(dev::CtrlBits, reset, kReset);
    FIELD(dev::CtrlBits, quiesce, kQuiesce);
    check_register<dev::CtrlBits>(covered);
  }
  SECTION("STATUS") {
    FIELD(dev::StatusBits, ready, kReady);
    FIELD(dev::StatusBits, enabled, kEnabled);
    FIELD(dev::StatusBits, quiesced, kQuiesced);
    FIELD(dev::StatusBits, eq_overrun, kEqOverrun);
    check_register<dev::StatusBits>(covered);
  }
  SECTION("EQ_MODERATION") {
    FIELD(dev::EqModerationBits, max_events, kMaxEvents);
    FIELD(dev::EqModerationBits, period, kPeriod);
    check_register<dev::EqModerationBits>(covered);
  }
}

// The values below are the register semantics the device and driver had before the fields were
// generated (device interface v1): they must not change without a new interface version.
TEST_CASE("Register bit fields: the reserved masks and positions of interface v1", "[bits]") {
  CHECK(dev::CmdStatusBits::kReservedMask == 0x000000FEu);
  CHECK(dev::EqAddrLoBits::kReservedMask == 0x0000003Fu);    // 64-byte aligned
  CHECK(dev::EqLogSizeBits::kReservedMask == 0xFFFFFFE0u);   // 0..31; above 16 refused
  CHECK(dev::EqDoorbellBits::kReservedMask == 0x7F000000u);  // ci 23:0, arm 31
  CHECK(dev::MsixAddrLoBits::kReservedMask == 0x00000003u);  // 4-byte aligned
  CHECK(dev::MsixCtrlBits::kReservedMask == 0xFFFFFFFEu);    // masked 0
  CHECK(dev::QpDoorbellBits::kReservedMask == 0xFFFF0000u);  // pi 15:0
  CHECK(dev::CqDoorbellBits::kReservedMask == 0x3F000000u);  // ci 23:0, solicited 30, arm 31

  dev::CqDoorbellBits cq;
  cq.ci = 0x1123456;  // free-running: bit 24 is dropped
  cq.solicited = true;
  cq.arm = true;
  CHECK(cq.pack() == 0xC0123456u);
  CHECK(dev::CqDoorbellBits::unpack(0x80000005u).ci == 5);
  CHECK(dev::CqDoorbellBits::unpack(0x80000005u).arm);
  CHECK_FALSE(dev::CqDoorbellBits::unpack(0x80000005u).solicited);

  dev::EqDoorbellBits eq;
  eq.ci = 0xFFFFFFFFu;
  eq.arm = true;
  CHECK(eq.pack() == 0x80FFFFFFu);

  dev::CmdStatusBits st;
  st.busy = true;
  st.status = static_cast<uint32_t>(dev::CmdStatus::BAD_PARAM);
  st.token = 0xABCD1234u;  // the low half
  CHECK(st.pack() == 0x12340201u);

  CHECK(dev::QpDoorbellBits{0x12345u}.pack() == 0x2345u);
  CHECK(dev::MsixCtrlBits{true}.pack() == 1u);
  CHECK(dev::EqLogSizeBits{dev::kMaxEqLogSize}.pack() == 16u);
  CHECK(dev::EqAddrLoBits::unpack(0xFFFFFFC0u).pack() == 0xFFFFFFC0u);  // an aligned address
  CHECK(dev::MsixAddrLoBits::unpack(0xFEE00004u).pack() == 0xFEE00004u);

  // The two doorbells of a QP share its 8-byte element; a CQ has one.
  CHECK(dev::reg::QP_DOORBELL_SQ_WORD == 0);
  CHECK(dev::reg::QP_DOORBELL_RQ_WORD == 4);
  CHECK(dev::reg::QP_DOORBELL_RQ_WORD + 4 <= dev::kQpDbStride);
}

TEST_CASE("Register bit fields are constexpr", "[bits]") {
  static_assert(dev::CqDoorbellBits::unpack(0xC0000007u).pack() == 0xC0000007u);
  static_assert(dev::QpDoorbellBits::unpack(0xFFFFFFFFu).pi == 0xFFFF);
  static_assert(dev::EqDoorbellBits{5, true}.pack() == 0x80000005u);
  SUCCEED("checked at compile time");
}

TEST_CASE("WQE geometry: the generated constants agree with the layouts", "[wqe]") {
  // Each allowed stride holds the header and as many whole SGEs as fit, and no more.
  for (uint32_t s = dev::kSendWqeMinShift; s <= dev::kSendWqeMaxShift; ++s) {
    INFO("send shift " << s);
    CHECK(dev::valid_send_wqe_shift(s));
    const uint32_t n = dev::max_send_sge(s);
    CHECK(sizeof(dev::SendWqe) + n * sizeof(dev::Sge) <= (1u << s));
    CHECK(sizeof(dev::SendWqe) + (n + 1) * sizeof(dev::Sge) > (1u << s));
    CHECK(dev::send_wqe_shift_for(n) == s);
  }
  for (uint32_t s = dev::kRecvWqeMinShift; s <= dev::kRecvWqeMaxShift; ++s) {
    INFO("recv shift " << s);
    CHECK(dev::valid_recv_wqe_shift(s));
    const uint32_t n = dev::max_recv_sge(s);
    CHECK(sizeof(dev::RecvWqe) + n * sizeof(dev::Sge) <= (1u << s));
    CHECK(sizeof(dev::RecvWqe) + (n + 1) * sizeof(dev::Sge) > (1u << s));
    CHECK(dev::recv_wqe_shift_for(n) == s);
  }
  // Interface v1: send strides 64..512 bytes, receive strides 16..512 bytes.
  CHECK(dev::kSendWqeMinShift == 6);
  CHECK(dev::kSendWqeMaxShift == 9);
  CHECK(dev::kRecvWqeMinShift == 4);
  CHECK(dev::kRecvWqeMaxShift == 9);
  CHECK(dev::kSendWqeMinBytes == 64);
  CHECK(dev::kSendWqeMaxBytes == 512);
  CHECK(dev::kRecvWqeMinBytes == 16);
  CHECK(dev::kRecvWqeMaxBytes == 512);
  CHECK(dev::max_send_sge(6) == 2);
  CHECK(dev::max_send_sge(7) == 6);
  CHECK(dev::max_send_sge(8) == 14);
  CHECK(dev::max_send_sge(9) == 30);
  CHECK(dev::max_recv_sge(4) == 0);
  CHECK(dev::max_recv_sge(5) == 1);
  CHECK(dev::max_recv_sge(9) == 31);
  CHECK(dev::kMaxSendSge == 30);
  CHECK(dev::kMaxRecvSge == 31);
  // Strides that are not allowed hold nothing and are refused.
  for (uint32_t s : {0u, 3u, 5u, 10u, 31u, 255u}) {
    INFO("shift " << s);
    CHECK(dev::valid_send_wqe_shift(s) == (s >= 6 && s <= 9));
    CHECK(dev::valid_recv_wqe_shift(s) == (s >= 4 && s <= 9));
    if (!dev::valid_send_wqe_shift(s)) CHECK(dev::max_send_sge(s) == 0);
    if (!dev::valid_recv_wqe_shift(s)) CHECK(dev::max_recv_sge(s) == 0);
  }
  // QUERY_DEVICE reports the largest counts in 16-bit fields.
  CHECK(dev::kMaxSendSge <= UINT16_MAX);
  CHECK(dev::kMaxRecvSge <= UINT16_MAX);
}

TEST_CASE("WQE geometry: the smallest stride for a number of SGEs", "[wqe]") {
  // The rule the driver used before the helper: the next power of two of header + 16 per SGE, at
  // least the smallest stride.
  auto pow2_shift = [](uint32_t bytes) {
    uint32_t s = 0;
    while ((1u << s) < bytes) ++s;
    return s;
  };
  for (uint32_t n = 0; n <= dev::kMaxSendSge; ++n) {
    INFO("send SGEs " << n);
    uint32_t want = std::max<uint32_t>(pow2_shift(32 + 16 * n), dev::kSendWqeMinShift);
    CHECK(dev::send_wqe_shift_for(n) == want);
    CHECK(dev::max_send_sge(dev::send_wqe_shift_for(n)) >= n);
  }
  for (uint32_t n = 0; n <= dev::kMaxRecvSge; ++n) {
    INFO("recv SGEs " << n);
    uint32_t want = std::max<uint32_t>(pow2_shift(16 + 16 * n), dev::kRecvWqeMinShift);
    CHECK(dev::recv_wqe_shift_for(n) == want);
    CHECK(dev::max_recv_sge(dev::recv_wqe_shift_for(n)) >= n);
  }
  CHECK(dev::send_wqe_shift_for(1) == 6);
  CHECK(dev::send_wqe_shift_for(3) == 7);
  CHECK(dev::recv_wqe_shift_for(1) == 5);
  // Too many SGEs for any stride.
  CHECK(dev::send_wqe_shift_for(dev::kMaxSendSge + 1) == 0);
  CHECK(dev::recv_wqe_shift_for(dev::kMaxRecvSge + 1) == 0);
}

// Version 2 adds to version 1 and moves nothing of it: the values below are its contract.
TEST_CASE("Interface v2: what it adds, and v1 where it was", "[v2]") {
  CHECK(dev::kVersion == 2);
  // CAPS sits in a v1 hole (a v1 device reads 0 there: no capabilities).
  CHECK(dev::reg::CAPS == 0x008);
  CHECK(dev::reg::VERSION == 0x004);
  CHECK(dev::reg::CMD_ADDR_LO == 0x010);
  CHECK(dev::CapsBits::kInlineDataMask == 0x1u);
  CHECK(dev::CapsBits::kWqeDoorbellMask == 0x2u);
  CHECK(dev::CapsBits::kMaxInlineDataMask == 0xFFFF0000u);
  // bit 2: srq (see the SRQ test); bits 3, 4: device control (see its test); bit 5: context
  // memory (testbench/system/test_context_cache.cpp)
  CHECK(dev::CapsBits::kReservedMask == 0x0000FFC0u);
  dev::CapsBits c;
  c.inline_data = true;
  c.wqe_doorbell = true;
  c.max_inline_data = dev::kMaxSendInline;
  CHECK(c.pack() == ((dev::kMaxSendInline << 16) | 3u));
  CHECK(dev::CapsBits::unpack(0) == dev::CapsBits{});  // a v1 device: nothing

  // The WQE doorbell areas: one per QP, after the v1 doorbells, inside BAR0.
  CHECK(dev::reg::WQE_DOORBELL == dev::kWqeDbBase);
  CHECK(dev::kWqeDbStride == 256);
  CHECK(dev::kWqeDbBase >= dev::kCqDbBase + dev::kCqDbStride * dev::kMaxCqDoorbells);
  CHECK(dev::kWqeDbBase + dev::kWqeDbStride * dev::kMaxQpDoorbells <= dev::kBar0Size);
  CHECK(dev::kQpDbBase == 0x100000);  // v1's doorbells did not move
  CHECK(dev::kCqDbBase == 0x200000);
  // A WQE doorbell holds a header and whole SGEs, or a header and inline bytes.
  CHECK(dev::kWqeDbStride >= dev::kSendWqeMinBytes);
  CHECK(dev::kWqeDbStride <= dev::kSendWqeMaxBytes);

  // The send WQE: v1's fields where they were; v2's in v1's reserved word.
  CHECK(offsetof(dev::SendWqe, flags) == 1);
  CHECK(offsetof(dev::SendWqe, num_sge) == 2);
  CHECK(offsetof(dev::SendWqe, wr_id) == 8);
  CHECK(offsetof(dev::SendWqe, remote_addr) == 16);
  CHECK(offsetof(dev::SendWqe, rkey) == 24);
  CHECK(offsetof(dev::SendWqe, inline_len) == 28);
  CHECK(offsetof(dev::SendWqe, wqe_index) == 30);
  CHECK(sizeof(dev::SendWqe) == 32);
  CHECK(static_cast<uint32_t>(dev::WqeFlags::INLINE) == 8);
  CHECK(static_cast<uint32_t>(dev::WqeFlags::FENCE) == 4);
  CHECK(static_cast<uint32_t>(dev::RegError::BAD_WQE) == 12);
  CHECK(static_cast<uint32_t>(dev::RegError::ADDR_RANGE) == 11);
  CHECK(std::string(dev::to_string(dev::RegError::BAD_WQE)) == "BAD_WQE");
  CHECK(std::string(dev::to_string(dev::WqeFlags::INLINE)) == "INLINE");
}

// Shared receive queues (CAPS.srq) add to version 2 and move nothing of it.
TEST_CASE("SRQ: its capability bit, doorbells, commands, events and layouts", "[srq]") {
  CHECK(dev::CapsBits::kSrqMask == 0x4u);
  dev::CapsBits c;
  c.srq = true;
  CHECK(c.pack() == 0x4u);
  // The SRQ doorbells: after the CQ doorbells, before the WQE doorbells, one word per SRQ.
  CHECK(dev::reg::SRQ_DOORBELL == dev::kSrqDbBase);
  CHECK(dev::kSrqDbBase >= dev::kCqDbBase + dev::kCqDbStride * dev::kMaxCqDoorbells);
  CHECK(dev::kSrqDbBase + dev::kSrqDbStride * dev::kMaxSrqDoorbells <= dev::kWqeDbBase);
  CHECK(dev::SrqDoorbellBits::kReservedMask == 0xFFFF0000u);
  CHECK(static_cast<uint32_t>(dev::RegError::NO_SUCH_SRQ) == 13);
  CHECK(static_cast<uint32_t>(dev::CmdOp::CREATE_SRQ) == 0x60);
  CHECK(static_cast<uint32_t>(dev::CmdOp::MODIFY_SRQ) == 0x61);
  CHECK(static_cast<uint32_t>(dev::CmdOp::QUERY_SRQ) == 0x62);
  CHECK(static_cast<uint32_t>(dev::CmdOp::DESTROY_SRQ) == 0x63);
  CHECK(static_cast<uint32_t>(dev::EqeType::SRQ_LIMIT_REACHED) == 5);
  CHECK(static_cast<uint32_t>(dev::EqeType::QP_LAST_WQE_REACHED) == 6);
  CHECK(static_cast<uint32_t>(dev::SrqAttr::MAX_WR) == 1);  // ibv_srq_attr_mask
  CHECK(static_cast<uint32_t>(dev::SrqAttr::LIMIT) == 2);
  // CreateQpIn.srqn sits in v1's reserved word; everything else where it was.
  CHECK(offsetof(dev::CreateQpIn, recv_cqn) == 16);
  CHECK(offsetof(dev::CreateQpIn, srqn) == 20);
  CHECK(offsetof(dev::CreateQpIn, sq_addr) == 24);
  CHECK(sizeof(dev::CreateQpIn) == 56);
  CHECK(offsetof(dev::QueryDeviceIn, page) == 0);
  CHECK(sizeof(dev::QueryDeviceSrqOut) == 48);
  CHECK(sizeof(dev::CreateSrqIn) == 56);
  CHECK(offsetof(dev::CreateSrqIn, limit) == 16);
  CHECK(sizeof(dev::ModifySrqIn) == 56);
  CHECK(sizeof(dev::QuerySrqOut) == 48);
  CHECK(std::string(dev::to_string(dev::EqeType::QP_LAST_WQE_REACHED)) == "QP_LAST_WQE_REACHED");
}

TEST_CASE("WQE geometry: inline bytes per send stride", "[wqe][v2]") {
  for (uint32_t s = dev::kSendWqeMinShift; s <= dev::kSendWqeMaxShift; ++s) {
    INFO("send shift " << s);
    CHECK(dev::max_send_inline(s) == (1u << s) - sizeof(dev::SendWqe));
    // As much room as the SGEs of the stride, and whatever SGEs do not fill.
    CHECK(dev::max_send_inline(s) >= dev::max_send_sge(s) * sizeof(dev::Sge));
    CHECK(dev::send_wqe_shift_for_inline(dev::max_send_inline(s)) == s);
    if (s > dev::kSendWqeMinShift)
      CHECK(dev::send_wqe_shift_for_inline(dev::max_send_inline(s - 1) + 1) == s);
  }
  CHECK(dev::max_send_inline(6) == 32);
  CHECK(dev::max_send_inline(8) == 224);
  CHECK(dev::max_send_inline(9) == 480);
  CHECK(dev::kMaxSendInline == 480);
  CHECK(dev::send_wqe_shift_for_inline(0) == 6);
  CHECK(dev::send_wqe_shift_for_inline(236) == 9);  // perftest's ib_send_lat default
  CHECK(dev::send_wqe_shift_for_inline(dev::kMaxSendInline + 1) == 0);
  for (uint32_t s : {0u, 5u, 10u}) CHECK(dev::max_send_inline(s) == 0);
}

// Device control (CAPS.device_control, CAPS.eq_moderation) adds to version 2 in its holes and
// moves nothing; the reset values come from the TOML (a system test reads them from the device).
TEST_CASE("Device control: registers in v2 holes, capability bits, reset values", "[devctl]") {
  CHECK(dev::kVersion == 2);  // optional features: no new version
  CHECK(dev::CapsBits::kDeviceControlMask == 0x8u);
  CHECK(dev::CapsBits::kEqModerationMask == 0x10u);
  for (uint64_t off : {dev::reg::CTRL, dev::reg::STATUS, dev::reg::DRIVER_VERSION,
                       dev::reg::CMD_ABORT, dev::reg::EQ_MODERATION}) {
    INFO("offset " << std::hex << off);
    CHECK(off > dev::reg::MSIX_CTRL);
    CHECK(off < dev::kQpDbBase);
    CHECK(off % 4 == 0);
  }
  CHECK(static_cast<uint32_t>(dev::RegError::NOT_READY) == 14);
  CHECK(static_cast<uint32_t>(dev::RegError::NOT_ENABLED) == 15);
  CHECK(static_cast<uint32_t>(dev::CmdStatus::ABORTED) == 8);
  // Out of reset the device is enabled and ready (drivers that never write CTRL work as before),
  // and moderation is off (one interrupt per armed event).
  CHECK(dev::CtrlBits::unpack(dev::reg::CTRL_RESET) == dev::CtrlBits{true, false, false});
  const auto st = dev::StatusBits::unpack(dev::reg::STATUS_RESET);
  CHECK(st.ready);
  CHECK(st.enabled);
  CHECK_FALSE(st.quiesced);
  CHECK_FALSE(st.eq_overrun);
  CHECK(dev::reg::EQ_MODERATION_RESET == 0);
  CHECK(dev::reg::DRIVER_VERSION_RESET == 0);
  CHECK(dev::MsixCtrlBits::unpack(dev::reg::MSIX_CTRL_RESET).masked);
  const auto caps = dev::CapsBits::unpack(dev::reg::CAPS_RESET);
  CHECK(caps.inline_data);
  CHECK(caps.wqe_doorbell);
  CHECK(caps.srq);
  CHECK(caps.device_control);
  CHECK(caps.eq_moderation);
  CHECK(caps.max_inline_data == dev::kMaxSendInline);
  CHECK(dev::reg::ID_RESET == dev::kMagic);
  CHECK(dev::reg::VERSION_RESET == dev::kVersion);
  // Every register that is not an array is in the table, once.
  std::vector<uint64_t> offs;
  for (const auto& r : dev::reg::kResetValues) offs.push_back(r.offset);
  std::sort(offs.begin(), offs.end());
  CHECK(std::adjacent_find(offs.begin(), offs.end()) == offs.end());
  CHECK(offs.size() == 23);
}

TEST_CASE("VendorErr: the translation and NAK values the model hands over unchanged",
          "[vendor_err]") {
  CHECK(static_cast<uint32_t>(dev::VendorErr::NONE) == 0);
  CHECK(static_cast<uint32_t>(dev::VendorErr::BAD_OPCODE) == 1);
  CHECK(static_cast<uint32_t>(dev::VendorErr::UD_NO_ADDRESS) == 9);
  CHECK(static_cast<uint32_t>(dev::VendorErr::INLINE_V1) == 10);
  CHECK(static_cast<uint32_t>(dev::VendorErr::XLATE_BAD_KEY) == 1);
  CHECK(static_cast<uint32_t>(dev::VendorErr::NAK_REM_ACCESS) == 0x62);
  CHECK(std::string(dev::to_string(dev::VendorErr::INLINE_V1)) == "INLINE_V1");
}
