// MsiCapability: the MSI capability structure of a PCI function (PCI Local
// Bus Specification 3.0, 6.8.1 "MSI Capability Structure", 6.8.3.x "MSI
// operation") in its four layouts: 32-/64-bit Message Address, with or
// without per-vector masking (Mask Bits / Pending Bits registers).
//
// Registers (offsets from the capability; writable bits only, the rest RO):
//   +2  Message Control: bit 0 MSI Enable, bits 6:4 Multiple Message Enable
//       (MME). Bits 3:1 Multiple Message Capable (MMC = log2 of Options::
//       vectors), bit 7 64-bit capable, bit 8 per-vector masking capable are
//       RO. An MME larger than MMC is clamped to MMC when written (the
//       register reads back the clamped value, as QEMU's msi_write_config()
//       does; the spec forbids software writing it).
//   +4  Message Address bits 31:2 (1:0 hardwired 0, 6.8.1.4)
//   +8  Message Upper Address (64-bit only), all 32 bits
//   +8/+C Message Data bits 15:0 (6.8.1.6); the DWORD written carries 0 in
//       bits 31:16 (no extended message data)
//   +C/+10 Mask Bits: one RW bit per implemented vector (6.8.1.7)
//   +10/+14 Pending Bits: RO to software (6.8.1.8)
//
// Sending vector n (Signal(n), the device model's API):
//   * n >= Options::vectors: kInvalidVector (device-model bug; dropped).
//   * MSI disabled: kDisabled (the device uses INTx instead).
//   * The function uses m = 2^MME messages and folds n into them:
//     v = n & (m - 1); the message is
//         address = Upper Address << 32 | Message Address
//         data    = (Message Data & ~(m - 1)) | v
//     i.e. the low MME bits of the data are replaced by the vector number
//     (6.8.1.6 "the function is permitted to modify the low order bits";
//     QEMU msi_prepare_message()). For the aligned data values the spec
//     requires software to program this equals data | v.
//   * Mask bit v set: the message is not sent, Pending bit v is set
//     (6.8.1.7: "the function is prohibited from sending the associated
//     message, and the function must set the associated pending bit").
//     Model: the pending bit latches the event; it is delivered when the
//     vector becomes deliverable again (mask bit cleared while MSI is
//     enabled, or MSI re-enabled with the vector unmasked) using the
//     address/data current at that moment, and then cleared (6.8.1.8). The
//     source is not re-checked: a device that wants to retract a pending
//     interrupt calls ClearPending().
//   * Otherwise the message goes upstream through the function (bus master
//     gate, DmaSink) with the function's requester id.
//
// Not modelled: extended message data (PCIe 6.x), per-vector masking
// without 2^MMC bits in use beyond vector 31.
#ifndef IRQLAB_PCI_MSI_CAPABILITY_H_
#define IRQLAB_PCI_MSI_CAPABILITY_H_

#include <cstdint>

#include "emu/core/msi.h"
#include "pci/pci_capability.h"
#include "pci/pci_regs.h"

namespace irqlab {

class PciFunction;

class MsiCapability : public PciCapability {
 public:
  struct Options {
    // Vectors the function requests: 1, 2, 4, 8, 16 or 32 (MMC = log2).
    unsigned vectors = 1;
    bool address64 = true;        // Message Control bit 7
    bool per_vector_mask = false; // Message Control bit 8
  };

  // Capability length for `options` (QEMU's layout sizes: 0x0A, 0x0E, 0x14,
  // 0x18).
  static uint8_t Length(const Options& options);
  // OK iff `options` describe a legal capability.
  static bool Valid(const Options& options);

  // Writes the capability registers (after the ID/next bytes, which the
  // function owns) into `function`'s config space at `offset`.
  // REQUIRES: Valid(options); space allocated by the function.
  MsiCapability(PciFunction* function, uint16_t offset, const Options& options);

  // Sends vector `vector` (see the file comment).
  SignalResult Signal(unsigned vector);
  // Clears the pending bit of `vector` (the device retracts its request).
  void ClearPending(unsigned vector);

  // Register views.
  uint16_t control() const;
  bool enabled() const { return control() & pci::kMsiControlEnable; }
  // 2^MME: the number of vectors software granted.
  unsigned enabled_vectors() const;
  unsigned capable_vectors() const { return options_.vectors; }
  uint64_t address() const;
  uint16_t data() const;
  uint32_t mask_bits() const;     // 0 without per-vector masking
  uint32_t pending_bits() const;  // 0 without per-vector masking
  // The message vector `vector` would send now (no checks).
  MsiMessage MessageFor(unsigned vector) const;
  const Options& options() const { return options_; }

  void AfterConfigWrite() override;

 private:
  uint16_t data_offset() const;
  uint16_t mask_offset() const;
  uint16_t pending_offset() const;
  void SetPendingBits(uint32_t bits);
  // Sends every pending, unmasked vector (after unmask / enable).
  void DeliverPending();

  PciFunction* const function_;
  const Options options_;
  // Last Enable bit / Mask Bits seen, to detect 1->0 mask transitions.
  bool last_enabled_ = false;
  uint32_t last_mask_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_PCI_MSI_CAPABILITY_H_
