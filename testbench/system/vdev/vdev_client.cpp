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
//   vdev_client garbage DIR         malformed messages and random commands, doorbells and register
//                                   writes from an attached process, then a process that dies
//                                   mid-command; serve must carry on (a last process checks)
//   vdev_client sanitize DIR        a driver's mistakes on its own QPs: a bad lkey, a doorbell
//                                   whose index jumps, a WQE with a bad opcode, one with too many
//                                   SGEs, a CQ overrun, use after destroy
//   vdev_client doorbell DIR        two processes on host0: the second rings the first's send
//                                   doorbell and writes a WQE to its WQE doorbell; neither may run
//                                   the first's WQE (docs/security.md)
// Exit status 0 when everything checked holds; 1 with a line on stderr naming what did not.
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
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

// FNV-1a over [p, p + n): the bytes a process checks are unchanged.
uint64_t digest(const void* p, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

// Process A (child) leaves a WQE in its send ring without ringing its doorbell; process B
// (parent), on the same host, rings A's send doorbell and writes a WQE to A's WQE doorbell. serve
// must refuse both (the script checks its counters and log): A's WQE does not run, A's QP stays
// in RTS, its CQ stays empty, and not a byte of its buffer, send ring or CQ ring changes. Then A
// rings its own doorbell and the WQE runs: the refused writes would have run it.
int doorbell(const std::string& dir) {
  int to_parent[2], to_child[2];
  if (pipe(to_parent) || pipe(to_child)) die("doorbell", "pipe failed");
  pid_t child = fork();
  if (child == 0) {
    Side a("A");
    a.open(dir, "host0", 4096);
    a.connect(1, a.host);  // to a QP nobody has: the WQE below fails before anything is sent
    for (size_t i = 0; i < a.buf.size(); ++i) a.buf[i] = pattern(i, 3);
    // A WQE of an opcode no verb has: it completes at once with LOC_QP_OP_ERR if it ever runs.
    dev::SendWqe h{};
    h.opcode = 0x7E;
    h.flags = static_cast<uint8_t>(dev::WqeFlags::SIGNALED);
    h.wr_id = 77;
    std::memcpy(vdev::ClientDevice::local(a.qp->sq), &h, sizeof h);
    auto mine = [&] {
      uint64_t d = digest(a.buf.data(), a.buf.size());
      d = digest(vdev::ClientDevice::local(a.qp->sq), size_t(a.qp->sq_size) << a.qp->sq_shift, d);
      return digest(vdev::ClientDevice::local(a.cq->ring), size_t(a.cq->size) * sizeof(dev::Cqe),
                    d);
    };
    const uint64_t before = mine();
    Info info{a.qp->qpn, 0, 0};
    write_all(to_parent[1], &info, sizeof info);
    char c;
    read_all(to_child[0], &c, 1);  // B has written
    usleep(300000);  // far longer than serve takes to pass a write on and the NIC to run a WQE
    drv::Wc wc{};
    if (a.d->poll_cq(a.cq, 1, &wc) != 0)
      die("A", "a completion: another process ran this QP's WQE");
    dev::QueryQpOut q{};
    a.check(a.d->query_qp(a.qp, &q), "query_qp");
    if (q.qp_state != static_cast<uint8_t>(dev::QpState::RTS))
      die("A", "another process's doorbell moved this QP out of RTS");
    if (mine() != before) die("A", "another process's doorbell changed this process's memory");
    // A's own doorbell runs the WQE.
    a.dev->mmio_write32(
        dev::kQpDbBase + dev::kQpDbStride * a.qp->qpn + dev::reg::QP_DOORBELL_SQ_WORD,
        dev::QpDoorbellBits{1}.pack());
    for (int i = 0; i < 3'000'000 && a.d->poll_cq(a.cq, 1, &wc) == 0; ++i) usleep(10);
    if (wc.wr_id != 77 || wc.status != dev::WcStatus::LOC_QP_OP_ERR)
      die("A", "its own doorbell did not run the WQE (LOC_QP_OP_ERR expected)");
    a.teardown();
    std::fflush(stdout);
    _exit(0);
  }
  Info theirs{};
  read_all(to_parent[0], &theirs, sizeof theirs);
  Side b("B");
  b.open(dir, "host0", 4096);
  b.dev->mmio_write32(
      dev::kQpDbBase + dev::kQpDbStride * theirs.qpn + dev::reg::QP_DOORBELL_SQ_WORD,
      dev::QpDoorbellBits{1}.pack());
  dev::SendWqe w{};
  w.opcode = 0x7E;
  w.flags = static_cast<uint8_t>(dev::WqeFlags::SIGNALED);
  w.wr_id = 66;
  w.wqe_index = 0;
  b.dev->mmio_write(dev::kWqeDbBase + dev::kWqeDbStride * theirs.qpn, &w, sizeof w);
  write_all(to_child[1], "g", 1);
  int st = 0;
  waitpid(child, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("B", "process A failed");
  b.teardown();
  std::printf("doorbell: another process's send doorbell and WQE doorbell were refused\n");
  return 0;
}

// Each mistake is refused by the NIC or the kernel half, and serve's sanitizer names it (the
// script checks serve's log and stats); here only the completions the driver sees are checked.
int sanitize(const std::string& dir) {
  Side s("sanitize");
  s.open(dir, "host0", 8192);
  vdev::HostInfo self = s.host;
  auto fresh_qp = [&]() {
    drv::QpCap cap;
    cap.max_send_wr = cap.max_recv_wr = 16;
    s.check(s.d->create_qp(s.pdn, s.cq, s.cq, cap, false, &s.qp), "create_qp");
    s.connect(1, self);  // to a QP nobody has: nothing here needs an answer
  };
  auto expect_error = [&](const char* what, dev::WcStatus want) {
    for (int i = 0; i < 3'000'000; ++i) {
      drv::Wc wc;
      if (s.d->poll_cq(s.cq, 1, &wc) == 1) {
        if (wc.status != want)
          die("sanitize", std::string(what) + ": completion " + dev::to_string(wc.status) +
                              ", want " + dev::to_string(want));
        return;
      }
      usleep(10);
    }
    die("sanitize", std::string(what) + ": no completion");
  };
  // 1. An SGE whose lkey is not a registered region's.
  s.d->destroy_qp(s.qp);
  fresh_qp();
  drv::Sge bad{reinterpret_cast<uint64_t>(s.buf.data()), 64, s.mr.lkey ^ 0x100};
  drv::SendWr w;
  w.sg_list = &bad;
  w.num_sge = 1;
  w.opcode = dev::WrOpcode::SEND;
  w.send_flags = drv::kSendSignaled;
  const drv::SendWr* badwr = nullptr;
  s.check(s.d->post_send(s.qp, &w, &badwr), "post_send");
  expect_error("bad lkey", dev::WcStatus::LOC_PROT_ERR);
  // 2. A send doorbell whose producer index jumps past the ring.
  s.check(s.d->destroy_qp(s.qp), "destroy_qp");
  fresh_qp();
  const uint64_t db = dev::kQpDbBase + dev::kQpDbStride * s.qp->qpn;
  s.dev->mmio_write32(db + dev::reg::QP_DOORBELL_SQ_WORD, dev::QpDoorbellBits{5000}.pack());
  // 3. A WQE with an opcode no verb has, written into the ring by hand.
  dev::SendWqe h{};
  h.opcode = 0x7E;
  h.flags = static_cast<uint8_t>(dev::WqeFlags::SIGNALED);
  std::memcpy(vdev::ClientDevice::local(s.qp->sq), &h, sizeof h);
  s.dev->mmio_write32(db + dev::reg::QP_DOORBELL_SQ_WORD, dev::QpDoorbellBits{1}.pack());
  expect_error("bad opcode", dev::WcStatus::LOC_QP_OP_ERR);
  // 4. A WQE with more SGEs than the QP's stride holds, written by hand.
  s.check(s.d->destroy_qp(s.qp), "destroy_qp");
  fresh_qp();
  h.opcode = static_cast<uint8_t>(dev::WrOpcode::SEND);
  h.num_sge = 200;
  std::memcpy(vdev::ClientDevice::local(s.qp->sq), &h, sizeof h);
  s.dev->mmio_write32(dev::kQpDbBase + dev::kQpDbStride * s.qp->qpn + dev::reg::QP_DOORBELL_SQ_WORD,
                      dev::QpDoorbellBits{1}.pack());
  expect_error("200 SGEs", dev::WcStatus::LOC_QP_OP_ERR);
  // 5. A CQ of 2 entries never polled while 8 UD datagrams complete on it: it overruns.
  {
    drv::Cq* small = nullptr;
    s.check(s.d->create_cq(2, &small), "create_cq");
    drv::QpCap cap;
    cap.qp_type = dev::QpType::UD;
    cap.max_send_wr = 16;
    drv::Qp* ud = nullptr;
    s.check(s.d->create_qp(s.pdn, small, small, cap, true, &ud), "create_qp UD");
    using A = dev::QpAttr;
    drv::QpAttr a;
    a.qp_state = dev::QpState::INIT;
    a.qkey = 0x11111111;
    s.check(s.d->modify_qp(ud, a,
                           static_cast<uint32_t>(A::STATE) | static_cast<uint32_t>(A::PKEY_INDEX) |
                               static_cast<uint32_t>(A::PORT) | static_cast<uint32_t>(A::QKEY)),
            "UD INIT");
    a.qp_state = dev::QpState::RTR;
    s.check(s.d->modify_qp(ud, a, static_cast<uint32_t>(A::STATE)), "UD RTR");
    a.qp_state = dev::QpState::RTS;
    s.check(
        s.d->modify_qp(ud, a, static_cast<uint32_t>(A::STATE) | static_cast<uint32_t>(A::SQ_PSN)),
        "UD RTS");
    drv::AddressVector av;
    av.dest_ipv4 = self.ipv4;
    std::memcpy(av.dest_mac, self.mac, 6);
    drv::Ah* ah = nullptr;
    s.check(s.d->create_ah(s.pdn, av, &ah), "create_ah");
    drv::Sge sg{reinterpret_cast<uint64_t>(s.buf.data()), 64, s.mr.lkey};
    for (int i = 0; i < 8; ++i) {
      drv::SendWr u;
      u.sg_list = &sg;
      u.num_sge = 1;
      u.opcode = dev::WrOpcode::SEND;
      u.ah = ah;
      u.remote_qpn = 1;
      u.remote_qkey = 0x11111111;
      s.check(s.d->post_send(ud, &u, &badwr), "post_send UD");
    }
    usleep(200000);  // they complete in simulated microseconds
    s.check(s.d->destroy_qp(ud), "destroy_qp UD");
    s.check(s.d->destroy_ah(ah), "destroy_ah");
    s.check(s.d->destroy_cq(small), "destroy_cq");
  }
  // 6. A doorbell for the QP after it is destroyed.
  const uint32_t dead = s.qp->qpn;
  s.check(s.d->destroy_qp(s.qp), "destroy_qp");
  s.dev->mmio_write32(dev::kQpDbBase + dev::kQpDbStride * dead, dev::QpDoorbellBits{2}.pack());
  s.qp = nullptr;
  s.check(s.d->destroy_cq(s.cq), "destroy_cq");
  s.check(s.d->dereg_mr(s.mr), "dereg_mr");
  s.check(s.d->dealloc_pd(s.pdn), "dealloc_pd");
  std::printf(
      "sanitize: a bad lkey, a jumping index, a bad opcode, 200 SGEs, a CQ overrun and a dead "
      "QP's doorbell\n");
  return 0;
}

// A raw connection to a host's socket, as a misbehaving client would open one.
int raw_connect(const vdev::HostInfo& h) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", h.socket.c_str());
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    die("garbage", "cannot connect to " + h.socket);
  return fd;
}

int garbage(const std::string& dir) {
  std::mt19937_64 rng(12345);
  std::string err;
  auto hosts = vdev::serve_hosts(dir, &err);
  if (hosts.size() < 2) die("garbage", "no serve: " + err);
  // 1. Connections that never attach properly: random bytes, a HELLO of the wrong size, a HELLO
  //    with a bad magic, a HELLO_EVENTS with a made-up cookie.
  for (int i = 0; i < 20; ++i) {
    int fd = raw_connect(hosts[i % 2]);
    uint8_t junk[300];
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    size_t n = 1 + rng() % sizeof junk;
    if (i % 4 == 1) {  // a header claiming HELLO, with a short body
      vdev::proto::Header h{static_cast<uint16_t>(vdev::proto::Msg::HELLO), 0, 8};
      std::memcpy(junk, &h, sizeof h);
      n = sizeof h + 8;
    } else if (i % 4 == 2) {  // a well-formed HELLO with a bad magic and no memfd
      vdev::proto::Header h{static_cast<uint16_t>(vdev::proto::Msg::HELLO), 0,
                            sizeof(vdev::proto::Hello)};
      vdev::proto::Hello he{0xBAD, 1, getpid(), 0, 0x1000, 0x1000};
      std::memcpy(junk, &h, sizeof h);
      std::memcpy(junk + sizeof h, &he, sizeof he);
      n = sizeof h + sizeof he;
    } else if (i % 4 == 3) {  // an event connection for a slot nobody gave it
      vdev::proto::Header h{static_cast<uint16_t>(vdev::proto::Msg::HELLO_EVENTS), 0,
                            sizeof(vdev::proto::HelloEvents)};
      vdev::proto::HelloEvents he{vdev::proto::kMagic, 1, rng()};
      std::memcpy(junk, &h, sizeof h);
      std::memcpy(junk + sizeof h, &he, sizeof he);
      n = sizeof h + sizeof he;
    }
    if (send(fd, junk, n, MSG_NOSIGNAL) < 0) die("garbage", "send failed");
    close(fd);
  }
  // 2. An attached process that sends malformed messages, random commands (each CmdIn byte
  //    random, opcodes from the real ones and others), doorbells anywhere in BAR0 and bursts of
  //    random lengths.
  {
    Side s("garbage");
    s.open(dir, "host0", 4096);
    int fd = raw_connect(hosts[0]);  // a second, raw request connection: not attached
    uint8_t junk[64] = {1, 2, 3};
    send(fd, junk, sizeof junk, MSG_NOSIGNAL);
    close(fd);
    const uint16_t ops[] = {0x1,  0x2,  0x10, 0x11, 0x20, 0x21, 0x30, 0x31, 0x40,
                            0x41, 0x42, 0x43, 0x60, 0x61, 0x62, 0x63, 0x99, 0xFFFF};
    for (int i = 0; i < 400; ++i) {
      dev::CmdIn in{};
      in.opcode = ops[rng() % (sizeof ops / sizeof ops[0])];
      for (auto& b : in.args) b = static_cast<uint8_t>(rng() % 4 == 0 ? rng() : 0);
      if (rng() % 2) {  // sometimes a handle that exists (its own or not)
        uint32_t h = static_cast<uint32_t>(rng() % 4);
        std::memcpy(in.args, &h, 4);
      }
      dev::CmdOut out{};
      int e = s.dev->command(in, &out, 30'000'000'000ull);
      if (e) die("garbage", "command delivery failed: " + std::string(std::strerror(e)));
    }
    for (int i = 0; i < 400; ++i) {
      uint64_t off = rng() % dev::kBar0Size;
      if (rng() % 3 == 0) {
        uint8_t burst[256];
        for (auto& b : burst) b = static_cast<uint8_t>(rng());
        s.dev->mmio_write(off & ~uint64_t(3), burst, 4 * (1 + rng() % 64));
      } else {
        s.dev->mmio_write32(off & ~uint64_t(3), static_cast<uint32_t>(rng()));
      }
    }
    s.dev->mmio_read32(rng() % dev::kBar0Size);
    if (!s.dev->connected()) die("garbage", "serve closed the connection");
  }
  // 3. A process that dies in the middle of a command (no BYE, its reply never read).
  pid_t child = fork();
  if (child == 0) {
    Side s("dying");
    s.open(dir, "host1", 4096);
    s.dev->mmio_write32(dev::kCqDbBase, 0);  // nobody's CQ: refused
    // A command on its way when the process dies: serve runs it, and nobody reads the reply.
    std::thread([&s] {
      dev::CmdIn in{};
      in.opcode = static_cast<uint16_t>(dev::CmdOp::CREATE_PD);
      dev::CmdOut out;
      s.dev->command(in, &out, 30'000'000'000ull);
    }).detach();
    usleep(2000);
    _exit(3);
  }
  int st = 0;
  waitpid(child, &st, 0);
  // 4. serve carries on: a whole exchange still works.
  std::printf("garbage: serve survived; checking it still works\n");
  std::fflush(stdout);
  return pair(dir);
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
    std::fprintf(stderr, "usage: vdev_client pair|isolation|abandon|sanitize|garbage SERVE_DIR\n");
    return 2;
  }
  std::string mode = argv[1], dir = argv[2];
  if (mode == "pair") return pair(dir);
  if (mode == "isolation") return isolation(dir);
  if (mode == "abandon") return abandon(dir);
  if (mode == "sanitize") return sanitize(dir);
  if (mode == "garbage") return garbage(dir);
  if (mode == "doorbell") return doorbell(dir);
  std::fprintf(stderr, "vdev_client: unknown mode %s\n", mode.c_str());
  return 2;
}
