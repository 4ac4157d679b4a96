#include "bridge/vdev/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace rn::vdev {

namespace {
constexpr uint64_t kPage = 4096;

uint64_t wall_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

int connect_to(const std::string& path, std::string* err) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    *err = "socket path too long: " + path;
    close(fd);
    return -1;
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    *err = "cannot connect to " + path + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

bool parse_mac(const std::string& s, uint8_t* mac) {
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    return false;
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(v[i]);
  return true;
}
}  // namespace

std::string default_serve_dir() { return "/tmp/rnicsim-serve-" + std::to_string(getuid()); }

std::string serve_dir() {
  const char* e = std::getenv("RNICSIM_SERVE");
  return e && *e ? std::string(e) : default_serve_dir();
}

std::vector<HostInfo> serve_hosts(const std::string& dir, std::string* err) {
  std::vector<HostInfo> out;
  const std::string path = dir + "/hosts.json";
  std::ifstream f(path);
  if (!f) {
    *err = "no rnicsim serve in " + dir + " (" + path + " not found): start `rnicsim serve`";
    return out;
  }
  try {
    nlohmann::json j = nlohmann::json::parse(f);
    for (const auto& h : j.at("hosts")) {
      HostInfo i;
      i.name = h.at("name").get<std::string>();
      i.index = h.at("index").get<uint32_t>();
      i.socket = dir + "/" + h.at("socket").get<std::string>();
      i.ipv4 = h.at("ipv4").get<uint32_t>();
      if (!parse_mac(h.at("mac").get<std::string>(), i.mac)) {
        *err = path + ": host " + i.name + ": bad mac";
        return {};
      }
      out.push_back(i);
    }
  } catch (const std::exception& e) {
    *err = path + ": " + e.what();
    return {};
  }
  if (out.empty()) *err = path + ": no hosts";
  return out;
}

std::unique_ptr<ClientDevice> ClientDevice::attach(const HostInfo& h, std::string* err) {
  std::unique_ptr<ClientDevice> d(new ClientDevice());
  d->host_ = h;
  d->memfd_ = memfd_create("rnicsim-dma", MFD_CLOEXEC);
  if (d->memfd_ < 0 || ftruncate(d->memfd_, kDmaBytes) != 0) {
    *err = std::string("memfd for DMA memory: ") + std::strerror(errno);
    return nullptr;
  }
  void* m = mmap(nullptr, kDmaBytes, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd_, 0);
  if (m == MAP_FAILED) {
    *err = std::string("mmap of DMA memory: ") + std::strerror(errno);
    return nullptr;
  }
  d->dma_ = static_cast<uint8_t*>(m);
  d->dma_free_[0] = kDmaBytes;
  d->fd_ = connect_to(h.socket, err);
  if (d->fd_ < 0) return nullptr;

  // HELLO with the memfd.
  proto::Hello hello{
      proto::kMagic, proto::kVersion, getpid(), 0, reinterpret_cast<uint64_t>(d->dma_), kDmaBytes};
  proto::Header hd{static_cast<uint16_t>(proto::Msg::HELLO), 0, sizeof hello};
  iovec iov[2] = {{&hd, sizeof hd}, {&hello, sizeof hello}};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &d->memfd_, sizeof(int));
  if (sendmsg(d->fd_, &mh, MSG_NOSIGNAL) < 0) {
    *err = h.socket + ": sending HELLO: " + std::strerror(errno);
    return nullptr;
  }
  d->connected_ = true;
  proto::Welcome w{};
  if (!d->recv_msg(proto::Msg::WELCOME, &w, sizeof w, 30'000'000'000ull)) {
    *err = h.socket + ": no WELCOME from serve";
    return nullptr;
  }
  if (w.status != 0) {
    w.error[sizeof w.error - 1] = 0;
    *err = h.name + ": serve refused the attach: " + w.error;
    return nullptr;
  }
  d->slot_ = w.slot;
  d->host_.ipv4 = w.ipv4;
  std::memcpy(d->host_.mac, w.mac, 6);
  // The event connection.
  d->ev_fd_ = connect_to(h.socket, err);
  if (d->ev_fd_ < 0) return nullptr;
  proto::HelloEvents he{proto::kMagic, w.slot, w.cookie};
  proto::Header eh{static_cast<uint16_t>(proto::Msg::HELLO_EVENTS), 0, sizeof he};
  iovec eiov[2] = {{&eh, sizeof eh}, {&he, sizeof he}};
  msghdr emh{};
  emh.msg_iov = eiov;
  emh.msg_iovlen = 2;
  if (sendmsg(d->ev_fd_, &emh, MSG_NOSIGNAL) < 0) {
    *err = h.socket + ": sending HELLO_EVENTS: " + std::strerror(errno);
    return nullptr;
  }
  return d;
}

ClientDevice::~ClientDevice() {
  if (connected_) send_msg(proto::Msg::BYE, nullptr, 0);
  if (fd_ >= 0) close(fd_);
  if (ev_fd_ >= 0) close(ev_fd_);
  if (dma_) munmap(dma_, kDmaBytes);
  if (memfd_ >= 0) close(memfd_);
}

void ClientDevice::lost(const char* why) {
  if (connected_ && std::getenv("RNICSIM_DEBUG"))
    std::fprintf(stderr, "rnicsim: lost the connection to serve (%s): %s\n", host_.socket.c_str(),
                 why);
  connected_ = false;
}

bool ClientDevice::send_msg(proto::Msg type, const void* body, size_t len) {
  if (!connected_) return false;
  proto::Header h{static_cast<uint16_t>(type), 0, static_cast<uint32_t>(len)};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<void*>(body), len}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = body && len ? 2 : 1;
  if (sendmsg(fd_, &mh, MSG_NOSIGNAL) < 0) {
    lost(std::strerror(errno));
    return false;
  }
  return true;
}

bool ClientDevice::recv_msg(proto::Msg want, void* body, size_t len, uint64_t timeout_ns) {
  const uint64_t end = wall_ns() + timeout_ns;
  for (;;) {
    if (!connected_) return false;
    const uint64_t now = wall_ns();
    if (now >= end) return false;
    pollfd p{fd_, POLLIN, 0};
    int ms = static_cast<int>(std::min<uint64_t>((end - now) / 1'000'000 + 1, 1000));
    int r = poll(&p, 1, ms);
    if (r < 0 && errno != EINTR) {
      lost(std::strerror(errno));
      return false;
    }
    if (r <= 0) continue;
    uint8_t buf[proto::kMaxMessage];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      lost(n == 0 ? "closed by serve" : std::strerror(errno));
      return false;
    }
    proto::Header h;
    if (static_cast<size_t>(n) < sizeof h) continue;
    std::memcpy(&h, buf, sizeof h);
    if (h.type != static_cast<uint16_t>(want) || h.len != len ||
        static_cast<size_t>(n) != sizeof h + len)
      continue;  // not the reply waited for (a protocol mismatch): ignored
    std::memcpy(body, buf + sizeof h, len);
    return true;
  }
}

void ClientDevice::mmio_write32(uint64_t offset, uint32_t value) { mmio_write(offset, &value, 4); }

void ClientDevice::mmio_write(uint64_t offset, const void* data, size_t len) {
  proto::MmioWrite m{};
  m.offset = offset;
  m.len = static_cast<uint32_t>(std::min(len, sizeof m.data));
  std::memcpy(m.data, data, m.len);
  std::lock_guard<std::mutex> g(mu_);
  send_msg(proto::Msg::MMIO_WRITE, &m, offsetof(proto::MmioWrite, data) + m.len);
}

uint32_t ClientDevice::mmio_read32(uint64_t offset) {
  proto::MmioRead m{offset};
  proto::MmioValue v{~0u, 0};
  std::lock_guard<std::mutex> g(mu_);
  if (!send_msg(proto::Msg::MMIO_READ, &m, sizeof m) ||
      !recv_msg(proto::Msg::MMIO_VALUE, &v, sizeof v, 30'000'000'000ull))
    return ~0u;
  return v.value;
}

uint64_t ClientDevice::dma_alloc(size_t len, size_t align) {
  if (len == 0) return 0;
  align = std::max<size_t>(align, 64);
  const uint64_t need = (len + 63) & ~uint64_t(63);
  std::lock_guard<std::mutex> g(dma_mu_);
  for (auto it = dma_free_.begin(); it != dma_free_.end(); ++it) {
    const uint64_t base = reinterpret_cast<uint64_t>(dma_);
    uint64_t start = ((base + it->first + align - 1) & ~uint64_t(align - 1)) - base;
    uint64_t end = it->first + it->second;
    if (start + need > end) continue;
    uint64_t off = it->first, blen = it->second;
    dma_free_.erase(it);
    if (start > off) dma_free_[off] = start - off;
    if (start + need < off + blen) dma_free_[start + need] = off + blen - (start + need);
    std::memset(dma_ + start, 0, need);
    return proto::bus_address(slot_, base + start);
  }
  return 0;
}

void ClientDevice::dma_free(uint64_t bus_addr, size_t len) {
  if (!bus_addr || !len) return;
  const uint64_t base = reinterpret_cast<uint64_t>(dma_);
  uint64_t off = proto::va_of(bus_addr) - base;
  uint64_t need = (len + 63) & ~uint64_t(63);
  if (off >= kDmaBytes || need > kDmaBytes - off) return;
  std::lock_guard<std::mutex> g(dma_mu_);
  auto next = dma_free_.lower_bound(off);
  if (next != dma_free_.end() && next->first == off + need) {  // merge with the block after
    need += next->second;
    next = dma_free_.erase(next);
  }
  if (next != dma_free_.begin()) {  // and the one before
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      prev->second += need;
      return;
    }
  }
  dma_free_[off] = need;
}

void ClientDevice::mem_write(uint64_t addr, const void* src, size_t len) {
  std::memcpy(local(addr), src, len);
}

void ClientDevice::mem_read(uint64_t addr, void* dst, size_t len) {
  std::memcpy(dst, local(addr), len);
}

bool ClientDevice::pin_pages(uint64_t va, uint64_t len, std::vector<uint64_t>* pages) {
  pages->clear();
  if (len == 0 || va + len < va || (va + len) > proto::kVaMask) return false;
  // Each page must be mapped: process_vm_readv of one byte on ourselves says so without a fault.
  // (The kernel would pin them; the simulator reads them through the process when it DMAs.)
  for (uint64_t p = va & ~(kPage - 1); p < va + len; p += kPage) {
    uint8_t b;
    iovec l{&b, 1}, r{reinterpret_cast<void*>(p), 1};
    if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != 1) return false;
    pages->push_back(proto::bus_address(slot_, p));
  }
  return true;
}

bool ClientDevice::wait_device_write(uint64_t addr, size_t len, uint64_t timeout_ns) {
  std::vector<uint8_t> before(len);
  std::memcpy(before.data(), local(addr), len);
  const uint64_t end = wall_ns() + timeout_ns;
  for (unsigned spin = 0;; ++spin) {
    if (std::memcmp(before.data(), local(addr), len) != 0) return true;
    if (wall_ns() >= end || !connected_) return false;
    if (spin < 64)
      sched_yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

bool ClientDevice::wait_interrupt(uint64_t timeout_ns) {
  pollfd p{ev_fd_, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(std::min<uint64_t>(timeout_ns / 1'000'000, 1 << 30))) > 0;
}

int ClientDevice::command(const dev::CmdIn& in, dev::CmdOut* out, uint64_t timeout_ns) {
  proto::Command c{in};
  proto::CommandDone d{};
  std::lock_guard<std::mutex> g(mu_);
  if (!send_msg(proto::Msg::COMMAND, &c, sizeof c)) return EIO;
  if (!recv_msg(proto::Msg::COMMAND_DONE, &d, sizeof d, timeout_ns))
    return connected_ ? ETIMEDOUT : EIO;
  if (d.status != 0) return d.status;
  *out = d.out;
  return 0;
}

bool ClientDevice::next_event(dev::Eqe* e, uint64_t timeout_ns) {
  std::lock_guard<std::mutex> g(ev_mu_);
  const uint64_t end = wall_ns() + timeout_ns;
  for (;;) {
    pollfd p{ev_fd_, POLLIN, 0};
    const uint64_t now = wall_ns();
    int ms =
        now >= end ? 0 : static_cast<int>(std::min<uint64_t>((end - now) / 1'000'000 + 1, 1000));
    int r = poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (wall_ns() >= end) return false;
      continue;
    }
    uint8_t buf[proto::kMaxMessage];
    ssize_t n = recv(ev_fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      lost("event connection closed");
      return false;
    }
    proto::Header h;
    if (static_cast<size_t>(n) != sizeof h + sizeof(proto::Event)) continue;
    std::memcpy(&h, buf, sizeof h);
    if (h.type != static_cast<uint16_t>(proto::Msg::EVENT)) continue;
    proto::Event ev;
    std::memcpy(&ev, buf + sizeof h, sizeof ev);
    *e = ev.eqe;
    return true;
  }
}

}  // namespace rn::vdev
