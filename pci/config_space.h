// ConfigSpace: the bytes of one PCI function's configuration space (PCI 3.0,
// 6.1; 4 KiB with the PCIe extended space, PCIe 7.2.2) together with per-byte
// access masks, so register semantics are data, not code:
//
//   read-only   the default; guest writes leave the byte unchanged
//   writable    bits set in the writable mask take the written value
//   RW1C        bits set in the RW1C mask are cleared by writing 1
//               (e.g. Status bits 15:11, PCI 3.0 6.2.3)
//
// A guest write of byte b with value v does, per byte:
//   new = (old & ~writable) | (v & writable);  new &= ~(v & rw1c)
//
// The device model changes read-only state (Status.Interrupt, MSI pending
// bits) with the Set*/Get* accessors, which ignore the masks.
//
// Not modelled: byte enables beyond 1/2/4-byte accesses, reset values other
// than zero (callers set them).
//
// Example:
//
//   ConfigSpace cs;
//   cs.Set16(pci::kVendorId, 0x1234);            // RO identity
//   cs.SetWritable16(pci::kCommand, 0x0547);
//   cs.GuestWrite(pci::kCommand, 2, 0xFFFF);     // Read -> 0x0547
//
// Thread-compatible.
#ifndef IRQLAB_PCI_CONFIG_SPACE_H_
#define IRQLAB_PCI_CONFIG_SPACE_H_

#include <array>
#include <cstdint>

#include "emu/core/check.h"
#include "pci/pci_regs.h"

namespace irqlab {

class ConfigSpace {
 public:
  static constexpr uint32_t kSize = pci::kExtendedConfigSize;

  ConfigSpace() { bytes_.fill(0); writable_.fill(0); rw1c_.fill(0); }

  // Guest-visible accesses. Offsets/sizes outside the space read 0 bytes and
  // drop writes for the bytes outside (never out of bounds). `size` is 1..4.
  uint32_t Read(uint32_t offset, unsigned size) const;
  void GuestWrite(uint32_t offset, unsigned size, uint32_t value);

  // Device-side accessors (ignore the masks). REQUIRES: in bounds.
  uint8_t Get8(uint32_t offset) const {
    IRQLAB_DCHECK(offset < kSize);
    return bytes_[offset];
  }
  uint16_t Get16(uint32_t offset) const { return static_cast<uint16_t>(GetN(offset, 2)); }
  uint32_t Get32(uint32_t offset) const { return GetN(offset, 4); }
  void Set8(uint32_t offset, uint8_t v) {
    IRQLAB_DCHECK(offset < kSize);
    bytes_[offset] = v;
  }
  void Set16(uint32_t offset, uint16_t v) { SetN(offset, 2, v); }
  void Set32(uint32_t offset, uint32_t v) { SetN(offset, 4, v); }

  // Mask set-up (little endian, like the registers). REQUIRES: in bounds.
  void SetWritable(uint32_t offset, unsigned size, uint32_t mask) {
    SetMaskN(&writable_, offset, size, mask);
  }
  void SetRw1c(uint32_t offset, unsigned size, uint32_t mask) {
    SetMaskN(&rw1c_, offset, size, mask);
  }
  uint32_t WritableMask(uint32_t offset, unsigned size) const {
    return GetMaskN(writable_, offset, size);
  }
  uint32_t Rw1cMask(uint32_t offset, unsigned size) const {
    return GetMaskN(rw1c_, offset, size);
  }

 private:
  using Bytes = std::array<uint8_t, kSize>;
  uint32_t GetN(uint32_t offset, unsigned size) const {
    return GetMaskN(bytes_, offset, size);
  }
  void SetN(uint32_t offset, unsigned size, uint32_t v) {
    SetMaskN(&bytes_, offset, size, v);
  }
  static uint32_t GetMaskN(const Bytes& b, uint32_t offset, unsigned size) {
    uint32_t v = 0;
    for (unsigned i = 0; i < size && offset + i < kSize; ++i) {
      v |= uint32_t{b[offset + i]} << (8 * i);
    }
    return v;
  }
  static void SetMaskN(Bytes* b, uint32_t offset, unsigned size, uint32_t v) {
    for (unsigned i = 0; i < size && offset + i < kSize; ++i) {
      (*b)[offset + i] = static_cast<uint8_t>(v >> (8 * i));
    }
  }

  Bytes bytes_;
  Bytes writable_;
  Bytes rw1c_;
};

inline uint32_t ConfigSpace::Read(uint32_t offset, unsigned size) const {
  if (size > 4) size = 4;
  return GetN(offset, size);
}

inline void ConfigSpace::GuestWrite(uint32_t offset, unsigned size,
                                    uint32_t value) {
  if (size > 4) size = 4;
  for (unsigned i = 0; i < size && offset + i < kSize; ++i) {
    const uint32_t at = offset + i;
    const uint8_t v = static_cast<uint8_t>(value >> (8 * i));
    uint8_t b = static_cast<uint8_t>((bytes_[at] & ~writable_[at]) |
                                     (v & writable_[at]));
    b = static_cast<uint8_t>(b & ~(v & rw1c_[at]));
    bytes_[at] = b;
  }
}

}  // namespace irqlab

#endif  // IRQLAB_PCI_CONFIG_SPACE_H_
