// Compatibility profiles: where QEMU departs from the specifications and
// guests written for QEMU rely on it. irqlab follows the specifications by
// default (CompatProfile::kSpec) and traces a COMPAT line whenever a guest
// does something that only works the QEMU way, so a user sees why a QEMU
// guest misbehaves; CompatProfile::kQemu (`--compat=qemu`, scenario
// `machine { compat: QEMU }`) gives QEMU's behaviour instead.
//
// The QEMU-isms, each implemented where its hardware is:
//   pci/pci_host.cc   CONFIG_ADDRESS bits 1:0 (PCI 3.0, 3.2.2.3.2: read as 0,
//                     ignored) are kept and select the byte of the register
//                     at the data port, as in QEMU's pci_host_data_read.
//   iommu/vtd_ir.cc   interrupts from the IOAPIC's source id skip IRTE
//                     source-id verification (VT-d 5.1.4: fault 0x26):
//                     QEMU's IOAPIC sends no requester id, so guests written
//                     for QEMU put a PCI device's SID into its IRTEs.
#ifndef IRQLAB_EMU_CORE_COMPAT_H_
#define IRQLAB_EMU_CORE_COMPAT_H_

#include <cstdint>
#include <string_view>

namespace irqlab {

enum class CompatProfile : uint8_t {
  kSpec,  // the specifications (default)
  kQemu,  // QEMU's departures from them
};

// "spec" / "qemu".
constexpr std::string_view CompatProfileName(CompatProfile p) {
  return p == CompatProfile::kQemu ? "qemu" : "spec";
}

}  // namespace irqlab

#endif  // IRQLAB_EMU_CORE_COMPAT_H_
