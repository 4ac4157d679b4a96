// A stub libefa.so.1: perftest's binaries list libefa as needed and import two efadv_*
// functions. The real library registers itself with rdma-core's libibverbs through private
// functions ours does not have, so we ship this one instead. Both fail: there is no EFA device.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define RN_EXPORT __attribute__((visibility("default")))

RN_EXPORT int efadv_query_device(void* context, void* attr, uint32_t inlen) {
  (void)context;
  (void)attr;
  (void)inlen;
  return EOPNOTSUPP;
}
RN_EXPORT void* efadv_create_qp_ex(void* context, void* attr_ex, void* efa_attr, uint32_t inlen) {
  (void)context;
  (void)attr_ex;
  (void)efa_attr;
  (void)inlen;
  errno = EOPNOTSUPP;
  return NULL;
}
