// VfioContainer: the host IOMMU domain of assigned devices as vfio's type1
// backend exposes it (VFIO_IOMMU_MAP_DMA / UNMAP_DMA, the IOVA ranges
// capability), and the DmaSink through which those devices' memory writes
// reach the host. Seed 001 ("MSI doorbells behind an IOMMU").
//
// Two platforms:
//   * x86 (msi_bypass = true, the default): writes into the interrupt
//     window 0xFEE00000-0xFEEFFFFF are not translated (VT-d treats them as
//     interrupt requests); that window is an implicitly reserved IOVA range
//     that DMA mappings may not overlap.
//   * ARM/SMMU-like (msi_bypass = false): every write is translated, MSI
//     writes included, so the MSI doorbell must be mapped in the IOVA space.
//     User space reserves an IOVA range for doorbells (`doorbell_base`,
//     1 MiB); MapDoorbell() maps it onto the physical doorbell (the
//     interrupt window) when MSI is configured and UnmapDoorbell() removes
//     it on disable (vfio does this itself; the VMM only supplied the range).
//
// Every write/read is translated through the mappings: a hit goes to
// `downstream` at the translated address; a miss is a DMA fault (traced as
// DMA_FAULT, counted, logged through `log`), and nothing is written.
// MapDma() rejects mappings that overlap a reserved range or an existing
// mapping (InvalidArgument naming both ranges).
#ifndef IRQLAB_PCI_VFIO_CONTAINER_H_
#define IRQLAB_PCI_VFIO_CONTAINER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "emu/core/clock.h"
#include "emu/core/irq_ledger.h"
#include "emu/core/trace.h"
#include "pci/root_complex.h"

namespace irqlab {

class VfioContainer : public DmaSink {
 public:
  static constexpr uint64_t kMsiWindow = 0xFEE00000;
  static constexpr uint64_t kMsiWindowSize = 0x100000;

  struct Options {
    bool msi_bypass = true;
    uint64_t doorbell_base = 0;  // IOVA of the doorbell range (msi_bypass=false)
  };
  struct Range {
    uint64_t start = 0;
    uint64_t end = 0;  // inclusive
    std::string kind;  // "msi" (x86, implicit) / "msi-doorbell" (reserved by user space)
  };

  // `downstream` (the host root complex) is not owned. `log` receives host
  // log lines (may be empty).
  VfioContainer(const Options& options, DmaSink* downstream, Tracer* tracer,
                const Clock* clock, std::function<void(const std::string&)> log);

  // VFIO_IOMMU_MAP_DMA: [iova, iova+size) -> [target, target+size).
  absl::Status MapDma(uint64_t iova, uint64_t size, uint64_t target);
  // VFIO_IOMMU_UNMAP_DMA of a mapping that starts at `iova`.
  absl::Status UnmapDma(uint64_t iova);
  // The IOVA ranges no DMA mapping may use (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
  // reports their complement).
  std::vector<Range> ReservedRanges() const;

  bool msi_bypass() const { return options_.msi_bypass; }
  // msi_bypass=false: maps / unmaps the doorbell range onto the interrupt
  // window. Returns the IOVA the device must use for `msi_address`.
  uint64_t DoorbellAddress(uint64_t msi_address) const {
    return options_.doorbell_base + (msi_address - kMsiWindow);
  }
  absl::Status MapDoorbell();
  void UnmapDoorbell();
  bool doorbell_mapped() const { return doorbell_mapped_; }
  // Interrupt accounting (emu/core/irq_ledger.h; not owned, may be null): a
  // write into an unmapped doorbell range is an interrupt the device raised
  // and the IOMMU blocked, recorded as IrqSource::kHostDevice, kFaulted.
  void set_ledger(IrqLedger* ledger) { ledger_ = ledger; }
  uint64_t faults() const { return faults_; }

  // DmaSink.
  absl::Status Write(uint16_t requester_id, uint64_t address,
                     absl::Span<const uint8_t> data) override;
  absl::Status Read(uint16_t requester_id, uint64_t address,
                    absl::Span<uint8_t> out) override;

 private:
  struct Mapping {
    uint64_t size = 0;
    uint64_t target = 0;
    bool doorbell = false;
  };
  // Translates [address, address+len); nullopt on a miss.
  std::optional<uint64_t> Translate(uint64_t address, uint64_t len) const;
  absl::Status Fault(uint16_t rid, uint64_t address, bool write);
  absl::Status Insert(uint64_t iova, uint64_t size, uint64_t target, bool doorbell);

  const Options options_;
  DmaSink* const downstream_;
  Tracer* const tracer_;
  const Clock* const clock_;
  std::function<void(const std::string&)> log_;
  std::map<uint64_t, Mapping> mappings_;  // by IOVA start
  bool doorbell_mapped_ = false;
  uint64_t faults_ = 0;
  IrqLedger* ledger_ = nullptr;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_VFIO_CONTAINER_H_
