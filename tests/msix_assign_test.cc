// Seed 004: MSI-X in device assignment, without a guest CPU.
//   devices/sriov_nic.h    irqlab-nic: the PF/firmware mailbox that is
//                          answered only while MSI-X is enabled on the
//                          function
//   pci/vfio.h             VfioPciDevice::SetMsixIrqs (host vectors, the
//                          physical table written through host memory,
//                          physical MSI-X enable/disable)
//   pci/assigned_device.h  the emulated guest MSI-X capability, the four
//                          enable policies, routes per entry, masking
//                          emulation (guest PBA, delivery on unmask)
// The guest is a PciTestbed (config cycles and MMIO as a guest issues
// them), the host a real HostPlatform (VT-d with IR, host CPUs) sharing its
// event queue; routes go to a recording guest APIC bus. Each test states
// the rule it checks.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "devices/edu.h"
#include "devices/sriov_nic.h"
#include "emu/core/event_queue.h"
#include "emu/machine/host_platform.h"
#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pci/assigned_device.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"
#include "pci/vfio.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Policy = AssignmentOptions::MsixPolicy;

const AccessOrigin kCpu = AccessOrigin::Cpu(0);
constexpr uint16_t kDevRid = 0x0200;    // 02:00.0 on the host
constexpr uint8_t kSlot = 6;            // guest 00:06.0
constexpr uint16_t kGuestRid = 0x0030;  // 00:06.0
constexpr uint16_t kCap = SriovNic::kMsixCapOffset;
constexpr unsigned kEntries = SriovNic::kMsixVectors;
// The host message of the first allocation: IRTE 43 (0x2b), SHV, sub 0.
const MsiMessage kHost43 = MsiMessage::Remappable(43, true, 0, kDevRid);

// ---------------------------------------------------------------------------
// SriovNic on its own (bare metal)
// ---------------------------------------------------------------------------

class NicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tb_.host.AddFunction(kSlot, 0, &nic_).ok());
    ASSERT_TRUE(tb_.host.AssignResources().ok());
    tb_.CfgWrite(kSlot, 0, pci::kCommand, 2, pci::kCommandMemorySpace | pci::kCommandBusMaster);
  }
  uint32_t Reg(uint64_t off) {
    return static_cast<uint32_t>(tb_.mem.Read(kCpu, *nic_.BarMappedAt(0) + off, 4));
  }
  void SetReg(uint64_t off, uint32_t v) { tb_.mem.Write(kCpu, *nic_.BarMappedAt(0) + off, 4, v); }
  void Entry(unsigned i, uint32_t field, uint32_t v) {
    tb_.mem.Write(kCpu, *nic_.BarMappedAt(3) + i * 16 + field, 4, v);
  }
  void RunFor(uint64_t ticks) { tb_.events.RunUntil(tb_.events.now() + ticks); }

  PciTestbed tb_;
  SriovNic nic_{&tb_.events};
};

// Rule (sriov_nic.h): identity 1337:0010 class 020000; MSI-X at 0x70 with 8
// entries, table BAR3+0 and PBA BAR3+0x2000; MSI at 0x50; id "NIC0".
TEST_F(NicTest, IdentityAndMsixLayout) {
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, pci::kVendorId, 4), 0x00101337u);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, pci::kRevisionId, 4) >> 8, 0x020000u);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap, 1), pci::kCapIdMsix);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsixControl, 2), kEntries - 1);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsixTableOffsetBir, 4), 0x0000u | 3u);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsixPbaOffsetBir, 4), 0x2000u | 3u);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, SriovNic::kMsiCapOffset, 1), pci::kCapIdMsi);
  EXPECT_EQ(Reg(SriovNic::kRegId), SriovNic::kId);
}

// Rule: without MSI-X enabled the firmware drops a request after the
// latency: BUSY clears, DONE never sets, MBX_STATS counts one drop, nothing
// is signalled (the seed-004 firmware bug).
TEST_F(NicTest, MailboxDroppedWithoutMsix) {
  SetReg(SriovNic::kRegMbxReq, 0x1234);
  EXPECT_EQ(Reg(SriovNic::kRegMbxStatus), SriovNic::kMbxBusy);
  RunFor(SriovNic::Options().mailbox_latency);
  EXPECT_EQ(Reg(SriovNic::kRegMbxStatus), 0u);
  EXPECT_EQ(Reg(SriovNic::kRegMbxResp), 0u);
  EXPECT_EQ(Reg(SriovNic::kRegMbxStats), 1u << 16);
  EXPECT_EQ(Reg(SriovNic::kRegStatus), 0u);
  EXPECT_THAT(tb_.msis.messages, IsEmpty());
}

// Rule: with MSI-X enabled (even with every entry masked) the answer
// arrives exactly `mailbox_latency` ticks later: RESP = request | ACK, DONE,
// EICR bit 0, and MSI-X entry 0 signalled — here masked, so its PBA bit.
// DONE is write-1-to-clear; a request while BUSY is ignored.
TEST_F(NicTest, MailboxAnsweredWithMsixEnabledAfterLatency) {
  tb_.CfgWrite(kSlot, 0, kCap + pci::kMsixControl, 2, pci::kMsixControlEnable);
  EXPECT_EQ(Reg(SriovNic::kRegStatus), SriovNic::kStatusMsixEnabled);
  SetReg(SriovNic::kRegMbxReq, 0x1234);
  SetReg(SriovNic::kRegMbxReq, 0x5678);  // busy: ignored
  RunFor(SriovNic::Options().mailbox_latency - 1);
  EXPECT_EQ(Reg(SriovNic::kRegMbxStatus), SriovNic::kMbxBusy);
  RunFor(1);
  EXPECT_EQ(Reg(SriovNic::kRegMbxStatus), SriovNic::kMbxDone);
  EXPECT_EQ(Reg(SriovNic::kRegMbxResp), 0x80001234u);
  EXPECT_EQ(Reg(SriovNic::kRegEicr), 1u);
  EXPECT_EQ(Reg(SriovNic::kRegMbxStats), 1u);
  EXPECT_TRUE(nic_.msix()->pending(0));
  EXPECT_THAT(tb_.msis.messages, IsEmpty());
  SetReg(SriovNic::kRegMbxStatus, SriovNic::kMbxDone);
  EXPECT_EQ(Reg(SriovNic::kRegMbxStatus), 0u);
  // Unmasked entry 0 with a message: delivered.
  Entry(0, pci::kMsixEntryAddressLo, 0xFEE00000);
  Entry(0, pci::kMsixEntryData, 0x61);
  Entry(0, pci::kMsixEntryVectorControl, 0);
  EXPECT_THAT(tb_.msis.messages, ElementsAre(MsiMessage::Compat(0, 0x61, kGuestRid)));
}

// Rule: EICS sets EICR bits and signals those MSI-X entries; EICR is
// write-1-to-clear.
TEST_F(NicTest, EicsSignalsEntries) {
  tb_.CfgWrite(kSlot, 0, kCap + pci::kMsixControl, 2, pci::kMsixControlEnable);
  for (unsigned i : {2u, 5u}) {
    Entry(i, pci::kMsixEntryAddressLo, 0xFEE00000);
    Entry(i, pci::kMsixEntryData, 0x70 + i);
    Entry(i, pci::kMsixEntryVectorControl, 0);
  }
  SetReg(SriovNic::kRegEics, (1u << 2) | (1u << 5));
  EXPECT_EQ(Reg(SriovNic::kRegEicr), (1u << 2) | (1u << 5));
  EXPECT_THAT(tb_.msis.messages, ElementsAre(MsiMessage::Compat(0, 0x72, kGuestRid),
                                             MsiMessage::Compat(0, 0x75, kGuestRid)));
  SetReg(SriovNic::kRegEicr, 1u << 2);
  EXPECT_EQ(Reg(SriovNic::kRegEicr), 1u << 5);
}

// ---------------------------------------------------------------------------
// Assignment: host + vfio + the guest-visible function
// ---------------------------------------------------------------------------

class MsixAssignTest : public ::testing::Test {
 protected:
  void Make(Policy policy) {
    auto host = HostPlatform::Create(HostConfig{}, tb_.ram.get(), &tb_.events, &tb_.events,
                                     &tb_.tracer);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = std::move(*host);
    routes_ = std::make_unique<IrqRouteTable>(&guest_apic_, nullptr, &tb_.tracer, &tb_.events);
    phys_ = std::make_unique<SriovNic>(&tb_.events);
    ASSERT_TRUE(host_->AddDevice(phys_.get(), kDevRid).ok());
    vfio_ = std::make_unique<VfioPciDevice>(phys_.get(), &host_->memory(), host_.get(),
                                            &tb_.tracer, &tb_.events);
    AssignmentOptions options;
    options.msix_policy = policy;
    auto guest = AssignedPciDevice::Create(vfio_.get(), routes_.get(), options);
    ASSERT_TRUE(guest.ok()) << guest.status();
    guest_ = std::move(*guest);
    ASSERT_TRUE(tb_.host.AddFunction(kSlot, 0, guest_.get()).ok());
    ASSERT_TRUE(tb_.host.AssignResources().ok());
    tb_.CfgWrite(kSlot, 0, pci::kCommand, 2, pci::kCommandMemorySpace | pci::kCommandBusMaster);
    ASSERT_TRUE(guest_->BarMappedAt(0).has_value());
    ASSERT_TRUE(guest_->BarMappedAt(3).has_value());
  }
  void TearDown() override {
    guest_.reset();
    vfio_.reset();
    phys_.reset();
  }

  // --- The guest driver. ---
  void Ctrl(uint16_t v) { tb_.CfgWrite(kSlot, 0, kCap + pci::kMsixControl, 2, v); }
  void GuestEntry(unsigned i, uint32_t field, uint32_t v) {
    tb_.mem.Write(kCpu, *guest_->BarMappedAt(3) + i * 16 + field, 4, v);
  }
  uint32_t GuestEntryRead(unsigned i, uint32_t field) {
    return static_cast<uint32_t>(tb_.mem.Read(kCpu, *guest_->BarMappedAt(3) + i * 16 + field, 4));
  }
  uint64_t GuestPba() {
    return tb_.mem.Read(kCpu, *guest_->BarMappedAt(3) + SriovNic::kMsixPbaOffset, 8);
  }
  void Program(unsigned i, uint8_t vector) {
    GuestEntry(i, pci::kMsixEntryAddressLo, 0xFEE00000);
    GuestEntry(i, pci::kMsixEntryAddressHi, 0);
    GuestEntry(i, pci::kMsixEntryData, vector);
  }
  void Mask(unsigned i, bool masked) {
    GuestEntry(i, pci::kMsixEntryVectorControl, masked ? pci::kMsixVectorControlMask : 0);
  }
  // Linux 3.x msix_capability_init: entries first, Enable + Function
  // Mask, Function Mask cleared — every entry masked throughout.
  void LinuxEnable(unsigned nvec) {
    for (unsigned i = 0; i < nvec; ++i) Program(i, static_cast<uint8_t>(0x60 + i));
    Ctrl(pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
    Ctrl(pci::kMsixControlEnable);
  }
  // FreeBSD: Enable with the table empty, entries filled later (masked).
  void FreebsdEnable(unsigned nvec) {
    Ctrl(pci::kMsixControlEnable);
    for (unsigned i = 0; i < nvec; ++i) Program(i, static_cast<uint8_t>(0x60 + i));
  }
  // Guest MMIO to BAR0 (passed through to the physical NIC).
  void GuestReg(uint64_t off, uint32_t v) { tb_.mem.Write(kCpu, *guest_->BarMappedAt(0) + off, 4, v); }
  uint32_t GuestRegRead(uint64_t off) {
    return static_cast<uint32_t>(tb_.mem.Read(kCpu, *guest_->BarMappedAt(0) + off, 4));
  }
  // The driver's mailbox request; true iff answered within the latency.
  bool Mailbox(uint32_t request) {
    GuestReg(SriovNic::kRegMbxReq, request);
    RunFor(SriovNic::Options().mailbox_latency);
    return GuestRegRead(SriovNic::kRegMbxResp) == (request | SriovNic::kMbxAck);
  }
  void RunFor(uint64_t ticks) { tb_.events.RunUntil(tb_.events.now() + ticks); }
  void Run() { tb_.events.RunUntil(tb_.events.now()); }

  // --- The physical side. ---
  uint32_t PhysEntry(unsigned i, uint32_t field) {
    return static_cast<uint32_t>(
        host_->memory().Read(kCpu, *phys_->BarMappedAt(3) + i * 16 + field, 4));
  }
  std::vector<unsigned> PhysUnmasked() {
    std::vector<unsigned> out;
    for (unsigned i = 0; i < kEntries; ++i) {
      if (!phys_->msix()->vector_masked(i)) out.push_back(i);
    }
    return out;
  }
  std::vector<unsigned> HostVectors() {
    std::vector<unsigned> out;
    for (unsigned i = 0; i < kEntries; ++i) {
      if (vfio_->msix_host_vector(i)) out.push_back(i);
    }
    return out;
  }
  int Count(trace::Stage stage, const std::string& needle) const {
    int n = 0;
    for (const TraceEvent& e : tb_.recorder.events()) {
      if (e.stage() == stage && e.detail().find(needle) != std::string::npos) ++n;
    }
    return n;
  }

  PciTestbed tb_;
  RecordingMsiSink guest_apic_;
  std::unique_ptr<HostPlatform> host_;
  std::unique_ptr<IrqRouteTable> routes_;
  std::unique_ptr<SriovNic> phys_;
  std::unique_ptr<VfioPciDevice> vfio_;
  std::unique_ptr<AssignedPciDevice> guest_;
};

// Rule (assigned_device.h, "MSI-X"): the guest-visible function has an
// MSI-X capability of the same size and place (config offset, table and PBA
// BIR/offset); the table is the VMM's: the guest reads back its own
// entries (reset masked), and nothing of it reaches the physical table.
TEST_F(MsixAssignTest, GuestCapabilityMirrorsPhysicalAndTableIsEmulated) {
  Make(Policy::kLazy);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap, 1), pci::kCapIdMsix);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsixControl, 2),
            phys_->ConfigRead(kCap + pci::kMsixControl, 2));
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsixTableOffsetBir, 4),
            phys_->ConfigRead(kCap + pci::kMsixTableOffsetBir, 4));
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsixPbaOffsetBir, 4),
            phys_->ConfigRead(kCap + pci::kMsixPbaOffsetBir, 4));
  EXPECT_EQ(guest_->msix()->vectors(), kEntries);
  EXPECT_EQ(GuestEntryRead(3, pci::kMsixEntryVectorControl), 1u);
  Program(3, 0x77);
  EXPECT_EQ(GuestEntryRead(3, pci::kMsixEntryAddressLo), 0xFEE00000u);
  EXPECT_EQ(GuestEntryRead(3, pci::kMsixEntryData), 0x77u);
  EXPECT_EQ(PhysEntry(3, pci::kMsixEntryAddressLo), 0u);
  EXPECT_EQ(PhysEntry(3, pci::kMsixEntryData), 0u);
  // Guest MSI-X Message Control never reaches the physical function.
  Ctrl(pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
  EXPECT_FALSE(phys_->msix()->enabled());
  EXPECT_FALSE(phys_->msix()->function_masked());
}

// Rule (kLazy): enabling with every vector masked leaves the physical
// function's MSI-X off (no SET_IRQS), so the firmware drops the probe-time
// mailbox request. The unmask of entry 0 enables physical MSI-X with that
// one vector: the physical entry holds the host message, unmasked; the
// other physical entries stay masked. Then the mailbox works and its
// interrupt reaches the guest as entry 0's guest message.
TEST_F(MsixAssignTest, LazyEnablesOnlyAtUnmaskAndTheProbeMailboxIsLost) {
  Make(Policy::kLazy);
  LinuxEnable(3);
  EXPECT_FALSE(phys_->msix_enabled());
  EXPECT_EQ(vfio_->msix_irq_count(), 0u);
  EXPECT_EQ(guest_->msix_host_vectors(), 0u);
  EXPECT_EQ(GuestRegRead(SriovNic::kRegStatus), 0u);  // what the firmware sees
  EXPECT_FALSE(Mailbox(0x00010001));
  EXPECT_EQ(phys_->mailbox_dropped(), 1u);
  EXPECT_EQ(GuestPba(), 0u);

  Mask(0, false);
  EXPECT_TRUE(phys_->msix_enabled());
  EXPECT_FALSE(phys_->msix()->function_masked());
  EXPECT_THAT(HostVectors(), ElementsAre(0u));
  EXPECT_THAT(PhysUnmasked(), ElementsAre(0u));
  EXPECT_EQ(PhysEntry(0, pci::kMsixEntryAddressLo), static_cast<uint32_t>(kHost43.address));
  EXPECT_EQ(PhysEntry(0, pci::kMsixEntryData), kHost43.data);
  EXPECT_EQ(routes_->size(), 1u);
  EXPECT_TRUE(Mailbox(0x00010002));
  Run();
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage::Compat(0, 0x60, kGuestRid)));
  EXPECT_THAT(host_->log(), IsEmpty());
}

// Rule (kLazy): the set only grows; a second unmasked entry gets its own
// host vector and IRTE while entry 0 keeps its own (no re-allocation).
TEST_F(MsixAssignTest, LazyGrowsKeepingExistingHostVectors) {
  Make(Policy::kLazy);
  LinuxEnable(3);
  Mask(0, false);
  Mask(2, false);
  EXPECT_THAT(HostVectors(), ElementsAre(0u, 2u));
  EXPECT_EQ(vfio_->msix_irqs_allocated(), 2u);
  EXPECT_EQ(PhysEntry(0, pci::kMsixEntryAddressLo), static_cast<uint32_t>(kHost43.address));
  EXPECT_EQ(PhysEntry(2, pci::kMsixEntryAddressLo),
            static_cast<uint32_t>(MsiMessage::Remappable(44, true, 0, kDevRid).address));
  // Masking again does not take the host vector away.
  Mask(2, true);
  EXPECT_THAT(HostVectors(), ElementsAre(0u, 2u));
  GuestReg(SriovNic::kRegEics, 1u << 2);
  Run();
  EXPECT_THAT(guest_apic_.messages, IsEmpty());
  EXPECT_EQ(GuestPba(), 1u << 2);
}

// Rule (kDataHint): at the guest's enable, exactly the entries with
// non-zero data get host vectors (entry 1 left empty is skipped) — the
// mailbox is then answered. With the FreeBSD order (table empty at enable)
// nothing qualifies: physical MSI-X stays off as with kLazy.
TEST_F(MsixAssignTest, DataHintTakesEntriesWithNonZeroData) {
  Make(Policy::kDataHint);
  Program(0, 0x60);
  Program(2, 0x62);
  GuestEntry(1, pci::kMsixEntryAddressLo, 0xFEE00000);  // data stays 0
  Ctrl(pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
  Ctrl(pci::kMsixControlEnable);
  EXPECT_THAT(HostVectors(), ElementsAre(0u, 2u));
  EXPECT_EQ(vfio_->msix_irqs_allocated(), 2u);  // the second event changed nothing
  EXPECT_TRUE(phys_->msix_enabled());
  EXPECT_TRUE(Mailbox(0x00010001));
}

TEST_F(MsixAssignTest, DataHintWithFreebsdOrderDegradesToLazy) {
  Make(Policy::kDataHint);
  FreebsdEnable(3);
  EXPECT_FALSE(phys_->msix_enabled());
  EXPECT_EQ(vfio_->msix_irq_count(), 0u);
  EXPECT_FALSE(Mailbox(0x00010001));
  EXPECT_EQ(phys_->mailbox_dropped(), 1u);
}

// Rule (kSingleVector): at the guest's enable, entry 0 gets a host vector
// although masked; the mailbox is answered; the answer's host interrupt
// finds guest entry 0 masked: the guest PBA bit is set and nothing reaches
// the guest until the unmask, which delivers it once through the route
// with the entry's current message, and clears the bit.
TEST_F(MsixAssignTest, SingleVectorHoldsTheAnswerInTheGuestPbaUntilUnmask) {
  Make(Policy::kSingleVector);
  FreebsdEnable(3);
  EXPECT_THAT(HostVectors(), ElementsAre(0u));
  EXPECT_TRUE(phys_->msix_enabled());
  EXPECT_TRUE(Mailbox(0x00010001));
  Run();
  EXPECT_EQ(host_->irqs_handled(), 1u);
  EXPECT_THAT(guest_apic_.messages, IsEmpty());
  EXPECT_EQ(GuestPba(), 1u);
  EXPECT_EQ(guest_->msix_masked_host_irqs(), 1u);
  EXPECT_EQ(Count(trace::MSIX_PENDING, "irqlab-nic-vfio MSI-X entry 0 masked"), 1);
  Mask(0, false);
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage::Compat(0, 0x60, kGuestRid)));
  EXPECT_EQ(GuestPba(), 0u);
  EXPECT_EQ(routes_->stats().fast, 1u);
}

// Rule (kAllVectors): every entry gets a host vector at enable; the guest
// disabling MSI-X masks every physical entry, disables physical MSI-X,
// frees the host vectors and removes the routes; enabling again applies
// the policy again.
TEST_F(MsixAssignTest, AllVectorsAndDisableFreesEverything) {
  Make(Policy::kAllVectors);
  LinuxEnable(3);
  EXPECT_EQ(vfio_->msix_irq_count(), kEntries);
  EXPECT_EQ(routes_->size(), kEntries);
  EXPECT_EQ(PhysUnmasked().size(), kEntries);
  EXPECT_EQ(Count(trace::HOST_IRQ, "irq allocated for irqlab-nic-msix"), 8);
  Ctrl(0);
  EXPECT_FALSE(phys_->msix_enabled());
  EXPECT_THAT(PhysUnmasked(), IsEmpty());
  EXPECT_EQ(vfio_->msix_irq_count(), 0u);
  EXPECT_EQ(guest_->msix_host_vectors(), 0u);
  EXPECT_EQ(routes_->size(), 0u);
  Ctrl(pci::kMsixControlEnable);
  EXPECT_EQ(vfio_->msix_irq_count(), kEntries);
  EXPECT_EQ(vfio_->msix_irqs_allocated(), 2u * kEntries);
}

// Rule: a guest rewrite of an entry with a host vector updates its route
// (no new SET_IRQS): the next interrupt carries the new message.
TEST_F(MsixAssignTest, GuestEntryRewriteUpdatesTheRoute) {
  Make(Policy::kLazy);
  LinuxEnable(3);
  Mask(1, false);
  GuestReg(SriovNic::kRegEics, 1u << 1);
  Run();
  GuestEntry(1, pci::kMsixEntryAddressLo, 0xFEE01000);  // APIC id 1
  GuestEntry(1, pci::kMsixEntryData, 0x91);
  GuestReg(SriovNic::kRegEics, 1u << 1);
  Run();
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage::Compat(0, 0x61, kGuestRid),
                                                MsiMessage::Compat(1, 0x91, kGuestRid)));
  EXPECT_EQ(vfio_->msix_irqs_allocated(), 1u);
  EXPECT_EQ(Count(trace::VFIO, "SET_IRQS MSIX vectors"), 1);
}

// Rule: the guest's Function Mask is emulated: host interrupts latch the
// guest PBA while the physical function stays unmasked; clearing it
// delivers every pending unmasked entry, in index order.
TEST_F(MsixAssignTest, GuestFunctionMaskIsEmulated) {
  Make(Policy::kLazy);
  LinuxEnable(3);
  Mask(0, false);
  Mask(2, false);
  Ctrl(pci::kMsixControlEnable | pci::kMsixControlFunctionMask);
  GuestReg(SriovNic::kRegEics, (1u << 2) | (1u << 0));
  Run();
  EXPECT_FALSE(phys_->msix()->function_masked());
  EXPECT_THAT(guest_apic_.messages, IsEmpty());
  EXPECT_EQ(GuestPba(), (1u << 2) | 1u);
  Ctrl(pci::kMsixControlEnable);
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage::Compat(0, 0x60, kGuestRid),
                                                MsiMessage::Compat(0, 0x62, kGuestRid)));
  EXPECT_EQ(GuestPba(), 0u);
}

// Rule (seed 003's lesson for MSI-X): one QWORD write of Message Data +
// Vector Control that unmasks a pending entry updates the route BEFORE the
// pending message is released through it: the new data is delivered.
TEST_F(MsixAssignTest, QwordUnmaskDeliversTheNewMessage) {
  Make(Policy::kSingleVector);
  LinuxEnable(1);
  ASSERT_TRUE(Mailbox(0x00010001));
  Run();
  ASSERT_EQ(GuestPba(), 1u);
  tb_.mem.Write(kCpu, *guest_->BarMappedAt(3) + pci::kMsixEntryData, 8, uint64_t{0x6A});
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage::Compat(0, 0x6A, kGuestRid)));
}

// Rule (vfio.h): SetMsixIrqs rejects an entry beyond the table and a device
// without MSI-X; the empty set on a disabled function is a no-op.
TEST_F(MsixAssignTest, SetMsixIrqsErrors) {
  Make(Policy::kLazy);
  std::map<unsigned, std::function<void()>> bad;
  bad[kEntries] = [] {};
  EXPECT_EQ(vfio_->SetMsixIrqs(std::move(bad)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vfio_->msix_irq_count(), 0u);
  EXPECT_TRUE(vfio_->SetMsixIrqs({}).ok());
  EXPECT_FALSE(phys_->msix_enabled());

  Edu edu(&tb_.events);
  ASSERT_TRUE(host_->AddDevice(&edu, 0x0300).ok());
  VfioPciDevice edu_vfio(&edu, &host_->memory(), host_.get(), &tb_.tracer, &tb_.events);
  std::map<unsigned, std::function<void()>> one;
  one[0] = [] {};
  EXPECT_EQ(edu_vfio.SetMsixIrqs(std::move(one)).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace irqlab
