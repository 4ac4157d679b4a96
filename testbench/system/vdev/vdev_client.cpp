// A real program on the virtual device, written against the project's driver (drv::Driver over
// vdev::ClientDevice), as a driver team would test its provider: two processes, each attached to
// one host's NIC in a running `rnicsim serve`, exchange an RDMA WRITE, a SEND and an RDMA READ
// between buffers in their own memory, and check every byte. Other modes check what the kernel
// half of serve must refuse, and what it cleans up.
//
//   vdev_client pair DIR            host0 and host1 (a forked child): WRITE, SEND, READ, verified
//   vdev_client isolation DIR       two processes on host0: the second may not touch the first's
//                                   QP (commands and doorbells refused), nor ring registers
//   vdev_client abandon DIR         creates objects and exits without destroying them
// Exit status 0 when everything checked holds; 1 with a line on stderr naming what did not.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bridge/driver/driver.h"
#include "bridge/vdev/client.h"

namespace {

using namespace rn;

[[noreturn]] void die(const std::string& who, const std::string& what) {
  std::fprintf(stderr, "vdev_client %s: %s\n", who.c_str(), what.c_str());
  std::fflush(stderr);
  _exit(1);
}

struct Side {
  explicit Side(std::string w) : who(std::move(w)) {}
  std::string who;
  vdev::HostInfo host;
  std::unique_ptr<vdev::ClientDevice> dev;
  std::unique_ptr<drv::Driver> d;
  uint32_t pdn = 0;
  drv::Cq* cq = nullptr;
  drv::Qp* qp = nullptr;
  drv::Mr mr;
  std::vector<uint8_t> buf;

  void check(int e, const char* what) {
    if (e) die(who, std::string(what) + ": " + std::strerror(e) + " (" + d->last_error() + ")");
  }
  void open(const std::string& dir, const std::string& host_name, size_t bytes) {
    std::string err;
    auto hosts = vdev::serve_hosts(dir, &err);
    for (const auto& h : hosts)
      if (h.name == host_name) host = h;
    if (host.name.empty()) die(who, "no host " + host_name + " in " + dir + ": " + err);
    dev = vdev::ClientDevice::attach(host, &err);
    if (!dev) die(who, "attach: " + err);
    d = std::make_unique<drv::Driver>(*dev, 30'000'000'000ull, drv::DriverOptions{}, dev.get());
    check(d->open(), "open");
    check(d->alloc_pd(&pdn), "alloc_pd");
    buf.assign(bytes, 0);
    const uint32_t acc = static_cast<uint32_t>(dev::Access::LOCAL_WRITE) |
                         static_cast<uint32_t>(dev::Access::REMOTE_WRITE) |
                         static_cast<uint32_t>(dev::Access::REMOTE_READ);
    check(d->reg_mr(pdn, reinterpret_cast<uint64_t>(buf.data()), bytes, acc, &mr), "reg_mr");
    check(d->create_cq(64, &cq), "create_cq");
    drv::QpCap cap;
    cap.max_send_wr = cap.max_recv_wr = 16;
    check(d->create_qp(pdn, cq, cq, cap, false, &qp), "create_qp");
  }
  void connect(uint32_t dest_qpn, const vdev::HostInfo& peer) {
    using A = dev::QpAttr;
    auto m = [](std::initializer_list<A> l) {
      uint32_t v = 0;
      for (A x : l) v |= static_cast<uint32_t>(x);
      return v;
    };
    drv::QpAttr a;
    a.qp_state = dev::QpState::INIT;
    a.qp_access_flags = static_cast<uint32_t>(dev::Access::REMOTE_WRITE) |
                        static_cast<uint32_t>(dev::Access::REMOTE_READ) |
                        static_cast<uint32_t>(dev::Access::LOCAL_WRITE);
    check(d->modify_qp(qp, a, m({A::STATE, A::PKEY_INDEX, A::PORT, A::ACCESS_FLAGS})), "INIT");
    a.qp_state = dev::QpState::RTR;
    a.path_mtu = dev::Mtu::MTU_1024;
    a.dest_qp_num = dest_qpn;
    a.rq_psn = 100;
    a.ah.dest_ipv4 = peer.ipv4;
    std::memcpy(a.ah.dest_mac, peer.mac, 6);
    check(d->modify_qp(qp, a,
                       m({A::STATE, A::AV, A::PATH_MTU, A::DEST_QPN, A::RQ_PSN,
                          A::MAX_DEST_RD_ATOMIC, A::MIN_RNR_TIMER})),
          "RTR");
    a.qp_state = dev::QpState::RTS;
    a.sq_psn = 100;
    check(d->modify_qp(qp, a,
                       m({A::STATE, A::SQ_PSN, A::TIMEOUT, A::RETRY_CNT, A::RNR_RETRY,
                          A::MAX_QP_RD_ATOMIC})),
          "RTS");
  }
  // Polls until one completion arrives (busy, as verbs programs do), or 30 s.
  drv::Wc wait_one(const char* what) {
    for (long i = 0; i < 300'000'000L; ++i) {
      drv::Wc wc;
      int n = d->poll_cq(cq, 1, &wc);
      if (n < 0) die(who, std::string(what) + ": poll_cq failed");
      if (n == 1) {
        if (wc.status != dev::WcStatus::SUCCESS)
          die(who, std::string(what) + ": completion status " + dev::to_string(wc.status));
        return wc;
      }
      if (!dev->connected()) die(who, std::string(what) + ": serve went away");
      if (i % 64 == 63) usleep(10);
    }
    die(who, std::string(what) + ": no completion");
  }
  void teardown() {
    check(d->destroy_qp(qp), "destroy_qp");
    check(d->destroy_cq(cq), "destroy_cq");
    check(d->dereg_mr(mr), "dereg_mr");
    check(d->dealloc_pd(pdn), "dealloc_pd");
  }
};

uint8_t pattern(size_t i, uint32_t seed) { return static_cast<uint8_t>((i * 131 + seed) >> 1); }

struct Info {
  uint32_t qpn, rkey;
  uint64_t addr;
};

void write_all(int fd, const void* p, size_t n) {
  if (write(fd, p, n) != static_cast<ssize_t>(n)) die("pipe", "write failed");
}
void read_all(int fd, void* p, size_t n) {
  if (read(fd, p, n) != static_cast<ssize_t>(n)) die("pipe", "the other process went");
}

// host1 (child) is the target: it posts a receive, then checks what arrived. host0 (parent)
// writes, sends and reads.
int pair(const std::string& dir) {
  constexpr size_t kBytes = 512 * 1024, kWrite = 200 * 1024, kSend = 5000, kRead = 70000;
  constexpr size_t kReadFrom = 300000;  // past what host0 writes and sends
  int to_child[2], to_parent[2];
  if (pipe(to_child) || pipe(to_parent)) die("pair", "pipe failed");
  pid_t child = fork();
  if (child == 0) {
    Side s("host1");
    s.open(dir, "host1", kBytes);
    for (size_t i = 0; i < kBytes; ++i) s.buf[i] = pattern(i, 7);  // what host0 will read
    Info mine{s.qp->qpn, s.mr.rkey, reinterpret_cast<uint64_t>(s.buf.data())}, theirs{};
    write_all(to_parent[1], &mine, sizeof mine);
    read_all(to_child[0], &theirs, sizeof theirs);
    vdev::HostInfo peer;
    std::string err;
    for (const auto& h : vdev::serve_hosts(dir, &err))
      if (h.name == "host0") peer = h;
    s.connect(theirs.qpn, peer);
    drv::Sge rs{reinterpret_cast<uint64_t>(s.buf.data()) + kWrite, static_cast<uint32_t>(kSend),
                s.mr.lkey};
    drv::RecvWr rwr;
    rwr.wr_id = 77;
    rwr.sg_list = &rs;
    rwr.num_sge = 1;
    const drv::RecvWr* bad = nullptr;
    s.check(s.d->post_recv(s.qp, &rwr, &bad), "post_recv");
    s.check(s.d->req_notify_cq(s.cq, false), "req_notify_cq");
    write_all(to_parent[1], "r", 1);  // ready
    // Sleeps until the completion event comes (serve routes the NIC's event to this process).
    drv::Cq* ev_cq = nullptr;
    s.check(s.d->get_cq_event(&ev_cq, 30'000'000'000ull), "get_cq_event");
    if (ev_cq != s.cq) die("host1", "the completion event names another CQ");
    drv::Wc wc = s.wait_one("receive");
    if (wc.wr_id != 77 || wc.byte_len != kSend)
      die("host1", "receive completion: wr_id " + std::to_string(wc.wr_id) + ", " +
                       std::to_string(wc.byte_len) + " bytes");
    for (size_t i = 0; i < kWrite; ++i)
      if (s.buf[i] != pattern(i, 1))
        die("host1", "byte " + std::to_string(i) + " of the RDMA WRITE differs");
    for (size_t i = 0; i < kSend; ++i)
      if (s.buf[kWrite + i] != pattern(i, 2))
        die("host1", "byte " + std::to_string(i) + " of the SEND differs");
    write_all(to_parent[1], "v", 1);  // verified; host0 may read now
    char c;
    read_all(to_child[0], &c, 1);  // host0 is done
    s.teardown();
    std::printf("host1: RDMA WRITE of %zu bytes and SEND of %zu bytes arrived intact\n", kWrite,
                kSend);
    std::fflush(stdout);
    _exit(0);
  }
  Side s("host0");
  s.open(dir, "host0", kBytes);
  Info theirs{}, mine{s.qp->qpn, s.mr.rkey, reinterpret_cast<uint64_t>(s.buf.data())};
  read_all(to_parent[0], &theirs, sizeof theirs);
  write_all(to_child[1], &mine, sizeof mine);
  vdev::HostInfo peer;
  std::string err;
  for (const auto& h : vdev::serve_hosts(dir, &err))
    if (h.name == "host1") peer = h;
  s.connect(theirs.qpn, peer);
  char c;
  read_all(to_parent[0], &c, 1);
  for (size_t i = 0; i < kWrite; ++i) s.buf[i] = pattern(i, 1);
  for (size_t i = 0; i < kSend; ++i) s.buf[kWrite + i] = pattern(i, 2);
  drv::Sge ws{reinterpret_cast<uint64_t>(s.buf.data()), static_cast<uint32_t>(kWrite), s.mr.lkey};
  drv::SendWr w;
  w.wr_id = 1;
  w.sg_list = &ws;
  w.num_sge = 1;
  w.opcode = dev::WrOpcode::RDMA_WRITE;
  w.send_flags = drv::kSendSignaled;
  w.remote_addr = theirs.addr;
  w.rkey = theirs.rkey;
  drv::Sge ss{reinterpret_cast<uint64_t>(s.buf.data()) + kWrite, static_cast<uint32_t>(kSend),
              s.mr.lkey};
  drv::SendWr snd;
  snd.wr_id = 2;
  snd.sg_list = &ss;
  snd.num_sge = 1;
  snd.opcode = dev::WrOpcode::SEND;
  snd.send_flags = drv::kSendSignaled;
  w.next = &snd;
  const drv::SendWr* bad = nullptr;
  s.check(s.d->post_send(s.qp, &w, &bad), "post_send WRITE+SEND");
  if (s.wait_one("WRITE").wr_id != 1) die("host0", "the WRITE's completion came second");
  if (s.wait_one("SEND").wr_id != 2) die("host0", "the SEND's completion is not the second");
  read_all(to_parent[0], &c, 1);  // host1 verified
  // READ host1's pattern into the start of our buffer.
  drv::Sge rs{reinterpret_cast<uint64_t>(s.buf.data()), static_cast<uint32_t>(kRead), s.mr.lkey};
  drv::SendWr rd;
  rd.wr_id = 3;
  rd.sg_list = &rs;
  rd.num_sge = 1;
  rd.opcode = dev::WrOpcode::RDMA_READ;
  rd.send_flags = drv::kSendSignaled;
  rd.remote_addr = theirs.addr + kReadFrom;
  rd.rkey = theirs.rkey;
  s.check(s.d->post_send(s.qp, &rd, &bad), "post_send READ");
  drv::Wc wc = s.wait_one("READ");
  if (wc.wr_id != 3) die("host0", "READ completion wr_id");
  for (size_t i = 0; i < kRead; ++i)
    if (s.buf[i] != pattern(i + kReadFrom, 7))
      die("host0", "byte " + std::to_string(i) + " of the RDMA READ differs");
  write_all(to_child[1], "d", 1);
  s.teardown();
  int st = 0;
  waitpid(child, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("host0", "host1's process failed");
  std::printf("host0: RDMA READ of %zu bytes arrived intact\n", kRead);
  return 0;
}

// Process A (child) makes a QP and waits; process B (parent), on the same host, tries to use it.
int isolation(const std::string& dir) {
  int to_parent[2], to_child[2];
  if (pipe(to_parent) || pipe(to_child)) die("isolation", "pipe failed");
  pid_t child = fork();
  if (child == 0) {
    Side a("A");
    a.open(dir, "host0", 4096);
    Info mine{a.qp->qpn, a.mr.rkey, 0};
    write_all(to_parent[1], &mine, sizeof mine);
    char c;
    read_all(to_child[0], &c, 1);
    // A's QP is as it was: still in RESET, and A may still destroy it.
    dev::QueryQpOut q{};
    a.check(a.d->query_qp(a.qp, &q), "query_qp");
    if (q.qp_state != static_cast<uint8_t>(dev::QpState::RESET))
      die("A", "another process changed this process's QP");
    a.teardown();
    std::fflush(stdout);
    _exit(0);
  }
  Info theirs{};
  read_all(to_parent[0], &theirs, sizeof theirs);
  Side b("B");
  b.open(dir, "host0", 4096);
  // B forges a handle to A's QP: the kernel path must refuse every command on it.
  drv::Qp forged = *b.qp;
  forged.qpn = theirs.qpn;
  drv::QpAttr attr;
  attr.qp_state = dev::QpState::INIT;
  int e = b.d->modify_qp(&forged, attr,
                         static_cast<uint32_t>(dev::QpAttr::STATE) |
                             static_cast<uint32_t>(dev::QpAttr::PKEY_INDEX) |
                             static_cast<uint32_t>(dev::QpAttr::PORT) |
                             static_cast<uint32_t>(dev::QpAttr::ACCESS_FLAGS));
  if (e != ENOENT)
    die("B", "MODIFY_QP of another process's QP: got " + std::to_string(e) + ", want ENOENT");
  if (b.d->last_status() != dev::CmdStatus::BAD_HANDLE)
    die("B", "MODIFY_QP: status not BAD_HANDLE");
  // Doorbells and registers: written by hand, they must be dropped (serve counts them).
  b.dev->mmio_write32(dev::kQpDbBase + dev::kQpDbStride * theirs.qpn, 1);
  b.dev->mmio_write32(dev::reg::CMD_DOORBELL, 1);
  b.dev->mmio_write32(dev::reg::EQ_ADDR_LO, 0x1000);
  if (b.dev->mmio_read32(dev::reg::ERR_CODE) != ~0u) die("B", "ERR_CODE was readable");
  if (b.dev->mmio_read32(dev::reg::ID) != dev::kMagic) die("B", "the ID register reads wrong");
  write_all(to_child[1], "g", 1);
  int st = 0;
  waitpid(child, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("B", "process A failed");
  b.teardown();
  std::printf("isolation: another process's QP, doorbell and registers were refused\n");
  return 0;
}

int abandon(const std::string& dir) {
  Side s("abandon");
  s.open(dir, "host1", 8192);
  std::printf("abandon: QP %u, CQ %u, PD %u left to serve\n", s.qp->qpn, s.cq->cqn, s.pdn);
  std::fflush(stdout);
  _exit(0);  // no teardown, no BYE: as a crash would leave them
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: vdev_client pair|isolation|abandon SERVE_DIR\n");
    return 2;
  }
  std::string mode = argv[1], dir = argv[2];
  if (mode == "pair") return pair(dir);
  if (mode == "isolation") return isolation(dir);
  if (mode == "abandon") return abandon(dir);
  std::fprintf(stderr, "vdev_client: unknown mode %s\n", mode.c_str());
  return 2;
}
