// InterruptSource: what a vCPU asks of its interrupt controller.
//
// The vCPU (emu/cpu/vcpu.h) delivers external interrupts through the guest
// IDT at instruction boundaries (SDM vol. 3, 6.12); which vector, and when,
// is the controller's business (a LocalApic, apic/local_apic.h, or a test
// stand-in). The interface lives in emu/core so that apic/ and emu/cpu/ need
// not know each other (ARCHITECTURE.md, "Layers").
#ifndef IRQLAB_EMU_CORE_INTERRUPT_SOURCE_H_
#define IRQLAB_EMU_CORE_INTERRUPT_SOURCE_H_

namespace irqlab {

// Per-vCPU source of external interrupts and NMIs.
// Not thread-safe: called from the vCPU's host thread only.
class InterruptSource {
 public:
  virtual ~InterruptSource() = default;
  // The highest-priority vector that may be delivered now, or -1.
  virtual int PendingVector() = 0;
  // The vCPU delivered `vector` through the IDT (IRR -> ISR).
  // REQUIRES: `vector` was just returned by PendingVector().
  virtual void Acknowledge(int vector) = 0;
  // A pending NMI, consumed when delivered.
  virtual bool TakeNmi() = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_INTERRUPT_SOURCE_H_
