// Edu: QEMU's educational PCI device "edu" (QEMU docs/specs/edu.rst,
// hw/misc/edu.c), register-compatible so guest code written for QEMU's edu
// runs unmodified.
//
// PCI: 1234:11E8, revision 0x10, class 0x00FF00, subsystem 1AF4:1100, INTA#,
// BAR0 = 1 MiB 32-bit non-prefetchable MMIO, one MSI capability at 0x40
// (1 vector, 64-bit address, no per-vector masking), like QEMU's msi_init(pdev,
// 0, 1, true, false).
//
// BAR0 registers (accesses of 4 bytes, and 8 bytes at 0x80 and above; other
// sizes read all-ones and writes are ignored, as QEMU's edu_mmio_read/write):
//   0x00 RO  identification 0x010000ED
//   0x04 RW  liveness: reads the bitwise inverse of the last value written
//   0x08 RW  factorial: write n (ignored while computing) -> status bit 0 set;
//            after Options::factorial_delay ticks of virtual time it holds
//            n! mod 2^32 and bit 0 clears (reading during the computation
//            returns n); if status bit 7 is set, interrupt 0x01 is raised
//   0x20 RW  status: bit 0 computing (RO), bit 7 raise interrupt after
//            factorial (RW)
//   0x24 RO  interrupt status
//   0x60 WO  interrupt raise: ORs the value into the interrupt status and
//            signals (MSI vector 0 if MSI is enabled, else INTx asserted)
//   0x64 WO  interrupt acknowledge: clears the bits; INTx deasserts when the
//            status becomes 0 (INTx mode)
//   0x80 RW  DMA source address        (64-bit; a 4-byte write zero-extends)
//   0x88 RW  DMA destination address
//   0x90 RW  DMA transfer count
//   0x98 RW  DMA command: bit 0 start/busy, bit 1 direction (0 RAM -> device
//            buffer, 1 buffer -> RAM), bit 2 raise interrupt 0x100 when done.
//            Writes without bit 0, and writes of 0x80-0x98 while a transfer
//            runs, are ignored. Unknown offsets read all-ones.
// The device's 4 KiB DMA buffer is at device address 0x40000 (it is reachable
// only through DMA, as in QEMU). A transfer completes Options::dma_delay
// ticks after it is started (QEMU: 100 ms of virtual time).
//
// Guest mistakes, as QEMU handles them but never fatal here: RAM addresses
// are clamped to the DMA mask (28 bits, QEMU's default dma_mask property); a
// buffer range outside [0x40000, 0x41000) (or overflowing) transfers nothing
// (QEMU edu_check_range fails) but the command still completes (bit 0 clears,
// interrupt 0x100 if requested) and the event is traced (DMA stage); a DMA
// without Bus Master Enable is dropped by the PCI layer (PCI_BLOCKED) and
// also completes.
//
// Interrupt model (QEMU edu_raise_irq/edu_lower_irq): every raise while the
// status is non-zero signals once more (MSI) or keeps INTx asserted; an ack
// only affects INTx.
#ifndef IRQLAB_DEVICES_EDU_H_
#define IRQLAB_DEVICES_EDU_H_

#include <array>
#include <cstdint>

#include "absl/types/span.h"
#include "emu/core/event_queue.h"
#include "emu/core/io.h"
#include "pci/pci_function.h"

namespace irqlab {

class Edu : public PciFunction, public IoHandler {
 public:
  static constexpr uint16_t kVendorId = 0x1234;
  static constexpr uint16_t kDeviceId = 0x11E8;
  static constexpr uint64_t kBar0Size = 1 << 20;
  static constexpr uint16_t kMsiCapOffset = 0x40;

  // Registers.
  static constexpr uint64_t kRegId = 0x00;
  static constexpr uint64_t kRegLiveness = 0x04;
  static constexpr uint64_t kRegFactorial = 0x08;
  static constexpr uint64_t kRegStatus = 0x20;
  static constexpr uint64_t kRegIrqStatus = 0x24;
  static constexpr uint64_t kRegIrqRaise = 0x60;
  static constexpr uint64_t kRegIrqAck = 0x64;
  static constexpr uint64_t kRegDmaSrc = 0x80;
  static constexpr uint64_t kRegDmaDst = 0x88;
  static constexpr uint64_t kRegDmaCount = 0x90;
  static constexpr uint64_t kRegDmaCmd = 0x98;

  static constexpr uint32_t kId = 0x010000ED;
  static constexpr uint32_t kStatusComputing = 0x01;
  static constexpr uint32_t kStatusIrqFact = 0x80;
  static constexpr uint32_t kFactIrq = 0x001;
  static constexpr uint32_t kDmaIrq = 0x100;
  static constexpr uint64_t kDmaRun = 0x1;
  static constexpr uint64_t kDmaToRam = 0x2;  // direction bit: buffer -> RAM
  static constexpr uint64_t kDmaIrqOnDone = 0x4;
  static constexpr uint64_t kDmaBufferAddress = 0x40000;
  static constexpr uint64_t kDmaBufferSize = 4096;

  struct Options {
    // Virtual ticks from the factorial write until the result is ready.
    uint64_t factorial_delay = 1000;
    // Virtual ticks from the DMA start until the transfer completes.
    uint64_t dma_delay = 10000;
    // RAM addresses are ANDed with this (QEMU edu "dma_mask", 28 bits).
    uint64_t dma_mask = (uint64_t{1} << 28) - 1;
  };

  // `events` (not owned, outlives the device) runs the delayed completions
  // with EventPriority::kDeviceCompletion.
  explicit Edu(EventQueue* events, const Options& options);
  explicit Edu(EventQueue* events) : Edu(events, Options{}) {}
  ~Edu() override;

  // BAR0.
  uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  // Host-side views (tests).
  absl::Span<const uint8_t> dma_buffer() const { return dma_buffer_; }
  absl::Span<uint8_t> mutable_dma_buffer() { return absl::MakeSpan(dma_buffer_); }
  uint32_t irq_status() const { return irq_status_; }
  uint32_t status() const { return status_; }

 private:
  void RaiseIrq(uint32_t bits);
  void LowerIrq(uint32_t bits);
  void FinishFactorial();
  void FinishDma();
  uint64_t Deadline(uint64_t delay) const;

  // Static configuration / runtime glue.
  EventQueue* const events_;
  const Options options_;

  // Volatile state (QEMU EduState).
  uint32_t liveness_ = 0;  // stored inverted, as QEMU's addr4
  uint32_t fact_ = 0;
  uint32_t status_ = 0;
  uint32_t irq_status_ = 0;
  uint64_t dma_src_ = 0, dma_dst_ = 0, dma_count_ = 0, dma_cmd_ = 0;
  std::array<uint8_t, kDmaBufferSize> dma_buffer_{};
  EventId fact_event_ = EventQueue::kInvalidEventId;
  EventId dma_event_ = EventQueue::kInvalidEventId;
};

}  // namespace irqlab

#endif  // IRQLAB_DEVICES_EDU_H_
