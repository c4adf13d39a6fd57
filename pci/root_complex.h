// RootComplex: where a PCI function's memory transactions end.
//
// Every upstream memory transaction of a function — DMA and MSI/MSI-X alike,
// since an MSI is a DWORD memory write (PCI 3.0, 6.8) — is a DmaSink call
// (emu/core/dma_sink.h) tagged with the function's requester id (PCIe 2.2.6.2). The RootComplex is
// the end of the chain: writes into the interrupt window 0xFEE00000-0xFEEFFFFF
// become MsiSink::Signal() (SDM vol. 3, 11.11), everything else goes to guest
// RAM. An IOMMU (VT-d DMA remapping) later decorates the chain by wrapping a
// DmaSink in another DmaSink, exactly as interrupt remapping wraps an MsiSink:
//
//   PciFunction --DmaSink::Write(rid, addr, bytes)--> [IOMMU] --> RootComplex
//                                            0xFEExxxxx: --> MsiSink::Signal
//                                            RAM:        --> GuestRam
//
// Not modelled: peer-to-peer transactions to other functions' BARs, MMIO
// targets (a DMA that hits no RAM is a master abort), ordering/posting, ATS.
#ifndef IRQLAB_PCI_ROOT_COMPLEX_H_
#define IRQLAB_PCI_ROOT_COMPLEX_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "emu/core/clock.h"
#include "emu/core/dma_sink.h"
#include "emu/core/guest_ram.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"

namespace irqlab {

// The host bridge's upstream port: MSI window → `msi`, else → `ram`.
// Traces every transaction (MSI_WRITE / DMA) when `tracer` is enabled.
// Neither pointer is owned; `ram`, `msi`, `tracer`, `clock` may be null
// (no RAM: every DMA master-aborts; no MSI sink: MSIs are dropped and traced).
class RootComplex : public DmaSink {
 public:
  RootComplex(GuestRam* ram, MsiSink* msi, Tracer* tracer = nullptr,
              const Clock* clock = nullptr)
      : ram_(ram), msi_(msi), tracer_(tracer), clock_(clock) {}

  absl::Status Write(uint16_t requester_id, uint64_t address,
                     absl::Span<const uint8_t> data) override;
  absl::Status Read(uint16_t requester_id, uint64_t address,
                    absl::Span<uint8_t> out) override;

  // Retargets interrupt-window writes (e.g. to an IOMMU decorator).
  void set_msi_sink(MsiSink* msi) { msi_ = msi; }

  uint64_t msi_writes() const { return msi_writes_; }
  uint64_t dma_bytes() const { return dma_bytes_; }

 private:
  void Trace(trace::Stage stage, uint16_t rid, uint64_t address,
             uint64_t data, int vector, std::string_view detail);

  GuestRam* ram_;
  MsiSink* msi_;
  Tracer* tracer_;
  const Clock* clock_;
  uint64_t msi_writes_ = 0;
  uint64_t dma_bytes_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_ROOT_COMPLEX_H_
