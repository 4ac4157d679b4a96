// capture.fork: a process that opens a device and allocates a PD, then forks; the child opens the
// device itself and allocates and frees a PD of its own; the parent waits for it and tears down.
// Captured, the parent's calls go to FILE and the child's to FILE.PID (bridge/capture).
// Prints "child PID" and exits 0 when every verb succeeded.
#include <infiniband/verbs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace {

int use_device(ibv_device* dev) {
  ibv_context* ctx = ibv_open_device(dev);
  if (ctx == nullptr) return 1;
  ibv_pd* pd = ibv_alloc_pd(ctx);
  if (pd == nullptr) return 1;
  if (ibv_dealloc_pd(pd) != 0) return 1;
  return ibv_close_device(ctx) != 0;
}

}  // namespace

int main() {
  int n = 0;
  ibv_device** devs = ibv_get_device_list(&n);
  if (devs == nullptr || n < 1) {
    std::fprintf(stderr, "fork_child: no device\n");
    return 1;
  }
  ibv_context* ctx = ibv_open_device(devs[0]);
  ibv_pd* pd = ctx != nullptr ? ibv_alloc_pd(ctx) : nullptr;
  if (pd == nullptr) return 1;
  std::fflush(stdout);
  pid_t child = fork();
  // exit, not _exit: the child's trace is written at its exit, as any process's.
  if (child == 0) std::exit(use_device(devs[0]) == 0 ? 0 : 3);
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "fork_child: the child failed\n");
    return 1;
  }
  std::printf("child %d\n", static_cast<int>(child));
  if (ibv_dealloc_pd(pd) != 0 || ibv_close_device(ctx) != 0) return 1;
  ibv_free_device_list(devs);
  return 0;
}
