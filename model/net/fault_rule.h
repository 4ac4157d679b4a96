// Deterministic fault rules of a link: "drop (or corrupt, duplicate, reorder) the frames that
// match this side, destination QP, BTH opcode and PSN", optionally only the n-th match, every
// k-th, at most c of them. Matched against the frame's bytes when it is sent (Link::send). Also
// the text form of a rule list, as the configuration key link.rule holds it.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace rn::net {

enum class FaultAction : uint8_t { kDrop, kCorrupt, kDuplicate, kReorder };
const char* to_string(FaultAction a);  // "drop", "corrupt", "duplicate", "reorder"

// The RoCEv2 fields of a frame that rules match, read from its bytes (Ethernet II + IPv4 without
// options + UDP to port 4791 + BTH); roce == false for any other frame, which only rules naming
// none of qp, opcode and psn match.
struct FrameFields {
  bool roce = false;
  uint8_t opcode = 0;
  uint32_t dest_qp = 0;
  uint32_t psn = 0;
};
FrameFields frame_fields(const uint8_t* data, uint32_t len);

struct FaultRule {
  FaultAction action = FaultAction::kDrop;
  int side = -1;       // the sending side, 0 or 1; -1: both directions
  int64_t qp = -1;     // BTH DestQP (0..0xFFFFFF); -1: any
  int opcode = -1;     // BTH opcode (a valid one of model/wire/opcodes.h); -1: any
  int64_t psn = -1;    // BTH PSN (0..0xFFFFFF); -1: any
  uint64_t nth = 0;    // the first match acted on (1-based); 0: the `every`-th
  uint64_t every = 1;  // from there, every `every`-th match (1: each one)
  uint64_t count = 0;  // at most this many frames (0: no limit)

  bool matches(int from_side, const FrameFields& f) const {
    if (side >= 0 && side != from_side) return false;
    if (qp < 0 && opcode < 0 && psn < 0) return true;
    return f.roce && (qp < 0 || f.dest_qp == static_cast<uint32_t>(qp)) &&
           (opcode < 0 || f.opcode == opcode) && (psn < 0 || f.psn == static_cast<uint32_t>(psn));
  }
  // Whether the m-th match (1-based) is acted on, `hits` matches having been acted on before.
  bool fires(uint64_t m, uint64_t hits) const {
    const uint64_t first = nth ? nth : every;
    return m >= first && (m - first) % every == 0 && (count == 0 || hits < count);
  }
  // The rule in the text form parse_fault_rules() reads ("action=drop side=0 opcode=...").
  std::string text() const;
};

// Parses a rule list: rules separated by ';', each a list of key=value separated by spaces:
//   action=drop|corrupt|duplicate|reorder (required), side=0|1, qp=N, opcode=NAME|N, psn=N,
//   nth=N, every=N, count=N
// Numbers are decimal. An opcode is a name of model/wire/opcodes.h (RC_ACKNOWLEDGE, with or
// without its RC_ prefix) or a number (decimal, or hexadecimal with 0x). Empty text: no rules.
// Throws FaultRuleError naming the rule (1-based), its text, the field and the reason.
struct FaultRuleError : std::invalid_argument {
  FaultRuleError(size_t i, const std::string& what) : std::invalid_argument(what), index(i) {}
  size_t index;  // the rule (1-based)
};
std::vector<FaultRule> parse_fault_rules(const std::string& text);

}  // namespace rn::net
