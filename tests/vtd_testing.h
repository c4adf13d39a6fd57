// The shared fixture of the VT-d unit tests (vtd_ir_test.cc,
// vtd_ir_fault_test.cc, vtd_qi_test.cc): guest RAM with the interrupt
// remapping table, the invalidation queue, the wait status and a
// posted-interrupt descriptor at fixed addresses; a sink recording what the
// unit delivers; and VtdIrTest, a unit with register accessors and Linux's
// bring-up and fault-servicing sequences. Test-only.
#ifndef IRQLAB_TESTS_VTD_TESTING_H_
#define IRQLAB_TESTS_VTD_TESTING_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "emu/core/clock.h"
#include "emu/core/guest_ram.h"
#include "emu/core/io.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"
#include "iommu/vtd_regs.h"
#include "iommu/vtd_unit.h"

namespace irqlab::vtd_testing {

inline constexpr uint64_t kRamSize = 1 << 20;
inline constexpr uint64_t kIrt = 0x10000;     // interrupt remapping table
inline constexpr uint64_t kQueue = 0x20000;   // invalidation queue (4 KiB)
inline constexpr uint64_t kStatus = 0x30000;  // wait-descriptor status
inline constexpr uint64_t kPid = 0x40000;     // posted-interrupt descriptor
inline constexpr uint16_t kDev = 0x0200;      // 02:00.0
inline constexpr uint16_t kIoApic = 0xF0F8;   // F0:1F.0
inline constexpr uint16_t kUnitRid = 0x00F8;  // 00:1f.0, the unit's own MSIs
inline const AccessOrigin kCpu = AccessOrigin::Cpu(0);

struct Delivery {
  MsiMessage message;
  uint32_t destination;
  bool wide;
};

class RecordingSink : public MsiSink {
 public:
  MsiOutcome Signal(const MsiMessage& m) override {
    got.push_back({m, m.DestinationId(), false});
    if (m.requester_id != kUnitRid) ++interrupts;
    return MsiOutcome::kAccepted;
  }
  MsiOutcome SignalX2Apic(const MsiMessage& m, uint32_t destination) override {
    got.push_back({m, destination, true});
    if (m.requester_id != kUnitRid) ++interrupts;
    return MsiOutcome::kAccepted;
  }
  std::vector<Delivery> got;
  size_t interrupts = 0;  // deliveries other than the unit's own events
};

class VtdIrTest : public ::testing::Test {
 protected:
  void Init(VtdConfig config = {}) {
    config.requester_id = kUnitRid;
    tail_ = 0;
    auto ram = GuestRam::Create(kRamSize);
    ASSERT_TRUE(ram.ok());
    ram_ = std::move(*ram);
    tracer_.AddSink(&trace_);
    auto unit = VtdUnit::Create(config, &sink_, ram_.get(), &clock_, &tracer_);
    ASSERT_TRUE(unit.ok()) << unit.status();
    unit_ = std::move(*unit);
  }
  void SetUp() override { Init(); }

  uint32_t R32(uint64_t off) { return unit_->Read(kCpu, off, 4); }
  uint64_t R64(uint64_t off) { return unit_->Read(kCpu, off, 8); }
  void W32(uint64_t off, uint32_t v) { unit_->Write(kCpu, off, 4, v); }
  void W64(uint64_t off, uint64_t v) { unit_->Write(kCpu, off, 8, v); }

  // 11.4.4.1: the software sequence for one GCMD field.
  void Command(uint32_t bit, bool set = true) {
    uint32_t status = R32(vtd::kGstsReg) & ~vtd::Gcmd::kOneShot;
    W32(vtd::kGcmdReg, set ? status | bit : status & ~bit);
  }
  void SetIrte(uint32_t index, const vtd::Irte& e) {
    ram_->Store<uint64_t>(kIrt + 16 * index, e.lo);
    ram_->Store<uint64_t>(kIrt + 16 * index + 8, e.hi);
  }
  // Appends a 128-bit descriptor and moves IQT past it.
  void Submit(uint64_t qw0, uint64_t qw1 = 0) {
    ram_->Store<uint64_t>(kQueue + tail_, qw0);
    ram_->Store<uint64_t>(kQueue + tail_ + 8, qw1);
    tail_ = (tail_ + 16) % 4096;
    W64(vtd::kIqtReg, tail_);
  }
  // Linux's bring-up order (intel_setup_irq_remapping / dmar_enable_qi):
  // QI, IRTA + SIRTP, global IEC invalidation, IRE (+ CFI).
  void EnableIr(unsigned s = 4, bool eime = false, bool cfi = false) {
    W64(vtd::kIqaReg, kQueue);  // QS=0: 4 KiB, 256 descriptors
    W64(vtd::kIqtReg, 0);
    Command(vtd::Gcmd::kQie);
    W64(vtd::kIrtaReg, kIrt | (eime ? vtd::Irta::kEime : 0) | s);
    Command(vtd::Gcmd::kSirtp);
    Submit(vtd::qi::IecGlobal());
    Command(vtd::Gcmd::kIre);
    if (cfi) Command(vtd::Gcmd::kCfi);
  }
  // Fault event MSI to APIC 0 vector 0xEF, unmasked.
  void ProgramFaultEvent(bool masked = false) {
    W32(vtd::kFedataReg, 0xEF);
    W32(vtd::kFeaddrReg, 0xFEE00000);
    W32(vtd::kFectlReg, masked ? vtd::EventControl::kIm : 0);
  }
  uint64_t FrcdLo(int i) {
    return R64(vtd::kFaultRecordsOffset + 16 * i);
  }
  uint64_t FrcdHi(int i) {
    return R64(vtd::kFaultRecordsOffset + 16 * i + 8);
  }
  void ClearFrcd(int i) {
    W32(vtd::kFaultRecordsOffset + 16 * i + 12, 1u << 31);
  }
  // Expects fault record `i` to hold (rid, index, reason) with F set.
  void ExpectFault(int i, uint16_t rid, uint16_t index, uint8_t reason) {
    EXPECT_EQ(FrcdLo(i), uint64_t{index} << 48) << "record " << i;
    EXPECT_EQ(FrcdHi(i), vtd::FaultRecord::kF | (uint64_t{reason} << 32) | rid)
        << "record " << i;
  }
  uint32_t Fsts() { return R32(vtd::kFstsReg); }
  std::vector<std::string> Details(trace::Stage stage) {
    std::vector<std::string> out;
    for (const auto& e : trace_.events()) {
      if (e.stage() == stage) out.push_back(e.detail());
    }
    return out;
  }
  // Deliveries other than the unit's own event interrupts.
  std::vector<Delivery> Interrupts() {
    std::vector<Delivery> out;
    for (const auto& d : sink_.got) {
      if (d.message.requester_id != kUnitRid) out.push_back(d);
    }
    return out;
  }

  RecordingSink sink_;
  ManualClock clock_;
  Tracer tracer_;
  TraceRecorder trace_;
  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<VtdUnit> unit_;
  uint64_t tail_ = 0;
};

}  // namespace irqlab::vtd_testing

#endif  // IRQLAB_TESTS_VTD_TESTING_H_
