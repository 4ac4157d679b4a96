// A stub libmlx5.so.1: perftest's binaries list libmlx5 as needed and import a few mlx5dv_*
// functions. The real library registers itself with rdma-core's libibverbs through private
// functions ours does not have, so we ship this one instead. Every function fails: there is no
// mlx5 device here (perftest only calls them for a Mellanox vendor ID, which ours is not).
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#define RN_EXPORT __attribute__((visibility("default")))

RN_EXPORT bool mlx5dv_is_supported(void* device) {
  (void)device;
  return false;
}
RN_EXPORT void* mlx5dv_open_device(void* device, void* attr) {
  (void)device;
  (void)attr;
  errno = EOPNOTSUPP;
  return NULL;
}
RN_EXPORT void* mlx5dv_create_qp(void* context, void* qp_attr, void* mlx5_qp_attr) {
  (void)context;
  (void)qp_attr;
  (void)mlx5_qp_attr;
  errno = EOPNOTSUPP;
  return NULL;
}
RN_EXPORT int mlx5dv_devx_general_cmd(void* context, const void* in, size_t inlen, void* out,
                                      size_t outlen) {
  (void)context;
  (void)in;
  (void)inlen;
  (void)out;
  (void)outlen;
  return EOPNOTSUPP;
}
RN_EXPORT void* mlx5dv_qp_ex_from_ibv_qp_ex(void* qp) {
  (void)qp;
  errno = EOPNOTSUPP;
  return NULL;
}
RN_EXPORT void* mlx5dv_create_mkey(void* mkey_init_attr) {
  (void)mkey_init_attr;
  errno = EOPNOTSUPP;
  return NULL;
}
RN_EXPORT int mlx5dv_destroy_mkey(void* mkey) {
  (void)mkey;
  return EOPNOTSUPP;
}
RN_EXPORT int mlx5dv_crypto_login(void* context, void* login_attr) {
  (void)context;
  (void)login_attr;
  return EOPNOTSUPP;
}
RN_EXPORT void* mlx5dv_dek_create(void* context, void* init_attr) {
  (void)context;
  (void)init_attr;
  errno = EOPNOTSUPP;
  return NULL;
}
RN_EXPORT int mlx5dv_dek_destroy(void* dek) {
  (void)dek;
  return EOPNOTSUPP;
}
