// Tests of iommu/vtd_unit.h: the VT-d unit's register file, interrupt
// remapping (every fault reason), the interrupt entry cache, queued
// invalidation, fault recording and the fault-event interrupt, posting.
// Each test names the spec rule it checks ([VT-d] = Intel VT-d spec rev
// 4.x/5.x, section numbers as cited in iommu/vtd_regs.h).
#include "iommu/vtd_unit.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "emu/core/clock.h"
#include "emu/core/event_queue.h"
#include "emu/core/guest_ram.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"
#include "iommu/vtd_regs.h"

namespace irqlab {
namespace {

using vtd::Bit;
using vtd::Irte;

constexpr uint64_t kRamSize = 1 << 20;
constexpr uint64_t kIrt = 0x10000;     // interrupt remapping table
constexpr uint64_t kQueue = 0x20000;   // invalidation queue (4 KiB)
constexpr uint64_t kStatus = 0x30000;  // wait-descriptor status
constexpr uint64_t kPid = 0x40000;     // posted-interrupt descriptor
constexpr uint16_t kDev = 0x0200;      // 02:00.0
constexpr uint16_t kIoApic = 0xF0F8;   // F0:1F.0
constexpr uint16_t kUnitRid = 0x00F8;  // 00:1f.0, the unit's own MSIs
const AccessOrigin kCpu = AccessOrigin::Cpu(0);

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
  void SetIrte(uint32_t index, const Irte& e) {
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

// ---------------------------------------------------------------------------
// Register file.
// ---------------------------------------------------------------------------

// [VT-d] 11.4.1-11.4.3: VER, CAP and ECAP report the configuration; FRO
// and IRO locate the fault recording and IOTLB registers.
TEST_F(VtdIrTest, CapabilitiesReportConfiguration) {
  EXPECT_EQ(R32(vtd::kVerReg), 0x10u);
  vtd::Cap cap{R64(vtd::kCapReg)};
  vtd::Ecap ecap{R64(vtd::kEcapReg)};
  EXPECT_EQ(cap.num_fault_records(), 8);
  EXPECT_EQ(cap.fault_records_offset(), vtd::kFaultRecordsOffset);
  EXPECT_EQ(cap.sagaw(), vtd::Cap::kSagaw39 | vtd::Cap::kSagaw48);
  EXPECT_EQ(cap.mgaw(), 48);
  EXPECT_EQ(cap.nd(), 2);
  EXPECT_FALSE(cap.pi());
  EXPECT_TRUE(ecap.qi());
  EXPECT_TRUE(ecap.ir());
  EXPECT_TRUE(ecap.eim());
  EXPECT_EQ(ecap.iotlb_regs_offset(), vtd::kIotlbRegsOffset);
  // The 64-bit registers read the same as two dwords.
  EXPECT_EQ(R32(vtd::kCapReg + 4), static_cast<uint32_t>(cap.raw >> 32));

  Init({.num_fault_records = 3, .posted_interrupts = true});
  cap = vtd::Cap{R64(vtd::kCapReg)};
  EXPECT_EQ(cap.num_fault_records(), 3);
  EXPECT_TRUE(cap.pi());
}

// Inconsistent configurations are errors naming the field, not crashes.
TEST_F(VtdIrTest, BadConfigurationsAreRejected) {
  RecordingSink sink;
  auto ram = GuestRam::Create(4096);
  ASSERT_TRUE(ram.ok());
  EXPECT_FALSE(VtdUnit::Create({.num_fault_records = 0}, &sink, ram->get(),
                               nullptr, nullptr).ok());
  EXPECT_FALSE(VtdUnit::Create({.num_fault_records = 193}, &sink, ram->get(),
                               nullptr, nullptr).ok());
  EXPECT_FALSE(VtdUnit::Create({.base = 0xFED90010}, &sink, ram->get(),
                               nullptr, nullptr).ok());
  auto no_qi = VtdUnit::Create({.queued_invalidation = false}, &sink,
                               ram->get(), nullptr, nullptr);
  ASSERT_FALSE(no_qi.ok());
  EXPECT_NE(no_qi.status().message().find("queued_invalidation"),
            std::string::npos);
  EXPECT_FALSE(VtdUnit::Create({}, nullptr, ram->get(), nullptr, nullptr).ok());
  EXPECT_TRUE(VtdUnit::Create({}, &sink, ram->get(), nullptr, nullptr).ok());
}

// [VT-d] 11.4: reserved bits read 0 and ignore writes; IRTA.EIME is
// reserved without ECAP.EIM; FEUADDR likewise.
TEST_F(VtdIrTest, ReservedBitsReadZero) {
  W64(vtd::kIrtaReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kIrtaReg), vtd::Irta::kWritable);
  W64(vtd::kIqaReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kIqaReg), vtd::Iqa::kWritable);
  W64(vtd::kRtaddrReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kRtaddrReg), vtd::kRtaddrWritable);
  W32(vtd::kFeaddrReg, 0xFFFFFFFF);
  EXPECT_EQ(R32(vtd::kFeaddrReg), 0xFFFFFFFCu);
  W32(vtd::kFedataReg, 0xFFFFFFFF);
  EXPECT_EQ(R32(vtd::kFedataReg), 0xFFFFu);
  W32(vtd::kGstsReg, 0xFFFFFFFF);  // read-only
  EXPECT_EQ(R32(vtd::kGstsReg), 0u);
  W32(vtd::kFstsReg, 0xFFFFFFFF);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R32(0x300), 0u);  // hole between IOTLB and fault records

  Init({.extended_interrupt_mode = false});
  W64(vtd::kIrtaReg, ~uint64_t{0});
  EXPECT_EQ(R64(vtd::kIrtaReg), vtd::Irta::kWritable & ~vtd::Irta::kEime);
  W32(vtd::kFeuaddrReg, 0xFFFFFFFF);
  EXPECT_EQ(R32(vtd::kFeuaddrReg), 0u);
}

// [VT-d] 11.2: only aligned dword/qword accesses; others read 0, drop the
// write and are traced (never a host error).
TEST_F(VtdIrTest, UnsupportedAccessSizesAreHarmless) {
  W64(vtd::kIrtaReg, 0x12345000);
  EXPECT_EQ(unit_->Read(kCpu, vtd::kIrtaReg, 1), 0u);
  EXPECT_EQ(unit_->Read(kCpu, vtd::kIrtaReg, 2), 0u);
  EXPECT_EQ(unit_->Read(kCpu, vtd::kIrtaReg + 4, 8), 0u);  // misaligned qword
  unit_->Write(kCpu, vtd::kIrtaReg, 2, 0xFFFF);
  unit_->Write(kCpu, vtd::kIrtaReg + 2, 4, 0xFFFF);
  unit_->Write(kCpu, 0x5000, 4, 1);  // beyond the page
  EXPECT_EQ(R64(vtd::kIrtaReg), 0x12345000u);
  EXPECT_FALSE(Details(trace::VTD_COMMAND).empty());
}

// [VT-d] 11.4.4: each GCMD command is reflected in GSTS; one-shot SIRTP
// and SRTP leave their status set, the enable bits follow the command;
// GCMD reads 0.
TEST_F(VtdIrTest, GlobalCommandSequencing) {
  uint64_t latched_root = 0;
  bool te = false;
  unit_->SetDmaHooks({.root_table_pointer = [&](uint64_t v) { latched_root = v; },
                      .translation_enable = [&](bool on) { te = on; }});
  EXPECT_EQ(R32(vtd::kGstsReg), 0u);
  Command(vtd::Gcmd::kQie);
  EXPECT_EQ(R32(vtd::kGstsReg), vtd::Gsts::kQies);
  W64(vtd::kIrtaReg, kIrt | 7);
  Command(vtd::Gcmd::kSirtp);
  EXPECT_EQ(R32(vtd::kGstsReg), vtd::Gsts::kQies | vtd::Gsts::kIrtps);
  EXPECT_EQ(unit_->irta().entries(), 256u);
  Command(vtd::Gcmd::kIre);
  EXPECT_EQ(R32(vtd::kGstsReg),
            vtd::Gsts::kQies | vtd::Gsts::kIrtps | vtd::Gsts::kIres);
  Command(vtd::Gcmd::kCfi);
  EXPECT_TRUE(R32(vtd::kGstsReg) & vtd::Gsts::kCfis);
  Command(vtd::Gcmd::kCfi, false);
  EXPECT_FALSE(R32(vtd::kGstsReg) & vtd::Gsts::kCfis);
  EXPECT_TRUE(R32(vtd::kGstsReg) & vtd::Gsts::kIres);  // untouched
  W64(vtd::kRtaddrReg, 0x7000);
  Command(vtd::Gcmd::kSrtp);
  EXPECT_TRUE(R32(vtd::kGstsReg) & vtd::Gsts::kRtps);
  EXPECT_EQ(latched_root, 0x7000u);
  EXPECT_EQ(unit_->root_table_address(), 0x7000u);
  Command(vtd::Gcmd::kTe);
  EXPECT_TRUE(te);
  EXPECT_TRUE(unit_->translation_enabled());
  EXPECT_EQ(R32(vtd::kGcmdReg), 0u);
  Command(vtd::Gcmd::kIre, false);
  EXPECT_FALSE(unit_->interrupt_remapping_enabled());
  EXPECT_TRUE(unit_->translation_enabled());
}

// [VT-d] 11.4.4.1: "software must not change more than one field per
// write". The model services every changed field and traces the violation.
TEST_F(VtdIrTest, MultipleCommandsInOneWriteAreServicedAndTraced) {
  W32(vtd::kGcmdReg, vtd::Gcmd::kQie | vtd::Gcmd::kSirtp | vtd::Gcmd::kIre);
  EXPECT_EQ(R32(vtd::kGstsReg),
            vtd::Gsts::kQies | vtd::Gsts::kIrtps | vtd::Gsts::kIres);
  auto details = Details(trace::VTD_COMMAND);
  ASSERT_FALSE(details.empty());
  EXPECT_NE(details.back().find("multiple commands"), std::string::npos);
}

// [VT-d] 11.4.9.1: IQH resets to 0 when queued invalidation is disabled.
TEST_F(VtdIrTest, DisablingQiResetsHead) {
  EnableIr();
  Submit(vtd::qi::Wait(false, false, 0));
  EXPECT_EQ(R64(vtd::kIqhReg), 32u);
  Command(vtd::Gcmd::kQie, false);
  EXPECT_EQ(R64(vtd::kIqhReg), 0u);
}

// [VT-d] 11.4.10.1 / 11.4.4.1: IRTA_REG takes effect only on SIRTP.
TEST_F(VtdIrTest, IrtaIsLatchedOnlyBySirtp) {
  EnableIr(/*s=*/0);  // 2 entries
  W64(vtd::kIrtaReg, kIrt | 7);
  unit_->Signal(MsiMessage::Remappable(5, false, 0, kDev));
  ExpectFault(0, kDev, 5, vtd::fault::kIrIndexOutOfRange);
  Command(vtd::Gcmd::kSirtp);
  EXPECT_EQ(unit_->irta().entries(), 256u);
}

// ---------------------------------------------------------------------------
// Remapping.
// ---------------------------------------------------------------------------

// [VT-d] 5.1.4, 9.10: the IRTE's fields become a compatibility-format
// message (xAPIC destination DST[15:8]); the requester id is kept.
TEST_F(VtdIrTest, RemapsToCompatibilityMessage) {
  EnableIr();
  SetIrte(3, Irte::Remapped({.vector = 0x41,
                             .destination = 0x2,
                             .delivery_mode = 1,
                             .dest_logical = true,
                             .redirection_hint = true,
                             .trigger_level = true}));
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  const MsiMessage& m = sink_.got[0].message;
  EXPECT_FALSE(sink_.got[0].wide);
  EXPECT_FALSE(m.IsRemappable());
  EXPECT_EQ(m.DestinationId(), 2);
  EXPECT_EQ(m.Vector(), 0x41);
  EXPECT_EQ(m.DeliveryMode(), DeliveryMode::kLowestPriority);
  EXPECT_TRUE(m.DestinationModeLogical());
  EXPECT_TRUE(m.RedirectionHint());
  EXPECT_TRUE(m.TriggerLevel());
  EXPECT_TRUE(m.LevelAssert());
  EXPECT_EQ(m.requester_id, kDev);
  EXPECT_EQ(unit_->stats().remapped, 1u);
  // Handle + subhandle (SHV=1) selects the entry (5.1.2.2).
  SetIrte(5, Irte::Remapped({.vector = 0x45, .destination = 1}));
  unit_->Signal(MsiMessage::Remappable(3, true, 2, kDev));
  ASSERT_EQ(sink_.got.size(), 2u);
  EXPECT_EQ(sink_.got[1].message.Vector(), 0x45);
  EXPECT_EQ(Details(trace::IR_REMAP).back(),
            "index 0x5 -> dest 0x1 vec 0x45 fixed edge [iec miss]");
}

// [VT-d] 9.10 with IRTA.EIME=1: the 32-bit DST is an x2APIC id; it goes
// downstream through SignalX2Apic with the full id.
TEST_F(VtdIrTest, X2ApicDestinationWithEime) {
  EnableIr(4, /*eime=*/true);
  SetIrte(1, Irte::Remapped({.vector = 0x50, .destination = 0x12345, .eime = true}));
  unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_TRUE(sink_.got[0].wide);
  EXPECT_EQ(sink_.got[0].destination, 0x12345u);
  EXPECT_EQ(sink_.got[0].message.DestinationId(), 0x45);
  EXPECT_EQ(sink_.got[0].message.Vector(), 0x50);
}

// MsiSink's default SignalX2Apic folds ids up to 0x7FFF into the extended
// destination id convention (address bits 11:5).
TEST(MsiSinkTest, DefaultSignalX2ApicUsesExtendedDestinationId) {
  struct Plain : MsiSink {
    MsiOutcome Signal(const MsiMessage& m) override {
      got.push_back(m);
      return MsiOutcome::kAccepted;
    }
    std::vector<MsiMessage> got;
  } plain;
  plain.SignalX2Apic(MsiMessage::Compat(0x23, 0x41, kDev), 0x123);
  ASSERT_EQ(plain.got.size(), 1u);
  EXPECT_EQ(plain.got[0].ExtendedDestinationId(), 0x123u);
  EXPECT_EQ(plain.got[0].Vector(), 0x41);
}

// ---------------------------------------------------------------------------
// Fault reasons 0x20-0x27, with the exact fault record and FSTS.
// ---------------------------------------------------------------------------

// [VT-d] 5.1.4.1 / 7.1.3 reason 0x20: data bits 31:16 of a remappable
// request are reserved.
TEST_F(VtdIrTest, Fault20ReservedFieldsInRequest) {
  EnableIr();
  SetIrte(4, Irte::Remapped({.vector = 0x41}));
  MsiMessage m = MsiMessage::Remappable(4, false, 0, kDev);
  m.data |= 0x10000;
  unit_->Signal(m);
  EXPECT_TRUE(Interrupts().empty());
  ExpectFault(0, kDev, 4, 0x20);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);  // FRI = 0
}

// Reason 0x21: interrupt_index >= 2^(S+1).
TEST_F(VtdIrTest, Fault21IndexBeyondTable) {
  EnableIr(/*s=*/4);  // 32 entries
  unit_->Signal(MsiMessage::Remappable(31, false, 0, kDev));  // not present
  unit_->Signal(MsiMessage::Remappable(32, false, 0, kDev));
  unit_->Signal(MsiMessage::Remappable(30, true, 3, kDev));  // 30+3 = 33
  EXPECT_TRUE(Interrupts().empty());
  ExpectFault(0, kDev, 31, 0x22);
  ExpectFault(1, kDev, 32, 0x21);
  ExpectFault(2, kDev, 33, 0x21);
}

// Reason 0x22: P=0. FPD=1 in the (non-present) entry suppresses recording
// of this qualified fault; the interrupt is blocked either way.
TEST_F(VtdIrTest, Fault22NotPresentAndFpd) {
  EnableIr();
  unit_->Signal(MsiMessage::Remappable(7, false, 0, kDev));
  ExpectFault(0, kDev, 7, 0x22);
  Irte fpd_only;
  fpd_only.lo = Bit(1);  // FPD=1, P=0
  SetIrte(8, fpd_only);
  unit_->Signal(MsiMessage::Remappable(8, false, 0, kDev));
  EXPECT_EQ(FrcdHi(1), 0u);  // nothing recorded
  EXPECT_EQ(unit_->stats().faults_suppressed_fpd, 1u);
  EXPECT_TRUE(Interrupts().empty());
  EXPECT_NE(Details(trace::IR_FAULT).back().find("not recorded: FPD=1"),
            std::string::npos);
}

// Reason 0x23: the IRTE fetch fails (table outside memory). Not qualified.
TEST_F(VtdIrTest, Fault23TableOutsideMemory) {
  EnableIr();
  W64(vtd::kIrtaReg, (kRamSize - 0x1000) | 8);  // 512 entries, 256 in RAM
  Command(vtd::Gcmd::kSirtp);
  unit_->Signal(MsiMessage::Remappable(300, false, 0, kDev));
  EXPECT_TRUE(Interrupts().empty());
  ExpectFault(0, kDev, 300, 0x23);
  // A table at the top of the address space does not wrap around into RAM.
  W64(vtd::kIrtaReg, 0xFFFFFFFFFFFFF000 | 7);
  Command(vtd::Gcmd::kSirtp);
  unit_->Signal(MsiMessage::Remappable(255, false, 0, kDev));
  ExpectFault(1, kDev, 255, 0x23);
}

// Reason 0x24: reserved IRTE fields (9.10), including DST bits outside
// DST[15:8] in xAPIC mode, SVT=11b, and IM=1 without posting support.
TEST_F(VtdIrTest, Fault24ReservedFieldsInIrte) {
  EnableIr();
  Irte e = Irte::Remapped({.vector = 0x41, .destination = 1});
  Irte r1 = e;
  r1.lo |= Bit(12);
  Irte r2 = Irte::Remapped({.vector = 0x41, .destination = 0x10001, .eime = true});
  Irte r3 = e;
  r3.hi |= uint64_t{3} << 18;
  Irte r4 = Irte::Posted(0x30, kPid);
  SetIrte(1, r1);
  SetIrte(2, r2);
  SetIrte(3, r3);
  SetIrte(4, r4);
  for (uint16_t i = 1; i <= 4; ++i) {
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
  }
  EXPECT_TRUE(Interrupts().empty());
  for (int i = 0; i < 4; ++i) ExpectFault(i, kDev, i + 1, 0x24);
  // FPD suppresses it (qualified).
  r1.lo |= Bit(1);
  SetIrte(5, r1);
  unit_->Signal(MsiMessage::Remappable(5, false, 0, kDev));
  EXPECT_EQ(FrcdHi(4), 0u);
  EXPECT_EQ(unit_->stats().faults_suppressed_fpd, 1u);
}

// Reason 0x25: compatibility format blocked unless CFIS=1 (5.1.2.1). The
// fault index is 0; Linux prints exactly this line.
TEST_F(VtdIrTest, Fault25CompatibilityFormatBlocked) {
  // IR off: everything passes.
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_EQ(Interrupts().size(), 1u);
  EnableIr();
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_EQ(Interrupts().size(), 1u);
  ExpectFault(0, kDev, 0, 0x25);
  EXPECT_EQ(Details(trace::IR_FAULT).back(),
            "DMAR: [INTR-REMAP] Request device [02:00.0] fault index 0x0 "
            "[fault reason 0x25] Blocked a compatibility format interrupt "
            "request [FRCD 0]");
  const auto& ev = trace_.events().back();
  EXPECT_EQ(ev.stage(), trace::IR_FAULT);
  EXPECT_EQ(ev.requester_id(), kDev);
  EXPECT_EQ(ev.address(), 0xFEE00000u);
  EXPECT_EQ(ev.data(), 0x20u);
}

// 11.4.4.1 CFI: with CFIS=1 compatibility format passes unchanged — but
// only while EIME=0.
TEST_F(VtdIrTest, CfiPassesCompatibilityFormatOnlyWithoutEime) {
  EnableIr(4, /*eime=*/false, /*cfi=*/true);
  MsiMessage m = MsiMessage::Compat(1, 0x31, kDev);
  unit_->Signal(m);
  ASSERT_EQ(Interrupts().size(), 1u);
  EXPECT_EQ(Interrupts()[0].message, m);
  EXPECT_EQ(Fsts(), 0u);
  W64(vtd::kIrtaReg, kIrt | vtd::Irta::kEime | 4);
  Command(vtd::Gcmd::kSirtp);
  unit_->Signal(m);
  EXPECT_EQ(Interrupts().size(), 1u);
  ExpectFault(0, kDev, 0, 0x25);
}

// Reason 0x26, SVT=01b: SID compared under the SQ mask. The IOAPIC's
// remappable RTEs arrive with source id F0:1F.0 (5.1.5.1).
TEST_F(VtdIrTest, Fault26SourceIdWithQualifier) {
  EnableIr();
  SetIrte(2, Irte::Remapped({.vector = 0x33, .destination = 0,
                             .sid = kIoApic, .sq = 0, .svt = 1}));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kIoApic));
  EXPECT_EQ(Interrupts().size(), 1u);
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kDev));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kIoApic | 4));  // fn 4
  EXPECT_EQ(Interrupts().size(), 1u);
  ExpectFault(0, kDev, 2, 0x26);
  ExpectFault(1, kIoApic | 4, 2, 0x26);
  // SQ=11b ignores function bits 2:0; SQ=01b ignores only bit 2.
  SetIrte(3, Irte::Remapped({.vector = 0x34, .sid = kIoApic, .sq = 3, .svt = 1}));
  SetIrte(4, Irte::Remapped({.vector = 0x35, .sid = kIoApic, .sq = 1, .svt = 1}));
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kIoApic | 7));
  unit_->Signal(MsiMessage::Remappable(4, false, 0, kIoApic | 4));
  EXPECT_EQ(Interrupts().size(), 3u);
  unit_->Signal(MsiMessage::Remappable(4, false, 0, kIoApic | 2));
  EXPECT_EQ(Interrupts().size(), 3u);
  ExpectFault(2, kIoApic | 2, 4, 0x26);
}

// Reason 0x26, SVT=10b: the requester's bus must lie in [SID[15:8],
// SID[7:0]]. FPD suppresses recording.
TEST_F(VtdIrTest, Fault26BusRange) {
  EnableIr();
  SetIrte(6, Irte::Remapped({.vector = 0x36, .sid = 0x0204, .svt = 2}));
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x0200));
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x04F8));
  EXPECT_EQ(Interrupts().size(), 2u);
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x0100));
  unit_->Signal(MsiMessage::Remappable(6, false, 0, 0x0500));
  EXPECT_EQ(Interrupts().size(), 2u);
  ExpectFault(0, 0x0100, 6, 0x26);
  ExpectFault(1, 0x0500, 6, 0x26);
  SetIrte(7, Irte::Remapped({.vector = 0x37, .fpd = true, .sid = 0x0204, .svt = 2}));
  unit_->Signal(MsiMessage::Remappable(7, false, 0, 0x0900));
  EXPECT_EQ(FrcdHi(2), 0u);
  EXPECT_EQ(Interrupts().size(), 2u);
}

// ---------------------------------------------------------------------------
// Fault recording and the fault event (ch. 7).
// ---------------------------------------------------------------------------

// 7.3 / 11.4.7.2: the fault-event MSI (FEDATA/FEADDR, not remapped) fires
// once when PPF goes 0->1; more faults while PPF is set raise no new event;
// after software clears the records a new fault fires again.
TEST_F(VtdIrTest, FaultEventFiresOncePerCondition) {
  EnableIr();
  ProgramFaultEvent();
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  unit_->Signal(MsiMessage::Compat(0, 0x21, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  const MsiMessage& ev = sink_.got[0].message;
  EXPECT_EQ(ev.address, 0xFEE00000u);
  EXPECT_EQ(ev.data, 0xEFu);
  EXPECT_EQ(ev.requester_id, kUnitRid);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);
  ClearFrcd(0);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);  // FRI stays 0 until PPF drops
  ClearFrcd(1);
  EXPECT_EQ(Fsts(), 0u);
  unit_->Signal(MsiMessage::Compat(0, 0x22, kDev));
  EXPECT_EQ(sink_.got.size(), 2u);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf | (2u << 8));  // FRI = 2
  EXPECT_EQ(unit_->stats().fault_events, 2u);
}

// 11.4.7.2: with IM=1 the message is held (IP=1) and sent when IM is
// cleared; if software services the faults first, IP clears and nothing is
// sent.
TEST_F(VtdIrTest, MaskedFaultEventIsHeldThenSentOnUnmask) {
  EnableIr();
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm);  // reset value
  ProgramFaultEvent(/*masked=*/true);
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_TRUE(sink_.got.empty());
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  W32(vtd::kFectlReg, 0);
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_EQ(sink_.got[0].message.data, 0xEFu);
  EXPECT_EQ(R32(vtd::kFectlReg), 0u);

  ClearFrcd(0);
  W32(vtd::kFectlReg, vtd::EventControl::kIm);
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  ClearFrcd(1);  // serviced while masked
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm);
  W32(vtd::kFectlReg, 0);
  EXPECT_EQ(sink_.got.size(), 1u);
}

// With ECAP.EIM, FEUADDR carries x2APIC destination bits 31:8.
TEST_F(VtdIrTest, FaultEventToX2ApicDestination) {
  EnableIr();
  W32(vtd::kFedataReg, 0xEE);
  W32(vtd::kFeaddrReg, 0xFEE34000);
  W32(vtd::kFeuaddrReg, 0x00001200);
  W32(vtd::kFectlReg, 0);
  unit_->Signal(MsiMessage::Compat(0, 0x20, kDev));
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_TRUE(sink_.got[0].wide);
  EXPECT_EQ(sink_.got[0].destination, 0x1234u);
}

// 7.2.1: the records are a ring; when the next register still holds an
// unserviced fault the new one is dropped and PFO set; while PFO is set
// nothing is recorded; RW1C on PFO resumes recording.
TEST_F(VtdIrTest, PrimaryFaultOverflow) {
  Init({.num_fault_records = 2});
  EnableIr();
  for (uint16_t i = 0; i < 3; ++i) {
    unit_->Signal(MsiMessage::Remappable(i + 40, false, 0, kDev));
  }
  ExpectFault(0, kDev, 40, 0x21);
  ExpectFault(1, kDev, 41, 0x21);
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf | vtd::Fsts::kPfo);
  EXPECT_EQ(unit_->stats().faults_dropped_overflow, 1u);
  EXPECT_NE(Details(trace::IR_FAULT).back().find("primary fault overflow"),
            std::string::npos);
  ClearFrcd(0);
  unit_->Signal(MsiMessage::Remappable(43, false, 0, kDev));  // PFO still set
  EXPECT_FALSE(FrcdHi(0) & vtd::FaultRecord::kF);
  EXPECT_EQ(unit_->stats().faults_dropped_overflow, 2u);
  W32(vtd::kFstsReg, vtd::Fsts::kPfo);
  unit_->Signal(MsiMessage::Remappable(44, false, 0, kDev));
  ExpectFault(0, kDev, 44, 0x21);  // ring index wrapped to 0
  // PPF never dropped (record 1 is still pending), so FRI keeps the index
  // latched when PPF was set (11.4.7.1); Linux scans forward from it.
  EXPECT_EQ(Fsts(), vtd::Fsts::kPpf);
}

// The DMA side records its faults through RecordFault (same registers).
TEST_F(VtdIrTest, RecordFaultFromDmaSide) {
  ProgramFaultEvent();
  EXPECT_TRUE(unit_->RecordFault(vtd::FaultRecord::Dma(0x18, 0x5123, true, 6)));
  EXPECT_EQ(FrcdLo(0), 0x5000u);
  EXPECT_EQ(FrcdHi(0),
            vtd::FaultRecord::kF | Bit(62) | (uint64_t{6} << 32) | 0x18);
  EXPECT_EQ(sink_.got.size(), 1u);
}

// ---------------------------------------------------------------------------
// Interrupt entry cache (6.2.5, 6.5.2.7).
// ---------------------------------------------------------------------------

// An IRTE rewritten in memory without invalidation keeps translating to the
// old entry; a global IEC invalidation makes the new one visible.
TEST_F(VtdIrTest, IecKeepsStaleEntryUntilGlobalInvalidation) {
  EnableIr();
  SetIrte(9, Irte::Remapped({.vector = 0x41, .destination = 1}));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  SetIrte(9, Irte::Remapped({.vector = 0x42, .destination = 2}));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  ASSERT_EQ(sink_.got.size(), 2u);
  EXPECT_EQ(sink_.got[1].message.Vector(), 0x41);  // stale
  EXPECT_EQ(sink_.got[1].message.DestinationId(), 1);
  Submit(vtd::qi::IecGlobal());
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  EXPECT_EQ(sink_.got[2].message.Vector(), 0x42);
  EXPECT_EQ(sink_.got[2].message.DestinationId(), 2);
  EXPECT_EQ(unit_->stats().iec_hits, 1u);
  EXPECT_EQ(unit_->stats().iec_misses, 2u);
  EXPECT_EQ(Details(trace::IEC_INVALIDATE).back(),
            "IEC global invalidate: 1 cached dropped");
}

// Index-selective invalidation drops the 2^IM entries sharing IIDX's upper
// bits, and only those.
TEST_F(VtdIrTest, IecIndexSelectiveInvalidationWithMask) {
  EnableIr();
  for (uint32_t i = 4; i < 8; ++i) {
    SetIrte(i, Irte::Remapped({.vector = static_cast<uint8_t>(0x40 + i)}));
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
  }
  for (uint32_t i = 4; i < 8; ++i) {
    SetIrte(i, Irte::Remapped({.vector = static_cast<uint8_t>(0x80 + i)}));
  }
  const auto vector_of = [&](uint16_t i) {
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
    return sink_.got.back().message.Vector();
  };
  Submit(vtd::qi::IecIndex(5, 0));  // just 5
  EXPECT_EQ(vector_of(4), 0x44);
  EXPECT_EQ(vector_of(5), 0x85);
  EXPECT_EQ(vector_of(6), 0x46);
  Submit(vtd::qi::IecIndex(6, 1));  // 6 and 7
  EXPECT_EQ(vector_of(4), 0x44);
  EXPECT_EQ(vector_of(6), 0x86);
  EXPECT_EQ(vector_of(7), 0x87);
  EXPECT_EQ(unit_->iec_size(), 4u);
}

// iec_capacity=0 mimics emulators without an IEC: every interrupt re-reads
// the IRTE, so a change is visible at once.
TEST_F(VtdIrTest, NoCacheRereadsEveryTime) {
  Init({.iec_capacity = 0});
  EnableIr();
  SetIrte(1, Irte::Remapped({.vector = 0x41}));
  unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
  SetIrte(1, Irte::Remapped({.vector = 0x42}));
  unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x42);
  EXPECT_EQ(unit_->iec_size(), 0u);
}

// A bounded IEC evicts first-in entries (deterministically).
TEST_F(VtdIrTest, BoundedIecEvictsOldest) {
  Init({.iec_capacity = 2});
  EnableIr();
  for (uint32_t i = 0; i < 3; ++i) {
    SetIrte(i, Irte::Remapped({.vector = static_cast<uint8_t>(0x40 + i)}));
    unit_->Signal(MsiMessage::Remappable(i, false, 0, kDev));
  }
  EXPECT_EQ(unit_->iec_size(), 2u);
  EXPECT_EQ(unit_->stats().iec_evictions, 1u);
  SetIrte(0, Irte::Remapped({.vector = 0x90}));
  unit_->Signal(MsiMessage::Remappable(0, false, 0, kDev));  // was evicted
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x90);
}

// Non-present entries are not cached: making an entry present needs no
// invalidation.
TEST_F(VtdIrTest, NotPresentEntriesAreNotCached) {
  EnableIr();
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  ExpectFault(0, kDev, 3, 0x22);
  SetIrte(3, Irte::Remapped({.vector = 0x43}));
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  ASSERT_EQ(Interrupts().size(), 1u);
  EXPECT_EQ(Interrupts()[0].message.Vector(), 0x43);
}

// 11.4.4.1 SIRTP: software must invalidate the IEC after it; without
// CAP.ESIRTPS the old table's entries stay cached.
TEST_F(VtdIrTest, SirtpDoesNotFlushIecUnlessEsirtps) {
  for (bool esirtps : {false, true}) {
    SCOPED_TRACE(esirtps);
    Init({.enhanced_sirtp = esirtps});
    tail_ = 0;
    EnableIr();
    SetIrte(1, Irte::Remapped({.vector = 0x41}));
    unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
    // A second table at kIrt + 0x1000 with a different entry 1.
    ram_->Store<uint64_t>(kIrt + 0x1000 + 16,
                          Irte::Remapped({.vector = 0x51}).lo);
    W64(vtd::kIrtaReg, (kIrt + 0x1000) | 4);
    Command(vtd::Gcmd::kSirtp);
    unit_->Signal(MsiMessage::Remappable(1, false, 0, kDev));
    EXPECT_EQ(sink_.got.back().message.Vector(), esirtps ? 0x51 : 0x41);
    sink_.got.clear();
  }
}

// ---------------------------------------------------------------------------
// Queued invalidation (6.5.2).
// ---------------------------------------------------------------------------

// 6.5.2.8: the wait descriptor writes its status data (SW) and, with IF,
// sets ICS.IWC and sends the invalidation-event interrupt (IECTL, IM/IP as
// for faults).
TEST_F(VtdIrTest, WaitDescriptorWritesStatusAndInterrupts) {
  EnableIr();
  ram_->Store<uint32_t>(kStatus, 0);
  Submit(vtd::qi::Wait(true, false, 0x1234), kStatus);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x1234u);
  EXPECT_EQ(R64(vtd::kIqhReg), R64(vtd::kIqtReg));
  EXPECT_EQ(R32(vtd::kIcsReg), 0u);

  W32(vtd::kIedataReg, 0xEC);
  W32(vtd::kIeaddrReg, 0xFEE01000);
  EXPECT_EQ(R32(vtd::kIectlReg), vtd::EventControl::kIm);
  Submit(vtd::qi::Wait(false, true, 0));
  EXPECT_EQ(R32(vtd::kIcsReg), vtd::kIcsIwc);
  EXPECT_EQ(R32(vtd::kIectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  EXPECT_TRUE(sink_.got.empty());
  W32(vtd::kIectlReg, 0);  // unmask: the held message goes out
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_EQ(sink_.got[0].message.data, 0xECu);
  EXPECT_EQ(sink_.got[0].message.DestinationId(), 1);
  W32(vtd::kIcsReg, vtd::kIcsIwc);
  EXPECT_EQ(R32(vtd::kIcsReg), 0u);
  Submit(vtd::qi::Wait(false, true, 0));  // IWC 0->1 again, unmasked
  EXPECT_EQ(sink_.got.size(), 2u);
}

// 6.5.2.10: an invalid descriptor sets FSTS.IQE, IQH stays on it, later
// descriptors are not processed; the fault event fires; after software
// fixes the slot and clears IQE the queue resumes.
TEST_F(VtdIrTest, InvalidDescriptorStopsQueueWithIqe) {
  EnableIr();
  ProgramFaultEvent();
  const uint64_t bad_slot = tail_;
  ram_->Store<uint32_t>(kStatus, 0);
  ram_->Store<uint64_t>(kQueue + tail_, 0x7);  // type 7: PASID cache (scalable)
  ram_->Store<uint64_t>(kQueue + tail_ + 8, 0);
  ram_->Store<uint64_t>(kQueue + tail_ + 16, vtd::qi::Wait(true, false, 0xAA));
  ram_->Store<uint64_t>(kQueue + tail_ + 24, kStatus);
  tail_ += 32;
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqhReg), bad_slot);
  EXPECT_EQ(R64(vtd::kIqercdReg), static_cast<uint64_t>(vtd::Iqei::kInvalidType));
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u);
  ASSERT_EQ(sink_.got.size(), 1u);  // fault event
  // Linux's qi_check_fault(): overwrite the bad slot with the wait, clear IQE.
  ram_->Store<uint64_t>(kQueue + bad_slot, vtd::qi::Wait(true, false, 0xBB));
  ram_->Store<uint64_t>(kQueue + bad_slot + 8, kStatus + 4);
  W32(vtd::kFstsReg, vtd::Fsts::kIqe);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 0xBBu);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0xAAu);
}

// Reserved bits in a descriptor (here an IEC descriptor's bit 20) are an
// IQE too; so is IQT[4]=1 with 256-bit descriptors.
TEST_F(VtdIrTest, ReservedBitsAndMisalignedTailAreIqe) {
  EnableIr();
  Submit(vtd::qi::IecGlobal() | Bit(20));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), static_cast<uint64_t>(vtd::Iqei::kReservedField));

  Init();
  Command(vtd::Gcmd::kQie);  // IQH 0
  W64(vtd::kIqaReg, kQueue | vtd::Iqa::kDw);
  W64(vtd::kIqtReg, 0x10);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), static_cast<uint64_t>(vtd::Iqei::kTailMisaligned));
}

// 256-bit descriptors (IQA.DW=1): a legacy descriptor in the low half.
TEST_F(VtdIrTest, WideDescriptorsAreProcessed) {
  W64(vtd::kIqaReg, kQueue | vtd::Iqa::kDw);
  Command(vtd::Gcmd::kQie);
  ram_->Store<uint64_t>(kQueue, vtd::qi::Wait(true, false, 0x77));
  ram_->Store<uint64_t>(kQueue + 8, kStatus);
  W64(vtd::kIqtReg, 0x20);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x77u);
  EXPECT_EQ(R64(vtd::kIqhReg), 0x20u);
  EXPECT_EQ(Fsts(), 0u);
}

// 11.4.9.9 IQEI: each IQE cause reads back with the spec's encoding
// (numbers, not the enum, so a wrong table fails): 1 invalid tail pointer,
// 2 descriptor fetch error, 3 invalid descriptor type, 4 reserved field,
// 6 queue tail misaligned with 256-bit descriptors, 7 invalid wait
// descriptor. Clearing IQE clears IQEI.
TEST_F(VtdIrTest, IqercdReportsTheSpecEncodingOfEachIqeCause) {
  // Invalid descriptor type (type 15).
  EnableIr();
  Submit(0xF);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 3u) << "invalid type";
  // Linux's qi_check_fault(): replace the bad slot, clear IQE; IQEI reads 0.
  ram_->Store<uint64_t>(kQueue + tail_ - 16, vtd::qi::IecGlobal());
  W32(vtd::kFstsReg, vtd::Fsts::kIqe);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqercdReg), 0u) << "IQEI valid only while IQE=1";

  // Reserved field in a valid type (IEC descriptor bit 20).
  Init();
  EnableIr();
  Submit(vtd::qi::IecGlobal() | Bit(20));
  EXPECT_EQ(R64(vtd::kIqercdReg), 4u) << "reserved field";

  // Invalid wait descriptor: status address outside memory.
  Init();
  EnableIr();
  Submit(vtd::qi::Wait(true, false, 1), kRamSize + 0x1000);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 7u) << "invalid wait descriptor";

  // Tail beyond the 4 KiB queue (IQA.QS=0).
  Init();
  EnableIr();
  W64(vtd::kIqtReg, 0x2000);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 1u) << "invalid tail pointer";

  // The queue itself outside memory: the descriptor fetch fails.
  Init();
  W64(vtd::kIqaReg, kRamSize);  // the first page above RAM
  Command(vtd::Gcmd::kQie);
  W64(vtd::kIqtReg, 0x10);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 2u) << "descriptor fetch error";

  // IQA.DW=1 with IQT[4]=1.
  Init();
  W64(vtd::kIqaReg, kQueue | vtd::Iqa::kDw);
  Command(vtd::Gcmd::kQie);
  W64(vtd::kIqtReg, 0x10);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 6u) << "queue tail misaligned";
}

// ---------------------------------------------------------------------------
// Device-TLB invalidation completion errors (ECAP.DT=1): ICE and ITE
// (6.5.2.5, 11.4.7.1, 11.4.9.9).
// ---------------------------------------------------------------------------

class VtdDeviceTlbTest : public VtdIrTest {
 protected:
  void InitDt(VtdConfig::DeviceTlb mode) {
    VtdConfig c;
    c.device_tlb = mode;
    Init(c);
    EnableIr();
    ProgramFaultEvent();
    ram_->Store<uint32_t>(kStatus, 0);
    ram_->Store<uint32_t>(kStatus + 4, 0);
  }
  // Writes a descriptor without moving IQT.
  void Put(uint64_t qw0, uint64_t qw1 = 0) {
    ram_->Store<uint64_t>(kQueue + tail_, qw0);
    ram_->Store<uint64_t>(kQueue + tail_ + 8, qw1);
    tail_ = (tail_ + 16) % 4096;
  }
  size_t FaultEvents() {
    size_t n = 0;
    for (const auto& d : sink_.got) n += d.message.data == 0xEF;
    return n;
  }
  static constexpr uint16_t kSid = 0x0018;  // 00:03.0
};

// Without ECAP.DT the descriptor is accepted and completes; ICE/ITE stay 0.
TEST_F(VtdDeviceTlbTest, WithoutDeviceTlbsTheDescriptorIsAccepted) {
  InitDt(VtdConfig::DeviceTlb::kNone);
  EXPECT_FALSE(R64(vtd::kEcapReg) & vtd::Ecap::kDt);
  Put(vtd::qi::DeviceTlb(kSid));
  Put(vtd::qi::Wait(true, false, 0x11), kStatus);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x11u);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
}

// ECAP.DT=1 and an endpoint that answers: the wait completes.
TEST_F(VtdDeviceTlbTest, AnsweredInvalidationCompletes) {
  InitDt(VtdConfig::DeviceTlb::kAnswer);
  EXPECT_TRUE(R64(vtd::kEcapReg) & vtd::Ecap::kDt);
  Put(vtd::qi::DeviceTlb(kSid, 5), 0x5000);
  Put(vtd::qi::Wait(true, false, 0x12), kStatus);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x12u);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(FaultEvents(), 0u);
}

// 6.5.2.5: reserved fields of a device-TLB descriptor (qw0 31:21, qw1 11:1)
// are an IQE (IQEI 4) once the unit supports device-TLBs.
TEST_F(VtdDeviceTlbTest, ReservedBitsInDeviceTlbDescriptorAreIqe) {
  InitDt(VtdConfig::DeviceTlb::kAnswer);
  Submit(vtd::qi::DeviceTlb(kSid) | Bit(24));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(R64(vtd::kIqercdReg), 4u);
  InitDt(VtdConfig::DeviceTlb::kAnswer);
  Submit(vtd::qi::DeviceTlb(kSid), Bit(3));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
}

// ITE: no completion arrives. The wait descriptor behind the invalidation
// is aborted (no status write, no ICS.IWC, no invalidation event), IQH
// points past it, FSTS.ITE with IQERCD.ITESID = the SID, one fault event;
// nothing more is fetched until software clears ITE (RW1C), then the queue
// resumes at IQH and ITESID reads 0.
TEST_F(VtdDeviceTlbTest, TimeoutSetsIteAbortsTheWaitAndStopsTheQueue) {
  InitDt(VtdConfig::DeviceTlb::kNoAnswer);
  W32(vtd::kIedataReg, 0xEC);
  W32(vtd::kIeaddrReg, 0xFEE00000);
  W32(vtd::kIectlReg, 0);
  const uint64_t start = tail_;
  Put(vtd::qi::DeviceTlb(kSid));
  Put(vtd::qi::Wait(true, true, 0x21), kStatus);
  Put(vtd::qi::Wait(true, false, 0x22), kStatus + 4);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIte);
  EXPECT_EQ(R64(vtd::kIqercdReg), uint64_t{kSid} << 32);  // ITESID 47:32
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u) << "aborted wait wrote status";
  EXPECT_EQ(R32(vtd::kIcsReg), 0u) << "aborted wait set IWC";
  EXPECT_EQ(R64(vtd::kIqhReg), start + 32) << "IQH past the aborted wait";
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 0u) << "fetched after ITE";
  EXPECT_EQ(FaultEvents(), 1u);
  EXPECT_EQ(sink_.got.size(), 1u) << "no invalidation event";
  EXPECT_EQ(unit_->stats().invalidation_timeouts, 1u);

  // Still stopped: more tail writes fetch nothing.
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(R64(vtd::kIqhReg), start + 32);
  W32(vtd::kFstsReg, 0);  // writing 0 does not clear (RW1C)
  EXPECT_EQ(Fsts(), vtd::Fsts::kIte);

  W32(vtd::kFstsReg, vtd::Fsts::kIte);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqercdReg), 0u);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 0x22u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u) << "aborted wait is not redone";
}

// The time-out elapses even with no wait descriptor behind the
// invalidation: ITE, IQH where fetching stopped (== IQT). A second ITE
// while the first is set is no new fault-event condition.
TEST_F(VtdDeviceTlbTest, TimeoutWithoutWaitStillSetsIte) {
  InitDt(VtdConfig::DeviceTlb::kNoAnswer);
  Submit(vtd::qi::DeviceTlb(kSid));
  EXPECT_EQ(Fsts(), vtd::Fsts::kIte);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(R64(vtd::kIqercdReg) >> 32, kSid);
  EXPECT_EQ(FaultEvents(), 1u);
  // ITE and IQE together: the queue resumes only when both are clear.
  W32(vtd::kFstsReg, vtd::Fsts::kIte);
  Submit(0xF);  // invalid type -> IQE
  EXPECT_EQ(Fsts(), vtd::Fsts::kIqe);
  EXPECT_EQ(FaultEvents(), 2u);
}

// ICE: an invalid completion (wrong requester id: sid ^ 7) is discarded and
// sets FSTS.ICE with IQERCD.ICESID = its requester id, one fault event;
// the queue does not stop and the wait completes. A second ICE keeps the
// first ICESID and is no new event. RW1C clears ICE and ICESID.
TEST_F(VtdDeviceTlbTest, InvalidCompletionSetsIceAndTheQueueGoesOn) {
  InitDt(VtdConfig::DeviceTlb::kBadCompletion);
  Put(vtd::qi::DeviceTlb(kSid));
  Put(vtd::qi::Wait(true, false, 0x31), kStatus);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(Fsts(), vtd::Fsts::kIce);
  EXPECT_EQ(R64(vtd::kIqercdReg), uint64_t{kSid ^ 7} << 48);  // ICESID 63:48
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x31u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(FaultEvents(), 1u);
  Put(vtd::qi::DeviceTlb(0x0100));
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(R64(vtd::kIqercdReg), uint64_t{kSid ^ 7} << 48);
  EXPECT_EQ(FaultEvents(), 1u);
  EXPECT_EQ(unit_->stats().invalidation_completion_errors, 2u);
  W32(vtd::kFstsReg, vtd::Fsts::kIce);
  EXPECT_EQ(Fsts(), 0u);
  EXPECT_EQ(R64(vtd::kIqercdReg), 0u);
}

// ICE with the fault event masked: held (FECTL.IP) and dropped without a
// message once software clears ICE (11.4.7.2).
TEST_F(VtdDeviceTlbTest, MaskedIceIsHeldAndClearedWithTheStatus) {
  InitDt(VtdConfig::DeviceTlb::kBadCompletion);
  W32(vtd::kFectlReg, vtd::EventControl::kIm);
  Submit(vtd::qi::DeviceTlb(kSid));
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm | vtd::EventControl::kIp);
  W32(vtd::kFstsReg, vtd::Fsts::kIce);
  EXPECT_EQ(R32(vtd::kFectlReg), vtd::EventControl::kIm);
  W32(vtd::kFectlReg, 0);
  EXPECT_EQ(FaultEvents(), 0u);
}

// Context-cache and IOTLB invalidations reach the DMA side's hooks, from
// the queue (6.5.2.1/6.5.2.3) and from CCMD/IOTLB_REG when QI is off
// (6.5.1; ICC/IVT clear and CAIG/IAIG report the granularity). With QI on,
// register-based invalidation is ignored.
TEST_F(VtdIrTest, DmaInvalidationHooks) {
  std::vector<ContextCacheInvalidation> cc;
  std::vector<IotlbInvalidation> tlb;
  unit_->SetDmaHooks({.context_cache = [&](const auto& i) { cc.push_back(i); },
                      .iotlb = [&](const auto& i) { tlb.push_back(i); }});
  // Register-based, QI off.
  W64(vtd::kCcmdReg, vtd::Ccmd::kIcc | (uint64_t{3} << 61) |
                         (uint64_t{2} << 32) | (uint64_t{0x0200} << 16) | 7);
  EXPECT_EQ(R64(vtd::kCcmdReg) >> 59, 3u << 2 | 3u);  // ICC=0 CIRG=3 CAIG=3
  ASSERT_EQ(cc.size(), 1u);
  EXPECT_EQ(cc[0].granularity, ContextCacheInvalidation::Granularity::kDevice);
  EXPECT_EQ(cc[0].domain_id, 7);
  EXPECT_EQ(cc[0].source_id, 0x0200);
  EXPECT_EQ(cc[0].function_mask, 2);
  EXPECT_FALSE(cc[0].queued);
  W64(vtd::kIvaReg, 0x123000 | Bit(6) | 2);
  W64(vtd::kIotlbReg, vtd::IotlbReg::kIvt | (uint64_t{3} << 60) |
                          (uint64_t{9} << 32));
  EXPECT_FALSE(R64(vtd::kIotlbReg) & vtd::IotlbReg::kIvt);
  EXPECT_EQ(vtd::Field(R64(vtd::kIotlbReg), 58, 57), 3u);
  ASSERT_EQ(tlb.size(), 1u);
  EXPECT_EQ(tlb[0].granularity, IotlbInvalidation::Granularity::kPage);
  EXPECT_EQ(tlb[0].domain_id, 9);
  EXPECT_EQ(tlb[0].address, 0x123000u);
  EXPECT_EQ(tlb[0].address_mask, 2);
  EXPECT_TRUE(tlb[0].invalidation_hint);
  // Queued.
  EnableIr();
  Submit(vtd::qi::ContextCache(1, 0, 0, 0));
  Submit(vtd::qi::Iotlb(2, 5, true, true));
  ASSERT_EQ(cc.size(), 2u);
  EXPECT_TRUE(cc[1].queued);
  EXPECT_EQ(cc[1].granularity, ContextCacheInvalidation::Granularity::kGlobal);
  ASSERT_EQ(tlb.size(), 2u);
  EXPECT_EQ(tlb[1].granularity, IotlbInvalidation::Granularity::kDomain);
  EXPECT_EQ(tlb[1].domain_id, 5);
  EXPECT_TRUE(tlb[1].drain_reads);
  // Register-based with QI on: ignored.
  W64(vtd::kCcmdReg, vtd::Ccmd::kIcc | (uint64_t{1} << 61));
  EXPECT_EQ(cc.size(), 2u);
  EXPECT_FALSE(R64(vtd::kCcmdReg) & vtd::Ccmd::kIcc);
}

// ---------------------------------------------------------------------------
// Fault injection on the invalidation queue.
// ---------------------------------------------------------------------------

// DropInvalidations: the next n descriptors of the type complete (the
// wait behind them writes its status) without reaching the DMA hooks or
// the IEC; other types and waits are untouched; kAny matches any type.
TEST_F(VtdIrTest, DroppedInvalidationsCompleteWithoutInvalidating) {
  std::vector<ContextCacheInvalidation> cc;
  std::vector<IotlbInvalidation> tlb;
  std::vector<DeviceTlbInvalidation> dev;
  unit_->SetDmaHooks({.context_cache = [&](const auto& i) { cc.push_back(i); },
                      .iotlb = [&](const auto& i) { tlb.push_back(i); },
                      .device_tlb = [&](const auto& i) { dev.push_back(i); }});
  EnableIr();
  using T = VtdUnit::InvalidationType;
  unit_->DropInvalidations(T::kIotlb, 2);
  Submit(vtd::qi::ContextCache(1, 0, 0, 0));  // not an IOTLB one: done
  Submit(vtd::qi::Iotlb(2, 5, false, false));
  Submit(vtd::qi::Wait(true, false, 0x77), kStatus);
  Submit(vtd::qi::Iotlb(1, 0, false, false));
  Submit(vtd::qi::Iotlb(1, 0, false, false));  // the third one is done
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x77u);
  EXPECT_EQ(cc.size(), 1u);
  EXPECT_EQ(tlb.size(), 1u);
  EXPECT_EQ(R64(vtd::kIqhReg), R64(vtd::kIqtReg));
  EXPECT_EQ(Fsts(), 0u);
  std::vector<std::string> inj = Details(trace::FAULT_INJECT);
  ASSERT_EQ(inj.size(), 2u);
  EXPECT_EQ(inj[0], "IOTLB invalidation skipped (injected): domain did 5");
  EXPECT_EQ(inj[1], "IOTLB invalidation skipped (injected): global");

  // kAny: the next descriptor whatever its type, never a wait.
  unit_->DropInvalidations(T::kAny, 1);
  Submit(vtd::qi::Wait(true, false, 0x78), kStatus);
  Submit(vtd::qi::DeviceTlb(0x0018));
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x78u);
  EXPECT_TRUE(dev.empty());
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            "device-TLB invalidation skipped (injected): sid 00:03.0");
  Submit(vtd::qi::DeviceTlb(0x0018));
  EXPECT_EQ(dev.size(), 1u);

  // IEC (SkipIecInvalidations is the same hook): the stale entry stays.
  SetIrte(9, Irte::Remapped({.vector = 0x41}));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  SetIrte(9, Irte::Remapped({.vector = 0x42}));
  unit_->DropInvalidations(T::kContextCache, 1);
  unit_->SkipIecInvalidations(1);
  Submit(vtd::qi::IecIndex(9, 0));
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x41);
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            "IEC invalidation skipped (injected): index 0x9 mask 0");
  EXPECT_EQ(Details(trace::QI_DESCRIPTOR).back(), "IEC invalidation skipped (injected)");
  Submit(vtd::qi::ContextCache(3, 1, 0x18, 0));
  EXPECT_EQ(cc.size(), 1u);
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            "context-cache invalidation skipped (injected): device did 1 sid 00:03.0 fm 0");
  Submit(vtd::qi::IecGlobal());
  unit_->Signal(MsiMessage::Remappable(9, false, 0, kDev));
  EXPECT_EQ(sink_.got.back().message.Vector(), 0x42);
}

// A malformed descriptor is still an IQE under a drop fault (the drop
// applies to descriptors that pass the checks) and does not use it up.
TEST_F(VtdIrTest, DropFaultDoesNotHideQueueErrors) {
  EnableIr();
  unit_->DropInvalidations(VtdUnit::InvalidationType::kIec, 1);
  Submit(vtd::qi::IecGlobal() | Bit(63));  // reserved bit
  EXPECT_TRUE(Fsts() & vtd::Fsts::kIqe);
  EXPECT_TRUE(Details(trace::FAULT_INJECT).empty());
}

// DelayInvalidations: the queue stalls before each of the next n
// descriptors; IQH stays put, IQT writes are latched, and the resume event
// (on the event queue, `ticks` later) processes them; the wait status is
// written only then.
TEST_F(VtdIrTest, DelayedQueueStallsAndResumesFromTheEventQueue) {
  EnableIr();
  EventQueue events;
  EXPECT_FALSE(unit_->DelayInvalidations(100, 1));  // no event queue yet
  unit_->set_event_queue(&events);
  ASSERT_TRUE(unit_->DelayInvalidations(1000, 2));
  clock_.Set(5000);
  ram_->Store<uint32_t>(kStatus, 0);
  const uint64_t head = R64(vtd::kIqhReg);
  Submit(vtd::qi::IecGlobal());
  Submit(vtd::qi::Wait(true, false, 0x55), kStatus);
  EXPECT_TRUE(unit_->queue_stalled());
  EXPECT_EQ(R64(vtd::kIqhReg), head);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u);
  ASSERT_EQ(events.NextTime(), std::optional<uint64_t>(6000));
  clock_.Set(6000);
  events.RunUntil(6000);
  // The IEC descriptor ran; the wait is the second delayed descriptor.
  EXPECT_TRUE(unit_->queue_stalled());
  EXPECT_EQ(R64(vtd::kIqhReg), head + 16);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0u);
  ASSERT_EQ(events.NextTime(), std::optional<uint64_t>(7000));
  clock_.Set(7000);
  events.RunUntil(7000);
  EXPECT_FALSE(unit_->queue_stalled());
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x55u);
  EXPECT_EQ(R64(vtd::kIqhReg), R64(vtd::kIqtReg));
  std::vector<std::string> inj = Details(trace::FAULT_INJECT);
  ASSERT_EQ(inj.size(), 4u);
  EXPECT_EQ(inj[0], absl::StrFormat("invalidation queue stalled at IQH %#x (IQT %#x) for 1000 "
                                    "ticks (injected), 1 more stall(s) to come",
                                    head, head + 16));
  EXPECT_EQ(inj[1], absl::StrFormat("invalidation queue resumes at IQH %#x (IQT %#x) "
                                    "(injected delay over)",
                                    head, head + 32));
  // Spent: the next submission runs at once.
  Submit(vtd::qi::Wait(true, false, 0x56), kStatus);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x56u);
  EXPECT_TRUE(events.empty());

  // A delay past the end of time saturates (TimeAfter) instead of wrapping
  // into the past: the queue stays stalled.
  ASSERT_TRUE(unit_->DelayInvalidations(~uint64_t{0}, 1));
  Submit(vtd::qi::Wait(true, false, 0x57), kStatus);
  EXPECT_TRUE(unit_->queue_stalled());
  ASSERT_EQ(events.NextTime(), std::optional<uint64_t>(~uint64_t{0}));
  events.RunUntil(uint64_t{1} << 62);
  EXPECT_TRUE(unit_->queue_stalled());
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 0x56u);
}

// ReorderInvalidations: the first two pending non-wait descriptors are
// processed in swapped order (an IEC invalidation overtakes an IOTLB one;
// the wait between them stays in place); with fewer than two pending the
// fault is a traced no-op and is spent.
TEST_F(VtdIrTest, ReorderSwapsTheFirstTwoPendingNonWaitDescriptors) {
  std::vector<std::string> order;
  unit_->SetDmaHooks({.iotlb = [&](const auto&) { order.push_back("iotlb"); }});
  unit_->set_iec_listener([&](bool, uint32_t, uint8_t) { order.push_back("iec"); });
  EnableIr();
  order.clear();
  unit_->ReorderInvalidations();
  // Batch: IOTLB, wait, IEC, wait — one IQT write.
  const uint64_t head = tail_;
  const auto put = [&](uint64_t qw0, uint64_t qw1) {
    ram_->Store<uint64_t>(kQueue + tail_, qw0);
    ram_->Store<uint64_t>(kQueue + tail_ + 8, qw1);
    tail_ = (tail_ + 16) % 4096;
  };
  put(vtd::qi::Iotlb(1, 0, false, false), 0);
  put(vtd::qi::Wait(true, false, 1), kStatus);
  put(vtd::qi::IecGlobal(), 0);
  put(vtd::qi::Wait(true, false, 2), kStatus + 4);
  W64(vtd::kIqtReg, tail_);
  EXPECT_EQ(order, (std::vector<std::string>{"iec", "iotlb"}));
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus), 1u);
  EXPECT_EQ(ram_->Load<uint32_t>(kStatus + 4), 2u);
  EXPECT_EQ(R64(vtd::kIqhReg), tail_);
  EXPECT_EQ(Details(trace::FAULT_INJECT),
            (std::vector<std::string>{absl::StrFormat(
                "reorder: descriptor at IQH %#x (IOTLB) and at %#x (IEC) processed in "
                "swapped order (injected)",
                head, head + 32)}));
  // Guest memory is untouched.
  EXPECT_EQ(ram_->Load<uint64_t>(kQueue + head), vtd::qi::Iotlb(1, 0, false, false));
  // Fewer than two: noted, spent.
  order.clear();
  unit_->ReorderInvalidations();
  Submit(vtd::qi::IecGlobal());
  Submit(vtd::qi::Iotlb(1, 0, false, false));
  EXPECT_EQ(order, (std::vector<std::string>{"iec", "iotlb"}));
  EXPECT_EQ(Details(trace::FAULT_INJECT).back(),
            absl::StrFormat("reorder: 1 non-wait descriptor(s) pending between IQH %#x and "
                            "IQT %#x: nothing reordered (injected)",
                            head + 64, head + 80));
}

// ---------------------------------------------------------------------------
// Posted interrupts (5.2.3, 9.11, 9.12).
// ---------------------------------------------------------------------------

class VtdPostedTest : public VtdIrTest {
 protected:
  void SetUp() override {
    Init({.posted_interrupts = true});
    EnableIr();
    // PID: NV 0xF2, NDST = APIC 3 in xAPIC form (NDST[15:8]).
    ram_->Store<uint64_t>(kPid + 32, (uint64_t{0xF2} << 16) |
                                         (uint64_t{3 << 8} << 32));
  }
  bool PirBit(uint8_t v) {
    return (ram_->Load<uint64_t>(kPid + 8 * (v / 64)) >> (v % 64)) & 1;
  }
  uint64_t Control() { return ram_->Load<uint64_t>(kPid + 32); }
};

// Posting sets the PIR bit, sets ON and sends the notification (NV to
// NDST) only on ON 0->1.
TEST_F(VtdPostedTest, PostsAndNotifiesOnce) {
  SetIrte(2, Irte::Posted(0x55, kPid));
  SetIrte(3, Irte::Posted(0x99, kPid));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kDev));
  EXPECT_TRUE(PirBit(0x55));
  EXPECT_TRUE(Control() & vtd::PostedDescriptor::kOn);
  ASSERT_EQ(sink_.got.size(), 1u);
  EXPECT_EQ(sink_.got[0].message.Vector(), 0xF2);
  EXPECT_EQ(sink_.got[0].message.DestinationId(), 3);
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  EXPECT_TRUE(PirBit(0x99));
  EXPECT_EQ(sink_.got.size(), 1u);  // ON was already set
  EXPECT_EQ(unit_->stats().posted, 2u);
  EXPECT_EQ(unit_->stats().notifications, 1u);
}

// SN=1 suppresses notification (ON stays clear) unless the IRTE is urgent.
TEST_F(VtdPostedTest, SuppressNotificationUnlessUrgent) {
  ram_->Store<uint64_t>(kPid + 32, Control() | vtd::PostedDescriptor::kSn);
  SetIrte(2, Irte::Posted(0x55, kPid));
  SetIrte(3, Irte::Posted(0x56, kPid, /*urgent=*/true));
  unit_->Signal(MsiMessage::Remappable(2, false, 0, kDev));
  EXPECT_TRUE(PirBit(0x55));
  EXPECT_FALSE(Control() & vtd::PostedDescriptor::kOn);
  EXPECT_TRUE(sink_.got.empty());
  unit_->Signal(MsiMessage::Remappable(3, false, 0, kDev));
  EXPECT_TRUE(Control() & vtd::PostedDescriptor::kOn);
  EXPECT_EQ(sink_.got.size(), 1u);
}

// A descriptor outside memory is fault 0x27 (rev 4.x); nothing delivered.
TEST_F(VtdPostedTest, Fault27DescriptorOutsideMemory) {
  SetIrte(4, Irte::Posted(0x55, 0x100000000ull));
  unit_->Signal(MsiMessage::Remappable(4, false, 0, kDev));
  EXPECT_TRUE(sink_.got.empty());
  ExpectFault(0, kDev, 4, 0x27);
}

// ---------------------------------------------------------------------------
// Robustness.
// ---------------------------------------------------------------------------

// Guest mistakes are never host crashes: random register writes (any
// offset/size/value), random IRTE bytes, random descriptors and random
// messages. Invariants: a faulted interrupt is never delivered, and each
// Signal() ends in exactly one of pass-through / remap / post / fault.
TEST_F(VtdIrTest, FuzzNeverCrashesAndNeverDeliversFaults) {
  Init({.num_fault_records = 4, .posted_interrupts = true, .iec_capacity = 16});
  std::mt19937_64 rng(0x5eed1234);
  const auto pick = [&](uint64_t n) { return rng() % n; };
  constexpr unsigned kSizes[] = {1, 2, 4, 8, 3};
  for (int iter = 0; iter < 20000; ++iter) {
    if (iter % 500 == 0) {
      // Recover to a working setup now and then (as a guest driver's
      // re-init would), so remapping, the IEC and posting keep being
      // exercised: clear the faults, rebuild QI + IRTA, enable IR.
      for (int i = 0; i < 4; ++i) ClearFrcd(i);
      W32(vtd::kFstsReg, 0xFFFFFFFF);
      Command(vtd::Gcmd::kIre, false);
      Command(vtd::Gcmd::kQie, false);
      tail_ = 0;
      EnableIr(/*s=*/5, /*eime=*/pick(2) == 0, /*cfi=*/pick(2) == 0);
      W32(vtd::kFectlReg, static_cast<uint32_t>(pick(2)) << 31);
    }
    switch (pick(24) < 2 ? 0 : 1 + pick(7)) {
      case 0: {  // register write
        uint64_t off = pick(10) < 7 ? pick(0xC0) & ~uint64_t{3} : pick(0x1000);
        if (pick(4) == 0) off = vtd::kFaultRecordsOffset + pick(64);
        if (pick(6) == 0) off = vtd::kGcmdReg;
        uint64_t value = rng();
        if (pick(2)) value &= 0xFFFFF;  // addresses inside RAM
        unit_->Write(kCpu, off, kSizes[pick(5)], value);
        break;
      }
      case 1:  // register read
        (void)unit_->Read(kCpu, pick(0x1100), kSizes[pick(5)]);
        break;
      case 2: {  // random IRTE / PID / queue bytes
        const uint64_t regions[] = {kIrt, kQueue, kPid, 0};
        uint64_t addr = regions[pick(4)] + (pick(0x800) & ~uint64_t{7});
        ram_->Store<uint64_t>(addr, rng());
        break;
      }
      case 3:  // a well-formed IRTE (remapped or posted) now and then
        if (pick(4) == 0) {
          SetIrte(pick(64), Irte::Posted(static_cast<uint8_t>(rng()),
                                         kPid + 64 * pick(4), pick(2)));
        } else {
          SetIrte(pick(64),
                  Irte::Remapped({.vector = static_cast<uint8_t>(rng()),
                                  .destination = static_cast<uint32_t>(pick(4)),
                                  .fpd = pick(8) == 0,
                                  .sid = static_cast<uint16_t>(0x0100 + pick(0x400)),
                                  .sq = static_cast<uint8_t>(pick(4)),
                                  .svt = static_cast<uint8_t>(pick(6) == 0 ? 1 + pick(2) : 0)}));
        }
        break;
      case 4:  // an invalidation descriptor now and then
        Submit(pick(2) ? vtd::qi::IecGlobal()
                       : vtd::qi::IecIndex(static_cast<uint16_t>(pick(64)),
                                           static_cast<uint8_t>(pick(4))));
        break;
      default: {  // a message
        const uint16_t rid = static_cast<uint16_t>(0x0100 + pick(0x400));
        MsiMessage m(0, 0, rid);
        switch (pick(4)) {
          case 0:
            m = MsiMessage::Compat(pick(256), static_cast<uint8_t>(rng()), rid);
            break;
          case 1:
            m = MsiMessage(rng(), static_cast<uint32_t>(rng()), rid);
            break;
          default:
            m = MsiMessage::Remappable(static_cast<uint16_t>(pick(80)),
                                       pick(2), static_cast<uint16_t>(pick(4)),
                                       rid);
            if (pick(8) == 0) m.data |= 0x10000;
        }
        const VtdStats before = unit_->stats();
        const size_t delivered_before = sink_.interrupts;
        unit_->Signal(m);
        const VtdStats& after = unit_->stats();
        const uint64_t faults = after.faults - before.faults;
        const uint64_t outcomes = faults +
                                  (after.remapped - before.remapped) +
                                  (after.posted - before.posted) +
                                  (after.passed_through - before.passed_through);
        ASSERT_EQ(outcomes, 1u) << "iter " << iter << " " << m.ToString();
        const size_t delivered = sink_.interrupts - delivered_before;
        if (faults != 0) {
          ASSERT_EQ(delivered, 0u)
              << "faulted interrupt delivered, iter " << iter << " "
              << m.ToString();
        } else {
          ASSERT_LE(delivered, 1u);
        }
        break;
      }
    }
  }
  // Every recorded fault is one of the interrupt-remapping reasons.
  for (int i = 0; i < 4; ++i) {
    const uint64_t hi = FrcdHi(i);
    if (hi & vtd::FaultRecord::kF) {
      const uint8_t reason = (hi >> 32) & 0xFF;
      EXPECT_GE(reason, 0x20);
      EXPECT_LE(reason, 0x27);
    }
  }
  EXPECT_GT(unit_->stats().faults, 0u);
  EXPECT_GT(unit_->stats().remapped + unit_->stats().passed_through, 0u);
  // The fixed seed exercises every path (coverage guard).
  EXPECT_GT(unit_->stats().remapped, 0u);
  EXPECT_GT(unit_->stats().posted, 0u);
  EXPECT_GT(unit_->stats().iec_hits, 0u);
  EXPECT_GT(unit_->stats().faults_suppressed_fpd, 0u);
  EXPECT_GT(unit_->stats().faults_dropped_overflow, 0u);
}

// VtdUnit::Signal() has a fast path for untraced IEC hits. Differential
// test: the same random script (IRTEs of every kind, SVT checks that pass
// and fail, posting, IEC invalidations, IRE/EIME changes, malformed and
// compatibility requests) on a traced and an untraced unit must deliver the
// same messages, write the same memory and count the same statistics.
TEST(VtdFastPathTest, UntracedSignalMatchesTracedSignal) {
  struct Rig {
    explicit Rig(bool traced) {
      ram = std::move(GuestRam::Create(kRamSize)).value();
      if (traced) tracer.AddSink(&recorder);
      VtdConfig c;
      c.requester_id = kUnitRid;
      c.posted_interrupts = true;
      c.iec_capacity = 48;  // smaller than the 64 entries used: evictions
      unit = std::move(VtdUnit::Create(c, &sink, ram.get(), &clock,
                                       traced ? &tracer : nullptr))
                 .value();
    }
    void W64(uint64_t off, uint64_t v) { unit->Write(kCpu, off, 8, v); }
    void Command(uint32_t bit, bool set) {
      const uint32_t st = static_cast<uint32_t>(unit->Read(kCpu, vtd::kGstsReg, 4)) &
                          ~vtd::Gcmd::kOneShot;
      unit->Write(kCpu, vtd::kGcmdReg, 4, set ? st | bit : st & ~bit);
    }
    void Submit(uint64_t qw0) {
      ram->Store<uint64_t>(kQueue + tail, qw0);
      ram->Store<uint64_t>(kQueue + tail + 8, 0);
      tail = (tail + 16) % 4096;
      W64(vtd::kIqtReg, tail);
    }
    RecordingSink sink;
    ManualClock clock;
    Tracer tracer;
    TraceRecorder recorder;
    std::unique_ptr<GuestRam> ram;
    std::unique_ptr<VtdUnit> unit;
    uint64_t tail = 0;
  };
  Rig traced(true), plain(false);
  Rig* rigs[] = {&traced, &plain};
  for (Rig* r : rigs) {
    r->W64(vtd::kIqaReg, kQueue);
    r->Command(vtd::Gcmd::kQie, true);
    r->W64(vtd::kIrtaReg, kIrt | 5);  // 64 entries
    r->Command(vtd::Gcmd::kSirtp, true);
    r->Submit(vtd::qi::IecGlobal());
    r->Command(vtd::Gcmd::kIre, true);
  }
  std::mt19937_64 rng(0xFA57);
  const auto pick = [&](uint64_t n) { return rng() % n; };
  size_t hits_untraced = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    const uint64_t op = pick(100);
    if (op < 8) {  // rewrite an IRTE (without invalidating: stale IEC)
      const uint32_t idx = static_cast<uint32_t>(pick(64));
      Irte e;
      if (pick(5) == 0) {
        e = Irte::Posted(static_cast<uint8_t>(rng()), kPid + 64 * pick(4),
                         pick(2), static_cast<uint16_t>(0x0100 + pick(8)),
                         static_cast<uint8_t>(pick(4)),
                         static_cast<uint8_t>(pick(3)));
      } else if (pick(10) == 0) {
        e.lo = rng();
        e.hi = rng();
      } else {
        e = Irte::Remapped({.vector = static_cast<uint8_t>(0x20 + pick(0xE0)),
                            .destination = static_cast<uint32_t>(pick(4)),
                            .fpd = pick(8) == 0,
                            .sid = static_cast<uint16_t>(0x0100 + pick(8)),
                            .sq = static_cast<uint8_t>(pick(4)),
                            .svt = static_cast<uint8_t>(pick(3))});
      }
      for (Rig* r : rigs) {
        r->ram->Store<uint64_t>(kIrt + 16 * idx, e.lo);
        r->ram->Store<uint64_t>(kIrt + 16 * idx + 8, e.hi);
      }
    } else if (op < 12) {  // IEC invalidation
      const uint64_t d = pick(3) == 0
                             ? vtd::qi::IecGlobal()
                             : vtd::qi::IecIndex(static_cast<uint16_t>(pick(64)),
                                                 static_cast<uint8_t>(pick(3)));
      for (Rig* r : rigs) r->Submit(d);
    } else if (op < 13) {  // IRE off/on, EIME flip (+ the flush software owes)
      const bool eime = pick(2);
      const bool ire = pick(4) != 0;
      for (Rig* r : rigs) {
        r->W64(vtd::kIrtaReg, kIrt | 5 | (eime ? vtd::Irta::kEime : 0));
        r->Command(vtd::Gcmd::kSirtp, true);
        r->Submit(vtd::qi::IecGlobal());
        r->Command(vtd::Gcmd::kIre, ire);
      }
    } else {  // a message
      const uint16_t rid = static_cast<uint16_t>(0x0100 + pick(8));
      MsiMessage m = MsiMessage::Remappable(static_cast<uint16_t>(pick(70)),
                                            pick(2), static_cast<uint16_t>(pick(3)),
                                            rid);
      if (pick(20) == 0) m.data |= 0x10000;
      if (pick(20) == 0) m = MsiMessage::Compat(pick(4), 0x40, rid);
      const uint64_t hits_before = plain.unit->stats().iec_hits;
      const MsiOutcome a = traced.unit->Signal(m);
      const MsiOutcome b = plain.unit->Signal(m);
      hits_untraced += plain.unit->stats().iec_hits - hits_before;
      ASSERT_EQ(a, b) << "iteration " << iter;
    }
    ASSERT_EQ(traced.sink.got.size(), plain.sink.got.size()) << "iteration " << iter;
  }
  for (size_t i = 0; i < traced.sink.got.size(); ++i) {
    EXPECT_EQ(traced.sink.got[i].message, plain.sink.got[i].message) << i;
    EXPECT_EQ(traced.sink.got[i].destination, plain.sink.got[i].destination) << i;
    EXPECT_EQ(traced.sink.got[i].wide, plain.sink.got[i].wide) << i;
  }
  const VtdStats& x = traced.unit->stats();
  const VtdStats& y = plain.unit->stats();
  EXPECT_EQ(x.passed_through, y.passed_through);
  EXPECT_EQ(x.remapped, y.remapped);
  EXPECT_EQ(x.posted, y.posted);
  EXPECT_EQ(x.notifications, y.notifications);
  EXPECT_EQ(x.faults, y.faults);
  EXPECT_EQ(x.faults_recorded, y.faults_recorded);
  EXPECT_EQ(x.faults_suppressed_fpd, y.faults_suppressed_fpd);
  EXPECT_EQ(x.faults_dropped_overflow, y.faults_dropped_overflow);
  EXPECT_EQ(x.iec_hits, y.iec_hits);
  EXPECT_EQ(x.iec_misses, y.iec_misses);
  EXPECT_EQ(x.iec_evictions, y.iec_evictions);
  EXPECT_EQ(x.fault_events, y.fault_events);
  EXPECT_EQ(0, std::memcmp(traced.ram->data(), plain.ram->data(), kRamSize));
  // The script exercises the fast path, remapping and faults alike.
  EXPECT_GT(hits_untraced, 3000u);
  EXPECT_GT(y.remapped, 3000u);
  EXPECT_GT(y.faults, 1000u);
  EXPECT_GT(y.posted, 100u);
}

}  // namespace
}  // namespace irqlab
