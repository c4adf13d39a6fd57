// InterruptRemapper: interrupt remapping as a hypervisor's route cache sees it.
//
// A VMM that caches translated guest MSI routes (KVM's irq routing table,
// seed 003; pci/assigned_device.h: IrqRouteTable) needs the remapping unit in
// two halves — translate (faults happen here, at delivery time) and deliver —
// plus a call when the unit's interrupt entry cache is invalidated, so that
// it can drop the routes it cached. The VT-d unit (iommu/vtd_unit.h)
// implements this; the interface lives in emu/core so that pci/ and iommu/
// need not know each other (ARCHITECTURE.md).
#ifndef IRQLAB_EMU_CORE_INTERRUPT_REMAPPER_H_
#define IRQLAB_EMU_CORE_INTERRUPT_REMAPPER_H_

#include <cstdint>
#include <functional>

#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"

namespace irqlab {

// The result of interrupt remapping for one request.
struct [[nodiscard]] RemapResult {
  enum Kind {
    kPassThrough,  // `message` goes on unchanged (e.g. VT-d IRES=0, CFIS=1)
    kRemapped,     // `message` (+ `destination`, `wide`) is the translation
    kPosted,       // posted into a descriptor (delivery done)
    kFaulted,      // blocked; the fault was raised (recorded or not)
  };
  Kind kind = kFaulted;
  MsiMessage message{0, 0, 0};
  uint32_t destination = 0;  // full destination id (kRemapped)
  bool wide = false;         // x2APIC destination: use SignalX2Apic
  uint32_t index = 0;        // interrupt index (remappable requests)
};

class InterruptRemapper {
 public:
  virtual ~InterruptRemapper() = default;

  // Interrupt remapping without the delivery: faults are raised, recorded
  // and traced and posting is performed exactly as when the unit is used as
  // an MsiSink, but a pass-through or remapped message is returned instead of
  // being sent downstream.
  virtual RemapResult Remap(const MsiMessage& message) = 0;
  // Sends a Remap() result on: kFaulted / kPosted for those results (nothing
  // is sent), else the downstream sink's outcome.
  virtual MsiOutcome DeliverRemapped(const RemapResult& result) = 0;

  // Called after every interrupt entry cache invalidation with the
  // invalidated range: all entries (`global`) or the 2^`mask` entries whose
  // index matches `index` above bit `mask`. One listener; setting another
  // replaces it; an empty function removes it.
  using IecListener =
      std::function<void(bool global, uint32_t index, uint8_t mask)>;
  virtual void set_iec_listener(IecListener listener) = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_INTERRUPT_REMAPPER_H_
