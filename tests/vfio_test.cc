// Tests of the device-assignment layer, host and guest at once:
//   emu/machine/host_platform.h   HostPlatform (host kernel IRQ/IRTE allocation, host
//                         VT-d with IR on, the DMAR fault handler's log)
//   pci/vfio.h            VfioPciDevice (MSI config virtualization, NOVIRT,
//                         SET_IRQS, per-source IMS interrupts)
//   pci/assigned_device.h IrqRouteTable (fast/slow path, IEC-cookie
//                         invalidation) and AssignedPciDevice (identity,
//                         MSI enable -> SET_IRQS, NOVIRT quirk, IMS)
// Real objects only: EventQueue as the clock, Tracer with a recorder, the
// real VT-d/APIC/PCI models; physical devices are IrqlabTestDev and, for the
// seed-000 "firmware copies the MSI pair into BAR0" behaviour, a small test
// function below. Each test states the rule it checks.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "devices/irqlab_testdev.h"
#include "emu/core/event_queue.h"
#include "emu/core/guest_ram.h"
#include "emu/machine/host_platform.h"
#include "emu/core/msi.h"
#include "emu/core/trace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "iommu/vtd_regs.h"
#include "iommu/vtd_unit.h"
#include "pci/assigned_device.h"
#include "pci/pci_regs.h"
#include "pci/pci_testing.h"
#include "pci/vfio.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

const AccessOrigin kCpu = AccessOrigin::Cpu(0);
constexpr uint16_t kDevRid = 0x0200;    // 02:00.0 on the host
constexpr uint16_t kOtherRid = 0x0300;  // 03:00.0 on the host
constexpr uint16_t kGuestRid = 0x0020;  // 00:04.0 in the guest

// The seed-000 host message: IRTE 43 (0x2b), SHV=1, subhandle 0.
constexpr uint64_t kHostAddress43 = 0xFEE00578;

// A physical function that behaves like the WCN6855 in seed 000: BAR0 is a
// 1 MiB register file that keeps what is written (4-byte accesses), and its
// "firmware" raises interrupts by writing the address/data pair that the
// driver copied into BAR0 (address at +0/+4, data at +8) — not the MSI
// capability. It also has a 16-vector 64-bit MSI capability at 0x50.
class FirmwareDev : public PciFunction, public IoHandler {
 public:
  static constexpr uint64_t kBar0Size = 1 << 20;
  static constexpr uint16_t kMsiCap = 0x50;
  FirmwareDev()
      : PciFunction("fwdev", Identity{.vendor_id = 0x1337,
                                      .device_id = 0x00FE,
                                      .class_code = 0x028000,
                                      .revision = 7,
                                      .subsystem_vendor_id = 0x1337,
                                      .subsystem_id = 0x00FF,
                                      .interrupt_pin = 1}),
        regs_(kBar0Size / 4, 0) {
    (void)AddBar(0, BarSpec{.type = BarType::kMemory64, .size = kBar0Size, .handler = this});
    (void)AddMsiCapability(
        MsiCapability::Options{.vectors = 16, .address64 = true, .per_vector_mask = false},
        kMsiCap);
  }
  uint64_t Read(const AccessOrigin&, uint64_t offset, unsigned size) override {
    if (size != 4 || offset % 4 != 0 || offset >= kBar0Size) return ~0ull;
    return regs_[offset / 4];
  }
  void Write(const AccessOrigin&, uint64_t offset, unsigned size, uint64_t value) override {
    if (size != 4 || offset % 4 != 0 || offset >= kBar0Size) return;
    regs_[offset / 4] = static_cast<uint32_t>(value);
  }
  // The firmware fires the interrupt source whose registers are at `offset`.
  absl::Status FireFrom(uint64_t offset) {
    const uint64_t address = (uint64_t{regs_[offset / 4 + 1]} << 32) | regs_[offset / 4];
    const uint32_t data = regs_[offset / 4 + 2];
    uint8_t bytes[4];
    std::memcpy(bytes, &data, 4);
    return DmaWrite(address, bytes);
  }

 private:
  std::vector<uint32_t> regs_;
};

// The host kernel's way of programming a function's MSI capability (what
// pci_alloc_irq_vectors + the IR irq domain end up writing).
void ProgramMsi(PciFunction& dev, const MsiMessage& m, unsigned count) {
  const uint16_t cap = dev.msi()->offset();
  const bool is64 = dev.msi()->options().address64;
  dev.ConfigWrite(cap + pci::kMsiAddressLo, 4, static_cast<uint32_t>(m.address));
  if (is64) dev.ConfigWrite(cap + pci::kMsiAddressHi, 4, static_cast<uint32_t>(m.address >> 32));
  dev.ConfigWrite(cap + (is64 ? pci::kMsiData64 : pci::kMsiData32), 2, m.data & 0xFFFF);
  unsigned mme = 0;
  while ((1u << mme) < count) ++mme;
  dev.ConfigWrite(cap + pci::kMsiControl, 2,
                  (mme << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  dev.ConfigWrite(pci::kCommand, 2, dev.command() | pci::kCommandBusMaster);
}

// ---------------------------------------------------------------------------
// HostPlatform
// ---------------------------------------------------------------------------

class HostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tracer_.AddSink(&recorder_);
    auto ram = GuestRam::Create(4 << 20);
    ASSERT_TRUE(ram.ok());
    ram_ = std::move(*ram);
  }
  void MakeHost(HostConfig config = {}) {
    auto host = HostPlatform::Create(config, ram_.get(), &events_, &events_, &tracer_);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = std::move(*host);
  }
  // Host-side events at the current tick (host CPUs taking interrupts).
  void Run() { events_.RunUntil(events_.now()); }
  // A handler that records the sub-index it is called with.
  std::function<void(unsigned)> Recorder(std::vector<unsigned>* out) {
    return [out](unsigned sub) { out->push_back(sub); };
  }
  // Fires IrqlabTestDev `dev`'s vector n via its BAR0 FIRE register.
  void Fire(IrqlabTestDev& dev, uint32_t n) {
    host_->memory().Write(kCpu, *dev.BarMappedAt(0) + IrqlabTestDev::kRegFire, 4, n);
    Run();
  }
  // (cpu, vector) of every host IRQ allocation, in order (trace contract:
  // "host: irq allocated for NAME: IRTE 0x.. -> cpu C vector 0x..").
  std::vector<std::pair<int, int>> Allocations() const {
    std::vector<std::pair<int, int>> out;
    for (const TraceEvent& e : recorder_.events()) {
      if (e.stage() == trace::HOST_IRQ && e.detail().find("irq allocated") != std::string::npos) {
        out.emplace_back(e.cpu(), e.vector());
      }
    }
    return out;
  }

  TraceRecorder recorder_;
  Tracer tracer_;
  EventQueue events_;
  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<HostPlatform> host_;
};

// Rule (host_platform.h): IRTEs are handed out from `first_irte` (43 by
// default), so the first device gets the remappable message fee00578/0000
// (handle 0x2b, SHV=1, subhandle 0) of seed 000; a 4-vector block takes the
// next 4 contiguous IRTEs (its message is handle 44, data = vector number).
TEST_F(HostTest, AllocateIrqsHandsOutContiguousIrtesFromFirstIrte) {
  MakeHost();
  std::vector<unsigned> subs;
  auto a = host_->AllocateIrqs(kDevRid, 1, "a", Recorder(&subs));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->first_index, 43u);
  EXPECT_EQ(a->count, 1u);
  EXPECT_EQ(a->message, MsiMessage(kHostAddress43, 0x0000, kDevRid));
  EXPECT_EQ(a->message.ToString(), "fee00578/00000000 rid=02:00.0 (remappable handle 0x2b)");
  auto b = host_->AllocateIrqs(kDevRid, 4, "b", Recorder(&subs));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->first_index, 44u);
  EXPECT_EQ(b->count, 4u);
  EXPECT_EQ(b->message, MsiMessage::Remappable(44, true, 0, kDevRid));
  EXPECT_NE(a->id, b->id);
  // The 4 IRTEs are 44..47: sub-vectors 0..3 of the block reach the handler
  // with their sub-index, one past the block (IRTE 48) is not present.
  for (uint32_t i = 0; i < 5; ++i) {
    MsiMessage m = b->message;
    m.data += i;
    host_->iommu().Signal(m);
    Run();
  }
  EXPECT_THAT(subs, ElementsAre(0u, 1u, 2u, 3u));
  ASSERT_EQ(host_->log().size(), 2u);
  EXPECT_THAT(host_->log()[1], HasSubstr("fault index 0x30 [fault reason 0x22]"));
}

// Rule: one host vector per interrupt, the lowest free vector from 0x30 on
// the next host CPU, round robin (a deterministic stand-in for Linux's
// matrix allocator).
TEST_F(HostTest, VectorsFrom0x30RoundRobinOverHostCpus) {
  MakeHost();  // 4 host CPUs
  ASSERT_TRUE(host_->AllocateIrqs(kDevRid, 1, "a", [](unsigned) {}).ok());
  ASSERT_TRUE(host_->AllocateIrqs(kDevRid, 4, "b", [](unsigned) {}).ok());
  EXPECT_THAT(Allocations(),
              ElementsAre(std::pair(0, 0x30), std::pair(1, 0x30), std::pair(2, 0x30),
                          std::pair(3, 0x30), std::pair(0, 0x31)));
}

// Rule: a device MSI carrying the host message goes through the host VT-d
// (remapped by IRTE first+i) to the host LAPIC, and the handler runs as a
// host event at that tick with sub-index i (not before the queue runs).
TEST_F(HostTest, DeviceMsiWithHostMessageReachesHandlerWithSubIndex) {
  MakeHost();
  IrqlabTestDev dev;
  ASSERT_TRUE(host_->AddDevice(&dev, kDevRid).ok());
  std::vector<unsigned> subs;
  auto block = host_->AllocateIrqs(kDevRid, 4, "testdev", Recorder(&subs));
  ASSERT_TRUE(block.ok()) << block.status();
  ProgramMsi(dev, block->message, 4);
  host_->memory().Write(kCpu, *dev.BarMappedAt(0) + IrqlabTestDev::kRegFire, 4, 2);
  EXPECT_THAT(subs, IsEmpty()) << "the handler runs as a host event, not inline";
  Run();
  EXPECT_THAT(subs, ElementsAre(2u));
  Fire(dev, 0);
  Fire(dev, 3);
  EXPECT_THAT(subs, ElementsAre(2u, 0u, 3u));
  EXPECT_EQ(host_->irqs_handled(), 3u);
  EXPECT_EQ(host_->spurious_irqs(), 0u);
  EXPECT_THAT(host_->log(), IsEmpty());
  EXPECT_EQ(host_->iommu().stats().remapped, 3u);
  // The LAPIC was EOId: nothing left in service on any host CPU.
  for (int c = 0; c < host_->config().cpus; ++c) {
    EXPECT_EQ(host_->cpu(c).PendingVector(), -1);
    for (int v = 0x30; v < 0x40; ++v) EXPECT_FALSE(host_->cpu(c).isr(v)) << c << " " << v;
  }
}

// Rule: FreeIrqs clears the IRTE (P=0, invalidated), so a late MSI with the
// old message faults 0x22 in the host VT-d and the DMAR fault handler logs
// Linux's line; the handler is not called. The IRTE can be allocated again.
TEST_F(HostTest, FreedIrteFaultsNotPresentAndLogsLinuxLine) {
  MakeHost();
  IrqlabTestDev dev;
  ASSERT_TRUE(host_->AddDevice(&dev, kDevRid).ok());
  std::vector<unsigned> subs;
  auto block = host_->AllocateIrqs(kDevRid, 1, "testdev", Recorder(&subs));
  ASSERT_TRUE(block.ok());
  ProgramMsi(dev, block->message, 1);
  host_->FreeIrqs(*block);
  Fire(dev, 0);
  EXPECT_THAT(subs, IsEmpty());
  ASSERT_EQ(host_->log().size(), 2u);
  EXPECT_THAT(host_->log()[0], StartsWith("DMAR: DRHD: handling fault status reg "));
  EXPECT_EQ(host_->log()[1],
            "DMAR: [INTR-REMAP] Request device [02:00.0] fault index 0x2b [fault reason 0x22] "
            "Present field in the IRTE entry is clear");
  // The fault records were cleared by the handler (FSTS.PPF = 0).
  EXPECT_EQ(host_->iommu().fsts() & vtd::Fsts::kPpf, 0u);
  auto again = host_->AllocateIrqs(kDevRid, 1, "again", Recorder(&subs));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->first_index, 43u);
}

// Rule (seed 000): the host VT-d blocks a compatibility-format MSI from the
// device (CFI off): fault 0x25, fault index 0, and the host log shows the
// DRHD line followed by Linux's INTR-REMAP line, for every occurrence.
TEST_F(HostTest, CompatibilityFormatMsiFaults0x25WithLinuxLog) {
  MakeHost();
  IrqlabTestDev dev;
  ASSERT_TRUE(host_->AddDevice(&dev, kDevRid).ok());
  std::vector<unsigned> subs;
  auto block = host_->AllocateIrqs(kDevRid, 1, "testdev", Recorder(&subs));
  ASSERT_TRUE(block.ok());
  // The guest's pair: fee00000/0020, which the device fires as is.
  ProgramMsi(dev, MsiMessage::Compat(0, 0x30, kDevRid), 1);
  Fire(dev, 0);
  const std::string line =
      "DMAR: [INTR-REMAP] Request device [02:00.0] fault index 0x0 [fault reason 0x25] "
      "Blocked a compatibility format interrupt request";
  ASSERT_EQ(host_->log().size(), 2u);
  EXPECT_THAT(host_->log()[0], StartsWith("DMAR: DRHD: handling fault status reg "));
  EXPECT_EQ(host_->log()[1], line);
  Fire(dev, 0);
  ASSERT_EQ(host_->log().size(), 4u);
  EXPECT_THAT(host_->log()[2], StartsWith("DMAR: DRHD: handling fault status reg "));
  EXPECT_EQ(host_->log()[3], line);
  EXPECT_THAT(subs, IsEmpty()) << "the blocked interrupt must not reach vector 0x30";
  // HOST_LOG trace events carry the same lines, with the host prefix.
  int logged = 0;
  for (const TraceEvent& e : recorder_.events()) {
    if (e.stage() == trace::HOST_LOG && e.detail() == "host: " + line) ++logged;
  }
  EXPECT_EQ(logged, 2);
}

// Rule: with compat_format (GCMD.CFI) the same compatibility-format MSI is
// passed through to the host APIC unchanged: the handler of (cpu 0, 0x30)
// runs and nothing is logged.
TEST_F(HostTest, CompatFormatConfigPassesCompatibilityMsiThrough) {
  MakeHost(HostConfig{.compat_format = true});
  IrqlabTestDev dev;
  ASSERT_TRUE(host_->AddDevice(&dev, kDevRid).ok());
  std::vector<unsigned> subs;
  ASSERT_TRUE(host_->AllocateIrqs(kDevRid, 1, "testdev", Recorder(&subs)).ok());
  ProgramMsi(dev, MsiMessage::Compat(0, 0x30, kDevRid), 1);
  Fire(dev, 0);
  EXPECT_THAT(subs, ElementsAre(0u));
  EXPECT_THAT(host_->log(), IsEmpty());
  EXPECT_EQ(host_->iommu().stats().passed_through, 1u);
}

// Rule (isolation, SVT=01b source-id verification): a device cannot use
// another device's IRTE: 03:00.0 sending 02:00.0's host message faults 0x26
// and the owner's handler does not run.
TEST_F(HostTest, OtherDeviceUsingAHostMessageFaultsSourceId) {
  MakeHost();
  IrqlabTestDev owner, intruder;
  ASSERT_TRUE(host_->AddDevice(&owner, kDevRid).ok());
  ASSERT_TRUE(host_->AddDevice(&intruder, kOtherRid).ok());
  std::vector<unsigned> subs;
  auto block = host_->AllocateIrqs(kDevRid, 1, "owner", Recorder(&subs));
  ASSERT_TRUE(block.ok());
  ProgramMsi(intruder, block->message, 1);
  Fire(intruder, 0);
  EXPECT_THAT(subs, IsEmpty());
  ASSERT_EQ(host_->log().size(), 2u);
  EXPECT_EQ(host_->log()[1],
            "DMAR: [INTR-REMAP] Request device [03:00.0] fault index 0x2b [fault reason 0x26] "
            "Blocked an interrupt request due to source-id verification failure");
  // The owner itself still gets through.
  ProgramMsi(owner, block->message, 1);
  Fire(owner, 0);
  EXPECT_THAT(subs, ElementsAre(0u));
}

// Rule (HostIrqAllocator): ResourceExhausted when no contiguous IRTE block
// of the size is free, or when host vectors run out; InvalidArgument for a
// count outside 1..32. A failed allocation takes nothing.
TEST_F(HostTest, ExhaustionIsResourceExhausted) {
  constexpr uint32_t kLast = HostPlatform::kIrtEntries - 1;
  MakeHost(HostConfig{.first_irte = kLast - 5});  // the last 6 IRTEs are free
  auto noop = [](unsigned) {};
  auto a = host_->AllocateIrqs(kDevRid, 4, "a", noop);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->first_index, kLast - 5);
  auto b = host_->AllocateIrqs(kDevRid, 4, "b", noop);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted) << b.status();
  auto c = host_->AllocateIrqs(kDevRid, 2, "c", noop);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->first_index, kLast - 1);
  auto d = host_->AllocateIrqs(kDevRid, 1, "d", noop);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(host_->AllocateIrqs(kDevRid, 0, "e", noop).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host_->AllocateIrqs(kDevRid, 33, "f", noop).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HostTest, VectorExhaustionIsResourceExhaustedAndTakesNothing) {
  MakeHost(HostConfig{.cpus = 1});  // vectors 0x30..0xEF: 192
  auto noop = [](unsigned) {};
  for (int i = 0; i < 180; ++i) ASSERT_TRUE(host_->AllocateIrqs(kDevRid, 1, "x", noop).ok()) << i;
  auto big = host_->AllocateIrqs(kDevRid, 16, "big", noop);  // 12 vectors left
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted) << big.status();
  // Nothing was kept from the failed attempt: 12 single vectors still fit,
  // and their IRTEs continue right after the 180 taken (43 + 180 = 223).
  auto next = host_->AllocateIrqs(kDevRid, 8, "next", noop);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->first_index, 223u);
  ASSERT_TRUE(host_->AllocateIrqs(kDevRid, 4, "last", noop).ok());
  EXPECT_EQ(host_->AllocateIrqs(kDevRid, 1, "none", noop).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------
// VfioPciDevice
// ---------------------------------------------------------------------------

class VfioTest : public HostTest {
 protected:
  void SetUp() override {
    HostTest::SetUp();
    MakeHost();
    ASSERT_TRUE(host_->AddDevice(&dev_, kDevRid).ok());
    vfio_ = std::make_unique<VfioPciDevice>(&dev_, &host_->memory(), host_.get(), &tracer_,
                                            &events_);
  }
  void TearDown() override { vfio_.reset(); }
  // The guest's MSI pair written through the config region.
  void WriteGuestMessage(uint32_t address, uint16_t data) {
    vfio_->ConfigWrite(kCap + pci::kMsiAddressLo, 4, address);
    vfio_->ConfigWrite(kCap + pci::kMsiAddressHi, 4, 0);
    vfio_->ConfigWrite(kCap + pci::kMsiData64, 2, data);
  }
  std::vector<std::function<void()>> Triggers(unsigned n, std::vector<unsigned>* fired) {
    std::vector<std::function<void()>> t;
    for (unsigned i = 0; i < n; ++i) t.push_back([fired, i] { fired->push_back(i); });
    return t;
  }
  static constexpr uint16_t kCap = IrqlabTestDev::kMsiCapOffset;
  IrqlabTestDev dev_;
  std::unique_ptr<VfioPciDevice> vfio_;
};

// Rule (vfio_pci_config.c: MSI address/data ALL_VIRT): the config region
// returns what was written (the shadow) while the physical function holds
// the host message programmed by SET_IRQS.
TEST_F(VfioTest, MsiAddressDataAreVirtualized) {
  WriteGuestMessage(0xFEE01000, 0x0041);
  std::vector<unsigned> fired;
  ASSERT_TRUE(vfio_->SetMsiIrqs(Triggers(1, &fired)).ok());
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiAddressLo, 4), 0xFEE01000u);
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiAddressHi, 4), 0u);
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiData64, 2), 0x0041u);
  EXPECT_TRUE(dev_.msi()->enabled());
  EXPECT_EQ(dev_.msi()->address(), kHostAddress43);
  EXPECT_EQ(dev_.msi()->data(), 0u);
  EXPECT_TRUE(dev_.bus_master_enabled());
  // The rest of config space is the device's.
  EXPECT_EQ(vfio_->ConfigRead(pci::kVendorId, 4), dev_.ConfigRead(pci::kVendorId, 4));
}

// Rule: Message Control enable/MME writes are shadowed: writing enable
// through the config region does not enable MSI on the device (only
// SET_IRQS does), but reads back.
TEST_F(VfioTest, MessageControlEnableIsShadowed) {
  vfio_->ConfigWrite(kCap + pci::kMsiControl, 2, 0x0021);  // MME=2, enable
  EXPECT_FALSE(dev_.msi()->enabled());
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiControl, 2) & 0x71u, 0x21u);
  // MMC and the 64-bit / per-vector-mask bits are the device's (RO).
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiControl, 2) & 0x18Eu,
            dev_.ConfigRead(kCap + pci::kMsiControl, 2) & 0x18Eu);
}

// Rule (the NOVIRT feature of seed 000 fix (a)): with NOVIRT, reads of
// address/data return the physical (host) values, so the VMM can learn the
// host message; switching it off shows the shadow again.
TEST_F(VfioTest, NovirtShowsPhysicalAddressAndData) {
  WriteGuestMessage(0xFEE00000, 0x0020);
  std::vector<unsigned> fired;
  ASSERT_TRUE(vfio_->SetMsiIrqs(Triggers(4, &fired)).ok());
  vfio_->set_msi_novirt(true);
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiAddressLo, 4), kHostAddress43);
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiData64, 2), 0u);
  vfio_->set_msi_novirt(false);
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiAddressLo, 4), 0xFEE00000u);
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiData64, 2), 0x20u);
}

// Rule (vfio_pci_config.c: PCI_MSI_MASK is NO_VIRT/ALL_WRITE, PCI_MSI_PENDING
// NO_VIRT/NO_WRITE): per-vector mask bits reach the physical function, so a
// masked vector is held pending by the device instead of interrupting.
TEST_F(VfioTest, MaskBitsAreNotVirtualized) {
  std::vector<unsigned> fired;
  ASSERT_TRUE(vfio_->SetMsiIrqs(Triggers(2, &fired)).ok());
  vfio_->ConfigWrite(kCap + pci::kMsiMask64, 4, 0x2);
  EXPECT_EQ(dev_.msi()->mask_bits(), 0x2u);
  Fire(dev_, 1);
  EXPECT_THAT(fired, IsEmpty());
  EXPECT_EQ(vfio_->ConfigRead(kCap + pci::kMsiPending64, 4), 0x2u);
  vfio_->ConfigWrite(kCap + pci::kMsiMask64, 4, 0);
  Run();
  EXPECT_THAT(fired, ElementsAre(1u));
}

// Rule (SET_IRQS): trigger i runs when host interrupt i fires (the device
// sends vector i).
TEST_F(VfioTest, SetIrqsTriggerPerVector) {
  std::vector<unsigned> fired;
  ASSERT_TRUE(vfio_->SetMsiIrqs(Triggers(4, &fired)).ok());
  EXPECT_EQ(vfio_->msi_irq_count(), 4u);
  EXPECT_EQ(dev_.msi()->enabled_vectors(), 4u);
  for (uint32_t n : {3u, 0u, 2u, 1u}) Fire(dev_, n);
  EXPECT_THAT(fired, ElementsAre(3u, 0u, 2u, 1u));
}

// Rule: SET_IRQS(MSI, count) with a count that is not a power of two or is
// above the capable vectors is InvalidArgument, and changes nothing.
TEST_F(VfioTest, SetIrqsRejectsCountsTheCapabilityCannotGrant) {
  std::vector<unsigned> fired;
  ASSERT_TRUE(vfio_->SetMsiIrqs(Triggers(2, &fired)).ok());
  EXPECT_EQ(vfio_->SetMsiIrqs(Triggers(3, &fired)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vfio_->SetMsiIrqs(Triggers(64, &fired)).code(),
            absl::StatusCode::kInvalidArgument);  // capable: 32
  EXPECT_EQ(vfio_->msi_irq_count(), 2u);
  EXPECT_TRUE(dev_.msi()->enabled());
  Fire(dev_, 1);
  EXPECT_THAT(fired, ElementsAre(1u));
}

// Rule: SET_IRQS count 0 disables MSI on the device and frees the host
// interrupts (their IRTEs are not present any more and can be reused).
TEST_F(VfioTest, SetIrqsCountZeroDisablesAndFrees) {
  std::vector<unsigned> fired;
  ASSERT_TRUE(vfio_->SetMsiIrqs(Triggers(4, &fired)).ok());
  const MsiMessage host = MsiMessage(dev_.msi()->address(), dev_.msi()->data(), kDevRid);
  ASSERT_TRUE(vfio_->SetMsiIrqs({}).ok());
  EXPECT_EQ(vfio_->msi_irq_count(), 0u);
  EXPECT_FALSE(dev_.msi()->enabled());
  EXPECT_EQ(dev_.msi()->enabled_vectors(), 1u);  // MME cleared
  // A stale message from the device now faults: the IRTE is gone.
  host_->iommu().Signal(host);
  Run();
  EXPECT_THAT(fired, IsEmpty());
  ASSERT_FALSE(host_->log().empty());
  EXPECT_THAT(host_->log().back(), HasSubstr("fault index 0x2b [fault reason 0x22]"));
  auto reuse = host_->AllocateIrqs(kDevRid, 4, "reuse", [](unsigned) {});
  ASSERT_TRUE(reuse.ok());
  EXPECT_EQ(reuse->first_index, 43u);
}

// Rule (IMS, SetSourceIrq): each device interrupt source gets its own host
// interrupt (own IRTE, own message); a message fires only its source's
// trigger; re-setting a source replaces its trigger.
TEST_F(VfioTest, SetSourceIrqGivesOneHostInterruptPerSource) {
  std::vector<unsigned> fired;
  auto m0 = vfio_->SetSourceIrq(0, [&] { fired.push_back(0); });
  auto m7 = vfio_->SetSourceIrq(7, [&] { fired.push_back(7); });
  ASSERT_TRUE(m0.ok() && m7.ok());
  EXPECT_EQ(vfio_->source_irq_count(), 2u);
  EXPECT_EQ(*m0, MsiMessage(kHostAddress43, 0, kDevRid));
  EXPECT_EQ(*m7, MsiMessage::Remappable(44, true, 0, kDevRid));
  EXPECT_TRUE(dev_.bus_master_enabled());
  host_->iommu().Signal(*m7);
  Run();
  host_->iommu().Signal(*m0);
  Run();
  EXPECT_THAT(fired, ElementsAre(7u, 0u));
  auto again = vfio_->SetSourceIrq(0, [&] { fired.push_back(100); });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(vfio_->source_irq_count(), 2u);
  host_->iommu().Signal(*again);
  Run();
  EXPECT_THAT(fired, ElementsAre(7u, 0u, 100u));
}

// ---------------------------------------------------------------------------
// IrqRouteTable
// ---------------------------------------------------------------------------

// Rule: without a vIOMMU every Fire is a fast path that delivers the guest
// message itself (KVM MSI route); an unknown gsi does nothing.
TEST(IrqRouteTableTest, WithoutViommuEveryFireIsFastAndDeliversTheGuestMessage) {
  EventQueue events;
  Tracer tracer;
  RecordingMsiSink sink;
  IrqRouteTable routes(&sink, nullptr, &tracer, &events);
  const MsiMessage m = MsiMessage::Compat(1, 0x41, kGuestRid);
  const int gsi = routes.AddRoute(m, "dev msi 0");
  routes.Fire(gsi);
  routes.Fire(gsi);
  routes.Fire(gsi + 1000);
  EXPECT_THAT(sink.messages, ElementsAre(m, m));
  EXPECT_EQ(routes.stats().fast, 2u);
  EXPECT_EQ(routes.stats().slow, 0u);
  const MsiMessage m2 = MsiMessage::Compat(2, 0x42, kGuestRid);
  routes.UpdateRoute(gsi, m2);
  routes.Fire(gsi);
  EXPECT_EQ(sink.messages.back(), m2);
  routes.RemoveRoute(gsi);
  routes.Fire(gsi);
  EXPECT_EQ(sink.messages.size(), 3u);
  EXPECT_EQ(routes.size(), 0u);
}

class RouteViommuTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kIrt = 0x10000;
  static constexpr uint64_t kQueue = 0x20000;

  void SetUp() override {
    tracer_.AddSink(&recorder_);
    auto ram = GuestRam::Create(1 << 20);
    ASSERT_TRUE(ram.ok());
    ram_ = std::move(*ram);
    auto unit = VtdUnit::Create(VtdConfig{}, &sink_, ram_.get(), &events_, &tracer_);
    ASSERT_TRUE(unit.ok()) << unit.status();
    unit_ = std::move(*unit);
    routes_ = std::make_unique<IrqRouteTable>(&sink_, unit_.get(), &tracer_, &events_);
    // The guest kernel's bring-up, by register writes (as host_platform.cc):
    // QI, IRTA + SIRTP, global IEC invalidation, IRE.
    unit_->Write(kCpu, vtd::kIqaReg, 8, kQueue);
    unit_->Write(kCpu, vtd::kIqtReg, 8, 0);
    Command(vtd::Gcmd::kQie);
    unit_->Write(kCpu, vtd::kIrtaReg, 8, kIrt | 7);  // 256 entries, EIME=0
    Command(vtd::Gcmd::kSirtp);
    Submit(vtd::qi::IecGlobal());
    Command(vtd::Gcmd::kIre);
    ASSERT_TRUE(unit_->interrupt_remapping_enabled());
  }
  void Command(uint32_t bit) {
    const uint32_t status = unit_->Read(kCpu, vtd::kGstsReg, 4) & ~vtd::Gcmd::kOneShot;
    unit_->Write(kCpu, vtd::kGcmdReg, 4, status | bit);
  }
  void Submit(uint64_t qw0) {
    ram_->Store<uint64_t>(kQueue + tail_, qw0);
    ram_->Store<uint64_t>(kQueue + tail_ + 8, 0);
    tail_ = (tail_ + 16) % 4096;
    unit_->Write(kCpu, vtd::kIqtReg, 8, tail_);
  }
  void SetIrte(uint32_t index, uint8_t vector, uint32_t dest) {
    const vtd::Irte e = vtd::Irte::Remapped({.vector = vector, .destination = dest});
    ram_->Store<uint64_t>(kIrt + 16 * index, e.lo);
    ram_->Store<uint64_t>(kIrt + 16 * index + 8, e.hi);
  }
  void ClearIrte(uint32_t index) {
    ram_->Store<uint64_t>(kIrt + 16 * index, 0);
    ram_->Store<uint64_t>(kIrt + 16 * index + 8, 0);
  }
  // The guest's remappable message for IRTE `index`.
  static MsiMessage Guest(uint16_t index) {
    return MsiMessage::Remappable(index, false, 0, kGuestRid);
  }
  std::vector<int> Vectors() const {
    std::vector<int> v;
    for (const MsiMessage& m : sink_.messages) v.push_back(m.Vector());
    return v;
  }

  TraceRecorder recorder_;
  Tracer tracer_;
  EventQueue events_;
  RecordingMsiSink sink_;
  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<VtdUnit> unit_;
  std::unique_ptr<IrqRouteTable> routes_;
  uint64_t tail_ = 0;
};

// Rule (seed 003): the first Fire translates through the vIOMMU (slow path)
// and caches the translation; the next Fire is a fast path with the same
// translation, even after the IRTE changed in memory without an IEC
// invalidation (stale, exactly as the guest's own IEC would be).
TEST_F(RouteViommuTest, FirstFireSlowThenFastEvenWhenIrteIsStale) {
  SetIrte(8, 0x40, 1);
  const int gsi = routes_->AddRoute(Guest(8), "dev msi 0");
  EXPECT_FALSE(routes_->cached(gsi));
  routes_->Fire(gsi);
  EXPECT_EQ(routes_->stats().slow, 1u);
  EXPECT_EQ(routes_->stats().fast, 0u);
  EXPECT_TRUE(routes_->cached(gsi));
  ASSERT_EQ(sink_.messages.size(), 1u);
  EXPECT_EQ(sink_.messages[0].Vector(), 0x40);
  EXPECT_EQ(sink_.messages[0].DestinationId(), 1);
  EXPECT_FALSE(sink_.messages[0].IsRemappable());
  const uint64_t remapped = unit_->stats().remapped;
  SetIrte(8, 0x41, 1);  // no invalidation
  routes_->Fire(gsi);
  EXPECT_EQ(routes_->stats().fast, 1u);
  EXPECT_EQ(routes_->stats().slow, 1u);
  EXPECT_EQ(unit_->stats().remapped, remapped) << "the fast path must not ask the vIOMMU";
  EXPECT_THAT(Vectors(), ElementsAre(0x40, 0x40));
  EXPECT_EQ(sink_.messages[1], sink_.messages[0]);
  // The index-selective invalidation makes the next Fire re-translate.
  Submit(vtd::qi::IecIndex(8, 0));
  EXPECT_FALSE(routes_->cached(gsi));
  routes_->Fire(gsi);
  EXPECT_EQ(routes_->stats().slow, 2u);
  EXPECT_THAT(Vectors(), ElementsAre(0x40, 0x40, 0x41));
  EXPECT_TRUE(routes_->cached(gsi));
}

// Rule: an index-selective IEC invalidation drops only the routes whose
// cookie (guest IRTE index) is in [index & ~(2^mask-1), +2^mask): with
// routes on IRTEs 8 and 9, (9, mask 0) keeps 8 cached; (9, mask 1) covers
// 8..9 and drops both; a global one drops everything.
TEST_F(RouteViommuTest, IndexSelectiveInvalidationDropsOnlyCookiesInRange) {
  SetIrte(8, 0x40, 0);
  SetIrte(9, 0x41, 0);
  SetIrte(10, 0x42, 0);
  const int g8 = routes_->AddRoute(Guest(8), "r8");
  const int g9 = routes_->AddRoute(Guest(9), "r9");
  const int g10 = routes_->AddRoute(Guest(10), "r10");
  for (int g : {g8, g9, g10}) routes_->Fire(g);
  ASSERT_TRUE(routes_->cached(g8) && routes_->cached(g9) && routes_->cached(g10));
  Submit(vtd::qi::IecIndex(9, 0));
  EXPECT_TRUE(routes_->cached(g8));
  EXPECT_FALSE(routes_->cached(g9));
  EXPECT_TRUE(routes_->cached(g10));
  EXPECT_EQ(routes_->stats().invalidated, 1u);
  routes_->Fire(g9);
  ASSERT_TRUE(routes_->cached(g9));
  Submit(vtd::qi::IecIndex(9, 1));
  EXPECT_FALSE(routes_->cached(g8));
  EXPECT_FALSE(routes_->cached(g9));
  EXPECT_TRUE(routes_->cached(g10));
  EXPECT_EQ(routes_->stats().invalidated, 3u);
  Submit(vtd::qi::IecGlobal());
  EXPECT_FALSE(routes_->cached(g10));
  EXPECT_EQ(routes_->stats().invalidated, 4u);
  // An invalidation with nothing cached in range drops nothing.
  Submit(vtd::qi::IecIndex(9, 0));
  EXPECT_EQ(routes_->stats().invalidated, 4u);
}

// Rule: two routes may share a cookie (two guest messages on one IRTE);
// an invalidation of that index drops both.
TEST_F(RouteViommuTest, RoutesSharingACookieAreDroppedTogether) {
  SetIrte(5, 0x50, 0);
  const int a = routes_->AddRoute(Guest(5), "a");
  const int b = routes_->AddRoute(Guest(5), "b");
  routes_->Fire(a);
  routes_->Fire(b);
  ASSERT_TRUE(routes_->cached(a) && routes_->cached(b));
  Submit(vtd::qi::IecIndex(5, 0));
  EXPECT_FALSE(routes_->cached(a));
  EXPECT_FALSE(routes_->cached(b));
  EXPECT_EQ(routes_->stats().invalidated, 2u);
}

// Rule: translation faults happen at delivery time: a not-present IRTE
// makes the slow path fault in the vIOMMU (recorded there), nothing is
// delivered and nothing is cached (the next Fire faults again).
TEST_F(RouteViommuTest, NotPresentIrteFaultsOnTheSlowPathAndDeliversNothing) {
  ClearIrte(12);
  const int gsi = routes_->AddRoute(Guest(12), "dev msi 0");
  routes_->Fire(gsi);
  EXPECT_EQ(routes_->stats().slow, 1u);
  EXPECT_EQ(routes_->stats().faulted, 1u);
  EXPECT_FALSE(routes_->cached(gsi));
  EXPECT_THAT(sink_.messages, IsEmpty());
  EXPECT_NE(unit_->fsts() & vtd::Fsts::kPpf, 0u);
  const uint64_t hi = unit_->Read(kCpu, vtd::kFaultRecordsOffset + 8, 8);
  EXPECT_EQ((hi >> 32) & 0xFF, 0x22u);
  EXPECT_EQ(hi & 0xFFFF, kGuestRid);
  routes_->Fire(gsi);
  EXPECT_EQ(routes_->stats().faulted, 2u);
  EXPECT_THAT(sink_.messages, IsEmpty());
  // Fixing the IRTE (not-present entries are not cached) lets it through.
  SetIrte(12, 0x44, 0);
  routes_->Fire(gsi);
  EXPECT_THAT(Vectors(), ElementsAre(0x44));
}

// Rule: UpdateRoute (a new guest message) drops the cached translation; the
// next Fire takes the slow path with the new message. Updating to the same
// message keeps the cache.
TEST_F(RouteViommuTest, UpdateRouteDropsTheCache) {
  SetIrte(8, 0x40, 0);
  SetIrte(20, 0x60, 0);
  const int gsi = routes_->AddRoute(Guest(8), "dev msi 0");
  routes_->Fire(gsi);
  ASSERT_TRUE(routes_->cached(gsi));
  routes_->UpdateRoute(gsi, Guest(8));
  EXPECT_TRUE(routes_->cached(gsi));
  routes_->UpdateRoute(gsi, Guest(20));
  EXPECT_FALSE(routes_->cached(gsi));
  routes_->Fire(gsi);
  EXPECT_EQ(routes_->stats().slow, 2u);
  EXPECT_THAT(Vectors(), ElementsAre(0x40, 0x60));
  // The old cookie no longer refers to this route.
  Submit(vtd::qi::IecIndex(8, 0));
  EXPECT_TRUE(routes_->cached(gsi));
  Submit(vtd::qi::IecIndex(20, 0));
  EXPECT_FALSE(routes_->cached(gsi));
}

// Rule: removing a cached route also removes its cookie; a later
// invalidation of that index does not touch a dead route.
TEST_F(RouteViommuTest, RemovedRouteLeavesNoCookieBehind) {
  SetIrte(8, 0x40, 0);
  const int a = routes_->AddRoute(Guest(8), "a");
  routes_->Fire(a);
  routes_->RemoveRoute(a);
  EXPECT_EQ(routes_->size(), 0u);
  Submit(vtd::qi::IecIndex(8, 0));
  Submit(vtd::qi::IecGlobal());
  EXPECT_EQ(routes_->stats().invalidated, 0u);
  EXPECT_EQ(routes_->size(), 0u);
}

// ---------------------------------------------------------------------------
// AssignedPciDevice
// ---------------------------------------------------------------------------

// Guest PCI platform (PciTestbed: guest RAM, guest memory space, config
// mechanism) + HostPlatform sharing its clock/queue/tracer + a routing
// table into a recording "guest APIC bus".
class AssignedTest : public ::testing::Test {
 protected:
  static constexpr uint8_t kSlot = 4;  // guest 00:04.0
  static constexpr uint16_t kCap = FirmwareDev::kMsiCap;
  static constexpr uint64_t kWindow = 0x80000;
  static constexpr uint64_t kWindowSize = 0x40000;

  void Make(AssignmentOptions options, bool novirt) {
    auto host = HostPlatform::Create(HostConfig{}, tb_.ram.get(), &tb_.events, &tb_.events,
                                     &tb_.tracer);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = std::move(*host);
    routes_ = std::make_unique<IrqRouteTable>(&guest_apic_, nullptr, &tb_.tracer, &tb_.events);
    phys_ = std::make_unique<FirmwareDev>();
    ASSERT_TRUE(host_->AddDevice(phys_.get(), kDevRid).ok());
    vfio_ = std::make_unique<VfioPciDevice>(phys_.get(), &host_->memory(), host_.get(),
                                            &tb_.tracer, &tb_.events);
    vfio_->set_msi_novirt(novirt);
    auto guest = AssignedPciDevice::Create(vfio_.get(), routes_.get(), options);
    ASSERT_TRUE(guest.ok()) << guest.status();
    guest_ = std::move(*guest);
    ASSERT_TRUE(tb_.host.AddFunction(kSlot, 0, guest_.get()).ok());
    ASSERT_TRUE(tb_.host.AssignResources().ok());
    tb_.CfgWrite(kSlot, 0, pci::kCommand, 2,
                 pci::kCommandMemorySpace | pci::kCommandBusMaster);
    ASSERT_TRUE(guest_->BarMappedAt(0).has_value());
    ASSERT_TRUE(phys_->BarMappedAt(0).has_value());
  }
  void TearDown() override {
    guest_.reset();
    vfio_.reset();
    phys_.reset();
  }
  static AssignmentOptions Quirk() {
    AssignmentOptions o;
    o.fix = AssignmentOptions::Fix::kNovirtQuirk;
    o.window_base = kWindow;
    o.window_size = kWindowSize;
    return o;
  }
  // The guest driver: MSI address/data, then enable with 2^mme vectors.
  void GuestEnableMsi(uint32_t address, uint16_t data, unsigned mme) {
    tb_.CfgWrite(kSlot, 0, kCap + pci::kMsiAddressLo, 4, address);
    tb_.CfgWrite(kSlot, 0, kCap + pci::kMsiAddressHi, 4, 0);
    tb_.CfgWrite(kSlot, 0, kCap + pci::kMsiData64, 2, data);
    tb_.CfgWrite(kSlot, 0, kCap + pci::kMsiControl, 2,
                 (mme << pci::kMsiControlMmeShift) | pci::kMsiControlEnable);
  }
  // Guest MMIO to the assigned function's BAR0, and the physical BAR0 as
  // the host sees it.
  void GuestBarWrite(uint64_t off, uint32_t v) {
    tb_.mem.Write(kCpu, *guest_->BarMappedAt(0) + off, 4, v);
  }
  uint32_t GuestBarRead(uint64_t off) {
    return static_cast<uint32_t>(tb_.mem.Read(kCpu, *guest_->BarMappedAt(0) + off, 4));
  }
  uint32_t PhysBarRead(uint64_t off) {
    return static_cast<uint32_t>(host_->memory().Read(kCpu, *phys_->BarMappedAt(0) + off, 4));
  }
  void Run() { tb_.events.RunUntil(tb_.events.now()); }
  // The guest driver copies its MSI pair (vector `vec`) into a source at
  // `off` as ath11k does: address, upper address, data 8 bytes later.
  void DriverCopiesPair(uint64_t off, uint32_t address, uint32_t data) {
    GuestBarWrite(off, address);
    GuestBarWrite(off + 4, 0);
    GuestBarWrite(off + 8, data);
  }

  PciTestbed tb_;
  RecordingMsiSink guest_apic_;
  std::unique_ptr<HostPlatform> host_;
  std::unique_ptr<IrqRouteTable> routes_;
  std::unique_ptr<FirmwareDev> phys_;
  std::unique_ptr<VfioPciDevice> vfio_;
  std::unique_ptr<AssignedPciDevice> guest_;
};

// Rule: the guest-visible identity (ids, class/revision, subsystem), the MSI
// capability's place and read-only Message Control bits, and the BAR sizes
// equal the physical function's.
TEST_F(AssignedTest, GuestVisibleIdentityEqualsPhysical) {
  Make(AssignmentOptions{}, false);
  for (uint16_t reg : {pci::kVendorId, pci::kRevisionId, pci::kSubsystemVendorId}) {
    EXPECT_EQ(tb_.CfgRead(kSlot, 0, reg, 4), phys_->ConfigRead(reg, 4)) << reg;
  }
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, pci::kVendorId, 4), 0x00FE1337u);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap, 1), 0x05u);  // MSI capability id
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsiControl, 2) & 0x18Eu,
            phys_->ConfigRead(kCap + pci::kMsiControl, 2) & 0x18Eu);
  EXPECT_EQ(guest_->msi()->capable_vectors(), 16u);
  // BAR0 sizing: all-ones reads back ~(size-1) | 64-bit type.
  tb_.CfgWrite(kSlot, 0, pci::kCommand, 2, 0);
  tb_.CfgWrite(kSlot, 0, pci::kBar0, 4, 0xFFFFFFFF);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, pci::kBar0, 4), ~uint32_t(FirmwareDev::kBar0Size - 1) | 0x4u);
}

// Rule: a guest MSI enable becomes SET_IRQS: the physical function's MSI is
// enabled with the host message and the same vector count, one route per
// vector is installed, and host interrupt i reaches the guest as the guest's
// message for vector i. Disabling tears it all down.
TEST_F(AssignedTest, GuestMsiEnableTriggersSetIrqsAndRoutes) {
  Make(AssignmentOptions{}, false);
  GuestEnableMsi(0xFEE00000, 0x0020, /*mme=*/4);  // 16 vectors
  EXPECT_TRUE(phys_->msi()->enabled());
  EXPECT_EQ(phys_->msi()->address(), kHostAddress43);
  EXPECT_EQ(phys_->msi()->data(), 0u);
  EXPECT_EQ(phys_->msi()->enabled_vectors(), 16u);
  EXPECT_EQ(vfio_->msi_irq_count(), 16u);
  EXPECT_EQ(guest_->routes_installed(), 16u);
  EXPECT_EQ(routes_->size(), 16u);
  // The guest reads back its own pair.
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsiAddressLo, 4), 0xFEE00000u);
  EXPECT_EQ(tb_.CfgRead(kSlot, 0, kCap + pci::kMsiData64, 2), 0x20u);
  EXPECT_EQ(phys_->SignalMsi(5), SignalResult::kSent);
  Run();
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage::Compat(0, 0x25, kGuestRid)));
  EXPECT_THAT(host_->log(), IsEmpty());
  // A new guest message with MSI on re-routes without a new SET_IRQS.
  tb_.CfgWrite(kSlot, 0, kCap + pci::kMsiData64, 2, 0x0040);
  EXPECT_EQ(vfio_->msi_irq_count(), 16u);
  EXPECT_EQ(phys_->SignalMsi(1), SignalResult::kSent);
  Run();
  EXPECT_EQ(guest_apic_.messages.back(), MsiMessage::Compat(0, 0x41, kGuestRid));
  tb_.CfgWrite(kSlot, 0, kCap + pci::kMsiControl, 2, 0);
  EXPECT_FALSE(phys_->msi()->enabled());
  EXPECT_EQ(vfio_->msi_irq_count(), 0u);
  EXPECT_EQ(guest_->routes_installed(), 0u);
  EXPECT_EQ(routes_->size(), 0u);
}

// Rule (seed 000, fix (a)): with NOVIRT and the quirk, a window write equal
// to the guest MSI address is replaced by the host address, and the data
// write 8 bytes later by the host data + the vector offset; the firmware's
// interrupt then goes through the host VT-d and reaches the guest as that
// vector.
TEST_F(AssignedTest, NovirtQuirkRewritesAddressAndDataWithVectorOffset) {
  Make(Quirk(), /*novirt=*/true);
  GuestEnableMsi(0xFEE00000, 0x0020, 4);
  DriverCopiesPair(0x83048, 0xFEE00000, 0x0023);  // vector 3
  EXPECT_EQ(PhysBarRead(0x83048), kHostAddress43);
  EXPECT_EQ(PhysBarRead(0x8304c), 0u);
  EXPECT_EQ(PhysBarRead(0x83050), 3u) << "host data 0 + vector offset 3";
  EXPECT_EQ(guest_->quirk_rewrites(), 2u);
  ASSERT_TRUE(phys_->FireFrom(0x83048).ok());
  Run();
  EXPECT_THAT(host_->log(), IsEmpty());
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage::Compat(0, 0x23, kGuestRid)));
  // Another source with vector 0 (data = guest base data).
  DriverCopiesPair(0xb4968, 0xFEE00000, 0x0020);
  EXPECT_EQ(PhysBarRead(0xb4968), kHostAddress43);
  EXPECT_EQ(PhysBarRead(0xb4970), 0u);
  ASSERT_TRUE(phys_->FireFrom(0xb4968).ok());
  Run();
  EXPECT_EQ(guest_apic_.messages.back(), MsiMessage::Compat(0, 0x20, kGuestRid));
}

// Rule: the quirk only rewrites inside the window, only a value equal to the
// guest address, and only the data register 8 bytes after a rewritten
// address (and only a data value within the enabled vectors).
TEST_F(AssignedTest, NovirtQuirkLeavesOtherWritesAlone) {
  Make(Quirk(), /*novirt=*/true);
  GuestEnableMsi(0xFEE00000, 0x0020, 4);
  GuestBarWrite(0x1000, 0xFEE00000);  // outside the window
  EXPECT_EQ(PhysBarRead(0x1000), 0xFEE00000u);
  GuestBarWrite(0x80010, 0x0023);  // data with no address before it
  EXPECT_EQ(PhysBarRead(0x80010), 0x23u);
  GuestBarWrite(0x80100, 0x12345678);  // not the guest address
  EXPECT_EQ(PhysBarRead(0x80100), 0x12345678u);
  DriverCopiesPair(0x80200, 0xFEE00000, 0x0040);  // data beyond 16 vectors
  EXPECT_EQ(PhysBarRead(0x80200), kHostAddress43);
  EXPECT_EQ(PhysBarRead(0x80208), 0x40u);
  EXPECT_EQ(guest_->quirk_rewrites(), 1u);
}

// Rule (seed 000's failure): without NOVIRT the quirk cannot learn the host
// message: the pair passes unchanged, the firmware fires the guest's
// compatibility-format pair, and the host VT-d blocks it (0x25).
TEST_F(AssignedTest, WithoutNovirtTheWritePassesUnchangedAndFaults0x25) {
  Make(Quirk(), /*novirt=*/false);
  GuestEnableMsi(0xFEE00000, 0x0020, 4);
  DriverCopiesPair(0x80048, 0xFEE00000, 0x0020);
  EXPECT_EQ(PhysBarRead(0x80048), 0xFEE00000u);
  EXPECT_EQ(PhysBarRead(0x80050), 0x20u);
  EXPECT_EQ(guest_->quirk_rewrites(), 0u);
  ASSERT_TRUE(phys_->FireFrom(0x80048).ok());
  Run();
  EXPECT_THAT(guest_apic_.messages, IsEmpty());
  ASSERT_EQ(host_->log().size(), 2u);
  EXPECT_EQ(host_->log()[1],
            "DMAR: [INTR-REMAP] Request device [02:00.0] fault index 0x0 [fault reason 0x25] "
            "Blocked a compatibility format interrupt request");
}

// Rule: with Fix::kNone BAR writes reach the device unchanged (even with
// NOVIRT on).
TEST_F(AssignedTest, NoFixPassesBarWritesUnchanged) {
  AssignmentOptions o = Quirk();
  o.fix = AssignmentOptions::Fix::kNone;
  Make(o, /*novirt=*/true);
  GuestEnableMsi(0xFEE00000, 0x0020, 4);
  DriverCopiesPair(0x80048, 0xFEE00000, 0x0021);
  EXPECT_EQ(PhysBarRead(0x80048), 0xFEE00000u);
  EXPECT_EQ(PhysBarRead(0x80050), 0x21u);
  EXPECT_EQ(GuestBarRead(0x80048), 0xFEE00000u);
  EXPECT_EQ(guest_->quirk_rewrites(), 0u);
}

// Rule (seed 000 fix (b), IMS): each trapped source gets its own host
// interrupt (its own IRTE) programmed into the device, routed to the message
// the guest wrote for it; the guest reads back its own values; rewriting a
// source's data re-routes it without a new host interrupt.
TEST_F(AssignedTest, ImsGivesEachSourceItsOwnHostInterrupt) {
  AssignmentOptions o;
  o.fix = AssignmentOptions::Fix::kIms;
  o.source_offsets = {0x83048, 0x830a0};
  Make(o, false);
  DriverCopiesPair(0x83048, 0xFEE00000, 0x0021);  // source 0 -> cpu 0 vec 0x21
  DriverCopiesPair(0x830a0, 0xFEE01000, 0x0022);  // source 1 -> cpu 1 vec 0x22
  EXPECT_EQ(vfio_->source_irq_count(), 2u);
  EXPECT_EQ(routes_->size(), 2u);
  // The device holds host messages (IRTE 43 and 44).
  EXPECT_EQ(PhysBarRead(0x83048), kHostAddress43);
  EXPECT_EQ(PhysBarRead(0x83050), 0u);
  EXPECT_EQ(PhysBarRead(0x830a0), MsiMessage::Remappable(44, true, 0, kDevRid).address);
  EXPECT_EQ(PhysBarRead(0x830a8), 0u);
  // The guest reads what it wrote.
  EXPECT_EQ(GuestBarRead(0x83048), 0xFEE00000u);
  EXPECT_EQ(GuestBarRead(0x83050), 0x21u);
  EXPECT_EQ(GuestBarRead(0x830a0), 0xFEE01000u);
  EXPECT_EQ(GuestBarRead(0x830a8), 0x22u);
  ASSERT_TRUE(phys_->FireFrom(0x830a0).ok());
  Run();
  ASSERT_TRUE(phys_->FireFrom(0x83048).ok());
  Run();
  EXPECT_THAT(guest_apic_.messages, ElementsAre(MsiMessage(0xFEE01000, 0x22, kGuestRid),
                                                MsiMessage(0xFEE00000, 0x21, kGuestRid)));
  EXPECT_THAT(host_->log(), IsEmpty());
  GuestBarWrite(0x83050, 0x31);
  EXPECT_EQ(vfio_->source_irq_count(), 2u);
  EXPECT_EQ(GuestBarRead(0x83050), 0x31u);
  ASSERT_TRUE(phys_->FireFrom(0x83048).ok());
  Run();
  EXPECT_EQ(guest_apic_.messages.back(), MsiMessage(0xFEE00000, 0x31, kGuestRid));
}

}  // namespace
}  // namespace irqlab
