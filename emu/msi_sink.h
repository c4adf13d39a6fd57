// The delivery chain for message-signalled interrupts. Every stage that can
// receive an MSI (the interrupt remapping unit, the APIC bus, a host-side
// vfio model) is an MsiSink; decorators such as VT-d interrupt remapping wrap
// the next sink:
//
//   device --Signal()--> [IOMMU decorator] --Signal()--> ApicBus --> LocalApic
#ifndef IRQLAB_EMU_MSI_SINK_H_
#define IRQLAB_EMU_MSI_SINK_H_

#include "emu/msi.h"

namespace irqlab {

class MsiSink {
 public:
  virtual ~MsiSink() = default;
  // Delivers one interrupt message (a posted memory write: no completion is
  // returned to the device). Never fails from the caller's point of view:
  // a message that cannot be delivered is faulted or dropped by the sink and
  // traced with the reason.
  virtual void Signal(const MsiMessage& message) = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_MSI_SINK_H_
