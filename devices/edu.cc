#include "devices/edu.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace irqlab {

namespace {

// n! mod 2^32 as QEMU's 32-bit loop computes it. 34! has 32 factors of two,
// so every n >= 34 gives 0 (and we never loop 2^32 times on the host).
uint32_t Factorial32(uint32_t n) {
  if (n >= 34) return 0;
  uint32_t r = 1;
  while (n > 0) r *= n--;
  return r;
}

PciFunction::Identity EduIdentity() {
  return PciFunction::Identity{.vendor_id = Edu::kVendorId,
                               .device_id = Edu::kDeviceId,
                               .class_code = 0x00FF00,
                               .revision = 0x10,
                               .subsystem_vendor_id = 0x1AF4,
                               .subsystem_id = 0x1100,
                               .interrupt_pin = 1};
}

}  // namespace

Edu::Edu(EventQueue* events, const Options& options)
    : PciFunction("edu", EduIdentity()), events_(events), options_(options) {
  // Fixed layout: these cannot fail.
  (void)AddBar(0, BarSpec{.type = BarType::kMemory32, .size = kBar0Size,
                          .prefetchable = false, .handler = this});
  (void)AddMsiCapability(MsiCapability::Options{.vectors = 1,
                                                .address64 = true,
                                                .per_vector_mask = false},
                         kMsiCapOffset);
}

Edu::~Edu() {
  if (events_ == nullptr) return;
  events_->Cancel(fact_event_);
  events_->Cancel(dma_event_);
}

uint64_t Edu::Deadline(uint64_t delay) const {
  return std::max(Now(), events_->now()) + delay;
}

uint64_t Edu::Read(const AccessOrigin&, uint64_t offset, unsigned size) {
  // QEMU edu_mmio_read(): 4 bytes below 0x80, 4 or 8 from 0x80.
  const uint64_t ones = AllOnes(size);
  if (offset < 0x80 && size != 4) return ones;
  if (offset >= 0x80 && size != 4 && size != 8) return ones;
  uint64_t v = ~uint64_t{0};
  switch (offset) {
    case kRegId:
      v = kId;
      break;
    case kRegLiveness:
      v = liveness_;
      break;
    case kRegFactorial:
      v = fact_;
      break;
    case kRegStatus:
      v = status_;
      break;
    case kRegIrqStatus:
      v = irq_status_;
      break;
    case kRegDmaSrc:
      v = dma_src_;
      break;
    case kRegDmaDst:
      v = dma_dst_;
      break;
    case kRegDmaCount:
      v = dma_count_;
      break;
    case kRegDmaCmd:
      v = dma_cmd_;
      break;
    default:
      break;
  }
  return v & ones;
}

void Edu::Write(const AccessOrigin&, uint64_t offset, unsigned size,
                uint64_t value) {
  if (offset < 0x80 && size != 4) return;
  if (offset >= 0x80 && size != 4 && size != 8) return;
  value &= AllOnes(size);
  const bool dma_busy = dma_cmd_ & kDmaRun;
  switch (offset) {
    case kRegLiveness:
      liveness_ = ~static_cast<uint32_t>(value);
      break;
    case kRegFactorial:
      if (status_ & kStatusComputing) break;
      fact_ = static_cast<uint32_t>(value);
      status_ |= kStatusComputing;
      fact_event_ = events_->Schedule(Deadline(options_.factorial_delay),
                                      EventPriority::kDeviceCompletion,
                                      "edu: factorial done",
                                      [this] { FinishFactorial(); });
      break;
    case kRegStatus:
      status_ = (value & kStatusIrqFact) ? (status_ | kStatusIrqFact)
                                         : (status_ & ~kStatusIrqFact);
      break;
    case kRegIrqRaise:
      RaiseIrq(static_cast<uint32_t>(value));
      break;
    case kRegIrqAck:
      LowerIrq(static_cast<uint32_t>(value));
      break;
    case kRegDmaSrc:
      if (!dma_busy) dma_src_ = value;
      break;
    case kRegDmaDst:
      if (!dma_busy) dma_dst_ = value;
      break;
    case kRegDmaCount:
      if (!dma_busy) dma_count_ = value;
      break;
    case kRegDmaCmd:
      if (!(value & kDmaRun) || dma_busy) break;
      dma_cmd_ = value;
      dma_event_ = events_->Schedule(Deadline(options_.dma_delay),
                                     EventPriority::kDeviceCompletion,
                                     "edu: dma done", [this] { FinishDma(); });
      break;
    default:
      break;
  }
}

void Edu::RaiseIrq(uint32_t bits) {
  irq_status_ |= bits;
  if (irq_status_ == 0) return;
  if (msi_enabled()) {
    // A masked or blocked MSI is the capability's business (pending bit,
    // PCI_BLOCKED trace); the device model has nothing to do about it.
    static_cast<void>(SignalMsi(0));
  } else {
    SetIntxLevel(true);
  }
}

void Edu::LowerIrq(uint32_t bits) {
  irq_status_ &= ~bits;
  if (irq_status_ == 0 && !msi_enabled()) SetIntxLevel(false);
}

void Edu::FinishFactorial() {
  fact_event_ = EventQueue::kInvalidEventId;
  fact_ = Factorial32(fact_);
  status_ &= ~kStatusComputing;
  if (status_ & kStatusIrqFact) RaiseIrq(kFactIrq);
}

void Edu::FinishDma() {
  dma_event_ = EventQueue::kInvalidEventId;
  if (!(dma_cmd_ & kDmaRun)) return;
  const bool to_ram = dma_cmd_ & kDmaToRam;
  // The buffer side must lie in [0x40000, 0x41000) (QEMU edu_check_range).
  const uint64_t buf = to_ram ? dma_src_ : dma_dst_;
  const uint64_t buf_end = buf + dma_count_;
  const bool in_range = buf_end >= buf && buf >= kDmaBufferAddress &&
                        buf_end <= kDmaBufferAddress + kDmaBufferSize;
  if (!in_range) {
    Trace(trace::DMA,
          absl::StrFormat("edu: DMA buffer range [0x%x, +0x%x) outside "
                          "[0x40000, 0x41000): nothing transferred",
                          buf, dma_count_),
          -1, buf, dma_count_);
  } else if (dma_count_ != 0) {
    const uint64_t at = buf - kDmaBufferAddress;
    absl::Span<uint8_t> window = absl::MakeSpan(dma_buffer_).subspan(at, dma_count_);
    if (to_ram) {
      (void)DmaWrite(dma_dst_ & options_.dma_mask, window);
    } else {
      (void)DmaRead(dma_src_ & options_.dma_mask, window);
    }
    // Failures (bus master off, master abort) are traced by the PCI layer.
  }
  dma_cmd_ &= ~kDmaRun;
  if (dma_cmd_ & kDmaIrqOnDone) RaiseIrq(kDmaIrq);
}

}  // namespace irqlab
