// Tests of pci/: configuration access (mechanism #1, ECAM), the type-0 header
// and its access masks, BAR sizing and decode, firmware resource assignment,
// INTx routing and gating, bus-master gating, and a fixed-seed fuzz loop.
// Each test names the rule it checks (PCI Local Bus 3.0 / PCIe base spec).
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "devices/edu.h"
#include "devices/irqlab_testdev.h"
#include "gtest/gtest.h"
#include "pci/pci_host.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"

namespace irqlab {
namespace {

using pci::kCommand;
using pci::kStatus;

constexpr AccessOrigin kCpu0 = {0, 0};

// PCI 3.0 3.2.2.3.2: a DWORD read of CONFIG_DATA returns the register; byte
// and word accesses to 0xCFC-0xCFF select register + (port & 3). The host
// bridge is 8086:29C0 at 00:00.0.
TEST(PciConfigTest, MechanismOneByteWordDwordAccesses) {
  PciTestbed tb;
  EXPECT_EQ(tb.CfgRead(0, 0, 0x00, 4), 0x29C08086u);
  EXPECT_EQ(tb.CfgRead(0, 0, 0x00, 2), 0x8086u);
  EXPECT_EQ(tb.CfgRead(0, 0, 0x02, 2), 0x29C0u);
  EXPECT_EQ(tb.CfgRead(0, 0, 0x01, 1), 0x80u);
  EXPECT_EQ(tb.CfgRead(0, 0, 0x03, 1), 0x29u);
  // Class code 06 00 00 (host bridge) at 0x09-0x0B.
  EXPECT_EQ(tb.CfgRead(0, 0, 0x08, 4) >> 8, 0x060000u);
  // Word at 0xCFD (bytes 1-2 of the dword).
  tb.io.Write(kCpu0, pci::kConfigAddressPort, 4, PciTestbed::Cf8(0, 0, 0, 0));
  EXPECT_EQ(tb.io.Read(kCpu0, 0xCFD, 2), 0xC080u);
}

// 3.2.2.3.2: CONFIG_ADDRESS is a DWORD register (bits 1:0 read 0); byte
// accesses to 0xCF8-0xCFB are not CONFIG_ADDRESS. With the enable bit clear,
// CONFIG_DATA is not a configuration cycle: reads all-ones, writes dropped.
TEST(PciConfigTest, ConfigAddressIsDwordOnlyAndEnableGatesData) {
  PciTestbed tb;
  tb.io.Write(kCpu0, 0xCF8, 4, 0x80001807);
  EXPECT_EQ(tb.io.Read(kCpu0, 0xCF8, 4), 0x80001804u);
  tb.io.Write(kCpu0, 0xCFB, 1, 0x00);
  EXPECT_EQ(tb.io.Read(kCpu0, 0xCF8, 4), 0x80001804u);
  EXPECT_EQ(tb.io.Read(kCpu0, 0xCF8, 1), 0xFFu);
  tb.io.Write(kCpu0, 0xCF8, 4, 0x00000000);  // enable clear, 00:00.0 reg 0
  EXPECT_EQ(tb.io.Read(kCpu0, 0xCFC, 4), 0xFFFFFFFFu);
  tb.io.Write(kCpu0, 0xCFC, 2, pci::kCommandMemorySpace);
  EXPECT_EQ(tb.CfgRead(0, 0, kCommand, 2), 0u);
}

// Kernels written for QEMU put the register's low bits into CONFIG_ADDRESS
// (0x80000000 | bdf << 8 | 0x02) and read a word at 0xCFC. PCI 3.0
// 3.2.2.3.2 (the default, CompatProfile::kSpec): bits 1:0 read 0 and the
// byte comes from the data port, so the read returns register 0x00 (vendor
// 0x8086) — and a COMPAT trace line says why a QEMU guest would be
// surprised. CompatProfile::kQemu keeps the bits and ORs them into the
// register (QEMU's pci_host_data_read): register 0x02, device 0x29C0.
TEST(PciConfigTest, UnalignedConfigAddressFollowsTheCompatProfile) {
  PciTestbed spec;
  spec.io.Write(kCpu0, 0xCF8, 4, 0x80000002);
  EXPECT_EQ(spec.io.Read(kCpu0, 0xCF8, 4), 0x80000000u);
  EXPECT_EQ(spec.io.Read(kCpu0, 0xCFC, 2), 0x8086u);
  ASSERT_EQ(spec.Events(trace::COMPAT).size(), 1u);
  EXPECT_NE(spec.Events(trace::COMPAT)[0].detail().find("bits 1:0 = 2: ignored"),
            std::string::npos);

  PciTestbed qemu(PciHost::Options{.compat = CompatProfile::kQemu});
  qemu.io.Write(kCpu0, 0xCF8, 4, 0x80000002);
  EXPECT_EQ(qemu.io.Read(kCpu0, 0xCF8, 4), 0x80000002u);
  EXPECT_EQ(qemu.io.Read(kCpu0, 0xCFC, 2), 0x29C0u);
  qemu.io.Write(kCpu0, 0xCF8, 4, 0x80000003);
  EXPECT_EQ(qemu.io.Read(kCpu0, 0xCFC, 1), 0x29u);
  EXPECT_TRUE(qemu.Events(trace::COMPAT).empty());
  // Aligned accesses are the same in both profiles.
  EXPECT_EQ(qemu.CfgRead(0, 0, 0x00, 4), 0x29C08086u);
}

// PCI 3.0 6.1: a configuration read of a function that does not exist
// terminates with master abort and returns all-ones; writes are dropped.
// Bus 1 does not exist at all.
TEST(PciConfigTest, AbsentFunctionReadsAllOnesAndDropsWrites) {
  PciTestbed tb;
  EXPECT_EQ(tb.CfgRead(5, 0, 0x00, 4), 0xFFFFFFFFu);
  EXPECT_EQ(tb.CfgRead(5, 0, 0x00, 2), 0xFFFFu);
  EXPECT_EQ(tb.CfgRead(5, 0, 0x00, 1), 0xFFu);
  EXPECT_EQ(tb.CfgRead(0, 0, 0x00, 4, /*bus=*/1), 0xFFFFFFFFu);
  EXPECT_EQ(tb.CfgRead(0, 3, 0x00, 4), 0xFFFFFFFFu);  // 00:00.3
  tb.CfgWrite(5, 0, kCommand, 2, 0xFFFF);
  EXPECT_EQ(tb.CfgRead(5, 0, kCommand, 2), 0xFFFFu);
  auto writes = tb.Events(trace::PCI_CONFIG);
  ASSERT_FALSE(writes.empty());
  EXPECT_NE(writes.back().detail().find("no function, dropped"), std::string::npos);
}

// PCIe 7.2.2: ECAM address = base + (bus << 20 | dev << 15 | fn << 12 | reg)
// reaches the same registers as mechanism #1, plus the extended space
// 0x100-0xFFF (reads 0 here: no extended capabilities). Accesses crossing a
// DWORD (8-byte ones included) are undefined: all-ones / dropped.
TEST(PciConfigTest, EcamReachesTheSameRegistersAndExtendedSpace) {
  PciTestbed tb;
  IrqlabTestDev dev;
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &dev).ok());
  const uint64_t id = tb.EcamAddress(0, 4, 0, 0);
  EXPECT_EQ(tb.mem.Read(kCpu0, id, 4), 0x00011337u);
  EXPECT_EQ(tb.mem.Read(kCpu0, id + 2, 2), 0x0001u);
  EXPECT_EQ(tb.mem.Read(kCpu0, tb.EcamAddress(0, 4, 0, 0x100), 4), 0u);
  EXPECT_EQ(tb.mem.Read(kCpu0, tb.EcamAddress(0, 4, 0, 0xFFC), 4), 0u);
  EXPECT_EQ(tb.mem.Read(kCpu0, id, 8), ~uint64_t{0});
  EXPECT_EQ(tb.mem.Read(kCpu0, id + 3, 2), 0xFFFFu);
  tb.mem.Write(kCpu0, tb.EcamAddress(0, 4, 0, kCommand), 2, 0x0002);
  EXPECT_EQ(tb.CfgRead(4, 0, kCommand, 2), 0x0002u);
  EXPECT_EQ(tb.mem.Read(kCpu0, tb.EcamAddress(0, 9, 0, 0), 4), 0xFFFFFFFFu);
  EXPECT_EQ(tb.mem.Read(kCpu0, tb.EcamAddress(7, 0, 0, 0), 4), 0xFFFFFFFFu);
}

// PCI 3.0 6.2.2: only implemented Command bits are writable (I/O, memory,
// bus master, parity, SERR, interrupt disable). 6.2.1: identity registers
// and the Interrupt Pin are read-only; Interrupt Line is read/write (6.2.4).
TEST(PciHeaderTest, ReadOnlyAndWritableMasks) {
  PciTestbed tb;
  Edu edu(&tb.events);
  ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
  tb.CfgWrite(3, 0, kCommand, 2, 0xFFFF);
  EXPECT_EQ(tb.CfgRead(3, 0, kCommand, 2), pci::kCommandWritableMask);
  tb.CfgWrite(3, 0, 0x00, 4, 0xDEADBEEF);
  EXPECT_EQ(tb.CfgRead(3, 0, 0x00, 4), 0x11E81234u);
  tb.CfgWrite(3, 0, 0x08, 4, 0xFFFFFFFF);
  EXPECT_EQ(tb.CfgRead(3, 0, 0x08, 4), 0x00FF0010u);  // class 00FF00, rev 0x10
  tb.CfgWrite(3, 0, pci::kInterruptPin, 1, 4);
  EXPECT_EQ(tb.CfgRead(3, 0, pci::kInterruptPin, 1), 1u);
  tb.CfgWrite(3, 0, pci::kInterruptLine, 1, 0x2A);
  EXPECT_EQ(tb.CfgRead(3, 0, pci::kInterruptLine, 1), 0x2Au);
  tb.CfgWrite(3, 0, pci::kCapabilitiesPointer, 1, 0x80);
  EXPECT_EQ(tb.CfgRead(3, 0, pci::kCapabilitiesPointer, 1), 0x40u);
}

// PCI 3.0 6.2.3: Status error bits are RW1C (writing 1 clears, 0 leaves);
// Interrupt Status (bit 3) and Capabilities List (bit 4) are read-only.
// Received Master Abort (bit 13) is set by a DMA that hits nothing.
TEST(PciHeaderTest, StatusBitsAreRw1cAndInterruptStatusReadOnly) {
  PciTestbed tb;
  Edu edu(&tb.events);
  ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
  tb.CfgWrite(3, 0, kCommand, 2, pci::kCommandBusMaster);
  uint8_t byte = 0;
  EXPECT_TRUE(absl::IsNotFound(edu.DmaWrite(0x80000000, absl::MakeConstSpan(&byte, 1))));
  edu.SetIntxLevel(true);
  uint16_t status = tb.CfgRead(3, 0, kStatus, 2);
  EXPECT_EQ(status, pci::kStatusReceivedMasterAbort | pci::kStatusInterrupt |
                        pci::kStatusCapabilityList);
  tb.CfgWrite(3, 0, kStatus, 2, 0x0000);  // writing 0 clears nothing
  EXPECT_EQ(tb.CfgRead(3, 0, kStatus, 2), status);
  tb.CfgWrite(3, 0, kStatus, 2, 0xFFFF);  // RW1C clears; RO bits stay
  EXPECT_EQ(tb.CfgRead(3, 0, kStatus, 2),
            uint32_t{pci::kStatusInterrupt | pci::kStatusCapabilityList});
}

// PCI 3.0 6.2.5.1: writing all-ones to a BAR and reading back gives the size
// mask with the read-only type bits: 32-bit memory, 64-bit prefetchable
// memory (upper dword all writable for a 16 KiB BAR), and I/O (bit 0 = 1).
TEST(PciBarTest, SizingOf32Bit64BitAndIoBars) {
  PciTestbed tb;
  IrqlabTestDev dev;
  Edu edu(&tb.events);
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &dev).ok());
  ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
  EXPECT_EQ(tb.CfgRead(4, 0, 0x18, 4), 0x0000000Cu);  // BAR2: 64-bit, prefetch
  EXPECT_EQ(tb.CfgRead(4, 0, 0x20, 4), 0x00000001u);  // BAR4: I/O
  for (uint16_t reg = 0x10; reg < 0x28; reg += 4) tb.CfgWrite(4, 0, reg, 4, 0xFFFFFFFF);
  tb.CfgWrite(3, 0, 0x10, 4, 0xFFFFFFFF);
  EXPECT_EQ(tb.CfgRead(4, 0, 0x10, 4), 0xFFFFF000u);  // 4 KiB mem32
  EXPECT_EQ(tb.CfgRead(4, 0, 0x14, 4), 0xFFFFF000u);  // 4 KiB mem32 (MSI-X)
  EXPECT_EQ(tb.CfgRead(4, 0, 0x18, 4), 0xFFFFC00Cu);  // 16 KiB mem64 pf, low
  EXPECT_EQ(tb.CfgRead(4, 0, 0x1C, 4), 0xFFFFFFFFu);  // high dword
  EXPECT_EQ(tb.CfgRead(4, 0, 0x20, 4), 0xFFFFFFE1u);  // 32-byte I/O
  EXPECT_EQ(tb.CfgRead(4, 0, 0x24, 4), 0u);           // unimplemented BAR5
  EXPECT_EQ(tb.CfgRead(3, 0, 0x10, 4), 0xFFF00000u);  // edu: 1 MiB
  EXPECT_EQ(tb.CfgRead(3, 0, 0x14, 4), 0u);
}

// 6.2.5.1 / 6.2.2: a BAR decodes only while Command.Memory (I/O) Space is
// set; writing the BAR moves the decoded range; clearing the enable unmaps
// it. An all-ones sizing value is never decoded.
TEST(PciBarTest, DecodeFollowsCommandEnableAndBarWrites) {
  PciTestbed tb;
  IrqlabTestDev dev;
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &dev).ok());
  tb.CfgWrite(4, 0, 0x10, 4, 0xD0000000);
  EXPECT_EQ(tb.mem.Read(kCpu0, 0xD0000000, 4), 0xFFFFFFFFu);  // not decoding
  tb.CfgWrite(4, 0, kCommand, 2, pci::kCommandMemorySpace);
  EXPECT_EQ(tb.mem.Read(kCpu0, 0xD0000000, 4), IrqlabTestDev::kId);
  EXPECT_EQ(dev.BarMappedAt(0), 0xD0000000u);
  tb.CfgWrite(4, 0, 0x10, 4, 0xD0100000);
  EXPECT_EQ(tb.mem.Read(kCpu0, 0xD0000000, 4), 0xFFFFFFFFu);
  EXPECT_EQ(tb.mem.Read(kCpu0, 0xD0100000, 4), IrqlabTestDev::kId);
  tb.CfgWrite(4, 0, 0x10, 4, 0xFFFFFFFF);  // sizing: not decoded
  EXPECT_FALSE(dev.BarMappedAt(0).has_value());
  tb.CfgWrite(4, 0, 0x10, 4, 0xD0200000);
  EXPECT_EQ(dev.BarMappedAt(0), 0xD0200000u);
  tb.CfgWrite(4, 0, kCommand, 2, 0);
  EXPECT_FALSE(dev.BarMappedAt(0).has_value());
  EXPECT_EQ(tb.mem.Read(kCpu0, 0xD0200000, 4), 0xFFFFFFFFu);
  // I/O BAR decodes with Command.IoSpace only.
  tb.CfgWrite(4, 0, 0x20, 4, 0xC100);
  EXPECT_EQ(tb.io.Read(kCpu0, 0xC100, 4), 0xFFFFFFFFu);
  tb.CfgWrite(4, 0, kCommand, 2, pci::kCommandIoSpace);
  EXPECT_EQ(tb.io.Read(kCpu0, 0xC100, 4), IrqlabTestDev::kId);
  EXPECT_FALSE(dev.BarMappedAt(0).has_value());
  // 64-bit BAR above 4 GiB.
  tb.CfgWrite(4, 0, 0x18, 4, 0x00000000);
  tb.CfgWrite(4, 0, 0x1C, 4, 0x00000001);
  tb.CfgWrite(4, 0, kCommand, 2, pci::kCommandMemorySpace);
  EXPECT_EQ(dev.BarMappedAt(2), 0x100000000u);
  tb.mem.Write(kCpu0, 0x100000010, 8, 0x1122334455667788);
  EXPECT_EQ(tb.mem.Read(kCpu0, 0x100000010, 8), 0x1122334455667788u);
  EXPECT_GE(tb.Events(trace::PCI_BAR).size(), 6u);
}

// A BAR programmed over another mapping is a guest mistake, not a host
// error: it does not decode (traced once), and decodes once the other range
// moves away.
TEST(PciBarTest, OverlappingBarDoesNotDecodeUntilTheConflictIsGone) {
  PciTestbed tb;
  IrqlabTestDev a, b;
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &a).ok());
  ASSERT_TRUE(tb.host.AddFunction(5, 0, &b).ok());
  tb.CfgWrite(4, 0, 0x10, 4, 0xD0000000);
  tb.CfgWrite(4, 0, kCommand, 2, pci::kCommandMemorySpace);
  tb.CfgWrite(5, 0, 0x10, 4, 0xD0000000);
  tb.CfgWrite(5, 0, kCommand, 2, pci::kCommandMemorySpace);
  EXPECT_EQ(a.BarMappedAt(0), 0xD0000000u);
  EXPECT_FALSE(b.BarMappedAt(0).has_value());
  int conflicts = 0;
  for (const TraceEvent& e : tb.Events(trace::PCI_BAR)) {
    conflicts += e.detail().find("does not decode") != std::string::npos;
  }
  EXPECT_EQ(conflicts, 1);
  tb.CfgWrite(5, 0, pci::kLatencyTimer, 1, 0x40);  // unrelated write: no re-trace
  tb.CfgWrite(4, 0, 0x10, 4, 0xD0001000);          // a moves away
  EXPECT_EQ(b.BarMappedAt(0), 0xD0000000u);
  EXPECT_EQ(a.BarMappedAt(0), 0xD0001000u);
}

// Firmware role (SeaBIOS pciinit): BARs naturally aligned, largest first,
// inside the windows; decode enabled; INTERRUPT_LINE = 16 + (dev + pin - 1)
// % 4, the same GSI the function's IrqLine drives. Same input, same layout.
TEST(PciHostTest, AssignResourcesIsDeterministicAndWiresInterruptLine) {
  auto build = [](PciTestbed& tb, IrqlabTestDev& t, Edu& e) {
    EXPECT_TRUE(tb.host.AddFunction(3, 0, &e).ok());
    EXPECT_TRUE(tb.host.AddFunction(4, 0, &t).ok());
    EXPECT_TRUE(tb.host.AssignResources().ok());
  };
  PciTestbed tb1, tb2;
  IrqlabTestDev t1, t2;
  Edu e1(&tb1.events), e2(&tb2.events);
  build(tb1, t1, e1);
  build(tb2, t2, e2);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t1.BarAddress(i), t2.BarAddress(i)) << i;
  EXPECT_EQ(e1.BarAddress(0), e2.BarAddress(0));
  // Largest first: edu's 1 MiB, then the 16 KiB scratch, then the 4 KiB BARs
  // in dev/BAR order.
  EXPECT_EQ(e1.BarAddress(0), 0xC0000000u);
  EXPECT_EQ(t1.BarAddress(2), 0xC0100000u);
  EXPECT_EQ(t1.BarAddress(0), 0xC0104000u);
  EXPECT_EQ(t1.BarAddress(1), 0xC0105000u);
  EXPECT_EQ(t1.BarAddress(4), 0xC000u);
  for (int i : {0, 1, 2, 4}) {
    EXPECT_EQ(t1.BarMappedAt(i), t1.BarAddress(i)) << i;
    EXPECT_EQ(t1.BarAddress(i) % t1.bar(i)->size, 0u) << i;
  }
  EXPECT_EQ(tb1.CfgRead(3, 0, kCommand, 2) & 3u, 3u);
  EXPECT_EQ(tb1.CfgRead(3, 0, kCommand, 2) & pci::kCommandBusMaster, 0u);
  EXPECT_EQ(tb1.CfgRead(3, 0, pci::kInterruptLine, 1), 19u);  // 16 + (3+1-1)%4
  EXPECT_EQ(tb1.CfgRead(4, 0, pci::kInterruptLine, 1), 16u);  // 16 + (4+1-1)%4
  EXPECT_EQ(PciHost::IntxGsi(5, 2), 18);  // INTB# of device 5: 16 + 6 % 4
  // The line the guest reads is the line the device drives.
  e1.SetIntxLevel(true);
  EXPECT_TRUE(tb1.intx.level(19));
  t1.SetIntxLevel(true);
  EXPECT_TRUE(tb1.intx.level(16));
}

// A window too small for the BARs is a machine-configuration error.
TEST(PciHostTest, AssignResourcesFailsWhenTheWindowIsExhausted) {
  PciHost::Options options;
  options.mmio_window_base = 0xC0000000;
  options.mmio_window_end = 0xC0080000;  // 512 KiB < edu's 1 MiB
  PciTestbed tb(options);
  Edu edu(&tb.events);
  ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
  absl::Status s = tb.host.AssignResources();
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_NE(s.message().find("edu"), std::string::npos);
}

// A window that overlaps another mapping is a machine-configuration error
// that names the BAR (the guest-visible state is still consistent).
TEST(PciHostTest, AssignResourcesFailsWhenABarCannotBeMapped) {
  PciTestbed tb;
  class Dummy : public IoHandler {
    uint64_t Read(const AccessOrigin&, uint64_t, unsigned) override { return 0; }
    void Write(const AccessOrigin&, uint64_t, unsigned, uint64_t) override {}
  } dummy;
  ASSERT_TRUE(tb.mem.Map(0xC0000000, 0x1000, &dummy, "squatter").ok());
  Edu edu(&tb.events);
  ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
  absl::Status s = tb.host.AssignResources();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("\"edu\" BAR0"), std::string::npos) << s;
  EXPECT_FALSE(edu.BarMappedAt(0).has_value());
  (void)tb.mem.Unmap(0xC0000000);
}

// AddFunction refuses taken slots (00:00.0 is the host bridge) and marks
// function 0 multi-function (header type bit 7, 6.2.1) when fn > 0 appears.
TEST(PciHostTest, AddFunctionChecksSlotsAndSetsMultiFunction) {
  PciTestbed tb;
  IrqlabTestDev a, b, c;
  EXPECT_TRUE(absl::IsAlreadyExists(tb.host.AddFunction(0, 0, &a)));
  EXPECT_TRUE(absl::IsInvalidArgument(tb.host.AddFunction(32, 0, &a)));
  ASSERT_TRUE(tb.host.AddFunction(6, 0, &a).ok());
  EXPECT_EQ(tb.CfgRead(6, 0, pci::kHeaderType, 1), 0u);
  ASSERT_TRUE(tb.host.AddFunction(6, 1, &b).ok());
  EXPECT_EQ(tb.CfgRead(6, 0, pci::kHeaderType, 1), 0x80u);
  EXPECT_TRUE(absl::IsAlreadyExists(tb.host.AddFunction(6, 1, &c)));
  EXPECT_EQ(b.requester_id(), 0x0031);  // 00:06.1
}

// 6.2.2 bit 10 / 6.2.3 bit 3: Interrupt Disable stops the INTx# line but the
// Interrupt Status bit still shows the device's interrupt; clearing the
// disable bit with the interrupt still pending reasserts the line.
TEST(PciIntxTest, InterruptDisableGatesTheLineNotTheStatusBit) {
  PciTestbed tb;
  IrqlabTestDev dev;
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &dev).ok());
  tb.CfgWrite(4, 0, kCommand, 2, pci::kCommandIntxDisable);
  dev.SetIntxLevel(true);
  EXPECT_FALSE(tb.intx.level(16));
  EXPECT_TRUE(tb.CfgRead(4, 0, kStatus, 2) & pci::kStatusInterrupt);
  tb.CfgWrite(4, 0, kCommand, 2, 0);
  EXPECT_TRUE(tb.intx.level(16));
  dev.SetIntxLevel(false);
  EXPECT_FALSE(tb.intx.level(16));
  EXPECT_FALSE(tb.CfgRead(4, 0, kStatus, 2) & pci::kStatusInterrupt);
  EXPECT_EQ(tb.Events(trace::PCI_INTX).size(), 2u);
}

// PCI 3.0 2.2.6: INTx# lines are shared wired-OR, level-sensitive signals.
// Devices 4 and 8 both route INTA# to GSI 16: the GSI stays asserted until
// the last function deasserts.
TEST(PciIntxTest, SharedIntxLinesAreWiredOr) {
  PciTestbed tb;
  IrqlabTestDev a, b;
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &a).ok());
  ASSERT_TRUE(tb.host.AddFunction(8, 0, &b).ok());
  a.SetIntxLevel(true);
  b.SetIntxLevel(true);
  EXPECT_TRUE(tb.intx.level(16));
  a.SetIntxLevel(false);
  EXPECT_TRUE(tb.intx.level(16));
  b.SetIntxLevel(false);
  EXPECT_FALSE(tb.intx.level(16));
  // One assert and one deassert reached the IOAPIC pin.
  EXPECT_EQ(tb.intx.history, (std::vector<std::pair<int, bool>>{{16, true}, {16, false}}));
}

// 6.8.1 / 6.8.2: while MSI (or MSI-X) is enabled the function must not use
// INTx; disabling it returns to INTx with the level still pending.
TEST(PciIntxTest, MsiEnableDeassertsIntx) {
  PciTestbed tb;
  IrqlabTestDev dev;
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &dev).ok());
  dev.SetIntxLevel(true);
  EXPECT_TRUE(tb.intx.level(16));
  tb.CfgWrite(4, 0, IrqlabTestDev::kMsiCapOffset + pci::kMsiControl, 2,
              pci::kMsiControlEnable);
  EXPECT_FALSE(tb.intx.level(16));
  tb.CfgWrite(4, 0, IrqlabTestDev::kMsiCapOffset + pci::kMsiControl, 2, 0);
  EXPECT_TRUE(tb.intx.level(16));
}

// PCIe 7.5.1.1.3 (PCI 3.0 6.2.2 bit 2): with Bus Master Enable clear the
// function issues no memory requests: DMA fails and MSIs are dropped (and
// traced), nothing reaches RAM or the MSI sink.
TEST(PciBusMasterTest, NoDmaAndNoMsiWithoutBusMaster) {
  PciTestbed tb;
  IrqlabTestDev dev;
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &dev).ok());
  const uint16_t msi = IrqlabTestDev::kMsiCapOffset;
  tb.CfgWrite(4, 0, msi + pci::kMsiAddressLo, 4, 0xFEE00000);
  tb.CfgWrite(4, 0, msi + pci::kMsiData64, 2, 0x0041);
  tb.CfgWrite(4, 0, msi + pci::kMsiControl, 2, pci::kMsiControlEnable);
  EXPECT_EQ(dev.SignalMsi(0), SignalResult::kBlocked);
  const uint8_t payload[4] = {1, 2, 3, 4};
  EXPECT_TRUE(absl::IsFailedPrecondition(dev.DmaWrite(0x1000, payload)));
  EXPECT_TRUE(tb.msis.messages.empty());
  EXPECT_EQ(tb.ram->Load<uint32_t>(0x1000), 0u);
  EXPECT_EQ(tb.Events(trace::PCI_BLOCKED).size(), 2u);
  tb.CfgWrite(4, 0, kCommand, 2, pci::kCommandBusMaster);
  EXPECT_EQ(dev.SignalMsi(0), SignalResult::kSent);
  EXPECT_TRUE(dev.DmaWrite(0x1000, payload).ok());
  ASSERT_EQ(tb.msis.messages.size(), 1u);
  EXPECT_EQ(tb.msis.messages[0], MsiMessage(0xFEE00000, 0x41, 0x0020));
  EXPECT_EQ(tb.ram->Load<uint32_t>(0x1000), 0x04030201u);
}

// Root complex: a DWORD write into 0xFEE00000-0xFEEFFFFF is an interrupt
// message carrying the requester id; other sizes there are malformed; writes
// elsewhere go to RAM, or master-abort (NotFound) outside RAM.
TEST(RootComplexTest, RoutesMsiWindowWritesAndRamWrites) {
  PciTestbed tb;
  const uint8_t dword[4] = {0x30, 0, 0, 0};
  EXPECT_TRUE(tb.root.Write(0x0118, 0xFEE01000, dword).ok());
  ASSERT_EQ(tb.msis.messages.size(), 1u);
  EXPECT_EQ(tb.msis.messages[0], MsiMessage(0xFEE01000, 0x30, 0x0118));
  EXPECT_TRUE(absl::IsInvalidArgument(
      tb.root.Write(0x0118, 0xFEE01000, absl::MakeConstSpan(dword, 2))));
  EXPECT_TRUE(absl::IsInvalidArgument(tb.root.Write(0x0118, 0xFEEFFFFE, dword)));
  EXPECT_TRUE(tb.root.Write(0x0118, 0x2000, dword).ok());
  EXPECT_EQ(tb.ram->Load<uint8_t>(0x2000), 0x30);
  EXPECT_TRUE(absl::IsNotFound(tb.root.Write(0x0118, PciTestbed::kRamSize - 2, dword)));
  uint8_t out[4];
  EXPECT_TRUE(absl::IsInvalidArgument(tb.root.Read(0x0118, 0xFEE00000, out)));
  EXPECT_EQ(tb.msis.messages.size(), 1u);
  ASSERT_FALSE(tb.Events(trace::MSI_WRITE).empty());
  EXPECT_EQ(tb.Events(trace::MSI_WRITE)[0].requester_id(), 0x0118u);
}

// Fuzz: random config, BAR, MSI-X table and register accesses from a fixed
// seed never crash, and invariants hold after every step: read-only identity
// unchanged, a decoding BAR is mapped exactly at its programmed address and
// only with its decode enable set, PBA bits only for real entries, the INTx
// line never high while disabled or while MSI/MSI-X is enabled.
TEST(PciFuzzTest, RandomAccessesKeepInvariants) {
  PciTestbed tb;
  IrqlabTestDev dev;
  Edu edu(&tb.events);
  ASSERT_TRUE(tb.host.AddFunction(3, 0, &edu).ok());
  ASSERT_TRUE(tb.host.AddFunction(4, 0, &dev).ok());
  ASSERT_TRUE(tb.host.AssignResources().ok());
  std::mt19937_64 rng(20240611);
  const unsigned sizes[] = {1, 2, 4, 8, 3};
  auto pick_addr = [&]() -> uint64_t {
    switch (rng() % 4) {
      case 0:
        return dev.BarAddress(1) + (rng() % 0x1000);
      case 1:
        return dev.BarAddress(0) + (rng() % 0x40);
      case 2:
        return edu.BarAddress(0) + (rng() % 0x100);
      default:
        return 0xC0000000 + (rng() % 0x200000);
    }
  };
  // Every 1000 steps the "driver" restores a sane, live configuration
  // (resources, decode, bus master, MSI/MSI-X pointed at the APIC window) so
  // the random accesses also hit working delivery paths.
  auto revive = [&] {
    (void)tb.host.AssignResources();
    for (uint8_t d : {3, 4}) {
      tb.CfgWrite(d, 0, pci::kCommand, 2,
                  pci::kCommandMemorySpace | pci::kCommandIoSpace | pci::kCommandBusMaster);
      tb.CfgWrite(d, 0, 0x44, 4, 0xFEE00000);  // MSI address (both at 0x40)
      tb.CfgWrite(d, 0, 0x48, 4, 0);
    }
    for (unsigned i = 0; i < 64; ++i) {
      tb.mem.Write(AccessOrigin::Cpu(0), dev.BarAddress(1) + 16 * i, 8, 0xFEE00000 + (i << 12));
    }
  };
  for (int step = 0; step < 20000; ++step) {
    if (step % 1000 == 0) revive();
    const unsigned size = sizes[rng() % 5];
    const uint64_t value = rng();
    switch (rng() % 8) {
      case 0:
      case 1: {  // config write through mechanism #1, any device
        const uint8_t d = (rng() % 2) ? 4 : 3;
        const uint16_t reg = rng() % 0x100;
        // Keep the config accesses "mostly sane" so BARs keep decoding.
        tb.CfgWrite(d, 0, reg, size > 4 ? 4 : size, static_cast<uint32_t>(value));
        break;
      }
      case 2:
        tb.mem.Write(AccessOrigin::Cpu(0), tb.EcamAddress(0, rng() % 8, rng() % 2, rng() % 0x1000),
                     size, value);
        break;
      case 3:
      case 4:
        tb.mem.Write(AccessOrigin::Cpu(0), pick_addr(), size, value);
        break;
      case 5:
        (void)tb.mem.Read(AccessOrigin::Cpu(0), pick_addr(), size);
        break;
      case 6:
        (void)dev.SignalMsix(rng() % 70);
        (void)dev.SignalMsi(rng() % 40);
        dev.SetIntxLevel(rng() % 2);
        break;
      default:
        tb.events.RunUntil(tb.events.now() + rng() % 20000);
        break;
    }
    // Invariants.
    ASSERT_EQ(tb.CfgRead(4, 0, 0, 4), 0x00011337u);
    ASSERT_EQ(tb.CfgRead(3, 0, 0, 4), 0x11E81234u);
    for (PciFunction* f : {static_cast<PciFunction*>(&dev), static_cast<PciFunction*>(&edu)}) {
      for (int i = 0; i < 6; ++i) {
        const BarSpec* spec = f->bar(i);
        if (spec == nullptr) continue;
        std::optional<uint64_t> at = f->BarMappedAt(i);
        if (!at.has_value()) continue;
        ASSERT_EQ(*at, f->BarAddress(i));
        const uint16_t enable = spec->type == BarType::kIo ? pci::kCommandIoSpace
                                                           : pci::kCommandMemorySpace;
        ASSERT_TRUE(f->command() & enable);
        AddressSpace& space = spec->type == BarType::kIo ? tb.io : tb.mem;
        ASSERT_NE(space.Find(*at), nullptr);
      }
      if (f->intx_line().level()) {
        ASSERT_FALSE(f->intx_disabled());
        ASSERT_FALSE(f->msi_enabled() || f->msix_enabled());
        ASSERT_TRUE(f->intx_level());
      }
    }
    ASSERT_EQ(dev.msi()->enabled_vectors() <= 32, true);
  }
  // The loop exercised the interesting paths, not just rejections.
  std::map<int, int> stages;
  for (const TraceEvent& e : tb.recorder.events()) ++stages[e.stage()];
  for (const auto& [stage, count] : stages) {
    RecordProperty(StageName(static_cast<trace::Stage>(stage)), count);
  }
  EXPECT_GT(stages[trace::PCI_BAR], 10);
  EXPECT_GT(stages[trace::MSIX_PENDING] + stages[trace::MSI_MASKED], 10);
  EXPECT_GT(stages[trace::MSI_WRITE] + stages[trace::DMA], 10);
  for (const MsiMessage& m : tb.msis.messages) {
    ASSERT_TRUE(m.requester_id == 0x0018 || m.requester_id == 0x0020);
  }
}

}  // namespace
}  // namespace irqlab
