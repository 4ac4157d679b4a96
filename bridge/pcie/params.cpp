#include "bridge/pcie/params.h"

#include <sstream>

namespace rn::pcie {
namespace {

// Recommended ACK / UpdateFC intervals (bytes) for 2.5 GT/s, PCIe Base 5.0
// Tables 3-7 and 2-46 (the same numbers for both). Rows: x1, x2, x4, x8, x16, x32;
// columns: MPS 128, 256, 512, 1024, 2048, 4096. 5.0 GT/s adds 51 bytes to every
// entry and 8.0 GT/s and faster add 96 (the spec's internal-delay term); the pcie-bench
// model uses the 8 GT/s table for Gen4 and Gen5 too, and so do we.
constexpr uint16_t kGen1Limit[6][6] = {
    {237, 416, 559, 1071, 2095, 4143},  // x1
    {128, 217, 289, 545, 1057, 2081},   // x2
    {73, 118, 154, 282, 538, 1050},     // x4
    {67, 107, 86, 150, 278, 534},       // x8
    {48, 72, 86, 150, 278, 534},        // x16
    {33, 45, 52, 84, 148, 276},         // x32
};

int lanes_index(int lanes) {
  switch (lanes) {
    case 1:
      return 0;
    case 2:
      return 1;
    case 4:
      return 2;
    case 8:
      return 3;
    case 16:
      return 4;
    case 32:
      return 5;
    default:
      return -1;
  }
}

int size_index(uint32_t s) {  // 128..4096 -> 0..5
  for (int i = 0; i < 6; ++i)
    if (s == (128u << i)) return i;
  return -1;
}

uint32_t spec_limit(int gen, int lanes, uint32_t mps) {
  int li = lanes_index(lanes), si = size_index(mps);
  if (gen < 1 || gen > 5 || li < 0 || si < 0) return 0;
  uint32_t add = gen == 1 ? 0 : gen == 2 ? 51 : 96;
  return kGen1Limit[li][si] + add;
}

bool is_pow2_in(uint32_t v, uint32_t lo, uint32_t hi) {
  return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

}  // namespace

uint32_t spec_ack_limit(int gen, int lanes, uint32_t mps) { return spec_limit(gen, lanes, mps); }
uint32_t spec_fc_limit(int gen, int lanes, uint32_t mps) { return spec_limit(gen, lanes, mps); }

double raw_gbps(int gen, int lanes) {
  static constexpr double kGts[] = {0, 2.5, 5.0, 8.0, 16.0, 32.0};
  if (gen < 1 || gen > 5) return 0;
  double enc = gen <= 2 ? 8.0 / 10.0 : 128.0 / 130.0;
  return kGts[gen] * enc * lanes;
}

double tlp_gbps(const Params& p) {
  uint32_t ack = p.ack_limit ? p.ack_limit : spec_ack_limit(p.gen, p.lanes, p.mps);
  uint32_t fc = p.fc_limit ? p.fc_limit : spec_fc_limit(p.gen, p.lanes, p.mps);
  if (!ack || !fc) return 0;
  double overhead = 8.0 / ack + 8.0 / fc + 4.0 / 1538.0;
  return raw_gbps(p.gen, p.lanes) * (1.0 - overhead);
}

std::string Params::validate() const {
  std::ostringstream m;
  const char* sizes = "128,256,512,1024,2048,4096";
  if (gen < 1 || gen > 5) {
    m << "pcie.gen: " << gen << " is not one of 1,2,3,4,5";
  } else if (lanes_index(lanes) < 0) {
    m << "pcie.lanes: " << lanes << " is not one of 1,2,4,8,16,32";
  } else if (!is_pow2_in(mps, 128, 4096)) {
    m << "pcie.mps: " << mps << " is not one of " << sizes;
  } else if (!is_pow2_in(mrrs, 128, 4096)) {
    m << "pcie.mrrs: " << mrrs << " is not one of " << sizes;
  } else if (rcb != 64 && rcb != 128) {
    m << "pcie.rcb: " << rcb << " is not one of 64,128";
  } else if (ack_limit != 0 && ack_limit < 32) {
    m << "pcie.ack_limit: " << ack_limit << " is below 32 bytes (0 = spec table)";
  } else if (fc_limit != 0 && fc_limit < 32) {
    m << "pcie.fc_limit: " << fc_limit << " is below 32 bytes (0 = spec table)";
  } else if (read_tags < 1 || read_tags > kMaxReadTags) {
    m << "pcie.read_tags: " << read_tags << " is not in 1.." << kMaxReadTags;
  } else if (ph_credits > kMaxHeaderCredits) {
    m << "pcie.ph_credits: " << ph_credits << " is not in 0.." << kMaxHeaderCredits
      << " (0 = infinite)";
  } else if (nph_credits > kMaxHeaderCredits) {
    m << "pcie.nph_credits: " << nph_credits << " is not in 0.." << kMaxHeaderCredits
      << " (0 = infinite)";
  } else if (cplh_credits > kMaxHeaderCredits) {
    m << "pcie.cplh_credits: " << cplh_credits << " is not in 0.." << kMaxHeaderCredits
      << " (0 = infinite)";
  } else if (pd_credits != 0 && (pd_credits < data_credits(mps) || pd_credits > kMaxDataCredits)) {
    m << "pcie.pd_credits: " << pd_credits << " is not 0 (infinite) or in " << data_credits(mps)
      << ".." << kMaxDataCredits << " (one MPS TLP needs " << data_credits(mps) << ")";
  } else if (cpld_credits != 0 &&
             (cpld_credits < data_credits(mps) || cpld_credits > kMaxDataCredits)) {
    m << "pcie.cpld_credits: " << cpld_credits << " is not 0 (infinite) or in " << data_credits(mps)
      << ".." << kMaxDataCredits << " (one MPS completion needs " << data_credits(mps) << ")";
  }
  return m.str();
}

}  // namespace rn::pcie
