// Wcn6855: a synthetic Qualcomm WCN6855 (Wi-Fi 6E, Linux ath11k) whose
// firmware runs on its own ARM core and raises interrupts by DMA-writing the
// MSI address/data pairs the driver copied into BAR0 (mission seed 000: the
// device behaviour that breaks under vfio-pci, where the copied pair is the
// guest's virtualized one).
//
// Contract: devices/wcn6855_regs.h (shared with the firmware and the guest
// driver). In short:
//   PCI: 17cb:1103, class 0x028000, revision 0x01, no INTx (pin 0), MSI
//   capability at 0x50 (32-bit address, multiple message capable 32
//   vectors, no per-vector masking; PCI 3.0 6.8.1), BAR0 = 2 MiB 64-bit
//   non-prefetchable memory (PCI 3.0 6.2.5.1).
//   BAR0: control block at 0x0000 (mailbox: DOORBELL, CMD_ARG, STATE,
//   EVENTS, RESPONSE, IRQ_STATUS, scratch) and the 256 KiB "PCI window" at
//   0x80000 holding each interrupt source's MSI address/data at the offsets
//   seen on the real device (ath11k's pci window, e.g. 0x80048).
//
// Behaviour:
//   * A DOORBELL write (non-zero) latches the command and CMD_ARG in the
//     firmware-only FW_CMD/FW_ARG registers and schedules a firmware run
//     Options::doorbell_latency ticks later (EventPriority::
//     kDeviceCompletion). A doorbell while the previous command is still
//     latched overwrites it (counted, traced DEVICE).
//   * A firmware run executes the FirmwareCpu (emu/cpu/fw_cpu.h) until WFI, in
//     zero virtual time: the firmware's instructions do not advance the
//     clock, only the doorbell latency and its WCN_OB_SLEEP timer do. A run
//     that does not reach WFI within Options::run_budget instructions stops
//     the firmware ("hung"); a fault stops it ("crashed"). Both are traced
//     (DEVICE) and leave the device passive: doorbells are latched but not
//     serviced, except a WCN_CMD_RESET doorbell, which resets the core (a
//     fresh boot from the reset vector) before it is serviced.
//   * The firmware emits memory writes through the outbound engine: GO =>
//     PciFunction::DmaWrite(ADDR, DATA as 4 little-endian bytes) with the
//     device's requester id. An MSI-window address becomes an MSI at the
//     root complex (or the IOMMU); anything else is a DMA write into memory
//     (address 0 included) or a master abort. Bus Master Enable off drops it
//     (PCI_BLOCKED, traced by the PCI layer). A GO tagged with OB_SOURCE is
//     a fired interrupt source: traced (DEVICE, addr/data = the write) and
//     counted per source before it goes upstream.
//   * The device never sends MSI itself (SignalMsi): the MSI capability is
//     only where the driver reads the pair it copies into the window.
//
// Register access sizes (both the driver's BAR0 view and the firmware's):
//   window: byte-addressable little-endian storage, accesses of 1, 2, 4, 8
//     bytes at any alignment (hardware RAM); an access straddling the
//     window's end reads 0 / is ignored.
//   control block: 4-byte accesses at 4-byte offsets; an 8-byte access acts
//     as two 4-byte ones (low first). 1- and 2-byte reads return those bytes
//     of the register (reads have no side effects); sub-dword or unaligned
//     writes are ignored. Reserved offsets (and the rest of BAR0) read 0
//     and ignore writes.
//
// Not modelled: the real MHI/CE/HTT/WMI protocols, rings and DMA data path
// (the commands are a minimal mailbox), MSI-X, power management and PCIe
// capabilities, function level reset (a machine reset is a new device), the
// firmware's own interrupts (the core polls after WFI).
//
// Example:
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Wcn6855> wcn,
//                    Wcn6855::Create(&events, Wcn6855::Options{}));
//   RETURN_IF_ERROR(host.AddFunction(5, 0, wcn.get()));
#ifndef IRQLAB_DEVICES_WCN6855_H_
#define IRQLAB_DEVICES_WCN6855_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "devices/wcn6855_regs.h"
#include "emu/core/event_queue.h"
#include "emu/cpu/fw_cpu.h"
#include "emu/core/io.h"
#include "pci/pci_function.h"

namespace irqlab {

class Wcn6855 : public PciFunction, public IoHandler {
 public:
  static constexpr uint16_t kMsiCapOffset = WCN_MSI_CAP_OFFSET;
  static constexpr uint64_t kBar0Size = WCN_BAR0_SIZE;
  static constexpr unsigned kNumSources = WCN_NUM_SOURCES;
  static constexpr uint32_t kSourceOffsets[kNumSources] = WCN_SOURCE_OFFSETS;

  struct Options {
    // Virtual ticks from a doorbell write to the firmware run serving it.
    uint64_t doorbell_latency = 1000;
    // Instructions a firmware run may execute before it must reach WFI.
    uint64_t run_budget = 1'000'000;
    // Firmware ROM image; empty = the built-in one (wcn6855_firmware.h).
    // Copied at creation.
    absl::Span<const uint8_t> firmware;
  };

  // "mhi", "ce0".."ce7", "dp0".."dp3"; "?" out of range.
  static std::string_view SourceName(unsigned source);

  // `events` (not owned, outlives the device) runs the firmware.
  // InvalidArgument for an unusable image, Internal if the core cannot be
  // set up.
  static absl::StatusOr<std::unique_ptr<Wcn6855>> Create(EventQueue* events,
                                                         const Options& options);
  ~Wcn6855() override;

  // BAR0, driver view.
  uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  // Host-side views (tests, statistics).
  uint32_t state() const { return state_; }
  uint32_t events_fired() const { return events_; }
  uint32_t response() const { return response_; }
  uint32_t irq_status() const { return irq_status_; }
  const FirmwareCpu& firmware() const { return *cpu_; }
  // The firmware stopped for good (budget exhausted without WFI / fault)
  // until a RESET doorbell.
  bool firmware_hung() const { return hung_; }
  bool firmware_crashed() const {
    return cpu_->state() == FirmwareCpu::State::kCrashed;
  }

  // Counters since creation.
  uint64_t firmware_runs() const { return firmware_runs_; }
  uint64_t firmware_instructions() const { return cpu_->instructions(); }
  uint64_t fired(unsigned source) const {
    return source < kNumSources ? fired_[source] : 0;
  }
  uint64_t outbound_writes() const { return outbound_writes_; }
  uint64_t doorbells() const { return doorbells_; }
  uint64_t doorbells_overwritten() const { return doorbells_overwritten_; }

 private:
  // Which side accesses the register file.
  enum class View { kDriver, kFirmware };

  // The firmware's window on the register file (WCN_FW_DEVREGS).
  class FirmwareRegs : public IoHandler {
   public:
    explicit FirmwareRegs(Wcn6855* device) : device_(device) {}
    uint64_t Read(const AccessOrigin&, uint64_t offset, unsigned size) override {
      return device_->RegRead(View::kFirmware, offset, size);
    }
    void Write(const AccessOrigin&, uint64_t offset, unsigned size,
               uint64_t value) override {
      device_->RegWrite(View::kFirmware, offset, size, value);
    }

   private:
    Wcn6855* device_;
  };
  // The outbound write engine (WCN_FW_OUTBOUND).
  class Outbound : public IoHandler {
   public:
    explicit Outbound(Wcn6855* device) : device_(device) {}
    uint64_t Read(const AccessOrigin&, uint64_t offset, unsigned size) override;
    void Write(const AccessOrigin&, uint64_t offset, unsigned size,
               uint64_t value) override;

   private:
    Wcn6855* device_;
  };

  Wcn6855(EventQueue* events, const Options& options);

  uint64_t RegRead(View view, uint64_t offset, unsigned size);
  void RegWrite(View view, uint64_t offset, unsigned size, uint64_t value);
  uint32_t ControlRead(View view, uint32_t offset) const;
  void ControlWrite(View view, uint32_t offset, uint32_t value);
  void RingDoorbell(uint32_t value);
  // Event callbacks: a doorbell / the firmware's sleep timer wakes it.
  void RunFirmware();
  void EmitOutbound();
  uint64_t CurrentTime() const;

  // Static configuration / runtime glue.
  EventQueue* const events_queue_;
  const Options options_;
  FirmwareRegs fw_regs_{this};
  Outbound outbound_{this};
  std::unique_ptr<FirmwareCpu> cpu_;

  // Volatile state: registers.
  std::vector<uint8_t> window_;  // WCN_WINDOW_SIZE bytes
  std::array<uint32_t, 64> scratch_{};
  uint32_t cmd_arg_ = 0;
  uint32_t state_ = WCN_STATE_RESET;
  uint32_t events_ = 0;
  uint32_t response_ = 0;
  uint32_t irq_status_ = 0;
  uint32_t fw_cmd_ = 0;
  uint32_t fw_arg_ = 0;
  // Outbound engine.
  uint32_t ob_addr_lo_ = 0, ob_addr_hi_ = 0, ob_data_ = 0;
  uint32_t ob_source_ = WCN_OB_SOURCE_NONE;
  std::optional<uint32_t> sleep_request_;  // OB_SLEEP written in this run
  // Firmware scheduling.
  bool hung_ = false;
  EventId doorbell_event_ = EventQueue::kInvalidEventId;
  EventId timer_event_ = EventQueue::kInvalidEventId;

  // Counters.
  uint64_t firmware_runs_ = 0;
  std::array<uint64_t, kNumSources> fired_{};
  uint64_t outbound_writes_ = 0;
  uint64_t doorbells_ = 0;
  uint64_t doorbells_overwritten_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_DEVICES_WCN6855_H_
