// The walk an engine makes to place received bytes into a WQE's buffers: [skip, skip + len) of the
// bytes the SGEs describe end to end, translated SGE by SGE through the translation stage for a
// local write. The responder places SEND payloads (RC, UC, UD) with it and the requester READ
// responses and atomic acknowledgements.
#pragma once
#include <algorithm>
#include <cstdint>

#include "model/core/hot.h"
#include "model/device/device_interface.h"
#include "model/translation/mr_table.h"

namespace rn::qp {

// Appends the bus segments of the range to *out and moves *ready to the latest time an answer is
// valid. On anything but kOk stops at the SGE that failed and names its key in *failed_lkey
// (kPending: the stage answers later; ask again after its wakers run).
RN_INLINE xlate::Status scatter(xlate::StageHandle& xl, const dev::Sge* sge, uint32_t num_sge,
                                uint32_t pdn, uint64_t skip, uint32_t len, xlate::SegList* out,
                                Tick* ready, uint32_t* failed_lkey) {
  for (uint32_t i = 0; i < num_sge && len > 0; ++i) {
    const dev::Sge& sg = sge[i];
    if (skip >= sg.length) {
      skip -= sg.length;
      continue;
    }
    const uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(sg.length - skip, len));
    Tick at = 0;
    const xlate::Status st = xl.lookup(sg.lkey, pdn, sg.addr + skip, take,
                                       static_cast<uint32_t>(dev::Access::LOCAL_WRITE), out, &at);
    if (st != xlate::Status::kOk) {
      *failed_lkey = sg.lkey;
      return st;
    }
    *ready = std::max(*ready, at);
    skip = 0;
    len -= take;
  }
  return xlate::Status::kOk;
}

}  // namespace rn::qp
