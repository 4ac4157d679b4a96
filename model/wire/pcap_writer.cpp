#include "model/wire/pcap_writer.h"

#include <pcap/pcap.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace rn::wire {

struct PcapWriter::Impl {
  static constexpr size_t kChunk = size_t(1) << 20;  // bytes of records per hand-over
  static constexpr size_t kMaxQueued = 32;           // chunks the simulation may be ahead

  pcap_t* pcap = nullptr;
  pcap_dumper_t* dumper = nullptr;
  uint32_t snaplen = 0;
  std::vector<uint8_t> cur;  // records being filled: pcap_pkthdr, then caplen bytes

  std::mutex m;
  std::condition_variable cv;
  std::deque<std::vector<uint8_t>> full;  // handed over, not yet written
  std::vector<std::vector<uint8_t>> spare;
  size_t busy = 0;      // chunks handed over and not yet written (queued or being written)
  int write_errno = 0;  // errno of the first failed write of the writer thread, 0 if none
  bool stop = false;
  std::thread thread;

  ~Impl() {
    {
      std::lock_guard<std::mutex> l(m);
      stop = true;
    }
    cv.notify_all();
    if (thread.joinable()) thread.join();
    if (dumper != nullptr) pcap_dump_close(dumper);  // also closes the FILE
    if (pcap != nullptr) pcap_close(pcap);
  }

  void hand_over() {
    if (cur.empty()) return;
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [this] { return full.size() < kMaxQueued; });
    full.push_back(std::move(cur));
    ++busy;
    if (spare.empty()) {
      cur = std::vector<uint8_t>();
      cur.reserve(kChunk);
    } else {
      cur = std::move(spare.back());
      spare.pop_back();
    }
    l.unlock();
    cv.notify_all();
  }

  void run() {
    std::unique_lock<std::mutex> l(m);
    for (;;) {
      cv.wait(l, [this] { return stop || !full.empty(); });
      if (full.empty()) return;  // stop, and everything written
      std::vector<uint8_t> chunk = std::move(full.front());
      full.pop_front();
      l.unlock();
      for (size_t off = 0; off < chunk.size();) {
        pcap_pkthdr h;
        std::memcpy(&h, chunk.data() + off, sizeof h);
        off += sizeof h;
        pcap_dump(reinterpret_cast<u_char*>(dumper), &h, chunk.data() + off);
        off += h.caplen;
      }
      if (write_errno == 0 && std::ferror(pcap_dump_file(dumper)))
        write_errno = errno != 0 ? errno : EIO;
      chunk.clear();
      l.lock();
      spare.push_back(std::move(chunk));
      --busy;
      cv.notify_all();
    }
  }

  void flush() {
    hand_over();
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [this] { return busy == 0; });
    pcap_dump_flush(dumper);  // the writer thread is idle: nothing left to write
  }
};

PcapWriter::PcapWriter() = default;
PcapWriter::~PcapWriter() { close(); }
PcapWriter::PcapWriter(PcapWriter&& o) noexcept
    : impl_(std::move(o.impl_)), packets_(std::exchange(o.packets_, 0)) {}

PcapWriter& PcapWriter::operator=(PcapWriter&& o) noexcept {
  if (this != &o) {
    close();
    impl_ = std::move(o.impl_);
    packets_ = std::exchange(o.packets_, 0);
  }
  return *this;
}

bool PcapWriter::open(const std::string& path, uint32_t snaplen, std::string* err) {
  close();
  if (snaplen == 0) snaplen = 65535;
  auto impl = std::make_unique<Impl>();
  impl->pcap = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, static_cast<int>(snaplen),
                                                    PCAP_TSTAMP_PRECISION_NANO);
  if (impl->pcap == nullptr) {
    if (err) *err = "pcap_open_dead_with_tstamp_precision failed";
    return false;
  }
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    if (err) *err = std::string("fopen(") + path + "): " + std::strerror(errno);
    return false;
  }
  std::setvbuf(f, nullptr, _IOFBF, size_t(1) << 20);  // fewer, larger write system calls
  impl->dumper = pcap_dump_fopen(impl->pcap, f);
  if (impl->dumper == nullptr) {
    if (err) *err = std::string("pcap_dump_fopen(") + path + "): " + pcap_geterr(impl->pcap);
    std::fclose(f);
    return false;
  }
  impl->snaplen = snaplen;
  impl->cur.reserve(Impl::kChunk);
  Impl* p = impl.get();
  impl->thread = std::thread([p] { p->run(); });
  impl_ = std::move(impl);
  packets_ = 0;
  return true;
}

void PcapWriter::write(uint64_t time_ps, const uint8_t* frame, size_t len) {
  if (impl_ == nullptr) return;
  const uint64_t ns = time_ps / 1000;
  pcap_pkthdr h{};
  h.ts.tv_sec = static_cast<time_t>(ns / 1000000000ull);
  // With PCAP_TSTAMP_PRECISION_NANO the "usec" field carries nanoseconds.
  h.ts.tv_usec = static_cast<suseconds_t>(ns % 1000000000ull);
  h.len = static_cast<bpf_u_int32>(len);
  h.caplen = static_cast<bpf_u_int32>(len < impl_->snaplen ? len : impl_->snaplen);
  std::vector<uint8_t>& c = impl_->cur;
  if (c.size() + sizeof h + h.caplen > Impl::kChunk) impl_->hand_over();
  const auto* hb = reinterpret_cast<const uint8_t*>(&h);
  c.insert(c.end(), hb, hb + sizeof h);
  c.insert(c.end(), frame, frame + h.caplen);
  ++packets_;
}

void PcapWriter::flush() {
  if (impl_ != nullptr) impl_->flush();
}

bool PcapWriter::close(std::string* err) {
  if (impl_ == nullptr) return true;
  impl_->hand_over();
  {
    std::unique_lock<std::mutex> l(impl_->m);
    impl_->cv.wait(l, [this] { return impl_->busy == 0; });  // the writer thread wrote all
  }
  FILE* f = pcap_dump_file(impl_->dumper);
  errno = 0;
  const bool flushed = std::fflush(f) == 0;
  const int e = !flushed && errno != 0 ? errno : impl_->write_errno;
  const bool ok = flushed && !std::ferror(f);
  if (!ok && err) *err = std::strerror(e != 0 ? e : EIO);
  impl_.reset();  // stops the writer thread, closes the file
  return ok;
}

}  // namespace rn::wire
