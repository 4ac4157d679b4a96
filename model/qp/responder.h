// The RC responder: takes the request packets the receive demultiplexer hands it, checks the PSN
// and the opcode sequence, consumes receive WQEs (prefetched by DMA), checks rkeys and places
// WRITE data through the translation stage, scatters SEND data into receive buffers, writes
// receive completions, and sends ACKs (for AckReq packets) and NAKs through the transmit port.
// When a SEND needs a receive WQE that is posted but not yet fetched, the request pipeline stalls
// (head of line) until the fetch completes; responses and ACKs for the requester do not wait.
#pragma once
#include <vector>

#include "bridge/pcie/pcie_bridge.h"
#include "model/qp/completion.h"
#include "model/qp/qp_table.h"
#include "model/qp/rx_buffer.h"
#include "model/qp/tx_port.h"
#include "model/translation/mr_table.h"
#include "model/wire/transport.h"

namespace rn::qp {

// A received packet, parsed: its frame, its transport header, and where its payload is.
struct RxPacket {
  net::Frame* f = nullptr;
  wire::TransportHeader h;
  uint32_t payload_off = 0;  // in f->data
  uint32_t plen = 0;         // payload bytes (without pad)
};

class Responder {
 public:
  Responder(const NicEnv& env, QpTable& t, pcie::DmaPort& dma, xlate::MrTable& mrs, TxPort& port,
            Completion& comp, RxBuffer& rxbuf, net::FramePool& pool);
  ~Responder();
  void bind(QpLife& life) { life_ = &life; }
  // A request packet (SEND, WRITE, READ, atomic) for QP p.h.dest_qp: processed now, or queued
  // behind a stall. The responder owns the frame from here.
  void on_request(const RxPacket& p);
  void rq_doorbell(QpCtx& q, uint32_t new_pi);
  // The QP entered ERR: flush the receive WQEs.
  void flush(QpCtx& q);
  // The QP went back to RESET.
  void reset(QpCtx& q);

 private:
  // What became of a packet: done (its frame is free), lent to a DMA write (the frame returns to
  // the pool when the write has landed), or stalled (kept, to be processed again).
  enum class Outcome { kDone, kLent, kStall, kGo };  // kGo: checks passed, go on
  // The request pipeline: flowing, or stalled behind a receive WQE fetch.
  enum class Pipe : uint8_t { kFlowing, kStalled };
  Outcome process(const RxPacket& p);
  Outcome check_psn(QpCtx& q, const RxPacket& p);
  Outcome send_packet(QpCtx& q, const RxPacket& p, xlate::SegList& segs, Tick when);
  Outcome write_packet(QpCtx& q, const RxPacket& p, xlate::SegList& segs);
  Outcome accept(QpCtx& q, const RxPacket& p, const xlate::SegList& segs, Tick when);
  void finish(const RxPacket& p, Outcome o);
  void resume();
  void maybe_fetch(QpCtx& q);
  void send_ack(QpCtx& q, uint8_t syndrome, uint32_t psn);
  // Refuses the packet with a NAK and moves the QP to ERR.
  Outcome fail(QpCtx& q, uint8_t nak_syndrome, uint32_t psn, const char* why);
  void recv_complete(QpCtx& q, dev::WcStatus st, uint32_t byte_len, dev::WcOpcode op, bool imm,
                     uint32_t imm_data, bool solicited, Tick when);
  void continue_flush(QpCtx& q);
  Tick now() const { return env_.now(); }

  const NicEnv& env_;
  QpTable& t_;
  pcie::DmaPort& dma_;
  xlate::MrTable& mrs_;
  TxPort& port_;
  Completion& comp_;
  RxBuffer& rxbuf_;
  net::FramePool& pool_;
  QpLife* life_ = nullptr;
  Pipe pipe_ = Pipe::kFlowing;
  std::vector<RxPacket> pending_;  // packets waiting behind a stall, in arrival order
  size_t pending_head_ = 0;

  stats::Group stats_;
  uint64_t& drop_qp_gone_;
  uint64_t& drop_state_;
  uint64_t& duplicates_;
  uint64_t& seq_naks_;
  uint64_t& naks_sent_;
  uint64_t& rnr_naks_;
  uint64_t& acks_sent_;
  uint64_t& placed_bytes_;
  uint64_t& messages_;
  uint64_t& stalls_;
  uint64_t& rwqe_fetches_;
  uint64_t& flushed_;
  uint64_t& unsupported_ops_;
};

}  // namespace rn::qp
