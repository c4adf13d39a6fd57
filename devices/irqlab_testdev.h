// IrqlabTestDev: irqlab's own PCI test function, so guest programs can drive
// every interrupt mechanism of the PCI layer from a register write:
// multi-message MSI with per-vector masking, MSI-X with per-vector and
// function masking and the Pending Bit Array, and INTx.
//
// PCI identity: 1337:0001, revision 1, class 0x00FF00 ("unclassified
// device, other"), subsystem 1337:0001, INTA#. 0x1337 is not a vendor id
// assigned by the PCI-SIG to anyone we know of and not used by QEMU/Red Hat
// (1AF4, 1B36) or Intel (8086); it is irqlab's private test id and must never
// be matched by a real driver.
//
// Capabilities: MSI at 0x40 (32 vectors, 64-bit address, per-vector masking,
// 0x18 bytes), MSI-X at 0x58 (64 entries, table in BAR1 at 0x0, PBA in BAR1
// at 0x800).
//
// BARs:
//   BAR0    4 KiB 32-bit MMIO: the register block below
//   BAR1    4 KiB 32-bit MMIO: MSI-X table (0x000-0x3FF) and PBA (0x800)
//   BAR2/3  16 KiB 64-bit prefetchable MMIO: scratch memory (reads back what
//           was written, any size) — exercises 64-bit BAR sizing/placement
//   BAR4    32 bytes of I/O: the first 32 bytes of the register block again
//
// Registers (BAR0 and BAR4; 4-byte accesses only — other sizes read
// all-ones, writes are ignored):
//   0x00 RO  id 0x54515249 ("IRQT" in little-endian ASCII)
//   0x04 WO  FIRE: write n -> SignalMsix(n) if MSI-X is enabled, else
//            SignalMsi(n) if MSI is enabled, else the INTx level is raised
//            (n ignored). Reads 0.
//   0x08 RW  fire count: FIRE writes since the last reset; a write (any
//            value) resets it and the sent count
//   0x0C RO  sent count: MSI/MSI-X messages accepted upstream since the
//            reset, including pending ones sent later on unmask
//   0x10 RW  INTx level: write 1 raises, 0 lowers; reads the level
//   0x14 RO  mode FIRE uses now: 0 INTx, 1 MSI, 2 MSI-X
//   0x18 RO  result of the last FIRE: 0 sent, 1 pending (masked), 2 blocked
//            (bus master off), 3 disabled, 4 invalid vector, 5 INTx raised
//   Other offsets read 0.
#ifndef IRQLAB_DEVICES_IRQLAB_TESTDEV_H_
#define IRQLAB_DEVICES_IRQLAB_TESTDEV_H_

#include <cstdint>
#include <vector>

#include "emu/core/io.h"
#include "pci/pci_function.h"

namespace irqlab {

class IrqlabTestDev : public PciFunction, public IoHandler {
 public:
  static constexpr uint16_t kVendorId = 0x1337;
  static constexpr uint16_t kDeviceId = 0x0001;
  static constexpr uint32_t kId = 0x54515249;
  static constexpr unsigned kMsiVectors = 32;
  static constexpr unsigned kMsixVectors = 64;
  static constexpr uint16_t kMsiCapOffset = 0x40;
  static constexpr uint16_t kMsixCapOffset = 0x58;
  static constexpr uint64_t kRegBarSize = 0x1000;
  static constexpr uint64_t kMsixBarSize = 0x1000;
  static constexpr uint32_t kMsixTableOffset = 0x0;
  static constexpr uint32_t kMsixPbaOffset = 0x800;
  static constexpr uint64_t kScratchBarSize = 0x4000;
  static constexpr uint64_t kIoBarSize = 0x20;

  static constexpr uint64_t kRegId = 0x00;
  static constexpr uint64_t kRegFire = 0x04;
  static constexpr uint64_t kRegFireCount = 0x08;
  static constexpr uint64_t kRegSentCount = 0x0C;
  static constexpr uint64_t kRegIntx = 0x10;
  static constexpr uint64_t kRegMode = 0x14;
  static constexpr uint64_t kRegLastResult = 0x18;

  enum Mode : uint32_t { kModeIntx = 0, kModeMsi = 1, kModeMsix = 2 };
  static constexpr uint32_t kResultIntxRaised = 5;  // after SignalResult values

  IrqlabTestDev();

  // Register block (BAR0, and BAR4 through a forwarding handler).
  uint64_t Read(const AccessOrigin& origin, uint64_t offset,
                unsigned size) override;
  void Write(const AccessOrigin& origin, uint64_t offset, unsigned size,
             uint64_t value) override;

  Mode mode() const;
  uint32_t fire_count() const { return fire_count_; }
  uint64_t sent_count() const { return messages_sent() - sent_base_; }

 private:
  // BAR2: scratch memory.
  class Scratch : public IoHandler {
   public:
    Scratch() : bytes_(kScratchBarSize, 0) {}
    uint64_t Read(const AccessOrigin&, uint64_t offset, unsigned size) override;
    void Write(const AccessOrigin&, uint64_t offset, unsigned size,
               uint64_t value) override;

   private:
    std::vector<uint8_t> bytes_;
  };

  void Fire(uint32_t n);

  Scratch scratch_;
  uint32_t fire_count_ = 0;
  uint64_t sent_base_ = 0;
  uint32_t last_result_ = 0;
};

}  // namespace irqlab

#endif  // IRQLAB_DEVICES_IRQLAB_TESTDEV_H_
