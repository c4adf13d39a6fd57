// DmaSink: where a bus master's upstream memory transactions go.
//
// Every upstream memory transaction of a PCI function — DMA and MSI/MSI-X
// alike, since an MSI is a DWORD memory write (PCI 3.0, 6.8) — is a DmaSink
// call tagged with the function's requester id (PCIe 2.2.6.2). The chain ends
// in the root complex (pci/root_complex.h); an IOMMU's DMA remapping
// (iommu/dma_remap.h) decorates it by wrapping one DmaSink in another, as
// interrupt remapping wraps an MsiSink. The interface lives in emu/core so
// that pci/ and iommu/ need not know each other (ARCHITECTURE.md).
#ifndef IRQLAB_EMU_CORE_DMA_SINK_H_
#define IRQLAB_EMU_CORE_DMA_SINK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "emu/core/msi.h"

namespace irqlab {

// True iff [address, address+len) touches the interrupt address range
// 0xFEE00000-0xFEEFFFFF (SDM vol. 3, 11.11.1; VT-d 3.14: such requests are
// interrupt requests, never DMA). A range that wraps around 2^64 touches it.
// The one place this rule is written.
inline bool TouchesMsiWindow(uint64_t address, uint64_t len) {
  if (len == 0) return false;
  const uint64_t last = address + len - 1;
  if (last < address) return true;  // wraps: certainly crosses the window
  return address <= MsiMessage::kWindowBase + MsiMessage::kWindowSize - 1 &&
         last >= MsiMessage::kWindowBase;
}

// Upstream memory transactions of bus masters.
class DmaSink {
 public:
  virtual ~DmaSink() = default;

  // Writes `data` at bus address `address` on behalf of `requester_id`.
  // Returns OK when the write was accepted (for an MSI-window write: handed to
  // the MsiSink, which may still fault it). On failure nothing was written
  // and returns
  //   NotFound          no target: master abort (the function sets Status
  //                     bit 13, Received Master Abort);
  //   InvalidArgument   an interrupt-window write that is not one DWORD;
  //   PermissionDenied  (decorators) blocked by the IOMMU.
  virtual absl::Status Write(uint16_t requester_id, uint64_t address,
                             absl::Span<const uint8_t> data) = 0;

  // Reads `out.size()` bytes from `address`. Errors as for Write (a read of
  // the interrupt window is InvalidArgument: it is not memory). On failure
  // `out` is unchanged.
  virtual absl::Status Read(uint16_t requester_id, uint64_t address,
                            absl::Span<uint8_t> out) = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_DMA_SINK_H_
