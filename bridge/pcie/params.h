// PCIe link configuration for the timing core (bridge/pcie/link_timing.h).
// Formulas: bridge/pcie/README.md (the pcie-bench model, Neugebauer et al., SIGCOMM 2018).
#pragma once

#include <cstdint>
#include <string>

#include "model/core/units.h"

namespace rn::pcie {

// Upper bounds of the counts below; the configuration schema (model/system/schema.cpp) uses
// them too, so that `validate()` and the schema give one range.
constexpr uint32_t kMaxReadTags = 1024;       // 10-bit tags
constexpr uint32_t kMaxHeaderCredits = 4096;  // ph, nph, cplh
constexpr uint32_t kMaxDataCredits = 65536;   // pd, cpld (16-byte units)

// The defaults below are the configuration's defaults too: the schema takes them from here.
struct Params {
  int gen = 3;                               // 1..5
  int lanes = 16;                            // 1,2,4,8,16,32
  uint32_t mps = 256, mrrs = 512, rcb = 64;  // bytes: MPS/MRRS 128..4096 (powers of 2), RCB 64|128
  bool ecrc = false;                         // +4 B TLP digest on every TLP
  bool addr64 = true;             // 64-bit address -> 16 B MRd/MWr header (12 B if 32-bit)
  bool cpl_rcb_chunks = false;    // true: root complex returns RCB-sized completions (older
                                  // chipsets); false: MPS-sized ones ending on RCB boundaries
  uint32_t ack_limit = 0;         // bytes between ACK DLLPs; 0 = PCIe spec table by gen/width/MPS
  uint32_t fc_limit = 0;          // bytes between UpdateFC DLLPs; 0 = PCIe spec table
  Tick read_latency = 400 * kNs;  // end of MRd at the root complex -> first CplD byte leaves it
  Tick posted_write_latency = 100 * kNs;  // end of MWr at the root complex -> visible in memory
  Tick link_latency = 10 * kNs;           // one-way flight/PHY latency per direction
  Tick mmio_cpu_latency = 250 * kNs;  // CPU core <-> root complex, once each way of an MMIO access
  Tick mmio_read_device_latency = 500 * kNs;  // MMIO MRd arrival at device -> its CplD starts
  uint32_t read_tags = 128;                   // outstanding MRd TLPs the device may have
  // Flow-control credits advertised by the receiver of each direction (both directions
  // use the same numbers): headers, and data in 16-byte units. 0 = infinite.
  uint32_t ph_credits = 64, pd_credits = 1024, nph_credits = 64;
  uint32_t cplh_credits = 0,
           cpld_credits = 0;  // 0 = infinite, as endpoints/root complexes advertise
  Tick credit_return_latency =
      100 * kNs;  // TLP arrival at the receiver -> its credit is usable again

  // "" if ok, else a message naming the field and its bad value, e.g.
  // "pcie.mps: 300 is not one of 128,256,512,1024,2048,4096".
  std::string validate() const;
};

// Spec (PCIe Base 5.0 Tables 3-7..3-9 / 2-46..2-48) recommended ACK / UpdateFC
// intervals in bytes, by generation, width and MPS; 0 if gen/lanes/mps are invalid.
uint32_t spec_ack_limit(int gen, int lanes, uint32_t mps);
uint32_t spec_fc_limit(int gen, int lanes, uint32_t mps);

// Link rates in Gb/s (1e9 bit/s).
double raw_gbps(int gen, int lanes);  // GT/s x encoding x lanes
double tlp_gbps(const Params& p);     // raw x (1 - 8/ack - 8/fc - 4/1538)

// Wire bytes of one TLP: 8 B framing + sequence number + LCRC, header, payload, ECRC.
constexpr uint32_t kTlpWrapBytes = 8;
constexpr uint32_t kCplHeaderBytes = 12;
inline uint32_t req_header_bytes(const Params& p) { return p.addr64 ? 16 : 12; }
inline uint32_t ecrc_bytes(const Params& p) { return p.ecrc ? 4 : 0; }
inline uint32_t mwr_wire_bytes(const Params& p, uint32_t payload) {
  return kTlpWrapBytes + req_header_bytes(p) + payload + ecrc_bytes(p);
}
inline uint32_t mrd_wire_bytes(const Params& p) {
  return kTlpWrapBytes + req_header_bytes(p) + ecrc_bytes(p);
}
inline uint32_t cpld_wire_bytes(const Params& p, uint32_t payload) {
  return kTlpWrapBytes + kCplHeaderBytes + payload + ecrc_bytes(p);
}
// Flow-control data credits (16-byte units) of a payload.
inline uint32_t data_credits(uint32_t payload) { return (payload + 15) / 16; }

}  // namespace rn::pcie
