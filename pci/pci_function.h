// PciFunction: one PCI function with a type-0 configuration header (PCI Local
// Bus Specification 3.0, chapter 6), the base class of every PCI device model.
//
// What the base class does, so device models don't:
//   * Header registers with their access masks (see ConfigSpace): identity
//     (RO), Command (6.2.2: I/O space, memory space, bus master, parity, SERR,
//     INTx disable writable), Status (6.2.3: Interrupt Status bit 3 and
//     Capabilities List bit 4 read-only, error bits 15:11 and 8 RW1C),
//     cache line size / latency timer (RW), Interrupt Line (RW), Interrupt Pin
//     (RO). Expansion ROM not implemented (reads 0).
//   * BARs (6.2.5.1): 32-bit memory, 64-bit memory (two registers),
//     prefetchable, I/O. Sizing falls out of the writable masks: writing
//     all-ones reads back ~(size-1) | type bits.
//   * BAR decode: while Command.Memory (I/O) is set and the BAR holds a usable
//     address, the BAR's range is mapped in the memory (port) AddressSpace;
//     BAR and Command writes remap/unmap (PCI 3.0 6.2.5.1 "Decode"). A BAR is
//     not decoded when its address is 0, when a 32-bit BAR's range reaches
//     0xFFFFFFFF (the value it holds while being sized — QEMU's
//     pci_bar_address() rule), or when the range leaves the space. A range
//     that overlaps another mapping is a guest mistake, not a host error: the
//     BAR just does not decode, PCI_BAR traces the conflict, and the mapping
//     is retried after later config writes (PciHost retries every function,
//     so moving the other BAR away resolves it).
//   * Capability list (6.7): capabilities are allocated dword-aligned from
//     0x40 and chained through the Capabilities Pointer (0x34).
//   * INTx (6.2.3/6.2.2, 6.8.1/6.8.2): the device model sets its interrupt
//     level with SetIntxLevel(); Status.Interrupt always shows it; the INTx
//     line is asserted only when the level is high, Command.InterruptDisable
//     is clear and neither MSI nor MSI-X is enabled ("while MSI/MSI-X is
//     enabled the function is prohibited from using INTx", 6.8.1/6.8.2).
//   * Bus mastering (6.2.2 bit 2; PCIe 7.5.1.1.3): DMA and MSI/MSI-X
//     messages go upstream through the DmaSink tagged with the requester id,
//     only while Bus Master Enable is set; otherwise they are dropped and
//     traced (PCI_BLOCKED). A DMA that master-aborts sets Status bit 13.
//     Masking is checked before bus mastering: a masked vector still latches
//     its pending bit; a pending message released (unmask) while Bus Master
//     is off is dropped (traced) and its pending bit cleared.
//
// Life cycle: construct (the subclass calls AddBar / AddMsiCapability /
// AddMsixCapability in its constructor), then PciHost::AddFunction() attaches
// the function to the bus (address spaces, DmaSink, tracer, requester id,
// INTx wiring). Before attachment, DMA and MSI fail (kBlocked) and BARs are
// never mapped.
//
// BAR accesses: each BAR is mapped with an internal window handler that sends
// MSI-X table/PBA offsets to the MsixCapability and everything else to the
// BAR's IoHandler (reads 0 / writes ignored when the BAR has none).
//
// Thread-compatible (the machine runs on one host thread).
#ifndef IRQLAB_PCI_PCI_FUNCTION_H_
#define IRQLAB_PCI_PCI_FUNCTION_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "emu/core/address_space.h"
#include "emu/core/clock.h"
#include "emu/core/io.h"
#include "emu/core/irq_line.h"
#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "pci/config_space.h"
#include "pci/msi_capability.h"
#include "pci/msix_capability.h"
#include "pci/pci_capability.h"
#include "pci/pci_regs.h"
#include "pci/root_complex.h"

namespace irqlab {

enum class BarType { kMemory32, kMemory64, kIo };

struct BarSpec {
  BarType type = BarType::kMemory32;
  // Power of two; memory >= 16 bytes, I/O 4..256 bytes (PCI 3.0 6.2.5.1).
  uint64_t size = 0;
  bool prefetchable = false;  // memory BARs only
  // Register block behind the BAR (not owned; may be null when the BAR only
  // holds an MSI-X table/PBA). Offsets are relative to the BAR base.
  IoHandler* handler = nullptr;
};

// Everything the bus gives a function when it is attached. Pointers are not
// owned; null ones disable the corresponding feature (no memory space: BARs
// never decode; no DmaSink: DMA/MSI fail).
struct PciBusContext {
  AddressSpace* memory = nullptr;
  AddressSpace* io = nullptr;
  DmaSink* dma = nullptr;
  Tracer* tracer = nullptr;
  const Clock* clock = nullptr;
};

class PciFunction {
 public:
  struct Identity {
    uint16_t vendor_id = 0xFFFF;
    uint16_t device_id = 0xFFFF;
    uint32_t class_code = 0;  // base << 16 | sub << 8 | prog-if
    uint8_t revision = 0;
    uint16_t subsystem_vendor_id = 0;
    uint16_t subsystem_id = 0;
    uint8_t interrupt_pin = 0;  // 0 none, 1..4 = INTA#..INTD#
  };

  // `name` labels the function in traces and errors ("edu").
  PciFunction(std::string name, const Identity& identity);
  virtual ~PciFunction();
  PciFunction(const PciFunction&) = delete;
  PciFunction& operator=(const PciFunction&) = delete;

  // --- Construction (before PciHost::AddFunction). ---

  // Declares BAR `index` (a 64-bit BAR also uses index+1).
  // InvalidArgument for a bad index/size/type combination, AlreadyExists if
  // the register(s) are taken, FailedPrecondition after attachment.
  absl::Status AddBar(int index, const BarSpec& spec);

  // Allocates `length` bytes of capability `id` at `offset` (0: the next free
  // dword-aligned offset from 0x40) and links it into the list; returns the
  // offset. ResourceExhausted if it does not fit below 0x100, AlreadyExists if
  // it overlaps an existing capability.
  absl::StatusOr<uint16_t> AllocateCapability(uint8_t id, uint8_t length,
                                              uint16_t offset = 0);
  // MSI (PCI 3.0 6.8.1) / MSI-X (6.8.2) capabilities. At most one of each.
  absl::StatusOr<MsiCapability*> AddMsiCapability(
      const MsiCapability::Options& options, uint16_t offset = 0);
  // The table/PBA BARs must already exist (AddBar) and be memory BARs.
  absl::StatusOr<MsixCapability*> AddMsixCapability(
      const MsixCapability::Options& options, uint16_t offset = 0);

  // --- Device-model side (runtime). ---

  // The device's INTx source level (Status bit 3). The line follows the
  // gating described in the file comment.
  void SetIntxLevel(bool high);
  bool intx_level() const { return intx_level_; }
  // Sends MSI vector `vector` / MSI-X entry `index` (see the capabilities
  // for masking). kDisabled when the capability is absent or not enabled;
  // SignalMsi() is also kDisabled while MSI-X is enabled (MSI-X wins).
  SignalResult SignalMsi(unsigned vector);
  SignalResult SignalMsix(unsigned index);

  // DMA through the DmaSink with this function's requester id.
  // FailedPrecondition (traced) when Bus Master Enable is clear or the
  // function is not attached; otherwise the DmaSink's status (NotFound also
  // sets Status.ReceivedMasterAbort).
  absl::Status DmaWrite(uint64_t address, absl::Span<const uint8_t> data);
  absl::Status DmaRead(uint64_t address, absl::Span<uint8_t> out);

  uint16_t command() const { return config_.Get16(pci::kCommand); }
  bool bus_master_enabled() const { return command() & pci::kCommandBusMaster; }
  bool intx_disabled() const { return command() & pci::kCommandIntxDisable; }
  bool msi_enabled() const;
  bool msix_enabled() const;
  MsiCapability* msi() { return msi_.get(); }
  MsixCapability* msix() { return msix_.get(); }
  // The INTx output. PciHost connects it to the interrupt controller.
  IrqLine& intx_line() { return intx_line_; }
  uint8_t interrupt_pin() const { return config_.Get8(pci::kInterruptPin); }
  // Messages (MSI + MSI-X) accepted upstream so far.
  uint64_t messages_sent() const { return messages_sent_; }

  // --- Bus side. ---

  // Guest configuration accesses at `offset` (< 4096), size 1, 2 or 4.
  uint32_t ConfigRead(uint32_t offset, unsigned size) const;
  void ConfigWrite(uint32_t offset, unsigned size, uint32_t value);

  ConfigSpace& config() { return config_; }
  const ConfigSpace& config() const { return config_; }
  const std::string& name() const { return name_; }
  uint16_t requester_id() const { return requester_id_; }
  bool attached() const { return attached_; }

  // BAR `index` as declared (nullptr if none; the upper half of a 64-bit BAR
  // has none).
  const BarSpec* bar(int index) const;
  // The address programmed in BAR `index` (type bits stripped).
  uint64_t BarAddress(int index) const;
  // Where BAR `index` is currently mapped, if it decodes.
  std::optional<uint64_t> BarMappedAt(int index) const;
  // True iff some declared BAR should decode but could not be mapped.
  bool HasUndecodedBar() const;
  // Re-evaluates all BAR mappings (PciHost calls it after config writes).
  void UpdateBars();

  // Called by PciHost::AddFunction.
  void Attach(const PciBusContext& context, uint16_t requester_id);

 protected:
  // Hook for device models: called after every guest config write, after
  // the base class has applied its side effects.
  virtual void OnConfigWrite(uint32_t offset, unsigned size) {
    (void)offset;
    (void)size;
  }

  // Traces with this function's requester id (no-op without a tracer).
  void Trace(trace::Stage stage, std::string_view detail, int vector = -1,
             uint64_t address = 0, uint64_t data = 0) const;
  bool tracing() const {
    return context_.tracer != nullptr && context_.tracer->enabled();
  }
  uint64_t Now() const {
    return context_.clock != nullptr ? context_.clock->Now() : 0;
  }

 private:
  friend class MsiCapability;
  friend class MsixCapability;

  // The IoHandler mapped for one BAR.
  class BarWindow : public IoHandler {
   public:
    BarWindow(PciFunction* function, int index)
        : function_(function), index_(index) {}
    uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                  unsigned size) override;
    void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
               uint64_t value) override;

   private:
    PciFunction* function_;
    int index_;
  };

  struct BarState {
    std::optional<BarSpec> spec;
    std::unique_ptr<BarWindow> window;
    // Where it is mapped now, and the address the last UpdateBars() wanted
    // (to trace a conflict once, not on every config write).
    std::optional<uint64_t> mapped;
    std::optional<uint64_t> wanted;
  };

  // Where BAR `index` should decode now, or nullopt.
  std::optional<uint64_t> DesiredBarBase(int index) const;
  // Recomputes the INTx line from level, Command and MSI/MSI-X enables.
  void UpdateIntx();
  // Sends one interrupt message upstream (BME gate, DmaSink, counters).
  SignalResult DeliverMessage(const MsiMessage& message, std::string_view what);

  // Static configuration.
  const std::string name_;

  // Runtime glue (set by Attach).
  PciBusContext context_;
  uint16_t requester_id_ = 0;
  bool attached_ = false;
  IrqLine intx_line_;

  // Volatile state.
  ConfigSpace config_;
  std::array<BarState, pci::kNumBars> bars_;
  std::vector<PciCapability*> capabilities_;  // in list order
  uint16_t last_capability_ = 0;              // 0: list empty
  std::unique_ptr<MsiCapability> msi_;
  std::unique_ptr<MsixCapability> msix_;
  bool intx_level_ = false;
  uint64_t messages_sent_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_PCI_FUNCTION_H_
