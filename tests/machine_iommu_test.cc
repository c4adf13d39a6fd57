// The VT-d unit on the machine (`--device=intel-iommu`): the IOAPIC's and
// PCI devices' interrupts pass through it on their way to the APIC bus
// (VT-d 5.1: remapping hardware intercepts every interrupt request). The
// unit is programmed here through the machine's physical address space, as
// a CPU would, without a guest.
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "emu/machine/machine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "iommu/vtd_regs.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kVtd = vtd::kDefaultBase;
constexpr uint64_t kIoapic = 0xFEC00000;
constexpr uint64_t kQueue = 0x100000;  // invalidation queue (RAM)
constexpr uint64_t kIrt = 0x200000;    // interrupt remapping table (RAM)
const AccessOrigin kCpu0 = AccessOrigin::Cpu(0);

class MachineIommuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tracer_.AddSink(&trace_);
    MachineConfig mc;
    mc.devices = {{.name = "intel-iommu", .options = {}}};
    auto m = Machine::Create(mc, &tracer_);
    ASSERT_TRUE(m.ok()) << m.status();
    m_ = std::move(*m);
    // Software-enable the BSP's local APIC (SVR bit 8).
    m_->MmioWrite(0, 0xFEE000F0, 4, 0x1FF);
  }
  uint32_t Vtd32(uint64_t reg) {
    return static_cast<uint32_t>(m_->mmio().Read(kCpu0, kVtd + reg, 4));
  }
  void VtdWrite(uint64_t reg, uint64_t value, unsigned size) {
    m_->mmio().Write(kCpu0, kVtd + reg, size, value);
  }
  // VT-d 11.4.4.1: set one GCMD bit on top of the current status.
  void Command(uint32_t bit) {
    VtdWrite(vtd::kGcmdReg, (Vtd32(vtd::kGstsReg) & ~vtd::Gcmd::kOneShot) | bit, 4);
  }
  // Linux's order: QI, IRTA + SIRTP, global IEC invalidation, IRE.
  void EnableInterruptRemapping() {
    VtdWrite(vtd::kIqaReg, kQueue, 8);
    VtdWrite(vtd::kIqtReg, 0, 8);
    Command(vtd::Gcmd::kQie);
    VtdWrite(vtd::kIrtaReg, kIrt | 4, 8);  // 32 entries, xAPIC mode
    Command(vtd::Gcmd::kSirtp);
    m_->ram().Store<uint64_t>(kQueue, vtd::qi::IecGlobal());
    m_->ram().Store<uint64_t>(kQueue + 8, 0);
    VtdWrite(vtd::kIqtReg, 16, 8);
    Command(vtd::Gcmd::kIre);
  }
  void WriteRte(int pin, uint64_t rte) {
    m_->mmio().Write(kCpu0, kIoapic, 4, 0x10 + 2 * pin);
    m_->mmio().Write(kCpu0, kIoapic + 0x10, 4, rte & 0xFFFFFFFF);
    m_->mmio().Write(kCpu0, kIoapic, 4, 0x11 + 2 * pin);
    m_->mmio().Write(kCpu0, kIoapic + 0x10, 4, rte >> 32);
  }
  int Count(Stage stage, const std::string& detail_part = "") {
    int n = 0;
    for (const TraceEvent& e : trace_.events()) {
      if (e.stage() == stage && e.detail().find(detail_part) != std::string::npos) ++n;
    }
    return n;
  }

  Tracer tracer_;
  TraceRecorder trace_;
  std::unique_ptr<Machine> m_;
};

// VT-d 5.1.4 / 11.4.4.1: with interrupt remapping on and CFI clear, a
// compatibility-format interrupt from the IOAPIC (source id F0:1F.0) is
// blocked with fault reason 0x25 and never reaches a local APIC.
TEST_F(MachineIommuTest, CompatibilityFormatIoapicInterruptIsBlocked) {
  EnableInterruptRemapping();
  WriteRte(5, 0x30);  // compatibility format: vector 0x30, edge, APIC 0
  m_->SetIrqLine(5, true);
  EXPECT_FALSE(m_->lapic(0).irr(0x30));
  EXPECT_EQ(Count(trace::IR_FAULT, "Request device [f0:1f.0] fault index 0x0 [fault reason 0x25]"),
            1);
  EXPECT_NE(Vtd32(vtd::kFstsReg) & vtd::Fsts::kPpf, 0u);
}

// VT-d 5.1.5.1: a remappable-format RTE (bit 48, index in bits 63:49)
// reaches the APIC through the IRTE: the vector and destination come from
// the table, not from the RTE.
TEST_F(MachineIommuTest, RemappableIoapicInterruptIsTranslatedThroughTheIrte) {
  EnableInterruptRemapping();
  const vtd::Irte e = vtd::Irte::Remapped({.vector = 0x41, .destination = 0});
  m_->ram().Store<uint64_t>(kIrt + 16 * 3, e.lo);
  m_->ram().Store<uint64_t>(kIrt + 16 * 3 + 8, e.hi);
  WriteRte(6, 0x41 | (uint64_t{1} << 48) | (uint64_t{3} << 49));
  m_->SetIrqLine(6, true);
  EXPECT_TRUE(m_->lapic(0).irr(0x41));
  EXPECT_EQ(Count(trace::IR_FAULT), 0);
  EXPECT_EQ(Count(trace::IR_REMAP), 1);
}

// The intel-iommu option devtlb sets ECAP.DT and how the endpoints answer
// device-TLB invalidations (VtdConfig::DeviceTlb); cfi is validated here
// and reaches the guest on the command line (see LoadKernel and the
// vtd_qi scenarios). Bad values name the option.
TEST(MachineIommuOptionsTest, DevtlbAndCfiOptions) {
  const auto make = [](std::map<std::string, std::string> options) {
    MachineConfig mc;
    mc.devices = {{.name = "intel-iommu", .options = std::move(options)}};
    return Machine::Create(mc, nullptr);
  };
  auto plain = make({});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE((*plain)->iommu()->ecap().raw & vtd::Ecap::kDt);
  EXPECT_EQ((*plain)->iommu()->config().device_tlb, VtdConfig::DeviceTlb::kNone);
  const std::pair<const char*, VtdConfig::DeviceTlb> modes[] = {
      {"off", VtdConfig::DeviceTlb::kNone},
      {"on", VtdConfig::DeviceTlb::kAnswer},
      {"noanswer", VtdConfig::DeviceTlb::kNoAnswer},
      {"badcompletion", VtdConfig::DeviceTlb::kBadCompletion}};
  for (const auto& [name, mode] : modes) {
    auto m = make({{"devtlb", name}, {"cfi", "on"}});
    ASSERT_TRUE(m.ok()) << name << ": " << m.status();
    EXPECT_EQ((*m)->iommu()->config().device_tlb, mode) << name;
    EXPECT_EQ(((*m)->iommu()->ecap().raw & vtd::Ecap::kDt) != 0,
              mode != VtdConfig::DeviceTlb::kNone)
        << name;
  }
  auto bad = make({{"devtlb", "later"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("machine.devices[0]: intel-iommu option devtlb must be off, on, "
                        "noanswer or badcompletion, got \"later\""));
  auto bad_cfi = make({{"cfi", "1"}});
  ASSERT_FALSE(bad_cfi.ok());
  EXPECT_THAT(bad_cfi.status().message(),
              HasSubstr("intel-iommu option cfi must be on or off, got \"1\""));
  auto unknown = make({{"ats", "on"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("(options: intremap, eim, posted, cfi, devtlb)"));
}

// Without the device the IOAPIC talks to the APIC bus directly.
TEST(MachineIommuAbsentTest, CompatibilityInterruptsPassWithoutIommu) {
  auto m = Machine::Create(MachineConfig(), nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  (*m)->MmioWrite(0, 0xFEE000F0, 4, 0x1FF);
  (*m)->mmio().Write(kCpu0, kIoapic, 4, 0x10 + 2 * 5);
  (*m)->mmio().Write(kCpu0, kIoapic + 0x10, 4, 0x30);
  (*m)->SetIrqLine(5, true);
  EXPECT_TRUE((*m)->lapic(0).irr(0x30));
  EXPECT_EQ((*m)->iommu(), nullptr);
}

}  // namespace
}  // namespace irqlab
