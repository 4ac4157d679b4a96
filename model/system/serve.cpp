#include "model/system/serve.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <vector>

#include "bridge/vdev/protocol.h"
#include "model/system/system.h"

namespace rn::system {

namespace {

namespace proto = vdev::proto;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// Simulated time run at once while the NICs have work, between looks at the sockets.
// Simulated time runs in slices between looks at the sockets: 100 ns after a quiet spell, doubling
// while the NICs stay busy and no process says anything (a stream), up to 64 us.
constexpr Tick kMinSlice = 100 * kNs, kMaxSlice = 64 * kUs;
// Work due within this much simulated time is run at once: the NICs are busy. Work further off
// is a timer (an ACK timeout, an RNR retry): it waits until the processes have been quiet for
// kGraceSeconds of wall time, so that the clock does not jump ahead while a program is merely
// slower than the hardware would be to answer.
constexpr Tick kHorizon = 20 * kUs;
constexpr double kGraceSeconds = 0.002;
// The kernel's own memory (command block, event queue, staged page lists), reached by the NIC
// as slot kKernelSlot.
constexpr uint64_t kKernelBytes = uint64_t(64) << 20;
constexpr uint64_t kCmdOff = 0, kEqOff = 4096, kMttOff = 1 << 20;
constexpr uint32_t kEqLog = 12;      // 4096 events
constexpr size_t kMaxReports = 100;  // sanitizer reports printed (all are counted)

double wall_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool send_packet(int fd, proto::Msg type, const void* body, size_t len) {
  proto::Header h{static_cast<uint16_t>(type), 0, static_cast<uint32_t>(len)};
  uint8_t buf[proto::kMaxMessage];
  std::memcpy(buf, &h, sizeof h);
  if (len) std::memcpy(buf + sizeof h, body, len);
  return send(fd, buf, sizeof h + len, MSG_NOSIGNAL | MSG_DONTWAIT) ==
         static_cast<ssize_t>(sizeof h + len);
}

struct Client {
  uint32_t slot = 0;
  pid_t pid = 0;
  int fd = -1, ev_fd = -1;
  uint64_t cookie = 0;
  uint8_t* dma = nullptr;  // the process's DMA memory, mapped here
  uint64_t dma_len = 0;
  std::set<uint32_t> pds, cqs, qps, srqs, mrs;  // what it owns (MRs by lkey)
  std::deque<dev::Eqe> events;                  // not yet sent
  int commands = 0;                             // queued or running
  bool gone = false;                            // detached: its objects are being destroyed
  bool cleanup_queued = false;
};

class Serve;

// One host's kernel: its NIC's command interface, event queue and doorbells, shared by the
// processes attached to it.
class HostKernel : public pcie::HostObserver, public qp::DriverErrorSink {
 public:
  HostKernel(Serve& s, Node& n, int index, uint8_t* kmem);
  void start();  // programs the command block, the event queue and MSI-X

  void attach(std::unique_ptr<Client> c) {
    ++attaches_;
    clients_[c->slot] = std::move(c);
  }
  Client* client(uint32_t slot) {
    auto it = clients_.find(slot);
    return it == clients_.end() ? nullptr : it->second.get();
  }
  void detach(Client* c);
  void mmio_write(Client* c, const proto::MmioWrite& m, size_t len);
  void mmio_read(Client* c, uint64_t offset);
  void command(Client* c, const dev::CmdIn& in);
  void flush_events();
  // Clients whose objects are all destroyed: gone for good (counted, memory unmapped).
  int reap();
  size_t clients() const { return clients_.size(); }
  std::vector<Client*> live() const {
    std::vector<Client*> v;
    for (const auto& [slot, c] : clients_)
      if (!c->gone) v.push_back(c.get());
    return v;
  }
  void report(const Client* c, const std::string& what);
  Node& node() { return n_; }

  // qp::DriverErrorSink: what the NIC refused of a process's driver, reported with its pid.
  void driver_error(qp::DriverError kind, uint64_t obj, const std::string& what) override;

  // pcie::HostObserver
  void on_dma_write(uint64_t addr, uint64_t len) override;
  bool watching(uint64_t addr, uint64_t len) const override;
  void on_msi(uint64_t addr, uint32_t data) override;

 private:
  struct Pending {
    uint32_t slot;  // who asked (its reply; ownership recorded for it)
    dev::CmdIn in;
    bool reply;  // false: serve's own (cleanup)
  };
  // Checks a command against the caller's objects; false with *out set (a refusal) if it names
  // what is not the caller's.
  bool check(Client* c, dev::CmdIn* in, dev::CmdOut* out);
  bool in_slot(const Client* c, uint64_t addr, uint64_t len) const;
  void next_command();
  void finish_command();
  void record(Client* c, const dev::CmdIn& in, const dev::CmdOut& out);
  void queue_cleanup(Client* c);
  void drain_eq();
  uint32_t owner_of(const dev::Eqe& e) const;
  bool owns_doorbell(const Client* c, uint64_t off, uint32_t len, std::string* what) const;
  // The object a BAR0 offset rings the doorbell of: the owners of its kind (none for a register
  // or no doorbell), its number, its kind's name, and whether it is a WQE doorbell (a whole WQE
  // written with it).
  struct DoorbellTarget {
    const std::unordered_map<uint32_t, uint32_t>* owners = nullptr;
    uint32_t n = 0;
    const char* kind = "";
    bool wqe = false;
  };
  DoorbellTarget doorbell_target(uint64_t off) const;
  uint64_t kbus(uint64_t off) const {
    return proto::bus_address(proto::kKernelSlot, reinterpret_cast<uint64_t>(kmem_ + off));
  }

  Serve& s_;
  Node& n_;
  int index_;
  uint8_t* kmem_;
  std::map<uint32_t, std::unique_ptr<Client>> clients_;
  std::deque<Pending> cmdq_;
  bool cmd_busy_ = false;
  uint32_t token_ = 0;
  uint32_t eq_ci_ = 0;
  // Owners (slots) of the live objects.
  std::unordered_map<uint32_t, uint32_t> pd_owner_, cq_owner_, qp_owner_, srq_owner_, mr_owner_;

  // Timing seen from the kernel, for the statistics: when each send doorbell reached the PCIe
  // model (per QP: producer index, time), and where the CQ rings are, so that each CQE is timed
  // when it lands.
  struct QpTiming {
    std::deque<std::pair<uint16_t, Tick>> doorbells;  // (producer index after, time), oldest first
    Tick round_trip_from = kTickNever;  // the first send doorbell since the last receive CQE
  };
  std::unordered_map<uint32_t, QpTiming> qp_timing_;
  struct CqRing {
    uint32_t cqn;
    uint64_t end;  // bus address past the ring
  };
  std::map<uint64_t, CqRing> cq_rings_;  // by the ring's bus address
  const CqRing* cq_ring_at(uint64_t addr, uint64_t len) const;
  void send_doorbell(uint32_t qpn, uint16_t pi);
  void cqes_landed(uint64_t addr, uint64_t len);
  Tick first_doorbell_ = kTickNever, last_completion_ = 0;
  stats::Histogram* send_latency_ = nullptr;
  stats::Histogram* round_trip_ = nullptr;
  stats::Group stats_;
  uint64_t& attaches_;
  uint64_t& detaches_;
  uint64_t& commands_;
  uint64_t& refused_commands_;
  uint64_t& doorbells_;
  uint64_t& refused_mmio_;
  uint64_t& events_;
  uint64_t& cleanup_commands_;
  uint64_t& dma_faults_;
  uint64_t& reports_;
};

class Serve {
 public:
  Serve(const cfg::Config& c, const std::string& name, const ServeOptions& o)
      : cfg_(c), o_(o), sys_(c, name, HostMode::kProcess, false) {}
  int run();
  std::FILE* log() const { return o_.log; }
  uint64_t reports_printed = 0;

 private:
  bool listen_all(std::string* err);
  void write_hosts_json();
  void accept_on(int host);
  void handle_first(size_t i);  // a new connection's first message
  void handle(Client* c, HostKernel& k);
  void hello(int fd, int host, const proto::Hello& h, int memfd);
  void cleanup_files();

  const cfg::Config& cfg_;
  ServeOptions o_;
  System sys_;
  std::vector<std::unique_ptr<HostKernel>> kernels_;
  std::vector<int> listeners_;
  std::vector<std::string> socket_paths_;
  struct NewConn {
    int fd;
    int host;
  };
  std::vector<NewConn> new_conns_;
  uint8_t* kmem_ = nullptr;  // kernels' memory, kKernelBytes per host
  uint32_t next_slot_ = 1;
  uint64_t next_cookie_ = 0x5EED;
  int gone_ = 0;  // processes attached and gone

  friend class HostKernel;
};

HostKernel::HostKernel(Serve& s, Node& n, int index, uint8_t* kmem)
    : s_(s),
      n_(n),
      index_(index),
      kmem_(kmem),
      stats_(s.sys_.sim().stats, n.name + ".kernel",
             "the host's kernel driver in rnicsim serve: attached processes and what it checked"),
      attaches_(stats_.counter("attaches", "count", "processes attached")),
      detaches_(stats_.counter("detaches", "count", "processes detached (or gone)")),
      commands_(stats_.counter("commands", "count", "commands run for processes")),
      refused_commands_(stats_.counter("refused_commands", "count",
                                       "commands refused: they named another process's objects")),
      doorbells_(stats_.counter("doorbells", "count", "doorbell and WQE writes passed on")),
      refused_mmio_(stats_.counter("refused_mmio", "count",
                                   "MMIO refused: another process's doorbell, or a register")),
      events_(stats_.counter("events", "count", "events routed to processes")),
      cleanup_commands_(stats_.counter("cleanup_commands", "count",
                                       "DESTROY commands for objects processes left")),
      dma_faults_(stats_.counter("dma_faults", "count",
                                 "DMA to memory no attached process has (all ones read)")),
      reports_(stats_.counter("sanitizer_reports", "count", "driver errors reported")) {
  send_latency_ = &stats_.histogram(
      "send_latency", "ps",
      "a signaled send WQE: its doorbell entering PCIe to its CQE in the process's memory");
  round_trip_ = &stats_.histogram(
      "round_trip", "ps",
      "a QP's first send doorbell to its next receive CQE in memory (ping-pong: the round trip)");
  stats_.formula("first_doorbell", "ps", "simulated time of the first send doorbell", [this] {
    return first_doorbell_ == kTickNever ? 0.0 : static_cast<double>(first_doorbell_);
  });
  stats_.formula("last_completion", "ps", "simulated time of the last CQE to land",
                 [this] { return static_cast<double>(last_completion_); });
  n_.bridge->attach_host(this);
  n_.nic->set_driver_error_sink(this);
  n_.pmem->add_process(proto::kKernelSlot, 0);
  n_.pmem->add_shared(proto::kKernelSlot, reinterpret_cast<uint64_t>(kmem_) & proto::kVaMask,
                      kKernelBytes, kmem_);
  n_.pmem->on_fault([this](uint32_t slot, uint64_t addr, size_t len, bool write) {
    ++dma_faults_;
    Client* c = client(slot);
    report(c, fmt::format("DMA {} of {} bytes at {:#x}{}: no memory there (the buffer was freed "
                          "or never mapped?)",
                          write ? "write" : "read", len, addr,
                          c ? "" : fmt::format(" (slot {} is no attached process)", slot)));
  });
}

void HostKernel::report(const Client* c, const std::string& what) {
  ++reports_;
  if (s_.reports_printed++ < kMaxReports)
    fmt::print(s_.log(), "serve: {}: driver sanitizer: {}{}\n", n_.name,
               c ? fmt::format("pid {}: ", c->pid) : "", what);
  else if (s_.reports_printed == kMaxReports + 1)
    fmt::print(s_.log(), "serve: more sanitizer reports are counted in stats.json only\n");
}

void HostKernel::start() {
  auto& b = *n_.bridge;
  const uint64_t cmd = kbus(kCmdOff), eq = kbus(kEqOff);
  b.mmio_write32(dev::reg::CMD_ADDR_LO, static_cast<uint32_t>(cmd));
  b.mmio_write32(dev::reg::CMD_ADDR_HI, static_cast<uint32_t>(cmd >> 32));
  b.mmio_write32(dev::reg::EQ_ADDR_LO, static_cast<uint32_t>(eq));
  b.mmio_write32(dev::reg::EQ_ADDR_HI, static_cast<uint32_t>(eq >> 32));
  b.mmio_write32(dev::reg::EQ_LOG_SIZE, kEqLog);
  const uint64_t msi = 0xFEE00000ull;
  b.mmio_write32(dev::reg::MSIX_ADDR_LO, static_cast<uint32_t>(msi));
  b.mmio_write32(dev::reg::MSIX_ADDR_HI, static_cast<uint32_t>(msi >> 32));
  b.mmio_write32(dev::reg::MSIX_DATA, 0);
  b.mmio_write32(dev::reg::MSIX_CTRL, dev::MsixCtrlBits{/*masked=*/false}.pack());
  dev::EqDoorbellBits db;
  db.ci = 0;
  db.arm = true;
  b.mmio_write32(dev::reg::EQ_DOORBELL, db.pack());
}

void HostKernel::driver_error(qp::DriverError kind, uint64_t obj, const std::string& what) {
  const std::unordered_map<uint32_t, uint32_t>* m = &qp_owner_;
  uint64_t n = obj;
  if (kind == qp::DriverError::kCqOverrun) {
    m = &cq_owner_;
  } else if (kind == qp::DriverError::kRegister) {  // the object behind the doorbell's offset
    const DoorbellTarget t = doorbell_target(obj);
    m = t.owners;  // none for a register: the kernel's own write
    n = t.n;
  }
  Client* c = nullptr;
  if (m)
    if (auto it = m->find(static_cast<uint32_t>(n)); it != m->end()) c = client(it->second);
  report(c, "the NIC: " + what);
}

HostKernel::DoorbellTarget HostKernel::doorbell_target(uint64_t off) const {
  if (off >= dev::kWqeDbBase && off < dev::kBar0Size)
    return {&qp_owner_, static_cast<uint32_t>((off - dev::kWqeDbBase) / dev::kWqeDbStride), "QP",
            true};
  if (off >= dev::kSrqDbBase && off < dev::kSrqDbBase + 0x100000)
    return {&srq_owner_, static_cast<uint32_t>((off - dev::kSrqDbBase) / dev::kSrqDbStride), "SRQ",
            false};
  if (off >= dev::kCqDbBase && off < dev::kCqDbBase + 0x100000)
    return {&cq_owner_, static_cast<uint32_t>((off - dev::kCqDbBase) / dev::kCqDbStride), "CQ",
            false};
  if (off >= dev::kQpDbBase && off < dev::kQpDbBase + 0x100000)
    return {&qp_owner_, static_cast<uint32_t>((off - dev::kQpDbBase) / dev::kQpDbStride), "QP",
            false};
  return {};
}

void HostKernel::send_doorbell(uint32_t qpn, uint16_t pi) {
  const Tick t = s_.sys_.sim().now();
  QpTiming& q = qp_timing_[qpn];
  if (q.doorbells.size() >= 4096) q.doorbells.pop_front();  // a driver that never signals
  q.doorbells.emplace_back(pi, t);
  if (q.round_trip_from == kTickNever) q.round_trip_from = t;
  if (first_doorbell_ == kTickNever) first_doorbell_ = t;
}

const HostKernel::CqRing* HostKernel::cq_ring_at(uint64_t addr, uint64_t len) const {
  auto it = cq_rings_.upper_bound(addr);
  if (it == cq_rings_.begin()) return nullptr;
  --it;
  return addr + len <= it->second.end ? &it->second : nullptr;
}

// CQEs just written into a process's CQ ring: times each against the doorbell that posted its
// WQE (a send) or the QP's first send doorbell since its last receive (a receive).
void HostKernel::cqes_landed(uint64_t addr, uint64_t len) {
  const Tick now = s_.sys_.sim().now();
  for (uint64_t a = addr; a + sizeof(dev::Cqe) <= addr + len; a += sizeof(dev::Cqe)) {
    dev::Cqe e;
    n_.pmem->dma_read(a, &e, sizeof e);
    last_completion_ = now;
    auto it = qp_timing_.find(e.qpn);
    if (it == qp_timing_.end()) continue;
    QpTiming& q = it->second;
    if (e.opcode & 0x80) {  // a receive
      if (q.round_trip_from != kTickNever) round_trip_->add(now - q.round_trip_from);
      q.round_trip_from = kTickNever;
      continue;
    }
    // The WQE at wqe_counter was posted by the first doorbell whose index is past it.
    const uint16_t done = static_cast<uint16_t>(e.wqe_counter + 1);
    Tick posted = kTickNever;
    while (!q.doorbells.empty()) {
      const auto [pi, t] = q.doorbells.front();
      if (static_cast<int16_t>(static_cast<uint16_t>(pi - done)) > 0) break;  // posts later ones
      if (posted == kTickNever) posted = t;
      q.doorbells.pop_front();
      if (pi == done) break;
    }
    if (posted == kTickNever && !q.doorbells.empty()) posted = q.doorbells.front().second;
    if (posted != kTickNever && now >= posted) send_latency_->add(now - posted);
  }
}

bool HostKernel::in_slot(const Client* c, uint64_t addr, uint64_t len) const {
  return proto::slot_of(addr) == c->slot && len <= proto::kVaMask &&
         proto::va_of(addr) <= proto::kVaMask - len;
}

bool HostKernel::owns_doorbell(const Client* c, uint64_t off, uint32_t len,
                               std::string* what) const {
  const DoorbellTarget t = doorbell_target(off);
  if (t.wqe && (off - dev::kWqeDbBase) % dev::kWqeDbStride + len > dev::kWqeDbStride) {
    *what = fmt::format("WQE doorbell write of {} bytes at {:#x} runs past QP {}'s area", len, off,
                        t.n);
    return false;
  }
  if (!t.wqe && len != 4) {
    *what = fmt::format("MMIO write of {} bytes at {:#x}: doorbells are 4 bytes", len, off);
    return false;
  }
  if (!t.owners) {
    *what =
        fmt::format("MMIO write to BAR0 offset {:#x}: {}", off,
                    off < dev::kQpDbBase ? "the registers are the kernel's" : "no doorbell there");
    return false;
  }
  auto it = t.owners->find(t.n);
  if (it != t.owners->end() && it->second == c->slot) return true;
  *what =
      fmt::format("{} doorbell at BAR0 offset {:#x} for {} {}, {}", t.kind, off, t.kind, t.n,
                  it == t.owners->end() ? "which does not exist" : "which is another process's");
  return false;
}

void HostKernel::mmio_write(Client* c, const proto::MmioWrite& m, size_t len) {
  std::string what;
  if (m.len == 0 || m.len > sizeof m.data || len < offsetof(proto::MmioWrite, data) + m.len) {
    ++refused_mmio_;
    report(c, fmt::format("malformed MMIO write message ({} bytes, len {})", len, m.len));
    return;
  }
  if (!owns_doorbell(c, m.offset, m.len, &what)) {
    ++refused_mmio_;
    report(c, what + ": refused");
    return;
  }
  ++doorbells_;
  if (m.len == 4) {
    uint32_t v;
    std::memcpy(&v, m.data, 4);
    if (m.offset >= dev::kQpDbBase && m.offset < dev::kCqDbBase &&
        (m.offset - dev::kQpDbBase) % dev::kQpDbStride == dev::reg::QP_DOORBELL_SQ_WORD)
      send_doorbell(static_cast<uint32_t>((m.offset - dev::kQpDbBase) / dev::kQpDbStride),
                    static_cast<uint16_t>(dev::QpDoorbellBits::unpack(v).pi));
    n_.bridge->mmio_write32(m.offset, v);
  } else {
    if (m.len >= sizeof(dev::SendWqe)) {  // a WQE with its doorbell
      dev::SendWqe w;
      std::memcpy(&w, m.data, sizeof w);
      send_doorbell(static_cast<uint32_t>((m.offset - dev::kWqeDbBase) / dev::kWqeDbStride),
                    static_cast<uint16_t>(w.wqe_index + 1));
    }
    n_.bridge->mmio_write(m.offset, m.data, m.len);
  }
}

void HostKernel::mmio_read(Client* c, uint64_t offset) {
  const int fd = c->fd;
  if (offset != dev::reg::ID && offset != dev::reg::VERSION && offset != dev::reg::CAPS) {
    ++refused_mmio_;
    report(c, fmt::format("MMIO read of BAR0 offset {:#x}: only ID, VERSION and CAPS may be read "
                          "by a process (all ones returned)",
                          offset));
    proto::MmioValue v{~0u, 0};
    send_packet(fd, proto::Msg::MMIO_VALUE, &v, sizeof v);
    return;
  }
  const uint32_t slot = c->slot;
  n_.bridge->mmio_read32(offset, [this, slot](uint32_t value) {
    Client* cl = client(slot);
    if (!cl || cl->gone) return;
    proto::MmioValue v{value, 0};
    send_packet(cl->fd, proto::Msg::MMIO_VALUE, &v, sizeof v);
  });
}

bool HostKernel::check(Client* c, dev::CmdIn* in, dev::CmdOut* out) {
  using dev::CmdOp;
  auto refuse = [&](dev::CmdStatus st, size_t field, const std::string& why) {
    *out = dev::CmdOut{};
    out->status = static_cast<uint8_t>(st);
    out->syndrome = static_cast<uint32_t>(offsetof(dev::CmdIn, args) + field);
    ++refused_commands_;
    report(c, fmt::format("{}: {}: refused", dev::to_string(static_cast<CmdOp>(in->opcode)), why));
    return false;
  };
  // True if object n (of the process's set s) is the process's; else refuses the command, naming
  // the field at `field` in the command's arguments.
  auto owned = [&](const std::set<uint32_t>& s, uint32_t n, const char* kind, size_t field) {
    if (s.count(n)) return true;
    const bool key = std::strcmp(kind, "memory key") == 0;  // keys read best in hex
    return refuse(dev::CmdStatus::BAD_HANDLE, field,
                  fmt::format("{} {} is not the process's", kind,
                              key ? fmt::format("{:#x}", n) : std::to_string(n)));
  };
  auto handle = [&]() {
    dev::HandleIn h;
    std::memcpy(&h, in->args, sizeof h);
    return h.handle;
  };
  switch (static_cast<CmdOp>(in->opcode)) {
    case CmdOp::QUERY_DEVICE:
    case CmdOp::QUERY_PORT:
    case CmdOp::CREATE_PD:
      return true;
    case CmdOp::DESTROY_PD:
      return owned(c->pds, handle(), "PD", 0);
    case CmdOp::DESTROY_CQ:
      return owned(c->cqs, handle(), "CQ", 0);
    case CmdOp::MODIFY_QP:
    case CmdOp::QUERY_QP:
    case CmdOp::DESTROY_QP:
      return owned(c->qps, handle(), "QP", 0);
    case CmdOp::QUERY_SRQ:
    case CmdOp::DESTROY_SRQ:
    case CmdOp::MODIFY_SRQ:
      return owned(c->srqs, handle(), "SRQ", 0);
    case CmdOp::DESTROY_MR:
      return owned(c->mrs, handle(), "memory key", 0);
    case CmdOp::MAP_ICM:  // the device's own memory is the kernel's to give, never a process's
      return refuse(dev::CmdStatus::BAD_OPCODE, 0, "context memory is the kernel's to map");
    case CmdOp::CREATE_CQ: {
      dev::CreateCqIn a;
      std::memcpy(&a, in->args, sizeof a);
      if (!in_slot(c, a.ring_addr,
                   (uint64_t(sizeof(dev::Cqe)) << std::min<uint8_t>(a.log_size, 40))))
        return refuse(dev::CmdStatus::BAD_PARAM, offsetof(dev::CreateCqIn, ring_addr),
                      fmt::format("ring at {:#x} is not the process's memory", a.ring_addr));
      return true;
    }
    case CmdOp::CREATE_SRQ: {
      dev::CreateSrqIn a;
      std::memcpy(&a, in->args, sizeof a);
      if (!owned(c->pds, a.pdn, "PD", offsetof(dev::CreateSrqIn, pdn))) return false;
      if (!in_slot(c, a.ring_addr, uint64_t(1) << std::min(a.log_size + a.wqe_shift, 48)))
        return refuse(dev::CmdStatus::BAD_PARAM, offsetof(dev::CreateSrqIn, ring_addr),
                      fmt::format("ring at {:#x} is not the process's memory", a.ring_addr));
      return true;
    }
    case CmdOp::CREATE_QP: {
      dev::CreateQpIn a;
      std::memcpy(&a, in->args, sizeof a);
      if (!owned(c->pds, a.pdn, "PD", offsetof(dev::CreateQpIn, pdn))) return false;
      if (!owned(c->cqs, a.send_cqn, "CQ", offsetof(dev::CreateQpIn, send_cqn))) return false;
      if (!owned(c->cqs, a.recv_cqn, "CQ", offsetof(dev::CreateQpIn, recv_cqn))) return false;
      if (a.srqn && !owned(c->srqs, a.srqn, "SRQ", offsetof(dev::CreateQpIn, srqn))) return false;
      if (!in_slot(c, a.sq_addr, uint64_t(1) << std::min(a.log_sq_size + a.sq_wqe_shift, 48)))
        return refuse(dev::CmdStatus::BAD_PARAM, offsetof(dev::CreateQpIn, sq_addr),
                      fmt::format("send queue at {:#x} is not the process's memory", a.sq_addr));
      if (!a.srqn &&
          !in_slot(c, a.rq_addr, uint64_t(1) << std::min(a.log_rq_size + a.rq_wqe_shift, 48)))
        return refuse(dev::CmdStatus::BAD_PARAM, offsetof(dev::CreateQpIn, rq_addr),
                      fmt::format("receive queue at {:#x} is not the process's memory", a.rq_addr));
      return true;
    }
    case CmdOp::CREATE_MR: {
      dev::CreateMrIn a;
      std::memcpy(&a, in->args, sizeof a);
      if (!owned(c->pds, a.pdn, "PD", offsetof(dev::CreateMrIn, pdn))) return false;
      const uint64_t max_pages = (kKernelBytes - kMttOff) / 8;
      if (a.n_pages > max_pages)
        return refuse(dev::CmdStatus::BAD_PARAM, offsetof(dev::CreateMrIn, n_pages),
                      fmt::format("{} pages: the kernel stages at most {}", a.n_pages, max_pages));
      if (!in_slot(c, a.mtt_addr, uint64_t(a.n_pages) * 8))
        return refuse(dev::CmdStatus::BAD_PARAM, offsetof(dev::CreateMrIn, mtt_addr),
                      fmt::format("page list at {:#x} is not the process's memory", a.mtt_addr));
      // The kernel builds the page list the NIC reads: copied from the process (which could
      // change its own copy while the NIC reads it), every page checked to be the process's.
      uint8_t* mtt = kmem_ + kMttOff;
      n_.pmem->dma_read(a.mtt_addr, mtt, uint64_t(a.n_pages) * 8);
      for (uint32_t i = 0; i < a.n_pages; ++i) {
        uint64_t p;
        std::memcpy(&p, mtt + uint64_t(i) * 8, 8);
        if (!in_slot(c, p, uint64_t(1) << std::min<uint8_t>(a.page_shift, 40)))
          return refuse(
              dev::CmdStatus::BAD_PARAM, offsetof(dev::CreateMrIn, mtt_addr),
              fmt::format("page {} of the list ({:#x}) is not the process's memory", i, p));
      }
      a.mtt_addr = kbus(kMttOff);
      std::memcpy(in->args, &a, sizeof a);
      return true;
    }
  }
  return refuse(dev::CmdStatus::BAD_OPCODE, 0,
                fmt::format("opcode {:#x} is not one the kernel passes on", in->opcode));
}

void HostKernel::command(Client* c, const dev::CmdIn& in) {
  ++c->commands;
  cmdq_.push_back(Pending{c->slot, in, true});
  if (!cmd_busy_) next_command();
}

void HostKernel::next_command() {
  while (!cmd_busy_ && !cmdq_.empty()) {
    Pending& p = cmdq_.front();
    Client* c = client(p.slot);
    dev::CmdOut refused{};
    // Checked when it is issued: the staged page list is the kernel's one buffer.
    if (p.reply && c && !check(c, &p.in, &refused)) {
      if (!c->gone) {
        proto::CommandDone d{0, 0, refused};
        send_packet(c->fd, proto::Msg::COMMAND_DONE, &d, sizeof d);
      }
      --c->commands;
      cmdq_.pop_front();
      continue;
    }
    cmd_busy_ = true;
    if (++token_ == 0) ++token_;
    p.in.token = 0;
    std::memcpy(kmem_ + kCmdOff, &p.in, sizeof p.in);
    std::memset(kmem_ + kCmdOff + sizeof(dev::CmdIn), 0, sizeof(dev::CmdOut));
    ++(p.reply ? commands_ : cleanup_commands_);
    n_.bridge->mmio_write32(dev::reg::CMD_DOORBELL, token_);
  }
}

void HostKernel::finish_command() {
  dev::CmdOut out;
  std::memcpy(&out, kmem_ + kCmdOff + sizeof(dev::CmdIn), sizeof out);
  if (!cmd_busy_ || out.token != token_) return;
  Pending p = cmdq_.front();
  cmdq_.pop_front();
  cmd_busy_ = false;
  if (Client* c = client(p.slot)) {
    if (out.status == 0) record(c, p.in, out);
    if (p.reply) {
      --c->commands;
      if (!c->gone) {
        proto::CommandDone d{0, 0, out};
        send_packet(c->fd, proto::Msg::COMMAND_DONE, &d, sizeof d);
      }
    }
    if (c->gone && c->commands == 0 && !c->cleanup_queued) queue_cleanup(c);
  }
  next_command();
}

void HostKernel::record(Client* c, const dev::CmdIn& in, const dev::CmdOut& out) {
  using dev::CmdOp;
  uint32_t first;
  std::memcpy(&first, out.result, 4);  // the new object's number (or lkey)
  dev::HandleIn h;
  std::memcpy(&h, in.args, sizeof h);
  auto add = [&](std::set<uint32_t>& s, std::unordered_map<uint32_t, uint32_t>& m, uint32_t n) {
    s.insert(n);
    m[n] = c->slot;
  };
  auto del = [&](std::set<uint32_t>& s, std::unordered_map<uint32_t, uint32_t>& m, uint32_t n) {
    s.erase(n);
    m.erase(n);
  };
  switch (static_cast<CmdOp>(in.opcode)) {
    case CmdOp::CREATE_PD:
      add(c->pds, pd_owner_, first);
      break;
    case CmdOp::DESTROY_PD:
      del(c->pds, pd_owner_, h.handle);
      break;
    case CmdOp::CREATE_CQ: {
      add(c->cqs, cq_owner_, first);
      dev::CreateCqIn a;
      std::memcpy(&a, in.args, sizeof a);
      cq_rings_[a.ring_addr] =
          CqRing{first, a.ring_addr + (uint64_t(sizeof(dev::Cqe)) << a.log_size)};
      break;
    }
    case CmdOp::DESTROY_CQ:
      del(c->cqs, cq_owner_, h.handle);
      for (auto it = cq_rings_.begin(); it != cq_rings_.end(); ++it)
        if (it->second.cqn == h.handle) {
          cq_rings_.erase(it);
          break;
        }
      break;
    case CmdOp::CREATE_QP:
      add(c->qps, qp_owner_, first);
      break;
    case CmdOp::DESTROY_QP:
      del(c->qps, qp_owner_, h.handle);
      qp_timing_.erase(h.handle);
      break;
    case CmdOp::CREATE_SRQ:
      add(c->srqs, srq_owner_, first);
      break;
    case CmdOp::DESTROY_SRQ:
      del(c->srqs, srq_owner_, h.handle);
      break;
    case CmdOp::CREATE_MR:
      add(c->mrs, mr_owner_, first);
      break;
    case CmdOp::DESTROY_MR:
      del(c->mrs, mr_owner_, h.handle);
      break;
    default:
      break;
  }
}

void HostKernel::detach(Client* c) {
  if (c->gone) return;
  c->gone = true;
  ++detaches_;
  if (c->fd >= 0) close(c->fd);
  if (c->ev_fd >= 0) close(c->ev_fd);
  c->fd = c->ev_fd = -1;
  c->events.clear();
  if (c->commands == 0) queue_cleanup(c);
}

// Destroys what a process left, in an order the device accepts: QPs, then SRQs, memory keys,
// CQs and PDs.
void HostKernel::queue_cleanup(Client* c) {
  c->cleanup_queued = true;
  auto destroy = [&](const std::set<uint32_t>& s, dev::CmdOp op) {
    for (uint32_t n : s) {
      Pending p{c->slot, dev::CmdIn{}, false};
      p.in.opcode = static_cast<uint16_t>(op);
      dev::HandleIn h{};
      h.handle = n;
      std::memcpy(p.in.args, &h, sizeof h);
      cmdq_.push_back(p);
    }
  };
  destroy(c->qps, dev::CmdOp::DESTROY_QP);
  destroy(c->srqs, dev::CmdOp::DESTROY_SRQ);
  destroy(c->mrs, dev::CmdOp::DESTROY_MR);
  destroy(c->cqs, dev::CmdOp::DESTROY_CQ);
  destroy(c->pds, dev::CmdOp::DESTROY_PD);
  if (!cmd_busy_) next_command();
}

int HostKernel::reap() {
  int n = 0;
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client* c = it->second.get();
    bool queued = false;
    for (const auto& p : cmdq_) queued = queued || p.slot == c->slot;
    if (c->gone && c->cleanup_queued && !queued) {
      // Objects whose DESTROY failed (the device refused it) stay; their memory goes with the
      // process: DMA to it faults, harmlessly.
      const size_t left =
          c->qps.size() + c->srqs.size() + c->mrs.size() + c->cqs.size() + c->pds.size();
      if (left)
        report(c, fmt::format("{} objects could not be destroyed after the process went", left));
      n_.pmem->remove_process(c->slot);
      if (c->dma) munmap(c->dma, c->dma_len);
      it = clients_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

uint32_t HostKernel::owner_of(const dev::Eqe& e) const {
  const std::unordered_map<uint32_t, uint32_t>* m = nullptr;
  switch (static_cast<dev::EqeType>(e.type)) {
    case dev::EqeType::COMPLETION:
    case dev::EqeType::CQ_ERROR:
      m = &cq_owner_;
      break;
    case dev::EqeType::QP_FATAL:
    case dev::EqeType::SQ_DRAINED:
    case dev::EqeType::QP_LAST_WQE_REACHED:
      m = &qp_owner_;
      break;
    case dev::EqeType::SRQ_LIMIT_REACHED:
      m = &srq_owner_;
      break;
  }
  if (!m) return 0;
  auto it = m->find(e.obj);
  return it == m->end() ? 0 : it->second;
}

void HostKernel::drain_eq() {
  const uint32_t size = 1u << kEqLog;
  bool any = false;
  for (;;) {
    dev::Eqe e;
    std::memcpy(&e, kmem_ + kEqOff + uint64_t(eq_ci_ & (size - 1)) * sizeof e, sizeof e);
    const uint8_t want = static_cast<uint8_t>(((eq_ci_ >> kEqLog) & 1) ^ 1);
    if ((e.owner & 1) != want) break;
    ++eq_ci_;
    any = true;
    if (Client* c = client(owner_of(e)); c && !c->gone) {
      ++events_;
      c->events.push_back(e);
    }
  }
  if (any) {
    dev::EqDoorbellBits db;
    db.ci = eq_ci_;
    db.arm = true;
    n_.bridge->mmio_write32(dev::reg::EQ_DOORBELL, db.pack());
  }
}

void HostKernel::flush_events() {
  for (auto& [slot, c] : clients_) {
    while (!c->gone && c->ev_fd >= 0 && !c->events.empty()) {
      proto::Event ev{c->events.front()};
      if (!send_packet(c->ev_fd, proto::Msg::EVENT, &ev, sizeof ev)) break;  // full: later
      c->events.pop_front();
    }
  }
}

bool HostKernel::watching(uint64_t addr, uint64_t len) const {
  const uint64_t k0 = kbus(0);
  // The command block and the event queue, and CQEs (timed when they land).
  return (addr < k0 + kMttOff && addr + len > k0) || cq_ring_at(addr, len) != nullptr;
}

void HostKernel::on_dma_write(uint64_t addr, uint64_t len) {
  const uint64_t out = kbus(kCmdOff + sizeof(dev::CmdIn));
  if (addr < out + sizeof(dev::CmdOut) && addr + len > out) finish_command();
  if (cq_ring_at(addr, len)) cqes_landed(addr, len);
}

void HostKernel::on_msi(uint64_t, uint32_t) {
  n_.bridge->sync();
  drain_eq();
}

bool Serve::listen_all(std::string* err) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(o_.dir, ec);
  if (ec) {
    *err = "cannot create " + o_.dir + ": " + ec.message();
    return false;
  }
  for (size_t i = 0; i < sys_.nodes(); ++i) {
    const std::string path = o_.dir + "/" + sys_.node(static_cast<int>(i)).name + ".sock";
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
      *err = "socket path too long: " + path;
      return false;
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    // A socket left there: another serve answering on it, or a stale one to replace.
    int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      close(probe);
      *err = "another rnicsim serve is running in " + o_.dir + " (" + path +
             " answers): stop it, or give this one another --dir";
      return false;
    }
    if (probe >= 0) close(probe);
    unlink(path.c_str());
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0) {
      *err = "cannot listen on " + path + ": " + std::strerror(errno);
      if (fd >= 0) close(fd);
      return false;
    }
    listeners_.push_back(fd);
    socket_paths_.push_back(path);
  }
  return true;
}

void Serve::write_hosts_json() {
  nlohmann::json hosts = nlohmann::json::array();
  for (size_t i = 0; i < sys_.nodes(); ++i) {
    Node& n = sys_.node(static_cast<int>(i));
    hosts.push_back({{"name", n.name},
                     {"index", i},
                     {"socket", n.name + ".sock"},
                     {"ipv4", n.ipv4},
                     {"mac", fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", n.mac[0],
                                         n.mac[1], n.mac[2], n.mac[3], n.mac[4], n.mac[5])}});
  }
  nlohmann::json j = {{"pid", getpid()}, {"protocol", proto::kVersion}, {"hosts", hosts}};
  const std::string tmp = o_.dir + "/hosts.json.tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
  }
  std::rename(tmp.c_str(), (o_.dir + "/hosts.json").c_str());  // whole, at once
}

void Serve::cleanup_files() {
  for (int fd : listeners_) close(fd);
  for (const auto& p : socket_paths_) unlink(p.c_str());
  unlink((o_.dir + "/hosts.json").c_str());
}

void Serve::accept_on(int host) {
  for (;;) {
    int fd = accept4(listeners_[host], nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    new_conns_.push_back({fd, host});
  }
}

void Serve::hello(int fd, int host, const proto::Hello& h, int memfd) {
  HostKernel& k = *kernels_[host];
  proto::Welcome w{};
  auto refuse = [&](int e, const std::string& why) {
    w.status = e;
    std::snprintf(w.error, sizeof w.error, "%s", why.c_str());
    send_packet(fd, proto::Msg::WELCOME, &w, sizeof w);
    close(fd);
    if (memfd >= 0) close(memfd);
    fmt::print(o_.log, "serve: {}: attach refused: {}\n", k.node().name, why);
  };
  if (h.magic != proto::kMagic || h.version != proto::kVersion)
    return refuse(EPROTO,
                  fmt::format("protocol magic {:#x} version {}: serve speaks {:#x} version {}",
                              h.magic, h.version, proto::kMagic, proto::kVersion));
  if (memfd < 0) return refuse(EINVAL, "HELLO carried no memfd for the process's DMA memory");
  // The process is who the socket says (SO_PEERCRED), not what it claims.
  ucred cred{};
  socklen_t cl = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0)
    return refuse(EPERM, "cannot tell the connecting process (SO_PEERCRED)");
  if (cred.uid != getuid())
    return refuse(EPERM, fmt::format("process {} runs as user {}, serve as {}", cred.pid, cred.uid,
                                     getuid()));
  struct stat st {};
  if (fstat(memfd, &st) != 0 || h.dma_len == 0 || static_cast<uint64_t>(st.st_size) < h.dma_len ||
      h.dma_va == 0 || h.dma_va > proto::kVaMask - h.dma_len)
    return refuse(EINVAL, fmt::format("DMA memory of {} bytes at {:#x}: the memfd holds {} bytes",
                                      h.dma_len, h.dma_va, st.st_size));
  if (next_slot_ > proto::kMaxSlot) return refuse(ENOSPC, "no process slot left");
  void* m = mmap(nullptr, h.dma_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  close(memfd);
  if (m == MAP_FAILED)
    return refuse(ENOMEM, std::string("cannot map the DMA memory: ") + std::strerror(errno));
  auto c = std::make_unique<Client>();
  c->slot = next_slot_++;
  c->pid = cred.pid;
  c->fd = fd;
  c->cookie = next_cookie_ = next_cookie_ * 6364136223846793005ull + 1442695040888963407ull;
  c->dma = static_cast<uint8_t*>(m);
  c->dma_len = h.dma_len;
  Node& n = k.node();
  n.pmem->add_process(c->slot, cred.pid);
  n.pmem->add_shared(c->slot, h.dma_va, h.dma_len, c->dma);
  w.status = 0;
  w.slot = c->slot;
  w.host_index = static_cast<uint32_t>(host);
  w.ipv4 = n.ipv4;
  std::memcpy(w.mac, n.mac.data(), 6);
  w.cookie = c->cookie;
  send_packet(fd, proto::Msg::WELCOME, &w, sizeof w);
  fmt::print(o_.log, "serve: {}: process {} attached (slot {})\n", n.name, cred.pid, c->slot);
  k.attach(std::move(c));
}

// A new connection's first message: HELLO (a process attaching) or HELLO_EVENTS (its event
// connection). Anything else closes it.
void Serve::handle_first(size_t i) {
  NewConn nc = new_conns_[i];
  uint8_t buf[proto::kMaxMessage];
  iovec iov{buf, sizeof buf};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 4)];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ssize_t n = recvmsg(nc.fd, &mh, MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // not yet
  new_conns_.erase(new_conns_.begin() + static_cast<long>(i));
  int memfd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const size_t fds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < fds; ++k) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof f);
        if (memfd < 0)
          memfd = f;
        else
          close(f);  // only one is expected
      }
    }
  proto::Header h{};
  if (n < static_cast<ssize_t>(sizeof h)) {
    close(nc.fd);
    if (memfd >= 0) close(memfd);
    return;
  }
  std::memcpy(&h, buf, sizeof h);
  if (h.type == static_cast<uint16_t>(proto::Msg::HELLO) && h.len == sizeof(proto::Hello) &&
      n == static_cast<ssize_t>(sizeof h + sizeof(proto::Hello))) {
    proto::Hello hello_msg;
    std::memcpy(&hello_msg, buf + sizeof h, sizeof hello_msg);
    hello(nc.fd, nc.host, hello_msg, memfd);
    return;
  }
  if (memfd >= 0) close(memfd);
  if (h.type == static_cast<uint16_t>(proto::Msg::HELLO_EVENTS) &&
      n == static_cast<ssize_t>(sizeof h + sizeof(proto::HelloEvents))) {
    proto::HelloEvents he;
    std::memcpy(&he, buf + sizeof h, sizeof he);
    Client* c = kernels_[nc.host]->client(he.slot);
    if (he.magic == proto::kMagic && c && !c->gone && c->cookie == he.cookie && c->ev_fd < 0) {
      c->ev_fd = nc.fd;
      return;
    }
  }
  fmt::print(o_.log, "serve: {}: a connection that did not start with HELLO: closed\n",
             sys_.node(nc.host).name);
  close(nc.fd);
}

void Serve::handle(Client* c, HostKernel& k) {
  for (int budget = 0; budget < 64 && !c->gone; ++budget) {
    uint8_t buf[proto::kMaxMessage];
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      fmt::print(o_.log, "serve: {}: process {} detached{}\n", k.node().name, c->pid,
                 n == 0 ? "" : fmt::format(" ({})", std::strerror(errno)));
      k.detach(c);
      return;
    }
    proto::Header h{};
    if (n < static_cast<ssize_t>(sizeof h)) {
      k.report(c, fmt::format("a message of {} bytes, shorter than its header", n));
      continue;
    }
    std::memcpy(&h, buf, sizeof h);
    const size_t body = static_cast<size_t>(n) - sizeof h;
    const uint8_t* b = buf + sizeof h;
    if (h.len != body) {
      k.report(c, fmt::format("message type {} says {} bytes, carries {}", h.type, h.len, body));
      continue;
    }
    switch (static_cast<proto::Msg>(h.type)) {
      case proto::Msg::MMIO_WRITE: {
        proto::MmioWrite m{};
        std::memcpy(&m, b, std::min(body, sizeof m));
        k.mmio_write(c, m, body);
        break;
      }
      case proto::Msg::MMIO_READ:
        if (body == sizeof(proto::MmioRead)) {
          proto::MmioRead m;
          std::memcpy(&m, b, sizeof m);
          k.mmio_read(c, m.offset);
        } else {
          k.report(c, "malformed MMIO read message");
        }
        break;
      case proto::Msg::COMMAND:
        if (body == sizeof(proto::Command)) {
          proto::Command m;
          std::memcpy(&m, b, sizeof m);
          k.command(c, m.in);
        } else {
          k.report(c, "malformed command message");
        }
        break;
      case proto::Msg::BYE:
        fmt::print(o_.log, "serve: {}: process {} detached\n", k.node().name, c->pid);
        k.detach(c);
        return;
      default:
        k.report(c, fmt::format("unknown message type {}", h.type));
        break;
    }
  }
}

int Serve::run() {
  std::string err;
  if (!listen_all(&err)) {
    fmt::print(stderr, "rnicsim serve: {}\n", err);
    return 2;
  }
  const size_t hosts = sys_.nodes();
  void* km = mmap(nullptr, kKernelBytes * hosts, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (km == MAP_FAILED) {
    fmt::print(stderr, "rnicsim serve: no memory for the kernel's rings\n");
    cleanup_files();
    return 2;
  }
  kmem_ = static_cast<uint8_t*>(km);
  for (size_t i = 0; i < hosts; ++i)
    kernels_.push_back(std::make_unique<HostKernel>(*this, sys_.node(static_cast<int>(i)),
                                                    static_cast<int>(i), kmem_ + kKernelBytes * i));
  try {
    sys_.open_outputs(o_.out_dir);
  } catch (const std::exception& e) {
    fmt::print(stderr, "rnicsim serve: {}\n", e.what());
    cleanup_files();
    return 2;
  }
  for (auto& k : kernels_) k->start();
  EventQueue& eq = sys_.calendar();
  eq.start(0);  // elaboration, and the kernels' register writes reach the NICs
  write_hosts_json();
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  fmt::print(o_.log,
             "serve: {} hosts ready in {}\n"
             "  attach a program:   rnicsim attach {} -- PROGRAM [ARGS]\n"
             "  stop:               Ctrl-C or kill -TERM {} (writes {})\n",
             hosts, o_.dir, sys_.node(0).name, getpid(),
             o_.out_dir.empty() ? "nothing" : o_.out_dir + "/stats.json and wire.pcap");
  std::fflush(o_.log);
  const double t0 = wall_now();
  double quiet_since = t0;
  Tick slice = kMinSlice;
  uint64_t timer_jumps = 0;
  std::vector<pollfd> pfds;
  struct Ref {
    int host;
    uint32_t slot;  // 0: the listener; else the client
    bool events;    // its event connection
    size_t conn;    // new connection index (host -1)
  };
  std::vector<Ref> refs;
  while (!g_stop) {
    pfds.clear();
    refs.clear();
    for (size_t h = 0; h < hosts; ++h) {
      pfds.push_back({listeners_[h], POLLIN, 0});
      refs.push_back({static_cast<int>(h), 0, false, 0});
    }
    for (size_t i = 0; i < new_conns_.size(); ++i) {
      pfds.push_back({new_conns_[i].fd, POLLIN, 0});
      refs.push_back({-1, 0, false, i});
    }
    for (size_t h = 0; h < hosts; ++h) {
      for (Client* c : kernels_[h]->live()) {
        pfds.push_back({c->fd, POLLIN, 0});
        refs.push_back({static_cast<int>(h), c->slot, false, 0});
        if (c->ev_fd >= 0) {
          pfds.push_back({c->ev_fd, POLLIN, 0});  // only to see it close
          refs.push_back({static_cast<int>(h), c->slot, true, 0});
        }
      }
    }
    // Due now: look at the sockets and go on. A timer: wait for messages, up to the grace.
    const Tick next = eq.next_time();
    const bool due = next != kTickNever && next <= eq.now() + kHorizon;
    int wait_ms = 200;
    if (due)
      wait_ms = 0;
    else if (next != kTickNever)
      wait_ms = std::max(0, static_cast<int>((quiet_since + kGraceSeconds - wall_now()) * 1e3) + 1);
    int r = poll(pfds.data(), pfds.size(), wait_ms);
    if (r < 0 && errno != EINTR) {
      fmt::print(stderr, "rnicsim serve: poll: {}\n", std::strerror(errno));
      break;
    }
    for (size_t i = pfds.size(); r > 0 && i-- > 0;) {  // backwards: new connections go away
      if (!pfds[i].revents) continue;
      const Ref& f = refs[i];
      if (f.host < 0) {
        handle_first(f.conn);
      } else if (f.slot == 0) {
        accept_on(f.host);
      } else if (Client* c = kernels_[f.host]->client(f.slot); c && !c->gone) {
        if (f.events) {
          char b;
          if (recv(c->ev_fd, &b, 1, MSG_DONTWAIT) == 0) {
            fmt::print(o_.log, "serve: {}: process {} closed its event connection\n",
                       kernels_[f.host]->node().name, c->pid);
            kernels_[f.host]->detach(c);
          }
        } else {
          handle(c, *kernels_[f.host]);
        }
      }
    }
    if (r > 0) {  // a process acted: its doorbells are stamped at the current time
      quiet_since = wall_now();
      slice = kMinSlice;
    }
    if (eq.pending() > 0) {
      const Tick now = eq.now(), at = eq.next_time();
      if (at <= now + kHorizon) {  // busy: run a slice
        eq.start(std::max(now, at) + slice - now);
        slice = std::min(slice * 2, kMaxSlice);
      } else if (wall_now() - quiet_since >= kGraceSeconds) {  // quiet: the timer's time comes
        eq.start(at - now + 1);
        ++timer_jumps;
        slice = kMinSlice;
      }
    } else {
      slice = kMinSlice;
    }
    for (auto& k : kernels_) {
      k->node().bridge->sync();  // writes whose time has come are in the processes' memory
      k->flush_events();
      gone_ += k->reap();
    }
    if (o_.exit_after > 0 && gone_ >= o_.exit_after) {
      size_t left = 0;
      for (auto& k : kernels_) left += k->clients();
      if (left == 0) break;
    }
  }
  const double wall = wall_now() - t0;
  for (auto& k : kernels_)
    for (Client* c : k->live()) k->detach(c);
  RunReport rep = sys_.finish_outputs(o_.out_dir, wall);
  cleanup_files();
  fmt::print(o_.log,
             "serve: stopped after {:.1f} s: simulated time {:.3f} us ({} waits for a timer), {} "
             "packets{}\n",
             wall, ticks_to_ns(rep.sim_time) / 1e3, timer_jumps, rep.packets,
             o_.out_dir.empty() ? "" : "; wrote " + o_.out_dir + "/stats.json");
  for (const auto& e : rep.output_errors) fmt::print(stderr, "rnicsim serve: {}\n", e);
  return rep.output_errors.empty() ? 0 : 1;
}

}  // namespace

int serve(const cfg::Config& c, const std::string& config_name, const ServeOptions& o) {
  g_stop = 0;
  Serve s(c, config_name, o);
  return s.run();
}

}  // namespace rn::system
