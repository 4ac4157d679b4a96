// librnicsim_capture.so: records an unmodified program's verbs calls as a verb trace (binary form
// of docs/traces.md: "RNTRACE\n" then one CBOR map per record). Preloaded (LD_PRELOAD), it
// interposes the exported verbs and forwards each to the libibverbs the program loaded (found
// with dlvsym(RTLD_NEXT) under rdma-core's version nodes); the fast path, which verbs.h inlines
// through function pointers, is caught by replacing those pointers in each context it opens (and
// in each ibv_qp_ex / ibv_cq_ex made through it) with wrappers that record and call the originals.
//
// Rules that keep the program safe: no lock of ours is held while calling into libibverbs (our
// libibverbs holds its context mutex between ibv_start_poll and ibv_end_poll, so a wrapper waiting
// for ours while another thread holds theirs would deadlock); nothing is allocated per call on the
// post/poll path (records are encoded straight into one 1 MiB buffer, written with write() when
// full and at exit); every failure of ours (output, a verb we cannot find) is one stderr line and
// the program runs on, unrecorded.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

// verbs.h turns these into inline choosers; we define the exported functions themselves.
#undef ibv_reg_mr
#undef ibv_reg_mr_iova

namespace {

constexpr size_t kBufSize = 1 << 20;
constexpr int kMaxContexts = 64;

uint64_t now_ns(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The Linux thread id, cached per thread (a syscall per record would be most of our cost); the
// fork child handler clears the forking thread's copy, the only thread a child has.
thread_local uint32_t t_tid = 0;
uint32_t tid() {
  if (t_tid == 0) t_tid = static_cast<uint32_t>(syscall(SYS_gettid));
  return t_tid;
}

enum class Payload { kNone, kHash, kFull };

// FNV-1a 64 (docs/traces.md, "Payload").
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull;
uint64_t fnv1a(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

// One scatter/gather entry as the trace names it: [mr, off, len] or, for an lkey that names no
// live MR, [0, addr, len, lkey]. `readable`: the bytes lie inside a registered region (or are
// inline data), so reading them for a payload cannot fault.
struct Sge {
  uint32_t mr;
  uint64_t off;  // from the MR's addr; the address itself when mr == 0
  uint32_t len;
  uint32_t lkey;
  uint64_t addr;
  bool readable;
};

// A completion as recorded.
struct Wc {
  uint64_t id;
  int status, opcode;
  uint32_t len, qp, src_qp, imm, flags, vendor_err;
  bool has_src_qp;
};

// A send WR collected from the ibv_wr_* calls between wr_start and wr_complete.
struct ExtWr {
  uint64_t id;
  int op;
  unsigned flags;
  size_t sge_first = 0, sge_count = 0;
  uint32_t imm = 0, rkey = 0, rqpn = 0, rqkey = 0, inv = 0, ah = 0;
  uint64_t raddr = 0, cmp = 0, swap = 0;
  bool has_imm = false, has_remote = false, has_atomic = false, has_swap = false, has_ud = false,
       has_inv = false;
  // Payload: FNV-1a of the bytes so far, or their copy at data[data_first..] (full).
  bool payload = false, payload_ok = true;
  uint64_t hash = kFnvBasis;
  size_t data_first = 0, data_len = 0;
};

struct MrInfo {
  uint32_t id, dev, lkey;
  uint64_t addr, len;
};

struct CqInfo {
  uint32_t id;
  uint64_t empty = 0;  // empty polls since the last recorded one
  // Extended CQ (ibv_create_cq_ex): the provider's poll functions, and the completions read
  // since start_poll (one poll_cq record at end_poll).
  bool ext = false;
  uint64_t wc_flags = 0;
  int (*start_poll)(ibv_cq_ex*, ibv_poll_cq_attr*) = nullptr;
  int (*next_poll)(ibv_cq_ex*) = nullptr;
  void (*end_poll)(ibv_cq_ex*) = nullptr;
  uint64_t poll_t = 0;
  std::vector<Wc> wcs;
};

// An ibv_qp_ex's provider functions, and the WRs being built.
struct QpxInfo {
  ibv_qp* qp;      // the QP it is (ibv_destroy_qp forgets it)
  ibv_qp_ex orig;  // a copy of the provider's function pointers
  uint64_t start_t = 0;
  std::vector<ExtWr> wrs;
  std::vector<Sge> sges;
  std::vector<unsigned char> data;
};

// A context we opened: its id and the provider's fast-path functions we replaced.
struct Ctx {
  std::atomic<ibv_context*> ctx{nullptr};
  uint32_t id = 0;
  int (*post_send)(ibv_qp*, ibv_send_wr*, ibv_send_wr**) = nullptr;
  int (*post_recv)(ibv_qp*, ibv_recv_wr*, ibv_recv_wr**) = nullptr;
  int (*post_srq_recv)(ibv_srq*, ibv_recv_wr*, ibv_recv_wr**) = nullptr;
  int (*poll_cq)(ibv_cq*, int, ibv_wc*) = nullptr;
  int (*req_notify_cq)(ibv_cq*, int) = nullptr;
  ibv_cq_ex* (*create_cq_ex)(ibv_context*, ibv_cq_init_attr_ex*) = nullptr;
  ibv_qp* (*create_qp_ex)(ibv_context*, ibv_qp_init_attr_ex*) = nullptr;
};

// Everything, behind one mutex. Allocated once and never freed: the end record is written from
// our ELF destructor, after static objects may have been destroyed.
struct State {
  std::mutex mu;
  // Output.
  int fd = -1;
  bool failed = false;    // cannot record (message printed); the program runs on
  bool finished = false;  // end record written
  std::string path;       // RNICSIM_CAPTURE_OUT, or PATH.PID in a forked child
  Payload payload = Payload::kNone;
  uint64_t t0_mono = 0, t0_real = 0;
  uint64_t records = 0;  // after the header
  size_t len = 0;
  unsigned char* buf = nullptr;
  // Objects.
  uint32_t next_dev = 1, next_ch = 1, next_pd = 1, next_mr = 1, next_cq = 1, next_srq = 1,
           next_ah = 1;
  std::unordered_map<const void*, uint32_t> devs, chs, pds, srqs, ahs;
  std::unordered_map<const void*, MrInfo> mrs;
  std::unordered_map<uint64_t, const MrInfo*> by_lkey;  // (dev << 32 | lkey)
  std::unordered_map<const void*, CqInfo> cqs;
  std::unordered_map<uint32_t, int> qp_types;  // qp_num -> ibv_qp_type (src_qp of UD completions)
  std::unordered_map<const void*, QpxInfo> qpxs;
  uint64_t leftover_empty = 0;  // empty polls of CQs destroyed since their last recorded poll
};

State* g = nullptr;
Ctx g_ctx[kMaxContexts];
pthread_once_t g_once = PTHREAD_ONCE_INIT;

void say(const std::string& what) {
  std::string line = "rnicsim capture: " + what + "\n";
  ssize_t r = write(2, line.data(), line.size());
  (void)r;
}

void atfork_prepare() { g->mu.lock(); }
void atfork_parent() { g->mu.unlock(); }
// The child has the parent's unwritten records in its copy of the buffer: they are the parent's
// to write. Its own calls go to PATH.PID, opened at its first recorded call.
void atfork_child() {
  t_tid = 0;
  if (g->fd >= 0) close(g->fd);
  g->fd = -1;
  g->len = 0;
  g->records = 0;
  g->leftover_empty = 0;
  for (auto& [cq, info] : g->cqs) info.empty = 0;
  if (!g->failed && !g->finished && !g->path.empty())
    g->path = g->path + "." + std::to_string(getpid());
  g->mu.unlock();
}

void init() {
  g = new State;
  g->buf = static_cast<unsigned char*>(std::malloc(kBufSize));
  g->t0_mono = now_ns();
  g->t0_real = now_ns(CLOCK_REALTIME);
  const char* out = std::getenv("RNICSIM_CAPTURE_OUT");
  if (out != nullptr) g->path = out;
  const char* mode = std::getenv("RNICSIM_CAPTURE_PAYLOAD");
  std::string m = mode != nullptr ? mode : "none";
  if (m == "hash") {
    g->payload = Payload::kHash;
  } else if (m == "full") {
    g->payload = Payload::kFull;
  } else if (m != "none" && !m.empty()) {
    say("RNICSIM_CAPTURE_PAYLOAD='" + m + "' is not none, hash or full: recording no payload");
  }
  if (g->buf == nullptr) g->failed = true;
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void ensure_init() { pthread_once(&g_once, init); }

__attribute__((constructor)) void capture_load() { ensure_init(); }

// ---- Finding the real verbs --------------------------------------------------------------------

// The next definition of NAME@VERSION after ours: the libibverbs the program loaded. A library
// dlopen'ed with RTLD_LOCAL (a Python extension's libibverbs) is not in the global scope
// RTLD_NEXT searches, hence the second look through the already loaded libibverbs.so.1.
void* find_real(const char* name, const char* version) {
  void* f = dlvsym(RTLD_NEXT, name, version);
  if (f == nullptr) {
    void* h = dlopen("libibverbs.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (h != nullptr) f = dlvsym(h, name, version);
  }
  if (f == nullptr)
    say(std::string("cannot find ") + name + "@" + version + " in the program's libibverbs");
  return f;
}

// Calls made by libibverbs itself to the verbs we interpose (rdma-core's ibv_reg_mr calls
// ibv_reg_mr_iova2 through its PLT, which binds to ours) go straight through: the program made
// one call, and its outer wrapper records it.
thread_local int t_depth = 0;
struct Depth {
  bool nested;
  Depth() : nested(t_depth++ > 0) {}
  ~Depth() { --t_depth; }
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
};
#define NESTED_FORWARD(...) \
  Depth depth_guard;        \
  if (depth_guard.nested) return real_fn(__VA_ARGS__)

#define REAL(name, version)                                                                 \
  static const auto real_fn = reinterpret_cast<decltype(&name)>(find_real(#name, version)); \
  ensure_init()

// ---- The CBOR encoder (RFC 8949): only what the trace needs ------------------------------------

bool write_all(int fd, const unsigned char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void flush() {
  if (g->fd >= 0 && g->len > 0 && !write_all(g->fd, g->buf, g->len)) {
    say("cannot write " + g->path + ": " + std::strerror(errno) + "; recording stops");
    close(g->fd);
    g->fd = -1;
    g->failed = true;
  }
  g->len = 0;
}

// A large or buffer-crossing write: flush, then buffer it, or write it at once when larger than
// the buffer (a big payload).
__attribute__((noinline)) void put_slow(const void* p, size_t n) {
  flush();
  if (n <= kBufSize) {
    std::memcpy(g->buf + g->len, p, n);
    g->len += n;
  } else if (g->fd >= 0 && !write_all(g->fd, static_cast<const unsigned char*>(p), n)) {
    say("cannot write " + g->path + ": " + std::strerror(errno) + "; recording stops");
    close(g->fd);
    g->fd = -1;
    g->failed = true;
  }
}

// The encoder's fast path, inlined: one bounds check and a copy into the buffer.
inline __attribute__((always_inline)) void put(const void* p, size_t n) {
  if (__builtin_expect(g->len + n > kBufSize, 0)) return put_slow(p, n);
  std::memcpy(g->buf + g->len, p, n);
  g->len += n;
}

// A CBOR head: major type and argument, in its shortest form (RFC 8949, 3.1).
inline __attribute__((always_inline)) void head(unsigned major, uint64_t v) {
  if (__builtin_expect(g->len + 9 > kBufSize, 0)) flush();
  unsigned char* b = g->buf + g->len;
  major <<= 5;
  if (v < 24) {
    b[0] = static_cast<unsigned char>(major | v);
    g->len += 1;
  } else if (v <= 0xff) {
    b[0] = static_cast<unsigned char>(major | 24);
    b[1] = static_cast<unsigned char>(v);
    g->len += 2;
  } else if (v <= 0xffff) {
    b[0] = static_cast<unsigned char>(major | 25);
    uint16_t be = __builtin_bswap16(static_cast<uint16_t>(v));
    std::memcpy(b + 1, &be, 2);
    g->len += 3;
  } else if (v <= 0xffffffffull) {
    b[0] = static_cast<unsigned char>(major | 26);
    uint32_t be = __builtin_bswap32(static_cast<uint32_t>(v));
    std::memcpy(b + 1, &be, 4);
    g->len += 5;
  } else {
    b[0] = static_cast<unsigned char>(major | 27);
    uint64_t be = __builtin_bswap64(v);
    std::memcpy(b + 1, &be, 8);
    g->len += 9;
  }
}

inline void u(uint64_t v) { head(0, v); }
void i64(int64_t v) {
  if (v >= 0)
    head(0, static_cast<uint64_t>(v));
  else
    head(1, static_cast<uint64_t>(-1 - v));
}
void text(const char* s, size_t n) {
  head(3, n);
  put(s, n);
}
// A literal key or name (all shorter than 24 bytes: a one-byte head), its length known at
// compile time.
template <size_t N>
inline __attribute__((always_inline)) void text(const char (&s)[N]) {
  static_assert(N - 1 < 24, "a literal of 24 bytes or more");
  unsigned char b[N];
  b[0] = static_cast<unsigned char>(0x60 | (N - 1));
  std::memcpy(b + 1, s, N - 1);
  put(b, N);
}
// A name chosen at run time (an opcode, a status): strlen, then as text.
void name(const char* s) { text(s, std::strlen(s)); }
void bytes(const void* p, size_t n) {
  head(2, n);
  put(p, n);
}
void map(size_t n) { head(5, n); }
void arr(size_t n) { head(4, n); }
template <size_t N>
inline __attribute__((always_inline)) void ku(const char (&k)[N], uint64_t v) {
  text(k);
  u(v);
}
template <size_t N>
void ks(const char (&k)[N], const char* v) {
  text(k);
  name(v);
}

// ---- Records --------------------------------------------------------------------------------

std::string host_name() {
  char h[256] = {};
  gethostname(h, sizeof h - 1);
  return h;
}

std::vector<std::string> cmdline() {
  std::vector<std::string> args;
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return args;
  std::string all;
  char b[4096];
  ssize_t n;
  while ((n = read(fd, b, sizeof b)) > 0) all.append(b, static_cast<size_t>(n));
  close(fd);
  size_t s = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] == '\0') {
      args.push_back(all.substr(s, i - s));
      s = i + 1;
    }
  return args;
}

std::string library_path() {
  Dl_info info;
  void* f = find_real("ibv_open_device", "IBVERBS_1.1");
  if (f != nullptr && dladdr(f, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "";
}

const char* payload_name() {
  return g->payload == Payload::kHash ? "hash" : g->payload == Payload::kFull ? "full" : "none";
}

// Called with the lock held before each record: opens the output and writes the header at the
// first one. False: nothing is recorded (no output, or the end record is written).
bool start_output() {
  if (g->failed || g->finished) return false;
  if (g->fd >= 0) return true;
  if (g->path.empty()) {
    say("RNICSIM_CAPTURE_OUT is not set: nothing is recorded (rnicsim capture sets it)");
    g->failed = true;
    return false;
  }
  // Exclusive: another process of the same capture (a program a shell script runs after another,
  // both inheriting RNICSIM_CAPTURE_OUT) must not truncate the first one's trace; it writes
  // PATH.PID, as a forked child does. `rnicsim capture` removes PATH before it starts.
  g->fd = open(g->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (g->fd < 0 && errno == EEXIST) {
    std::string own = g->path + "." + std::to_string(getpid());
    say(g->path + " exists (written by another process of this capture): this process, " +
        std::to_string(getpid()) + ", writes " + own);
    g->path = own;
    g->fd = open(g->path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (g->fd < 0) {
    say("cannot open the trace output " + g->path + ": " + std::strerror(errno) +
        "; the program runs unrecorded");
    g->failed = true;
    return false;
  }
  put("RNTRACE\n", 8);
  std::string lib = library_path();
  auto args = cmdline();
  std::string host = host_name();
  map(lib.empty() ? 9 : 10);
  ks("call", "trace");
  ku("version", 1);
  ku("pid", static_cast<uint64_t>(getpid()));
  text("argv");
  arr(args.size());
  for (const auto& a : args) text(a.data(), a.size());
  text("host");
  text(host.data(), host.size());
  ku("t0_mono", g->t0_mono);
  ku("t0_real", g->t0_real);
  ks("payload", payload_name());
  ks("source", "capture");
  if (!lib.empty()) {
    text("library");
    text(lib.data(), lib.size());
  }
  return true;
}

// The keys every call record has; `extra` more pairs follow.
void rec(const char* call, size_t extra, uint64_t t, uint64_t t1, int64_t ret) {
  ++g->records;
  map(5 + extra);
  ks("call", call);
  ku("t", t >= g->t0_mono ? t - g->t0_mono : 0);
  ku("d", t1 >= t ? t1 - t : 0);
  ku("tid", tid());
  text("ret");
  i64(ret);
}

__attribute__((destructor)) void capture_unload() {
  if (g == nullptr) return;
  std::lock_guard<std::mutex> lk(g->mu);
  if (g->fd < 0 || g->finished || g->failed) return;
  uint64_t empty = g->leftover_empty;
  for (const auto& [cq, info] : g->cqs) empty += info.empty;
  map(4);
  ks("call", "end");
  ku("t", now_ns() - g->t0_mono);
  ku("records", g->records);
  ku("empty", empty);
  g->finished = true;
  flush();
  if (g->fd >= 0) close(g->fd);
  g->fd = -1;
}

// ---- Names ----------------------------------------------------------------------------------

const char* qp_type_name(int t) {
  switch (t) {
    case IBV_QPT_RC:
      return "RC";
    case IBV_QPT_UC:
      return "UC";
    case IBV_QPT_UD:
      return "UD";
    case IBV_QPT_RAW_PACKET:
      return "RAW_PACKET";
    case IBV_QPT_XRC_SEND:
      return "XRC_SEND";
    case IBV_QPT_XRC_RECV:
      return "XRC_RECV";
    case IBV_QPT_DRIVER:
      return "DRIVER";
    default:
      return "UNKNOWN";
  }
}

const char* qp_state_name(int s) {
  static const char* const k[] = {"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"};
  return s >= 0 && s < 7 ? k[s] : "UNKNOWN";
}

const char* send_op_name(int op) {
  switch (op) {
    case IBV_WR_SEND:
      return "SEND";
    case IBV_WR_SEND_WITH_IMM:
      return "SEND_IMM";
    case IBV_WR_RDMA_WRITE:
      return "WRITE";
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      return "WRITE_IMM";
    case IBV_WR_RDMA_READ:
      return "READ";
    case IBV_WR_ATOMIC_CMP_AND_SWP:
      return "CMP_SWP";
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      return "FETCH_ADD";
    case IBV_WR_SEND_WITH_INV:
      return "SEND_INV";
    case IBV_WR_LOCAL_INV:
      return "LOCAL_INV";
    case IBV_WR_BIND_MW:
      return "BIND_MW";
    case IBV_WR_TSO:
      return "TSO";
    case IBV_WR_ATOMIC_WRITE:
      return "ATOMIC_WRITE";
    default:
      return "UNKNOWN";
  }
}

const char* wc_op_name(int op) {
  switch (op) {
    case IBV_WC_SEND:
      return "SEND";
    case IBV_WC_RDMA_WRITE:
      return "RDMA_WRITE";
    case IBV_WC_RDMA_READ:
      return "RDMA_READ";
    case IBV_WC_COMP_SWAP:
      return "COMP_SWAP";
    case IBV_WC_FETCH_ADD:
      return "FETCH_ADD";
    case IBV_WC_BIND_MW:
      return "BIND_MW";
    case IBV_WC_LOCAL_INV:
      return "LOCAL_INV";
    case IBV_WC_TSO:
      return "TSO";
    case IBV_WC_ATOMIC_WRITE:
      return "ATOMIC_WRITE";
    case IBV_WC_RECV:
      return "RECV";
    case IBV_WC_RECV_RDMA_WITH_IMM:
      return "RECV_RDMA_WITH_IMM";
    case IBV_WC_TM_ADD:
      return "TM_ADD";
    case IBV_WC_TM_DEL:
      return "TM_DEL";
    case IBV_WC_TM_SYNC:
      return "TM_SYNC";
    case IBV_WC_TM_RECV:
      return "TM_RECV";
    case IBV_WC_TM_NO_TAG:
      return "TM_NO_TAG";
    case IBV_WC_DRIVER1:
      return "DRIVER1";
    case IBV_WC_DRIVER2:
      return "DRIVER2";
    case IBV_WC_DRIVER3:
      return "DRIVER3";
    default:
      return "UNKNOWN";
  }
}

const char* wc_status_name(int s) {
  static const char* const k[] = {"SUCCESS",
                                  "LOC_LEN_ERR",
                                  "LOC_QP_OP_ERR",
                                  "LOC_EEC_OP_ERR",
                                  "LOC_PROT_ERR",
                                  "WR_FLUSH_ERR",
                                  "MW_BIND_ERR",
                                  "BAD_RESP_ERR",
                                  "LOC_ACCESS_ERR",
                                  "REM_INV_REQ_ERR",
                                  "REM_ACCESS_ERR",
                                  "REM_OP_ERR",
                                  "RETRY_EXC_ERR",
                                  "RNR_RETRY_EXC_ERR",
                                  "LOC_RDD_VIOL_ERR",
                                  "REM_INV_RD_REQ_ERR",
                                  "REM_ABORT_ERR",
                                  "INV_EECN_ERR",
                                  "INV_EEC_STATE_ERR",
                                  "FATAL_ERR",
                                  "RESP_TIMEOUT_ERR",
                                  "GENERAL_ERR",
                                  "TM_ERR",
                                  "TM_RNDV_INCOMPLETE"};
  return s >= 0 && s < static_cast<int>(sizeof k / sizeof k[0]) ? k[s] : "UNKNOWN";
}

const char* event_name(int e) {
  static const char* const k[] = {"CQ_ERR",
                                  "QP_FATAL",
                                  "QP_REQ_ERR",
                                  "QP_ACCESS_ERR",
                                  "COMM_EST",
                                  "SQ_DRAINED",
                                  "PATH_MIG",
                                  "PATH_MIG_ERR",
                                  "DEVICE_FATAL",
                                  "PORT_ACTIVE",
                                  "PORT_ERR",
                                  "LID_CHANGE",
                                  "PKEY_CHANGE",
                                  "SM_CHANGE",
                                  "SRQ_ERR",
                                  "SRQ_LIMIT_REACHED",
                                  "QP_LAST_WQE_REACHED",
                                  "CLIENT_REREGISTER",
                                  "GID_CHANGE",
                                  "WQ_FATAL"};
  return e >= 0 && e < static_cast<int>(sizeof k / sizeof k[0]) ? k[e] : "UNKNOWN";
}

// ---- Lookups (lock held) ------------------------------------------------------------------------

uint32_t id_of(const std::unordered_map<const void*, uint32_t>& m, const void* p) {
  auto it = m.find(p);
  return it == m.end() ? 0 : it->second;
}

Ctx* find_ctx(const ibv_context* c) {
  for (auto& x : g_ctx)
    if (x.ctx.load(std::memory_order_acquire) == c) return &x;
  return nullptr;
}

uint32_t dev_of(const ibv_context* c) { return id_of(g->devs, c); }

uint32_t cq_id(const ibv_cq* cq) {
  auto it = g->cqs.find(cq);
  return it == g->cqs.end() ? 0 : it->second.id;
}

Sge make_sge(uint32_t dev, uint32_t lkey, uint64_t addr, uint32_t len, bool is_inline) {
  auto it = g->by_lkey.find(static_cast<uint64_t>(dev) << 32 | lkey);
  if (it != g->by_lkey.end() && addr >= it->second->addr) {
    const MrInfo& mr = *it->second;
    bool inside = addr - mr.addr <= mr.len && len <= mr.len - (addr - mr.addr);
    return Sge{mr.id, addr - mr.addr, len, lkey, addr, inside || is_inline};
  }
  return Sge{0, addr, len, lkey, addr, is_inline};
}

void put_sge(const Sge& s) {
  if (s.mr != 0) {
    arr(3);
    u(s.mr);
  } else {
    arr(4);
    u(0);
  }
  u(s.off);
  u(s.len);
  if (s.mr == 0) u(s.lkey);
}

// A region's bytes read with process_vm_readv on ourselves: a region the program has unmapped
// yields an error instead of a fault. Hash: *hash; full: the bytes into *data.
bool read_region(uint64_t addr, uint64_t len, uint64_t* hash, std::vector<unsigned char>* data) {
  unsigned char chunk[65536];
  uint64_t h = kFnvBasis;
  for (uint64_t done = 0; done < len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof chunk, len - done));
    iovec local{chunk, n};
    iovec remote{reinterpret_cast<void*>(addr + done), n};
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != static_cast<ssize_t>(n))
      return false;
    if (data != nullptr)
      data->insert(data->end(), chunk, chunk + n);
    else
      h = fnv1a(h, chunk, n);
    done += n;
  }
  *hash = h;
  return true;
}

// The payload key of reg_mr/dereg_mr: 0 or 1 pairs (a region we cannot read gets none).
struct RegionPayload {
  bool ok = false;
  uint64_t hash = 0;
  std::vector<unsigned char> data;
};
RegionPayload region_payload(uint64_t addr, uint64_t len) {
  RegionPayload p;
  if (g->payload == Payload::kNone) return p;
  p.ok = read_region(addr, len, &p.hash, g->payload == Payload::kFull ? &p.data : nullptr);
  return p;
}
void put_region_payload(const RegionPayload& p) {
  if (!p.ok) return;
  if (g->payload == Payload::kHash) {
    ku("hash", p.hash);
  } else {
    text("data");
    bytes(p.data.data(), p.data.size());
  }
}

void put_av(const ibv_ah_attr& a) {
  map(a.is_global ? 9 : 4);
  ku("dlid", a.dlid);
  ku("sl", a.sl);
  ku("port", a.port_num);
  ku("is_global", a.is_global ? 1 : 0);
  if (a.is_global) {
    text("dgid");
    bytes(a.grh.dgid.raw, 16);
    ku("sgid_index", a.grh.sgid_index);
    ku("hop_limit", a.grh.hop_limit);
    ku("tclass", a.grh.traffic_class);
    ku("flow_label", a.grh.flow_label);
  }
}

bool carries_payload(int op) {
  return op == IBV_WR_SEND || op == IBV_WR_SEND_WITH_IMM || op == IBV_WR_SEND_WITH_INV ||
         op == IBV_WR_RDMA_WRITE || op == IBV_WR_RDMA_WRITE_WITH_IMM;
}

bool is_atomic(int op) {
  return op == IBV_WR_ATOMIC_CMP_AND_SWP || op == IBV_WR_ATOMIC_FETCH_AND_ADD;
}

// ---- Fast path: the context ops ---------------------------------------------------------------

// One posted send WR (ibv_post_send) as a map.
void put_send_wr(const ibv_send_wr* w, uint32_t dev, bool ud) {
  int op = w->opcode;
  bool imm = op == IBV_WR_SEND_WITH_IMM || op == IBV_WR_RDMA_WRITE_WITH_IMM;
  bool remote = op == IBV_WR_RDMA_WRITE || op == IBV_WR_RDMA_WRITE_WITH_IMM ||
                op == IBV_WR_RDMA_READ || is_atomic(op);
  bool inv = op == IBV_WR_SEND_WITH_INV || op == IBV_WR_LOCAL_INV;
  bool is_inline = (w->send_flags & IBV_SEND_INLINE) != 0;
  int nsge = w->num_sge > 0 ? w->num_sge : 0;
  // The payload: every SGE must be readable (inside its MR, or inline).
  bool pay = g->payload != Payload::kNone && carries_payload(op);
  uint64_t total = 0, h = kFnvBasis;
  if (pay) {
    for (int i = 0; i < nsge && pay; ++i) {
      Sge s =
          make_sge(dev, w->sg_list[i].lkey, w->sg_list[i].addr, w->sg_list[i].length, is_inline);
      pay = s.readable;
      total += s.len;
    }
  }
  size_t n = 4 + (imm ? 1 : 0) + (remote ? 2 : 0) + (op == IBV_WR_ATOMIC_CMP_AND_SWP ? 2 : 0) +
             (op == IBV_WR_ATOMIC_FETCH_AND_ADD ? 1 : 0) + (ud ? 3 : 0) + (inv ? 1 : 0) +
             (pay ? 1 : 0);
  map(n);
  ku("id", w->wr_id);
  ks("op", send_op_name(op));
  ku("flags", w->send_flags);
  text("sge");
  arr(static_cast<size_t>(nsge));
  for (int i = 0; i < nsge; ++i)
    put_sge(make_sge(dev, w->sg_list[i].lkey, w->sg_list[i].addr, w->sg_list[i].length, is_inline));
  if (imm) ku("imm", ntohl(w->imm_data));
  if (remote) {
    uint32_t rkey = is_atomic(op) ? w->wr.atomic.rkey : w->wr.rdma.rkey;
    uint64_t raddr = is_atomic(op) ? w->wr.atomic.remote_addr : w->wr.rdma.remote_addr;
    ku("rkey", rkey);
    ku("raddr", raddr);
  }
  if (is_atomic(op)) {
    ku("cmp", w->wr.atomic.compare_add);
    if (op == IBV_WR_ATOMIC_CMP_AND_SWP) ku("swap", w->wr.atomic.swap);
  }
  if (ud) {
    ku("ah", id_of(g->ahs, w->wr.ud.ah));
    ku("rqpn", w->wr.ud.remote_qpn);
    ku("rqkey", w->wr.ud.remote_qkey);
  }
  if (inv) ku("inv", w->invalidate_rkey);
  if (pay) {
    if (g->payload == Payload::kHash) {
      for (int i = 0; i < nsge; ++i)
        h = fnv1a(h, reinterpret_cast<const void*>(w->sg_list[i].addr), w->sg_list[i].length);
      ku("hash", h);
    } else {
      text("data");
      head(2, total);
      for (int i = 0; i < nsge; ++i)
        put(reinterpret_cast<const void*>(w->sg_list[i].addr), w->sg_list[i].length);
    }
  }
}

void put_recv_wrs(const ibv_recv_wr* wr, uint32_t dev) {
  size_t n = 0;
  for (const ibv_recv_wr* w = wr; w != nullptr; w = w->next) ++n;
  arr(n);
  for (const ibv_recv_wr* w = wr; w != nullptr; w = w->next) {
    map(2);
    ku("id", w->wr_id);
    text("sge");
    int nsge = w->num_sge > 0 ? w->num_sge : 0;
    arr(static_cast<size_t>(nsge));
    for (int i = 0; i < nsge; ++i)
      put_sge(make_sge(dev, w->sg_list[i].lkey, w->sg_list[i].addr, w->sg_list[i].length, false));
  }
}

template <typename W>
int64_t bad_index(const W* wr, const W* bad) {
  int64_t i = 0;
  for (const W* w = wr; w != nullptr; w = w->next, ++i)
    if (w == bad) return i;
  return -1;
}

int w_post_send(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) {
  Ctx* c = find_ctx(qp->context);
  if (c == nullptr) return EINVAL;  // a context closed under the call
  uint64_t t = now_ns();
  int ret = c->post_send(qp, wr, bad);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  if (!start_output()) return ret;
  int64_t bi = ret != 0 && bad != nullptr ? bad_index(wr, *bad) : -1;
  rec("post_send", 2 + (bi >= 0 ? 1 : 0), t, t1, ret);
  ku("qp", qp->qp_num);
  text("wr");
  size_t n = 0;
  for (const ibv_send_wr* w = wr; w != nullptr; w = w->next) ++n;
  arr(n);
  bool ud = qp->qp_type == IBV_QPT_UD;
  for (const ibv_send_wr* w = wr; w != nullptr; w = w->next) put_send_wr(w, c->id, ud);
  if (bi >= 0) ku("bad", static_cast<uint64_t>(bi));
  return ret;
}

int w_post_recv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  Ctx* c = find_ctx(qp->context);
  if (c == nullptr) return EINVAL;
  uint64_t t = now_ns();
  int ret = c->post_recv(qp, wr, bad);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  if (!start_output()) return ret;
  int64_t bi = ret != 0 && bad != nullptr ? bad_index(wr, *bad) : -1;
  rec("post_recv", 2 + (bi >= 0 ? 1 : 0), t, t1, ret);
  ku("qp", qp->qp_num);
  text("wr");
  put_recv_wrs(wr, c->id);
  if (bi >= 0) ku("bad", static_cast<uint64_t>(bi));
  return ret;
}

int w_post_srq_recv(ibv_srq* srq, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  Ctx* c = find_ctx(srq->context);
  if (c == nullptr) return EINVAL;
  uint64_t t = now_ns();
  int ret = c->post_srq_recv(srq, wr, bad);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  if (!start_output()) return ret;
  int64_t bi = ret != 0 && bad != nullptr ? bad_index(wr, *bad) : -1;
  rec("post_srq_recv", 2 + (bi >= 0 ? 1 : 0), t, t1, ret);
  ku("srq", id_of(g->srqs, srq));
  text("wr");
  put_recv_wrs(wr, c->id);
  if (bi >= 0) ku("bad", static_cast<uint64_t>(bi));
  return ret;
}

void put_wc(const Wc& w) {
  bool imm = (w.flags & IBV_WC_WITH_IMM) != 0;
  bool err = w.status != IBV_WC_SUCCESS;
  map(6 + (w.has_src_qp ? 1 : 0) + (imm ? 1 : 0) + (err ? 1 : 0));
  ku("id", w.id);
  ks("status", wc_status_name(w.status));
  ks("op", wc_op_name(w.opcode));
  ku("len", w.len);
  ku("qp", w.qp);
  if (w.has_src_qp) ku("src_qp", w.src_qp);
  if (imm) ku("imm", w.imm);
  ku("flags", w.flags);
  if (err) ku("vendor_err", w.vendor_err);
}

bool is_ud_qp(uint32_t qp_num) {
  auto it = g->qp_types.find(qp_num);
  return it != g->qp_types.end() && it->second == IBV_QPT_UD;
}

// The poll_cq record of `n` completions (ret), counting the empty polls before it.
void poll_record(CqInfo& cq, uint64_t t, uint64_t t1, int64_t ret, uint64_t asked, bool ext,
                 const Wc* wcs, size_t n) {
  rec("poll_cq", 3 + (cq.empty > 0 ? 1 : 0) + (ext ? 1 : 0), t, t1, ret);
  ku("cq", cq.id);
  ku("n", asked);
  text("wc");
  arr(n);
  for (size_t i = 0; i < n; ++i) put_wc(wcs[i]);
  if (cq.empty > 0) ku("empty", cq.empty);
  if (ext) ku("ext", 1);
  cq.empty = 0;
}

int w_poll_cq(ibv_cq* cq, int n, ibv_wc* wc) {
  Ctx* c = find_ctx(cq->context);
  if (c == nullptr) return -EINVAL;
  uint64_t t = now_ns();
  int ret = c->poll_cq(cq, n, wc);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  auto it = g->cqs.find(cq);
  if (it == g->cqs.end()) return ret;
  if (ret == 0) {
    ++it->second.empty;
    return ret;
  }
  if (!start_output()) return ret;
  // Converted one at a time on the stack: no allocation on this path.
  int got = ret > 0 ? ret : 0;
  rec("poll_cq", 3 + (it->second.empty > 0 ? 1 : 0), t, t1, ret);
  ku("cq", it->second.id);
  ku("n", static_cast<uint64_t>(n > 0 ? n : 0));
  text("wc");
  arr(static_cast<size_t>(got));
  for (int i = 0; i < got; ++i) {
    const ibv_wc& w = wc[i];
    bool ud = (w.opcode & IBV_WC_RECV) != 0 && is_ud_qp(w.qp_num);
    put_wc(Wc{w.wr_id, static_cast<int>(w.status), static_cast<int>(w.opcode), w.byte_len, w.qp_num,
              w.src_qp, ntohl(w.imm_data), w.wc_flags, w.vendor_err, ud});
  }
  if (it->second.empty > 0) ku("empty", it->second.empty);
  it->second.empty = 0;
  return ret;
}

int w_req_notify_cq(ibv_cq* cq, int solicited) {
  Ctx* c = find_ctx(cq->context);
  if (c == nullptr) return EINVAL;
  uint64_t t = now_ns();
  int ret = c->req_notify_cq(cq, solicited);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  if (!start_output()) return ret;
  rec("req_notify_cq", 2, t, t1, ret);
  ku("cq", cq_id(cq));
  ku("solicited", solicited ? 1 : 0);
  return ret;
}

// ---- Extended CQ polling ------------------------------------------------------------------------

CqInfo* find_cq(const void* cq) {
  std::lock_guard<std::mutex> lk(g->mu);
  auto it = g->cqs.find(cq);
  return it == g->cqs.end() ? nullptr : &it->second;
}

// The current completion's fields, read with the provider's own read_* functions (those the
// CQ was not created with are not called: they may be absent).
Wc read_wc(ibv_cq_ex* cq, uint64_t wc_flags) {
  Wc w{};
  w.id = cq->wr_id;
  w.status = cq->status;
  w.opcode = cq->read_opcode(cq);
  w.vendor_err = w.status != IBV_WC_SUCCESS ? cq->read_vendor_err(cq) : 0;
  w.flags = cq->read_wc_flags(cq);
  if (wc_flags & IBV_WC_EX_WITH_BYTE_LEN) w.len = cq->read_byte_len(cq);
  if ((wc_flags & IBV_WC_EX_WITH_IMM) && (w.flags & IBV_WC_WITH_IMM))
    w.imm = ntohl(cq->read_imm_data(cq));
  if (wc_flags & IBV_WC_EX_WITH_QP_NUM) w.qp = cq->read_qp_num(cq);
  if ((wc_flags & IBV_WC_EX_WITH_SRC_QP) && (w.opcode & IBV_WC_RECV)) {
    w.src_qp = cq->read_src_qp(cq);
    w.has_src_qp = true;
  }
  return w;
}

// A CQ's poll sequence (start_poll .. end_poll) is one thread's at a time (verbs' rule), so the
// completions it collects in info->wcs need no lock; the read_* calls are made without ours.
int w_start_poll(ibv_cq_ex* cq, ibv_poll_cq_attr* attr) {
  CqInfo* info = find_cq(cq);
  if (info == nullptr) return EINVAL;
  uint64_t t = now_ns();
  int ret = info->start_poll(cq, attr);
  if (ret == 0) {
    info->poll_t = t;
    info->wcs.clear();
    info->wcs.push_back(read_wc(cq, info->wc_flags));
    return ret;
  }
  std::lock_guard<std::mutex> lk(g->mu);
  if (ret == ENOENT)
    ++info->empty;
  else if (start_output())
    poll_record(*info, t, now_ns(), -ret, 0, true, nullptr, 0);
  return ret;
}

int w_next_poll(ibv_cq_ex* cq) {
  CqInfo* info = find_cq(cq);
  if (info == nullptr) return EINVAL;
  int ret = info->next_poll(cq);
  if (ret == 0) info->wcs.push_back(read_wc(cq, info->wc_flags));
  return ret;
}

void w_end_poll(ibv_cq_ex* cq) {
  CqInfo* info = find_cq(cq);
  if (info == nullptr) return;
  info->end_poll(cq);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  if (!start_output()) return;
  size_t n = info->wcs.size();
  poll_record(*info, info->poll_t, t1, static_cast<int64_t>(n), n, true, info->wcs.data(), n);
  info->wcs.clear();
}

// ---- The ibv_wr_* API ---------------------------------------------------------------------------

QpxInfo* find_qpx(ibv_qp_ex* qp) {
  auto it = g->qpxs.find(qp);
  return it == g->qpxs.end() ? nullptr : &it->second;
}

// Starts WR `op` of the current post (wr_id and flags are the qp_ex's fields, set by the program).
ExtWr* new_wr(ibv_qp_ex* qp, int op) {
  QpxInfo* q = find_qpx(qp);
  if (q == nullptr) return nullptr;
  ExtWr w;
  w.id = qp->wr_id;
  w.op = op;
  w.flags = qp->wr_flags;
  w.sge_first = q->sges.size();
  w.data_first = q->data.size();
  w.payload = g->payload != Payload::kNone && carries_payload(op);
  q->wrs.push_back(w);
  return &q->wrs.back();
}

// The SGE / inline data of the WR being built: its entries and its payload, read now (inline
// data is copied by the provider at once, and may change once the call returns).
void add_data(ibv_qp_ex* qp, uint32_t lkey, uint64_t addr, uint32_t len, bool is_inline) {
  QpxInfo* q = find_qpx(qp);
  if (q == nullptr || q->wrs.empty()) return;
  ExtWr& w = q->wrs.back();
  Sge s = make_sge(dev_of(qp->qp_base.context), lkey, addr, len, is_inline);
  q->sges.push_back(s);
  ++w.sge_count;
  if (!w.payload || !w.payload_ok) return;
  if (!s.readable) {
    w.payload_ok = false;
  } else if (g->payload == Payload::kHash) {
    w.hash = fnv1a(w.hash, reinterpret_cast<const void*>(addr), len);
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(addr);
    q->data.insert(q->data.end(), p, p + len);
    w.data_len += len;
  }
}

#define QPX_ORIG(qp, fn)                           \
  decltype(ibv_qp_ex::fn) orig_fn;                 \
  {                                                \
    std::lock_guard<std::mutex> lk(g->mu);         \
    QpxInfo* q = find_qpx(qp);                     \
    orig_fn = q != nullptr ? q->orig.fn : nullptr; \
  }                                                \
  if (orig_fn == nullptr) return;

void w_wr_start(ibv_qp_ex* qp) {
  QPX_ORIG(qp, wr_start);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp)) {
      q->start_t = now_ns();
      q->wrs.clear();
      q->sges.clear();
      q->data.clear();
    }
  }
  orig_fn(qp);
}

int w_wr_complete(ibv_qp_ex* qp) {
  decltype(ibv_qp_ex::wr_complete) orig_fn;
  {
    std::lock_guard<std::mutex> lk(g->mu);
    QpxInfo* q = find_qpx(qp);
    orig_fn = q != nullptr ? q->orig.wr_complete : nullptr;
  }
  if (orig_fn == nullptr) return EINVAL;
  int ret = orig_fn(qp);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  QpxInfo* q = find_qpx(qp);
  if (q == nullptr || !start_output()) return ret;
  rec("post_send", 3, q->start_t, t1, ret);
  ku("qp", qp->qp_base.qp_num);
  text("wr");
  arr(q->wrs.size());
  for (const ExtWr& w : q->wrs) {
    bool pay = w.payload && w.payload_ok;
    map(4 + (w.has_imm ? 1 : 0) + (w.has_remote ? 2 : 0) + (w.has_atomic ? 1 : 0) +
        (w.has_swap ? 1 : 0) + (w.has_ud ? 3 : 0) + (w.has_inv ? 1 : 0) + (pay ? 1 : 0));
    ku("id", w.id);
    ks("op", send_op_name(w.op));
    ku("flags", w.flags);
    text("sge");
    arr(w.sge_count);
    for (size_t i = 0; i < w.sge_count; ++i) put_sge(q->sges[w.sge_first + i]);
    if (w.has_imm) ku("imm", w.imm);
    if (w.has_remote) {
      ku("rkey", w.rkey);
      ku("raddr", w.raddr);
    }
    if (w.has_atomic) ku("cmp", w.cmp);
    if (w.has_swap) ku("swap", w.swap);
    if (w.has_ud) {
      ku("ah", w.ah);
      ku("rqpn", w.rqpn);
      ku("rqkey", w.rqkey);
    }
    if (w.has_inv) ku("inv", w.inv);
    if (pay) {
      if (g->payload == Payload::kHash) {
        ku("hash", w.hash);
      } else {
        text("data");
        bytes(q->data.data() + w.data_first, w.data_len);
      }
    }
  }
  ku("ext", 1);
  q->wrs.clear();
  return ret;
}

void w_wr_abort(ibv_qp_ex* qp) {
  QPX_ORIG(qp, wr_abort);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp)) q->wrs.clear();
  }
  orig_fn(qp);
}

void w_wr_send(ibv_qp_ex* qp) {
  QPX_ORIG(qp, wr_send);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    new_wr(qp, IBV_WR_SEND);
  }
  orig_fn(qp);
}

void w_wr_send_imm(ibv_qp_ex* qp, __be32 imm) {
  QPX_ORIG(qp, wr_send_imm);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (ExtWr* w = new_wr(qp, IBV_WR_SEND_WITH_IMM)) {
      w->has_imm = true;
      w->imm = ntohl(imm);
    }
  }
  orig_fn(qp, imm);
}

void w_wr_send_inv(ibv_qp_ex* qp, uint32_t rkey) {
  QPX_ORIG(qp, wr_send_inv);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (ExtWr* w = new_wr(qp, IBV_WR_SEND_WITH_INV)) {
      w->has_inv = true;
      w->inv = rkey;
    }
  }
  orig_fn(qp, rkey);
}

void w_wr_local_inv(ibv_qp_ex* qp, uint32_t rkey) {
  QPX_ORIG(qp, wr_local_inv);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (ExtWr* w = new_wr(qp, IBV_WR_LOCAL_INV)) {
      w->has_inv = true;
      w->inv = rkey;
    }
  }
  orig_fn(qp, rkey);
}

void remote_wr(ibv_qp_ex* qp, int op, uint32_t rkey, uint64_t raddr) {
  std::lock_guard<std::mutex> lk(g->mu);
  if (ExtWr* w = new_wr(qp, op)) {
    w->has_remote = true;
    w->rkey = rkey;
    w->raddr = raddr;
  }
}

void w_wr_rdma_write(ibv_qp_ex* qp, uint32_t rkey, uint64_t raddr) {
  QPX_ORIG(qp, wr_rdma_write);
  remote_wr(qp, IBV_WR_RDMA_WRITE, rkey, raddr);
  orig_fn(qp, rkey, raddr);
}

void w_wr_rdma_write_imm(ibv_qp_ex* qp, uint32_t rkey, uint64_t raddr, __be32 imm) {
  QPX_ORIG(qp, wr_rdma_write_imm);
  remote_wr(qp, IBV_WR_RDMA_WRITE_WITH_IMM, rkey, raddr);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp); q != nullptr && !q->wrs.empty()) {
      q->wrs.back().has_imm = true;
      q->wrs.back().imm = ntohl(imm);
    }
  }
  orig_fn(qp, rkey, raddr, imm);
}

void w_wr_rdma_read(ibv_qp_ex* qp, uint32_t rkey, uint64_t raddr) {
  QPX_ORIG(qp, wr_rdma_read);
  remote_wr(qp, IBV_WR_RDMA_READ, rkey, raddr);
  orig_fn(qp, rkey, raddr);
}

void w_wr_atomic_cmp_swp(ibv_qp_ex* qp, uint32_t rkey, uint64_t raddr, uint64_t cmp,
                         uint64_t swap) {
  QPX_ORIG(qp, wr_atomic_cmp_swp);
  remote_wr(qp, IBV_WR_ATOMIC_CMP_AND_SWP, rkey, raddr);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp); q != nullptr && !q->wrs.empty()) {
      ExtWr& w = q->wrs.back();
      w.has_atomic = w.has_swap = true;
      w.cmp = cmp;
      w.swap = swap;
    }
  }
  orig_fn(qp, rkey, raddr, cmp, swap);
}

void w_wr_atomic_fetch_add(ibv_qp_ex* qp, uint32_t rkey, uint64_t raddr, uint64_t add) {
  QPX_ORIG(qp, wr_atomic_fetch_add);
  remote_wr(qp, IBV_WR_ATOMIC_FETCH_AND_ADD, rkey, raddr);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp); q != nullptr && !q->wrs.empty()) {
      q->wrs.back().has_atomic = true;
      q->wrs.back().cmp = add;
    }
  }
  orig_fn(qp, rkey, raddr, add);
}

void w_wr_set_ud_addr(ibv_qp_ex* qp, ibv_ah* ah, uint32_t rqpn, uint32_t rqkey) {
  QPX_ORIG(qp, wr_set_ud_addr);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp); q != nullptr && !q->wrs.empty()) {
      ExtWr& w = q->wrs.back();
      w.has_ud = true;
      w.ah = id_of(g->ahs, ah);
      w.rqpn = rqpn;
      w.rqkey = rqkey;
    }
  }
  orig_fn(qp, ah, rqpn, rqkey);
}

void w_wr_set_sge(ibv_qp_ex* qp, uint32_t lkey, uint64_t addr, uint32_t len) {
  QPX_ORIG(qp, wr_set_sge);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    add_data(qp, lkey, addr, len, false);
  }
  orig_fn(qp, lkey, addr, len);
}

void w_wr_set_sge_list(ibv_qp_ex* qp, size_t n, const ibv_sge* list) {
  QPX_ORIG(qp, wr_set_sge_list);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    for (size_t i = 0; i < n; ++i) add_data(qp, list[i].lkey, list[i].addr, list[i].length, false);
  }
  orig_fn(qp, n, list);
}

void w_wr_set_inline_data(ibv_qp_ex* qp, void* addr, size_t len) {
  QPX_ORIG(qp, wr_set_inline_data);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp); q != nullptr && !q->wrs.empty())
      q->wrs.back().flags |= IBV_SEND_INLINE;
    add_data(qp, 0, reinterpret_cast<uint64_t>(addr), static_cast<uint32_t>(len), true);
  }
  orig_fn(qp, addr, len);
}

void w_wr_set_inline_data_list(ibv_qp_ex* qp, size_t n, const ibv_data_buf* list) {
  QPX_ORIG(qp, wr_set_inline_data_list);
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (QpxInfo* q = find_qpx(qp); q != nullptr && !q->wrs.empty())
      q->wrs.back().flags |= IBV_SEND_INLINE;
    for (size_t i = 0; i < n; ++i)
      add_data(qp, 0, reinterpret_cast<uint64_t>(list[i].addr),
               static_cast<uint32_t>(list[i].length), true);
  }
  orig_fn(qp, n, list);
}

// Replaces the qp_ex's functions by ours (those the provider set), keeping the originals.
void wrap_qpx(ibv_qp_ex* qx) {
  {
    std::lock_guard<std::mutex> lk(g->mu);
    QpxInfo& q = g->qpxs[qx];
    q.qp = &qx->qp_base;
    q.orig = *qx;
  }
#define WRAP(fn) \
  if (qx->fn != nullptr) qx->fn = w_##fn
  WRAP(wr_start);
  WRAP(wr_complete);
  WRAP(wr_abort);
  WRAP(wr_send);
  WRAP(wr_send_imm);
  WRAP(wr_send_inv);
  WRAP(wr_local_inv);
  WRAP(wr_rdma_write);
  WRAP(wr_rdma_write_imm);
  WRAP(wr_rdma_read);
  WRAP(wr_atomic_cmp_swp);
  WRAP(wr_atomic_fetch_add);
  WRAP(wr_set_ud_addr);
  WRAP(wr_set_sge);
  WRAP(wr_set_sge_list);
  WRAP(wr_set_inline_data);
  WRAP(wr_set_inline_data_list);
#undef WRAP
}

// ---- Creations through verbs_context ------------------------------------------------------------

void record_create_cq(const char* call, ibv_context* ctx, ibv_cq* cq, int cqe, ibv_comp_channel* ch,
                      int vec, bool ext, uint64_t wc_flags, uint64_t t, uint64_t t1, int err);

ibv_cq_ex* w_create_cq_ex(ibv_context* ctx, ibv_cq_init_attr_ex* attr) {
  Ctx* c = find_ctx(ctx);
  if (c == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  uint64_t t = now_ns();
  ibv_cq_ex* cq = c->create_cq_ex(ctx, attr);
  int err = cq == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  if (cq != nullptr) {
    std::lock_guard<std::mutex> lk(g->mu);
    CqInfo& info = g->cqs[cq];
    info.id = g->next_cq++;
    info.ext = true;
    info.wc_flags = attr->wc_flags;
    info.start_poll = cq->start_poll;
    info.next_poll = cq->next_poll;
    info.end_poll = cq->end_poll;
    info.wcs.reserve(64);
  }
  record_create_cq("create_cq", ctx, cq != nullptr ? ibv_cq_ex_to_cq(cq) : nullptr,
                   static_cast<int>(attr->cqe), attr->channel, static_cast<int>(attr->comp_vector),
                   true, attr->wc_flags, t, t1, err);
  if (cq != nullptr) {
    cq->start_poll = w_start_poll;
    cq->next_poll = w_next_poll;
    cq->end_poll = w_end_poll;
  }
  errno = err != 0 ? err : errno;
  return cq;
}

void record_create_qp(ibv_pd* pd, ibv_qp* qp, const ibv_qp_init_attr& a, bool ext,
                      uint64_t send_ops, bool has_send_ops, uint64_t t, uint64_t t1, int err);

ibv_qp* w_create_qp_ex(ibv_context* ctx, ibv_qp_init_attr_ex* attr) {
  Ctx* c = find_ctx(ctx);
  if (c == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  ibv_qp_init_attr asked{};
  asked.qp_context = attr->qp_context;
  asked.send_cq = attr->send_cq;
  asked.recv_cq = attr->recv_cq;
  asked.srq = attr->srq;
  asked.cap = attr->cap;
  asked.qp_type = attr->qp_type;
  asked.sq_sig_all = attr->sq_sig_all;
  bool has_ops = (attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) != 0;
  uint64_t ops = has_ops ? attr->send_ops_flags : 0;
  ibv_pd* pd = (attr->comp_mask & IBV_QP_INIT_ATTR_PD) ? attr->pd : nullptr;
  uint64_t t = now_ns();
  ibv_qp* qp = c->create_qp_ex(ctx, attr);
  int err = qp == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  record_create_qp(pd, qp, asked, true, ops, has_ops, t, t1, err);
  if (qp != nullptr && has_ops) {
    static const auto to_qpx =
        reinterpret_cast<ibv_qp_ex* (*)(ibv_qp*)>(find_real("ibv_qp_to_qp_ex", "IBVERBS_1.6"));
    ibv_qp_ex* qx = to_qpx != nullptr ? to_qpx(qp) : nullptr;
    if (qx != nullptr) wrap_qpx(qx);
  }
  errno = err != 0 ? err : errno;
  return qp;
}

void record_create_cq(const char* call, ibv_context* ctx, ibv_cq* cq, int cqe, ibv_comp_channel* ch,
                      int vec, bool ext, uint64_t wc_flags, uint64_t t, uint64_t t1, int err) {
  std::lock_guard<std::mutex> lk(g->mu);
  if (!start_output()) return;
  uint32_t id = cq != nullptr ? cq_id(cq) : 0;
  rec(call, 3 + (cq != nullptr ? 2 : 0) + (ch != nullptr ? 1 : 0) + (ext ? 2 : 0), t, t1, err);
  ku("dev", dev_of(ctx));
  if (cq != nullptr) ku("cq", id);
  ku("cqe", static_cast<uint64_t>(cqe > 0 ? cqe : 0));
  if (cq != nullptr) ku("cqe_out", static_cast<uint64_t>(cq->cqe > 0 ? cq->cqe : 0));
  if (ch != nullptr) ku("ch", id_of(g->chs, ch));
  ku("vec", static_cast<uint64_t>(vec > 0 ? vec : 0));
  if (ext) {
    ku("ext", 1);
    ku("wc_flags", wc_flags);
  }
}

void record_create_qp(ibv_pd* pd, ibv_qp* qp, const ibv_qp_init_attr& a, bool ext,
                      uint64_t send_ops, bool has_send_ops, uint64_t t, uint64_t t1, int err) {
  std::lock_guard<std::mutex> lk(g->mu);
  if (qp != nullptr) g->qp_types[qp->qp_num] = qp->qp_type;
  if (!start_output()) return;
  size_t n = 10 + (qp != nullptr ? 1 : 0) + (a.srq != nullptr ? 1 : 0) + (ext ? 1 : 0) +
             (has_send_ops ? 1 : 0);
  rec("create_qp", n, t, t1, err);
  ku("pd", id_of(g->pds, pd));
  if (qp != nullptr) ku("qp", qp->qp_num);
  ks("type", qp_type_name(a.qp_type));
  ku("scq", cq_id(a.send_cq));
  ku("rcq", cq_id(a.recv_cq));
  if (a.srq != nullptr) ku("srq", id_of(g->srqs, a.srq));
  ku("max_send_wr", a.cap.max_send_wr);
  ku("max_recv_wr", a.cap.max_recv_wr);
  ku("max_send_sge", a.cap.max_send_sge);
  ku("max_recv_sge", a.cap.max_recv_sge);
  ku("max_inline", a.cap.max_inline_data);
  ku("sig_all", a.sq_sig_all ? 1 : 0);
  if (ext) ku("ext", 1);
  if (has_send_ops) ku("send_ops", send_ops);
}

// Replaces the fast-path entries of a context we opened (and verbs_context's creations of extended
// CQs and QPs) by our wrappers, keeping the provider's.
// Called with the lock held (slots are taken under it; the wrappers read them without).
void wrap_context(ibv_context* ctx, uint32_t id) {
  Ctx* slot = nullptr;
  for (auto& x : g_ctx)
    if (x.ctx.load(std::memory_order_relaxed) == nullptr) {
      slot = &x;
      break;
    }
  if (slot != nullptr) {
    slot->id = id;
    slot->post_send = ctx->ops.post_send;
    slot->post_recv = ctx->ops.post_recv;
    slot->post_srq_recv = ctx->ops.post_srq_recv;
    slot->poll_cq = ctx->ops.poll_cq;
    slot->req_notify_cq = ctx->ops.req_notify_cq;
    verbs_context* v = verbs_get_ctx(ctx);
    slot->create_cq_ex =
        v != nullptr && verbs_get_ctx_op(ctx, create_cq_ex) != nullptr ? v->create_cq_ex : nullptr;
    slot->create_qp_ex =
        v != nullptr && verbs_get_ctx_op(ctx, create_qp_ex) != nullptr ? v->create_qp_ex : nullptr;
    slot->ctx.store(ctx, std::memory_order_release);
  }
  if (slot == nullptr) {
    say("more than " + std::to_string(kMaxContexts) +
        " devices open: the fast path of this one is not recorded");
    return;
  }
  if (slot->post_send != nullptr) ctx->ops.post_send = w_post_send;
  if (slot->post_recv != nullptr) ctx->ops.post_recv = w_post_recv;
  if (slot->post_srq_recv != nullptr) ctx->ops.post_srq_recv = w_post_srq_recv;
  if (slot->poll_cq != nullptr) ctx->ops.poll_cq = w_poll_cq;
  if (slot->req_notify_cq != nullptr) ctx->ops.req_notify_cq = w_req_notify_cq;
  verbs_context* v = verbs_get_ctx(ctx);
  if (slot->create_cq_ex != nullptr) v->create_cq_ex = w_create_cq_ex;
  if (slot->create_qp_ex != nullptr) v->create_qp_ex = w_create_qp_ex;
}

// Records a call whose fields `body` writes (`extra` pairs), under the lock.
template <typename F>
void record(const char* call, size_t extra, uint64_t t, uint64_t t1, int64_t ret, F body) {
  std::lock_guard<std::mutex> lk(g->mu);
  if (!start_output()) return;
  rec(call, extra, t, t1, ret);
  body();
}

int status_of(int r) { return r == 0 ? 0 : (r > 0 ? r : errno); }

}  // namespace

// ---- The exported verbs -----------------------------------------------------------------------

extern "C" {

__attribute__((visibility("default"))) ibv_context* ibv_open_device(ibv_device* device) {
  REAL(ibv_open_device, "IBVERBS_1.1");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(device);
  uint64_t t = now_ns();
  ibv_context* ctx = real_fn(device);
  int err = ctx == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  uint32_t id = 0;
  if (ctx != nullptr) {
    std::lock_guard<std::mutex> lk(g->mu);
    id = g->next_dev++;
    g->devs[ctx] = id;
    wrap_context(ctx, id);
  }
  record("open_device", ctx != nullptr ? 2 : 1, t, t1, err, [&] {
    if (ctx != nullptr) ku("dev", id);
    ks("name", device != nullptr ? device->name : "");
  });
  errno = err != 0 ? err : errno;
  return ctx;
}

__attribute__((visibility("default"))) int ibv_close_device(ibv_context* ctx) {
  REAL(ibv_close_device, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(ctx);
  uint32_t id;
  {
    std::lock_guard<std::mutex> lk(g->mu);
    id = dev_of(ctx);
  }
  uint64_t t = now_ns();
  int r = real_fn(ctx);
  uint64_t t1 = now_ns();
  if (r == 0) {
    std::lock_guard<std::mutex> lk(g->mu);
    g->devs.erase(ctx);
    if (Ctx* c = find_ctx(ctx)) c->ctx.store(nullptr, std::memory_order_release);
  }
  record("close_device", 1, t, t1, status_of(r), [&] { ku("dev", id); });
  return r;
}

__attribute__((visibility("default"))) ibv_comp_channel* ibv_create_comp_channel(ibv_context* ctx) {
  REAL(ibv_create_comp_channel, "IBVERBS_1.0");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(ctx);
  uint64_t t = now_ns();
  ibv_comp_channel* ch = real_fn(ctx);
  int err = ch == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  {
    std::lock_guard<std::mutex> lk(g->mu);
    uint32_t id = 0;
    if (ch != nullptr) g->chs[ch] = id = g->next_ch++;
    if (start_output()) {
      rec("create_comp_channel", ch != nullptr ? 2 : 1, t, t1, err);
      ku("dev", dev_of(ctx));
      if (ch != nullptr) ku("ch", id);
    }
  }
  errno = err != 0 ? err : errno;
  return ch;
}

__attribute__((visibility("default"))) int ibv_destroy_comp_channel(ibv_comp_channel* ch) {
  REAL(ibv_destroy_comp_channel, "IBVERBS_1.0");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(ch);
  uint64_t t = now_ns();
  int r = real_fn(ch);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  uint32_t id = id_of(g->chs, ch);
  if (r == 0) g->chs.erase(ch);
  if (start_output()) {
    rec("destroy_comp_channel", 1, t, t1, status_of(r));
    ku("ch", id);
  }
  return r;
}

__attribute__((visibility("default"))) ibv_pd* ibv_alloc_pd(ibv_context* ctx) {
  REAL(ibv_alloc_pd, "IBVERBS_1.1");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(ctx);
  uint64_t t = now_ns();
  ibv_pd* pd = real_fn(ctx);
  int err = pd == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  {
    std::lock_guard<std::mutex> lk(g->mu);
    uint32_t id = 0;
    if (pd != nullptr) g->pds[pd] = id = g->next_pd++;
    if (start_output()) {
      rec("alloc_pd", pd != nullptr ? 2 : 1, t, t1, err);
      ku("dev", dev_of(ctx));
      if (pd != nullptr) ku("pd", id);
    }
  }
  errno = err != 0 ? err : errno;
  return pd;
}

__attribute__((visibility("default"))) int ibv_dealloc_pd(ibv_pd* pd) {
  REAL(ibv_dealloc_pd, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(pd);
  uint64_t t = now_ns();
  int r = real_fn(pd);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  uint32_t id = id_of(g->pds, pd);
  if (r == 0) g->pds.erase(pd);
  if (start_output()) {
    rec("dealloc_pd", 1, t, t1, status_of(r));
    ku("pd", id);
  }
  return r;
}

}  // extern "C"

namespace {

// The three registrations share this: call `reg`, then record reg_mr.
template <typename F>
ibv_mr* reg_mr_common(ibv_pd* pd, void* addr, size_t len, uint64_t iova, int access, F reg) {
  uint64_t t = now_ns();
  ibv_mr* mr = reg();
  int err = mr == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  {
    std::lock_guard<std::mutex> lk(g->mu);
    uint32_t id = 0;
    if (mr != nullptr) {
      id = g->next_mr++;
      uint32_t dev = dev_of(pd->context);
      MrInfo& info = g->mrs[mr];
      info = MrInfo{id, dev, mr->lkey, reinterpret_cast<uint64_t>(addr), len};
      g->by_lkey[static_cast<uint64_t>(dev) << 32 | mr->lkey] = &info;
    }
    if (start_output()) {
      bool has_iova = iova != reinterpret_cast<uint64_t>(addr);
      RegionPayload p;
      if (mr != nullptr) p = region_payload(reinterpret_cast<uint64_t>(addr), len);
      rec("reg_mr", 4 + (mr != nullptr ? 3 : 0) + (has_iova ? 1 : 0) + (p.ok ? 1 : 0), t, t1, err);
      ku("pd", id_of(g->pds, pd));
      if (mr != nullptr) ku("mr", id);
      ku("addr", reinterpret_cast<uint64_t>(addr));
      ku("len", len);
      ku("access", static_cast<unsigned>(access));
      if (has_iova) ku("iova", iova);
      if (mr != nullptr) {
        ku("lkey", mr->lkey);
        ku("rkey", mr->rkey);
      }
      put_region_payload(p);
    }
  }
  errno = err != 0 ? err : errno;
  return mr;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) ibv_mr* ibv_reg_mr(ibv_pd* pd, void* addr, size_t len,
                                                          int access) {
  REAL(ibv_reg_mr, "IBVERBS_1.1");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(pd, addr, len, access);
  return reg_mr_common(pd, addr, len, reinterpret_cast<uint64_t>(addr), access,
                       [&] { return real_fn(pd, addr, len, access); });
}

__attribute__((visibility("default"))) ibv_mr* ibv_reg_mr_iova(ibv_pd* pd, void* addr, size_t len,
                                                               uint64_t iova, int access) {
  REAL(ibv_reg_mr_iova, "IBVERBS_1.7");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(pd, addr, len, iova, access);
  return reg_mr_common(pd, addr, len, iova, access,
                       [&] { return real_fn(pd, addr, len, iova, access); });
}

__attribute__((visibility("default"))) ibv_mr* ibv_reg_mr_iova2(ibv_pd* pd, void* addr, size_t len,
                                                                uint64_t iova,
                                                                unsigned int access) {
  REAL(ibv_reg_mr_iova2, "IBVERBS_1.8");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(pd, addr, len, iova, access);
  return reg_mr_common(pd, addr, len, iova, static_cast<int>(access),
                       [&] { return real_fn(pd, addr, len, iova, access); });
}

__attribute__((visibility("default"))) int ibv_dereg_mr(ibv_mr* mr) {
  REAL(ibv_dereg_mr, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(mr);
  // The region's bytes as the program leaves them, read while it is still registered.
  RegionPayload p;
  {
    std::lock_guard<std::mutex> lk(g->mu);
    auto it = g->mrs.find(mr);
    if (it != g->mrs.end() && !g->failed && !g->finished)
      p = region_payload(it->second.addr, it->second.len);
  }
  uint64_t t = now_ns();
  int r = real_fn(mr);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  auto it = g->mrs.find(mr);
  uint32_t id = it != g->mrs.end() ? it->second.id : 0;
  if (r == 0 && it != g->mrs.end()) {
    auto k = g->by_lkey.find(static_cast<uint64_t>(it->second.dev) << 32 | it->second.lkey);
    if (k != g->by_lkey.end() && k->second == &it->second) g->by_lkey.erase(k);
    g->mrs.erase(it);
  }
  if (start_output()) {
    rec("dereg_mr", 1 + (p.ok ? 1 : 0), t, t1, status_of(r));
    ku("mr", id);
    put_region_payload(p);
  }
  return r;
}

__attribute__((visibility("default"))) ibv_cq* ibv_create_cq(ibv_context* ctx, int cqe,
                                                             void* cq_context, ibv_comp_channel* ch,
                                                             int vec) {
  REAL(ibv_create_cq, "IBVERBS_1.1");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(ctx, cqe, cq_context, ch, vec);
  uint64_t t = now_ns();
  ibv_cq* cq = real_fn(ctx, cqe, cq_context, ch, vec);
  int err = cq == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  if (cq != nullptr) {
    std::lock_guard<std::mutex> lk(g->mu);
    g->cqs[cq].id = g->next_cq++;
  }
  record_create_cq("create_cq", ctx, cq, cqe, ch, vec, false, 0, t, t1, err);
  errno = err != 0 ? err : errno;
  return cq;
}

__attribute__((visibility("default"))) int ibv_destroy_cq(ibv_cq* cq) {
  REAL(ibv_destroy_cq, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(cq);
  uint64_t t = now_ns();
  int r = real_fn(cq);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  uint32_t id = cq_id(cq);
  if (r == 0) {
    auto it = g->cqs.find(cq);
    if (it != g->cqs.end()) {
      g->leftover_empty += it->second.empty;
      g->cqs.erase(it);
    }
  }
  if (start_output()) {
    rec("destroy_cq", 1, t, t1, status_of(r));
    ku("cq", id);
  }
  return r;
}

__attribute__((visibility("default"))) ibv_qp* ibv_create_qp(ibv_pd* pd, ibv_qp_init_attr* attr) {
  REAL(ibv_create_qp, "IBVERBS_1.1");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(pd, attr);
  ibv_qp_init_attr asked = *attr;  // the library writes the granted caps back into *attr
  uint64_t t = now_ns();
  ibv_qp* qp = real_fn(pd, attr);
  int err = qp == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  record_create_qp(pd, qp, asked, false, 0, false, t, t1, err);
  errno = err != 0 ? err : errno;
  return qp;
}

__attribute__((visibility("default"))) int ibv_modify_qp(ibv_qp* qp, ibv_qp_attr* a, int mask) {
  REAL(ibv_modify_qp, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(qp, a, mask);
  uint64_t t = now_ns();
  int r = real_fn(qp, a, mask);
  uint64_t t1 = now_ns();
  // The attributes the trace has, by mask bit (others, e.g. ALT_PATH or CAP, only in `mask`).
  constexpr int kFields = IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_ACCESS_FLAGS |
                          IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY | IBV_QP_AV |
                          IBV_QP_PATH_MTU | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                          IBV_QP_RQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER |
                          IBV_QP_SQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_DEST_QPN;
  record("modify_qp", 2 + static_cast<size_t>(__builtin_popcount(mask & kFields)), t, t1,
         status_of(r), [&] {
           ku("qp", qp->qp_num);
           ku("mask", static_cast<unsigned>(mask));
           if (mask & IBV_QP_STATE) ks("state", qp_state_name(a->qp_state));
           if (mask & IBV_QP_CUR_STATE) ks("cur_state", qp_state_name(a->cur_qp_state));
           if (mask & IBV_QP_ACCESS_FLAGS) ku("access", a->qp_access_flags);
           if (mask & IBV_QP_PKEY_INDEX) ku("pkey_index", a->pkey_index);
           if (mask & IBV_QP_PORT) ku("port", a->port_num);
           if (mask & IBV_QP_QKEY) ku("qkey", a->qkey);
           if (mask & IBV_QP_AV) {
             text("av");
             put_av(a->ah_attr);
           }
           if (mask & IBV_QP_PATH_MTU) ku("mtu", 128u << a->path_mtu);
           if (mask & IBV_QP_TIMEOUT) ku("timeout", a->timeout);
           if (mask & IBV_QP_RETRY_CNT) ku("retry_cnt", a->retry_cnt);
           if (mask & IBV_QP_RNR_RETRY) ku("rnr_retry", a->rnr_retry);
           if (mask & IBV_QP_RQ_PSN) ku("rq_psn", a->rq_psn);
           if (mask & IBV_QP_SQ_PSN) ku("sq_psn", a->sq_psn);
           if (mask & IBV_QP_MAX_QP_RD_ATOMIC) ku("max_rd_atomic", a->max_rd_atomic);
           if (mask & IBV_QP_MAX_DEST_RD_ATOMIC) ku("max_dest_rd_atomic", a->max_dest_rd_atomic);
           if (mask & IBV_QP_MIN_RNR_TIMER) ku("min_rnr_timer", a->min_rnr_timer);
           if (mask & IBV_QP_DEST_QPN) ku("dest_qp", a->dest_qp_num);
         });
  return r;
}

__attribute__((visibility("default"))) int ibv_destroy_qp(ibv_qp* qp) {
  REAL(ibv_destroy_qp, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(qp);
  uint32_t qpn = qp->qp_num;
  uint64_t t = now_ns();
  int r = real_fn(qp);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  if (r == 0) {
    for (auto it = g->qpxs.begin(); it != g->qpxs.end(); ++it)
      if (it->second.qp == qp) {
        g->qpxs.erase(it);
        break;
      }
    g->qp_types.erase(qpn);
  }
  if (start_output()) {
    rec("destroy_qp", 1, t, t1, status_of(r));
    ku("qp", qpn);
  }
  return r;
}

__attribute__((visibility("default"))) ibv_srq* ibv_create_srq(ibv_pd* pd,
                                                               ibv_srq_init_attr* attr) {
  REAL(ibv_create_srq, "IBVERBS_1.1");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(pd, attr);
  ibv_srq_attr asked = attr->attr;
  uint64_t t = now_ns();
  ibv_srq* srq = real_fn(pd, attr);
  int err = srq == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  {
    std::lock_guard<std::mutex> lk(g->mu);
    uint32_t id = 0;
    if (srq != nullptr) g->srqs[srq] = id = g->next_srq++;
    if (start_output()) {
      rec("create_srq", 4 + (srq != nullptr ? 1 : 0), t, t1, err);
      ku("pd", id_of(g->pds, pd));
      if (srq != nullptr) ku("srq", id);
      ku("max_wr", asked.max_wr);
      ku("max_sge", asked.max_sge);
      ku("limit", asked.srq_limit);
    }
  }
  errno = err != 0 ? err : errno;
  return srq;
}

__attribute__((visibility("default"))) int ibv_modify_srq(ibv_srq* srq, ibv_srq_attr* a, int mask) {
  REAL(ibv_modify_srq, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(srq, a, mask);
  ibv_srq_attr asked = *a;
  uint64_t t = now_ns();
  int r = real_fn(srq, a, mask);
  uint64_t t1 = now_ns();
  bool wr = (mask & IBV_SRQ_MAX_WR) != 0, lim = (mask & IBV_SRQ_LIMIT) != 0;
  std::lock_guard<std::mutex> lk(g->mu);
  if (start_output()) {
    rec("modify_srq", 2 + (wr ? 1 : 0) + (lim ? 1 : 0), t, t1, status_of(r));
    ku("srq", id_of(g->srqs, srq));
    ku("mask", static_cast<unsigned>(mask));
    if (wr) ku("max_wr", asked.max_wr);
    if (lim) ku("limit", asked.srq_limit);
  }
  return r;
}

__attribute__((visibility("default"))) int ibv_destroy_srq(ibv_srq* srq) {
  REAL(ibv_destroy_srq, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(srq);
  uint64_t t = now_ns();
  int r = real_fn(srq);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  uint32_t id = id_of(g->srqs, srq);
  if (r == 0) g->srqs.erase(srq);
  if (start_output()) {
    rec("destroy_srq", 1, t, t1, status_of(r));
    ku("srq", id);
  }
  return r;
}

__attribute__((visibility("default"))) ibv_ah* ibv_create_ah(ibv_pd* pd, ibv_ah_attr* attr) {
  REAL(ibv_create_ah, "IBVERBS_1.1");
  if (real_fn == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  NESTED_FORWARD(pd, attr);
  uint64_t t = now_ns();
  ibv_ah* ah = real_fn(pd, attr);
  int err = ah == nullptr ? errno : 0;
  uint64_t t1 = now_ns();
  {
    std::lock_guard<std::mutex> lk(g->mu);
    uint32_t id = 0;
    if (ah != nullptr) g->ahs[ah] = id = g->next_ah++;
    if (start_output()) {
      rec("create_ah", 2 + (ah != nullptr ? 1 : 0), t, t1, err);
      ku("pd", id_of(g->pds, pd));
      if (ah != nullptr) ku("ah", id);
      text("av");
      put_av(*attr);
    }
  }
  errno = err != 0 ? err : errno;
  return ah;
}

__attribute__((visibility("default"))) int ibv_destroy_ah(ibv_ah* ah) {
  REAL(ibv_destroy_ah, "IBVERBS_1.1");
  if (real_fn == nullptr) return ENOSYS;
  NESTED_FORWARD(ah);
  uint64_t t = now_ns();
  int r = real_fn(ah);
  uint64_t t1 = now_ns();
  std::lock_guard<std::mutex> lk(g->mu);
  uint32_t id = id_of(g->ahs, ah);
  if (r == 0) g->ahs.erase(ah);
  if (start_output()) {
    rec("destroy_ah", 1, t, t1, status_of(r));
    ku("ah", id);
  }
  return r;
}

__attribute__((visibility("default"))) int ibv_get_cq_event(ibv_comp_channel* ch, ibv_cq** cq,
                                                            void** cq_context) {
  REAL(ibv_get_cq_event, "IBVERBS_1.1");
  if (real_fn == nullptr) return -1;
  NESTED_FORWARD(ch, cq, cq_context);
  uint64_t t = now_ns();
  int r = real_fn(ch, cq, cq_context);
  int err = r != 0 ? errno : 0;
  uint64_t t1 = now_ns();
  {
    std::lock_guard<std::mutex> lk(g->mu);
    if (start_output()) {
      rec("get_cq_event", 1 + (r == 0 ? 1 : 0), t, t1, err);
      ku("ch", id_of(g->chs, ch));
      if (r == 0) ku("cq", cq_id(*cq));
    }
  }
  errno = err != 0 ? err : errno;
  return r;
}

__attribute__((visibility("default"))) void ibv_ack_cq_events(ibv_cq* cq, unsigned int n) {
  REAL(ibv_ack_cq_events, "IBVERBS_1.1");
  if (real_fn == nullptr) return;
  NESTED_FORWARD(cq, n);
  uint64_t t = now_ns();
  real_fn(cq, n);
  uint64_t t1 = now_ns();
  record("ack_cq_events", 2, t, t1, 0, [&] {
    ku("cq", cq_id(cq));
    ku("n", n);
  });
}

__attribute__((visibility("default"))) int ibv_get_async_event(ibv_context* ctx,
                                                               ibv_async_event* ev) {
  REAL(ibv_get_async_event, "IBVERBS_1.1");
  if (real_fn == nullptr) return -1;
  NESTED_FORWARD(ctx, ev);
  uint64_t t = now_ns();
  int r = real_fn(ctx, ev);
  int err = errno;
  uint64_t t1 = now_ns();
  // Only events are recorded: a failed wait (EAGAIN on a non-blocking fd) is not a call replay
  // needs.
  if (r == 0) {
    int e = ev->event_type;
    bool qp = e == IBV_EVENT_QP_FATAL || e == IBV_EVENT_QP_REQ_ERR ||
              e == IBV_EVENT_QP_ACCESS_ERR || e == IBV_EVENT_COMM_EST ||
              e == IBV_EVENT_SQ_DRAINED || e == IBV_EVENT_PATH_MIG || e == IBV_EVENT_PATH_MIG_ERR ||
              e == IBV_EVENT_QP_LAST_WQE_REACHED;
    bool cq = e == IBV_EVENT_CQ_ERR;
    bool srq = e == IBV_EVENT_SRQ_ERR || e == IBV_EVENT_SRQ_LIMIT_REACHED;
    bool port = e == IBV_EVENT_PORT_ACTIVE || e == IBV_EVENT_PORT_ERR ||
                e == IBV_EVENT_LID_CHANGE || e == IBV_EVENT_PKEY_CHANGE ||
                e == IBV_EVENT_SM_CHANGE || e == IBV_EVENT_CLIENT_REREGISTER ||
                e == IBV_EVENT_GID_CHANGE;
    record("async_event", qp || cq || srq || port ? 2 : 1, t, t1, 0, [&] {
      ks("event", event_name(e));
      if (qp) ku("qp", ev->element.qp->qp_num);
      if (cq) ku("cq", cq_id(ev->element.cq));
      if (srq) ku("srq", id_of(g->srqs, ev->element.srq));
      if (port) ku("x_port", static_cast<uint64_t>(ev->element.port_num));
    });
  }
  errno = err;
  return r;
}

}  // extern "C"
