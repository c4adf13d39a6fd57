// Tests of iommu/dma_remap.h: VT-d legacy-mode DMA remapping (rev. 4.x):
// root/context entries (9.1, 9.3), second-level walks (3.7, 9.8), the
// DMA-remapping fault reasons 1h-Dh (ch. 7), FPD, the context-cache and the
// IOTLB as caches that stay stale until the matching invalidation (6.2.2,
// 6.2.4, 6.5), and the RemappingDmaSink decorator.
//
// Tables are built in guest RAM exactly as a driver would write them; every
// test states the spec rule it checks.
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "emu/core/guest_ram.h"
#include "emu/core/msi.h"
#include "emu/core/msi_sink.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"
#include "iommu/dma_remap.h"
#include "iommu/vtd_unit.h"
#include "pci/root_complex.h"

namespace irqlab {
namespace vtd {
namespace {

constexpr uint64_t kR = 1ull << 0;
constexpr uint64_t kW = 1ull << 1;
constexpr uint64_t kPs = 1ull << 7;
constexpr uint64_t k4K = 1ull << 12;
constexpr uint64_t k2M = 1ull << 21;
constexpr uint64_t k1G = 1ull << 30;

constexpr uint8_t kAw39 = 1;  // context AW 001b: 39-bit, 3-level
constexpr uint8_t kAw48 = 2;  // 010b: 48-bit, 4-level
constexpr uint8_t kAw57 = 3;  // 011b: 57-bit, 5-level

constexpr uint8_t kTtUntranslated = 0;
constexpr uint8_t kTtDeviceTlb = 1;
constexpr uint8_t kTtPassThrough = 2;

constexpr uint16_t Rid(int bus, int dev, int fn) {
  return static_cast<uint16_t>((bus << 8) | (dev << 3) | fn);
}
constexpr uint16_t kRid = Rid(2, 0, 0);  // 02:00.0

int Shift(int level) { return 12 + 9 * (level - 1); }

class RecordingMsiSink : public MsiSink {
 public:
  MsiOutcome Signal(const MsiMessage& message) override {
    messages.push_back(message);
    return MsiOutcome::kAccepted;
  }
  std::vector<MsiMessage> messages;
};

// Guest RAM with a root table, one context table per bus and a bump
// allocator for page tables, plus a DmaRemapper pointed at it.
class VtdDmaTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRamSize = 16 << 20;
  static constexpr uint64_t kRootTable = 0x10000;
  static constexpr uint64_t kContextTables = 0x20000;  // + bus * 4 KiB
  static constexpr uint64_t kPageTables = 0x200000;    // bump allocated

  struct Device {
    uint16_t rid;
    uint16_t did;
    int levels;
    uint64_t top;       // SLPTPTR
    uint64_t ctx_addr;  // address of the context entry
  };

  VtdDmaTest() : ram_(std::move(GuestRam::Create(kRamSize)).value()) {
    Reset(DmaRemapOptions());
  }

  void Reset(const DmaRemapOptions& options) {
    remap_ = std::make_unique<DmaRemapper>(ram_.get(), options);
    remap_->SetRootTableAddress(kRootTable);
  }

  uint64_t NewTable() {
    const uint64_t t = next_table_;
    next_table_ += k4K;
    std::memset(ram_->data() + t, 0, k4K);
    return t;
  }

  uint64_t RootAddr(int bus) const { return kRootTable + bus * 16; }
  uint64_t ContextAddr(uint16_t rid) const {
    return kContextTables + (rid >> 8) * k4K + (rid & 0xFF) * 16;
  }

  static uint64_t ContextLo(uint64_t slptptr, uint8_t tt, bool fpd,
                            bool present = true) {
    return slptptr | (uint64_t{tt} << 2) | (fpd ? 2 : 0) | (present ? 1 : 0);
  }
  static uint64_t ContextHi(uint8_t aw, uint16_t did) {
    return aw | (uint64_t{did} << 8);
  }

  // Present root entry for the device's bus, context entry with a fresh top
  // table.
  Device AddDevice(uint16_t rid, uint16_t did, uint8_t aw = kAw39,
                   uint8_t tt = kTtUntranslated, bool fpd = false) {
    const int bus = rid >> 8;
    ram_->Store<uint64_t>(RootAddr(bus), (kContextTables + bus * k4K) | 1);
    ram_->Store<uint64_t>(RootAddr(bus) + 8, 0);
    Device d{rid, did, aw + 2, NewTable(), ContextAddr(rid)};
    ram_->Store<uint64_t>(d.ctx_addr, ContextLo(d.top, tt, fpd));
    ram_->Store<uint64_t>(d.ctx_addr + 8, ContextHi(aw, did));
    return d;
  }

  // Maps `iova` to `hpa` with a page of `page_level` (1 = 4 KiB, 2 = 2 MiB,
  // 3 = 1 GiB), creating intermediate tables with R+W. Returns the address of
  // the leaf entry.
  uint64_t Map(const Device& d, uint64_t iova, uint64_t hpa, int page_level = 1,
               uint64_t perms = kR | kW) {
    uint64_t table = d.top;
    for (int level = d.levels; level > page_level; --level) {
      const uint64_t a = table + ((iova >> Shift(level)) & 0x1FF) * 8;
      uint64_t pte = ram_->Load<uint64_t>(a);
      if ((pte & 3) == 0) {
        pte = NewTable() | kR | kW;
        ram_->Store<uint64_t>(a, pte);
      }
      table = pte & 0x000FFFFFFFFFF000ull;
    }
    const uint64_t a = table + ((iova >> Shift(page_level)) & 0x1FF) * 8;
    ram_->Store<uint64_t>(a, hpa | perms | (page_level > 1 ? kPs : 0));
    return a;
  }

  // Address of the entry at `level` on the walk of `iova` (tables must
  // exist down to that level).
  uint64_t EntryAddr(const Device& d, uint64_t iova, int level) {
    uint64_t table = d.top;
    for (int l = d.levels; l > level; --l) {
      table = ram_->Load<uint64_t>(table + ((iova >> Shift(l)) & 0x1FF) * 8) &
              0x000FFFFFFFFFF000ull;
    }
    return table + ((iova >> Shift(level)) & 0x1FF) * 8;
  }

  void ExpectFault(const TranslateResult& r, DmaFaultReason reason,
                   uint16_t rid, uint64_t address, bool write) {
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(static_cast<int>(r.fault.reason), static_cast<int>(reason));
    EXPECT_EQ(r.fault.rid, rid);
    EXPECT_EQ(r.fault.address, address);
    EXPECT_EQ(r.fault.write, write);
  }

  uint64_t Hpa(uint16_t rid, uint64_t iova, bool write = false) {
    TranslateResult r = remap_->Translate(rid, iova, write);
    EXPECT_TRUE(r.ok) << "fault reason " << static_cast<int>(r.fault.reason);
    return r.hpa;
  }

  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<DmaRemapper> remap_;
  uint64_t next_table_ = kPageTables;
};

// ===========================================================================
// Second-level walks (3.7, 9.8)

// AW=001b selects a 3-level table (SL-PDPE, SL-PDE, SL-PTE); a 4 KiB leaf
// maps bits 38:12 and the offset is bits 11:0.
TEST_F(VtdDmaTest, ThreeLevelWalkMaps4KPage) {
  Device d = AddDevice(kRid, 1, kAw39);
  Map(d, 0x12345000, 0x803000);
  TranslateResult r = remap_->Translate(kRid, 0x12345678, false);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.hpa, 0x803678u);
  EXPECT_EQ(r.page_size, k4K);
  EXPECT_EQ(r.domain_id, 1);
  EXPECT_EQ(Hpa(kRid, 0x12345FFF, true), 0x803FFFu);
}

// SL-PDE with PS=1 maps a 2 MiB page: bits 20:0 are the offset (9.8).
TEST_F(VtdDmaTest, ThreeLevelWalkMaps2MPage) {
  Device d = AddDevice(kRid, 1, kAw39);
  Map(d, 0x40000000, 0x600000, /*page_level=*/2);
  TranslateResult r = remap_->Translate(kRid, 0x40012345, true);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.hpa, 0x612345u);
  EXPECT_EQ(r.page_size, k2M);
}

// SL-PDPE with PS=1 maps a 1 GiB page (CAP.SLLPS bit 1), even at the top
// level of a 3-level table.
TEST_F(VtdDmaTest, ThreeLevelWalkMaps1GPage) {
  Device d = AddDevice(kRid, 1, kAw39);
  Map(d, 0x80000000, 0x40000000, /*page_level=*/3);
  TranslateResult r = remap_->Translate(kRid, 0x81234567, false);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.hpa, 0x41234567u);
  EXPECT_EQ(r.page_size, k1G);
}

// AW=010b selects a 4-level table (SL-PML4E first), so IOVA bits 47:39 index
// the top table; all three page sizes work below it.
TEST_F(VtdDmaTest, FourLevelWalkMapsAllPageSizes) {
  Device d = AddDevice(kRid, 7, kAw48);
  Map(d, 0x0000800012345000, 0x805000);
  Map(d, 0x0000400000200000, 0x400000, 2);
  Map(d, 0x00007FFFC0000000, 0x00000040C0000000, 3);
  EXPECT_EQ(Hpa(kRid, 0x0000800012345ABC), 0x805ABCu);
  EXPECT_EQ(Hpa(kRid, 0x00004000003FFFFF), 0x5FFFFFu);
  EXPECT_EQ(Hpa(kRid, 0x00007FFFC0000010, true), 0x00000040C0000010u);
  EXPECT_EQ(remap_->stats().page_walks, 3u);
}

// AW=011b (57-bit, 5-level) works when CAP.SAGAW reports it.
TEST_F(VtdDmaTest, FiveLevelWalkWhenSagawReportsIt) {
  DmaRemapOptions o;
  o.sagaw = 0b1110;
  o.mgaw = 57;
  Reset(o);
  Device d = AddDevice(kRid, 1, kAw57);
  Map(d, 0x0100000000001000ull, 0x9000);
  EXPECT_EQ(Hpa(kRid, 0x0100000000001004ull), 0x9004u);
}

// ===========================================================================
// Permissions (3.7: rights are the AND over every level; an entry with R=W=0
// is not present and gives the permission fault of the request).

// Reason 5h: write to a page whose leaf has W=0.
TEST_F(VtdDmaTest, WriteToReadOnlyPageFaults5h) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x5000, 0x805000, 1, kR);
  EXPECT_EQ(Hpa(kRid, 0x5010), 0x805010u);
  ExpectFault(remap_->Translate(kRid, 0x5010, true),
              DmaFaultReason::kWriteDenied, kRid, 0x5010, true);
}

// Reason 6h: read of a write-only page.
TEST_F(VtdDmaTest, ReadOfWriteOnlyPageFaults6h) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x5000, 0x805000, 1, kW);
  EXPECT_EQ(Hpa(kRid, 0x5000, true), 0x805000u);
  ExpectFault(remap_->Translate(kRid, 0x5008, false),
              DmaFaultReason::kReadDenied, kRid, 0x5008, false);
}

// A non-leaf entry without W denies writes to everything below it even if
// the leaf allows them.
TEST_F(VtdDmaTest, NonLeafWithoutWriteDeniesWritesBelowIt) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x5000, 0x805000);
  const uint64_t pde = EntryAddr(d, 0x5000, 2);
  ram_->Store<uint64_t>(pde, ram_->Load<uint64_t>(pde) & ~kW);
  ExpectFault(remap_->Translate(kRid, 0x5000, true),
              DmaFaultReason::kWriteDenied, kRid, 0x5000, true);
  EXPECT_EQ(Hpa(kRid, 0x5000), 0x805000u);
}

// Not-present leaf (R=W=0): a read faults 6h, a write 5h, with the full
// request address.
TEST_F(VtdDmaTest, UnmappedPageFaultsWithRequestDirection) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x5000, 0x805000);
  ExpectFault(remap_->Translate(kRid, 0x6123, false),
              DmaFaultReason::kReadDenied, kRid, 0x6123, false);
  ExpectFault(remap_->Translate(kRid, 0x6123, true),
              DmaFaultReason::kWriteDenied, kRid, 0x6123, true);
  // Not present at a higher level (no SL-PDE for 1 GiB up).
  ExpectFault(remap_->Translate(kRid, 0x40000000, false),
              DmaFaultReason::kReadDenied, kRid, 0x40000000, false);
}

// ===========================================================================
// Root and context entries (9.1, 9.3; reasons 1h, 2h, 3h)

// Reason 1h: the root entry of the request's bus has P=0. Root faults are not
// qualified, so never FPD-suppressed.
TEST_F(VtdDmaTest, RootEntryNotPresentFaults1h) {
  AddDevice(kRid, 1);
  const uint16_t other = Rid(3, 1, 2);
  TranslateResult r = remap_->Translate(other, 0x1000, true);
  ExpectFault(r, DmaFaultReason::kRootNotPresent, other, 0x1000, true);
  EXPECT_FALSE(r.fpd);
}

// Reason 2h: the context entry of the devfn has P=0.
TEST_F(VtdDmaTest, ContextEntryNotPresentFaults2h) {
  AddDevice(kRid, 1);
  const uint16_t sibling = Rid(2, 0, 1);
  TranslateResult r = remap_->Translate(sibling, 0x1000, false);
  ExpectFault(r, DmaFaultReason::kContextNotPresent, sibling, 0x1000, false);
  EXPECT_FALSE(r.fpd);
}

// Reason 3h: TT=11b is reserved; TT=01b needs ECAP.DT; TT=10b needs ECAP.PT;
// AW must be a width in CAP.SAGAW (000b and 57-bit are not, by default).
TEST_F(VtdDmaTest, InvalidContextProgrammingFaults3h) {
  struct Case {
    uint8_t tt;
    uint8_t aw;
    bool pass_through_supported;
  };
  const Case cases[] = {
      {3, kAw39, true},                // TT reserved
      {kTtDeviceTlb, kAw39, true},     // no ECAP.DT
      {kTtPassThrough, kAw39, false},  // no ECAP.PT
      {kTtUntranslated, 0, true},      // AW 000b
      {kTtUntranslated, kAw57, true},  // not in SAGAW 0110b
      {kTtUntranslated, 4, true},      // AW reserved encoding
  };
  for (const Case& c : cases) {
    DmaRemapOptions o;
    o.pass_through = c.pass_through_supported;
    Reset(o);
    Device d = AddDevice(kRid, 1, kAw39);
    ram_->Store<uint64_t>(d.ctx_addr, ContextLo(d.top, c.tt, false));
    ram_->Store<uint64_t>(d.ctx_addr + 8, ContextHi(c.aw, 1));
    Map(d, 0x1000, 0x2000);
    ExpectFault(remap_->Translate(kRid, 0x1000, false),
                DmaFaultReason::kContextInvalid, kRid, 0x1000, false);
  }
}

// TT=10b: untranslated requests pass through unchanged (no page walk, no
// IOTLB entry); SLPTPTR is ignored, so bits above HAW in it are not reserved.
TEST_F(VtdDmaTest, PassThroughContextUsesIovaAsHostAddress) {
  Device d = AddDevice(kRid, 3, kAw48, kTtPassThrough);
  ram_->Store<uint64_t>(
      d.ctx_addr, ContextLo(0x00000F0000000000ull, kTtPassThrough, false));
  TranslateResult r = remap_->Translate(kRid, 0x123456789A, true);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.pass_through);
  EXPECT_EQ(r.hpa, 0x123456789Au);
  EXPECT_EQ(remap_->stats().iotlb_misses, 0u);
  EXPECT_EQ(remap_->iotlb_size(), 0u);
  // Reason 4h still applies: above min(MGAW, AW) = 48 bits.
  ExpectFault(remap_->Translate(kRid, 1ull << 48, false),
              DmaFaultReason::kAddressBeyondAw, kRid, 1ull << 48, false);
}

// Reason Dh: a Translated Request (AT=10b) through a context whose TT is not
// 01b is blocked; with TT=01b (ECAP.DT) it passes with its address as is.
TEST_F(VtdDmaTest, TranslatedRequestBlockedUnlessDeviceTlbContextFaultsDh) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x2000);
  ExpectFault(remap_->Translate(kRid, 0x2000, true, AddressType::kTranslated),
              DmaFaultReason::kTranslatedBlocked, kRid, 0x2000, true);

  DmaRemapOptions o;
  o.device_tlb = true;
  Reset(o);
  Device dt = AddDevice(Rid(4, 0, 0), 1, kAw39, kTtDeviceTlb);
  Map(dt, 0x1000, 0x2000);
  TranslateResult r =
      remap_->Translate(dt.rid, 0x7000, false, AddressType::kTranslated);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.hpa, 0x7000u);
  EXPECT_EQ(Hpa(dt.rid, 0x1004), 0x2004u);  // untranslated still walks
}

// ===========================================================================
// Address width (reason 4h: input address above 2^X - 1, X = min(MGAW, AW))

TEST_F(VtdDmaTest, AddressBeyondContextAwFaults4h) {
  Device d = AddDevice(kRid, 1, kAw39);
  Map(d, (1ull << 39) - k4K, 0x3000);
  EXPECT_EQ(Hpa(kRid, (1ull << 39) - 1), 0x3FFFu);
  ExpectFault(remap_->Translate(kRid, 1ull << 39, true),
              DmaFaultReason::kAddressBeyondAw, kRid, 1ull << 39, true);
  ExpectFault(remap_->Translate(kRid, ~0ull, false),
              DmaFaultReason::kAddressBeyondAw, kRid, ~0ull, false);
}

TEST_F(VtdDmaTest, AddressBeyondMgawFaults4hEvenWithWiderAw) {
  DmaRemapOptions o;
  o.mgaw = 39;
  Reset(o);
  Device d = AddDevice(kRid, 1, kAw48);
  Map(d, 1ull << 40, 0x3000);
  ExpectFault(remap_->Translate(kRid, 1ull << 40, false),
              DmaFaultReason::kAddressBeyondAw, kRid, 1ull << 40, false);
}

// ===========================================================================
// Reserved fields (reasons Ah, Bh, Ch)

// Root entry (9.1): bits 11:1, CTP bits 63:HAW and the whole upper half are
// reserved in legacy mode.
TEST_F(VtdDmaTest, ReservedBitsInRootEntryFaultAh) {
  const uint64_t root_lo_bad[] = {1ull << 5, 1ull << 40 /* HAW is 39 */};
  for (uint64_t bad : root_lo_bad) {
    AddDevice(kRid, 1);
    ram_->Store<uint64_t>(RootAddr(2), ram_->Load<uint64_t>(RootAddr(2)) | bad);
    remap_->InvalidateContextCacheGlobal();
    ExpectFault(remap_->Translate(kRid, 0x1000, false),
                DmaFaultReason::kRootReserved, kRid, 0x1000, false);
  }
  AddDevice(kRid, 1);
  ram_->Store<uint64_t>(RootAddr(2) + 8, 1ull << 63);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kRootReserved, kRid, 0x1000, false);
}

// Context entry (9.3): bits 11:4, SLPTPTR bits 63:HAW, bit 71, bits 127:88,
// and DID bits beyond CAP.ND are reserved.
TEST_F(VtdDmaTest, ReservedBitsInContextEntryFaultBh) {
  struct Case {
    uint64_t lo_or;
    uint64_t hi_or;
  };
  const Case cases[] = {
      {1ull << 4, 0}, {1ull << 11, 0}, {1ull << 45, 0},
      {0, 1ull << 7}, {0, 1ull << 24}, {0, 1ull << 63},
  };
  for (const Case& c : cases) {
    Device d = AddDevice(kRid, 1);
    Map(d, 0x1000, 0x2000);
    ram_->Store<uint64_t>(d.ctx_addr,
                          ram_->Load<uint64_t>(d.ctx_addr) | c.lo_or);
    ram_->Store<uint64_t>(d.ctx_addr + 8,
                          ram_->Load<uint64_t>(d.ctx_addr + 8) | c.hi_or);
    remap_->InvalidateContextCacheGlobal();
    ExpectFault(remap_->Translate(kRid, 0x1000, false),
                DmaFaultReason::kContextReserved, kRid, 0x1000, false);
  }
  // 8-bit domain ids (CAP.ND=2): DID 0x100 uses a reserved bit.
  DmaRemapOptions o;
  o.domain_id_bits = 8;
  Reset(o);
  AddDevice(kRid, 0x100);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kContextReserved, kRid, 0x1000, false);
  AddDevice(kRid, 0xFF);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kReadDenied, kRid, 0x1000, false);
}

// The translation must enforce what the unit reports (11.4.2 CAP.ND,
// SAGAW, MGAW, SLLPS; 11.4.3 ECAP.PT): the default unit says CAP.ND=2 (8-bit
// domain ids), so DID 0x100 has a reserved bit set (0xB), which default
// DmaRemapOptions (16-bit ids) would accept.
TEST_F(VtdDmaTest, OptionsFromCapMatchTheUnitsRegisters) {
  class NullSink : public MsiSink {
   public:
    MsiOutcome Signal(const MsiMessage&) override { return MsiOutcome::kAccepted; }
    MsiOutcome SignalX2Apic(const MsiMessage&, uint32_t) override {
      return MsiOutcome::kAccepted;
    }
  } sink;
  ManualClock clock;
  auto unit_ram = GuestRam::Create(1 << 20);
  ASSERT_TRUE(unit_ram.ok());
  for (const bool pt : {true, false}) {
    VtdConfig vc;
    vc.pass_through = pt;
    auto unit = VtdUnit::Create(vc, &sink, unit_ram->get(), &clock, nullptr);
    ASSERT_TRUE(unit.ok()) << unit.status();
    const DmaRemapOptions o =
        DmaRemapOptionsFromCap((*unit)->cap().raw, (*unit)->ecap().raw);
    EXPECT_EQ(o.domain_id_bits, 4 + 2 * vc.nd);
    EXPECT_EQ(o.sagaw, vc.sagaw);
    EXPECT_EQ(o.mgaw, vc.mgaw);
    EXPECT_EQ(o.sllps, vc.sllps);
    EXPECT_EQ(o.pass_through, pt);
    EXPECT_FALSE(o.device_tlb);
  }
  VtdConfig vc;
  auto unit = VtdUnit::Create(vc, &sink, unit_ram->get(), &clock, nullptr);
  ASSERT_TRUE(unit.ok());
  Reset(DmaRemapOptionsFromCap((*unit)->cap().raw, (*unit)->ecap().raw));
  AddDevice(kRid, 0x100);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kContextReserved, kRid, 0x1000, false);
  AddDevice(kRid, 0xFF);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kReadDenied, kRid, 0x1000, false);
}

// Second-level entries (9.8): bit 11 (SNP, ECAP.SC=0), address bits 51:HAW,
// TM (bit 62) without ECAP.DT, PS in an SL-PML4E, the low address bits of a
// large page, and PS for an unsupported size are reserved.
TEST_F(VtdDmaTest, ReservedBitsInPagingEntryFaultCh) {
  {
    Device d = AddDevice(kRid, 1);
    const uint64_t pte = Map(d, 0x1000, 0x2000);
    for (uint64_t bad : {1ull << 11, 1ull << 39, 1ull << 51, 1ull << 62}) {
      ram_->Store<uint64_t>(pte, 0x2000 | kR | kW | bad);
      remap_->InvalidateIotlbGlobal();
      ExpectFault(remap_->Translate(kRid, 0x1000, true),
                  DmaFaultReason::kPagingEntryReserved, kRid, 0x1000, true);
    }
    // Ignored bits (63, 61:52, 10:8, 6:2) are not reserved.
    ram_->Store<uint64_t>(
        pte, 0x2000 | kR | kW | (1ull << 63) | (1ull << 55) | 0x77C);
    remap_->InvalidateIotlbGlobal();
    EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  }
  {
    // 2 MiB page with bit 13 set (inside the reserved 20:12).
    Device d = AddDevice(Rid(3, 0, 0), 2);
    const uint64_t pde = Map(d, 0x200000, 0x400000 | (1ull << 13), 2);
    (void)pde;
    ExpectFault(remap_->Translate(d.rid, 0x200000, false),
                DmaFaultReason::kPagingEntryReserved, d.rid, 0x200000, false);
  }
  {
    // PS=1 in an SL-PML4E.
    Device d = AddDevice(Rid(4, 0, 0), 3, kAw48);
    Map(d, 0x1000, 0x2000);
    const uint64_t pml4e = EntryAddr(d, 0x1000, 4);
    ram_->Store<uint64_t>(pml4e, ram_->Load<uint64_t>(pml4e) | kPs);
    ExpectFault(remap_->Translate(d.rid, 0x1000, false),
                DmaFaultReason::kPagingEntryReserved, d.rid, 0x1000, false);
  }
  {
    // A reserved bit in a not-present entry is not checked: 6h, not Ch.
    Device d = AddDevice(Rid(5, 0, 0), 4);
    const uint64_t pte = Map(d, 0x1000, 0x2000);
    ram_->Store<uint64_t>(pte, 0x2000 | (1ull << 11));
    ExpectFault(remap_->Translate(d.rid, 0x1000, false),
                DmaFaultReason::kReadDenied, d.rid, 0x1000, false);
  }
}

// CAP.SLLPS = 01b (2 MiB only): PS=1 in an SL-PDPE is reserved.
TEST_F(VtdDmaTest, OneGigPageWithoutSllpsSupportFaultsCh) {
  DmaRemapOptions o;
  o.sllps = 0b01;
  Reset(o);
  Device d = AddDevice(kRid, 1);
  Map(d, 0x40000000, 0x40000000, 3);
  ExpectFault(remap_->Translate(kRid, 0x40000000, false),
              DmaFaultReason::kPagingEntryReserved, kRid, 0x40000000, false);
  Map(d, 0x80000000, 0x600000, 2);
  EXPECT_EQ(Hpa(kRid, 0x80000010), 0x600010u);
}

// With ECAP.DT, TM in a leaf is allowed (but still reserved in a non-leaf).
TEST_F(VtdDmaTest, TransientMappingBitAllowedInLeafWithDeviceTlb) {
  DmaRemapOptions o;
  o.device_tlb = true;
  Reset(o);
  Device d = AddDevice(kRid, 1);
  const uint64_t pte = Map(d, 0x1000, 0x2000);
  ram_->Store<uint64_t>(pte, ram_->Load<uint64_t>(pte) | (1ull << 62));
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  const uint64_t pde = EntryAddr(d, 0x1000, 2);
  ram_->Store<uint64_t>(pde, ram_->Load<uint64_t>(pde) | (1ull << 62));
  remap_->InvalidateIotlbGlobal();
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kPagingEntryReserved, kRid, 0x1000, false);
}

// ===========================================================================
// Tables outside memory (reasons 8h, 9h, 3h, 7h): a fault, never a crash.

// Reason 8h: the root entry (RTA + bus*16) is not in RAM — including an
// entry straddling the end of RAM and a unit with no RAM at all.
TEST_F(VtdDmaTest, RootTableOutsideRamFaults8h) {
  remap_->SetRootTableAddress(1ull << 40);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kRootTableAccess, kRid, 0x1000, false);
  remap_->SetRootTableAddress(kRamSize - k4K);
  EXPECT_EQ(static_cast<int>(
                remap_->Translate(Rid(255, 31, 7), 0, true).fault.reason),
            static_cast<int>(DmaFaultReason::kRootNotPresent));
  DmaRemapper no_ram(nullptr, DmaRemapOptions());
  ExpectFault(no_ram.Translate(kRid, 0x1000, true),
              DmaFaultReason::kRootTableAccess, kRid, 0x1000, true);
}

// Reason 9h: the context table pointed to by CTP is not in RAM.
TEST_F(VtdDmaTest, ContextTableOutsideRamFaults9h) {
  ram_->Store<uint64_t>(RootAddr(2), (kRamSize + 0x10000) | 1);
  TranslateResult r = remap_->Translate(kRid, 0x1000, false);
  ExpectFault(r, DmaFaultReason::kContextTableAccess, kRid, 0x1000, false);
  EXPECT_FALSE(r.fpd);
}

// The top table referenced by SLPTPTR outside RAM: invalid context
// programming (3h); a lower table referenced by an entry's ADDR: 7h.
TEST_F(VtdDmaTest, PageTableOutsideRamFaults3hAtTopAnd7hBelow) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x2000);
  const uint64_t pde = EntryAddr(d, 0x1000, 2);
  ram_->Store<uint64_t>(pde, (kRamSize + 0x5000) | kR | kW);
  ExpectFault(remap_->Translate(kRid, 0x1000, true),
              DmaFaultReason::kPagingEntryAccess, kRid, 0x1000, true);

  Device e = AddDevice(Rid(3, 0, 0), 2);
  ram_->Store<uint64_t>(e.ctx_addr, ContextLo(0x7F00000000ull, 0, false));
  ExpectFault(remap_->Translate(e.rid, 0x1000, true),
              DmaFaultReason::kContextInvalid, e.rid, 0x1000, true);
}

// ===========================================================================
// FPD (9.3, ch. 7): faults found after the context entry was read are not
// recorded when FPD=1, and FPD counts even when P=0.

TEST_F(VtdDmaTest, FpdMarksQualifiedFaultsOnly) {
  Device d = AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  Map(d, 0x1000, 0x2000, 1, kR);
  TranslateResult r = remap_->Translate(kRid, 0x1000, true);
  ExpectFault(r, DmaFaultReason::kWriteDenied, kRid, 0x1000, true);
  EXPECT_TRUE(r.fpd);
  // Not-present context entry with FPD=1.
  const uint16_t sib = Rid(2, 0, 3);
  ram_->Store<uint64_t>(ContextAddr(sib), 2);  // FPD, P=0
  r = remap_->Translate(sib, 0x1000, false);
  ExpectFault(r, DmaFaultReason::kContextNotPresent, sib, 0x1000, false);
  EXPECT_TRUE(r.fpd);
  // A root fault knows no context entry: always reported.
  ram_->Store<uint64_t>(RootAddr(2), 0);
  remap_->InvalidateContextCacheGlobal();
  r = remap_->Translate(kRid, 0x1000, true);
  ExpectFault(r, DmaFaultReason::kRootNotPresent, kRid, 0x1000, true);
  EXPECT_FALSE(r.fpd);
}

// The whole "Qualified" column of the legacy-mode DMA fault table (7.1.3):
// with FPD=1 in every context entry that could be read, each reason is
// FPD-suppressed iff it is qualified. Root-entry faults (1h, 8h, Ah) and a
// failed context-entry fetch (9h) are not (no context entry, hence no FPD);
// everything found at or after the context entry (2h-7h, Bh-Dh) is.
TEST_F(VtdDmaTest, FpdSuppressesExactlyTheQualifiedReasons) {
  struct Case {
    uint8_t reason;
    bool qualified;
  };
  std::vector<std::pair<TranslateResult, Case>> got;
  const auto fresh = [&] {
    Reset(DmaRemapOptions());
    std::memset(ram_->data() + kRootTable, 0, k4K);
    std::memset(ram_->data() + kContextTables, 0, 4 * k4K);
  };
  // 1h: root entry not present.
  fresh();
  got.push_back({remap_->Translate(Rid(1, 0, 0), 0x1000, false), {0x1, false}});
  // 8h: RTADDR outside memory.
  fresh();
  remap_->SetRootTableAddress(kRamSize);
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0x8, false}});
  // 9h: CTP outside memory.
  fresh();
  ram_->Store<uint64_t>(RootAddr(2), kRamSize | 1);
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0x9, false}});
  // Ah: reserved bit in a present root entry (the context entry has FPD=1).
  fresh();
  AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  ram_->Store<uint64_t>(RootAddr(2), (kContextTables + 2 * k4K) | 1 | (1u << 5));
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0xA, false}});
  // 2h: context entry not present, FPD=1.
  fresh();
  AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  ram_->Store<uint64_t>(ContextAddr(kRid), 2);
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0x2, true}});
  // Bh: reserved bit in a present context entry.
  fresh();
  Device b = AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  ram_->Store<uint64_t>(b.ctx_addr, ContextLo(b.top, 0, true) | (1u << 4));
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0xB, true}});
  // 3h: AW not in SAGAW.
  fresh();
  Device c = AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  ram_->Store<uint64_t>(c.ctx_addr + 8, ContextHi(0, 1));
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0x3, true}});
  // 4h: beyond the 39-bit AW.
  fresh();
  AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  got.push_back({remap_->Translate(kRid, 1ull << 40, false), {0x4, true}});
  // 5h / 6h: not mapped.
  fresh();
  AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  got.push_back({remap_->Translate(kRid, 0x1000, true), {0x5, true}});
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0x6, true}});
  // 7h: a lower-level table outside memory.
  fresh();
  Device s = AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  ram_->Store<uint64_t>(s.top, kRamSize | kR | kW);
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0x7, true}});
  // Ch: reserved bit 11 in a present leaf.
  fresh();
  Device l = AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  const uint64_t leaf = Map(l, 0x1000, 0x5000, 1, kR);
  ram_->Store<uint64_t>(leaf, ram_->Load<uint64_t>(leaf) | (1u << 11));
  got.push_back({remap_->Translate(kRid, 0x1000, false), {0xC, true}});
  // Dh: a translated request through TT=00b.
  fresh();
  AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  got.push_back({remap_->Translate(kRid, 0x1000, false, AddressType::kTranslated),
                 {0xD, true}});

  ASSERT_EQ(got.size(), 13u);
  for (const auto& [r, want] : got) {
    EXPECT_FALSE(r.ok) << "reason " << int{want.reason};
    EXPECT_EQ(static_cast<int>(r.fault.reason), want.reason);
    EXPECT_EQ(r.fpd, want.qualified) << "reason " << int{want.reason};
  }
}

// ===========================================================================
// Context-cache (6.2.2): decoded context entries per source id, used until
// invalidated (6.5.1 CCMD, 6.5.2.1).

TEST_F(VtdDmaTest, ContextCacheHitsAfterFirstRequest) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x2000);
  Hpa(kRid, 0x1000);
  Hpa(kRid, 0x1008);
  Hpa(kRid, 0x1010);
  EXPECT_EQ(remap_->stats().context_cache_misses, 1u);
  EXPECT_EQ(remap_->stats().context_cache_hits, 2u);
  EXPECT_EQ(remap_->context_cache_size(), 1u);
}

// A context entry cleared in memory keeps translating until a global
// context-cache invalidation; then reason 2h.
TEST_F(VtdDmaTest, ClearedContextEntryStaysCachedUntilGlobalInvalidation) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x2000);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  ram_->Store<uint64_t>(d.ctx_addr, 0);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);  // stale
  remap_->InvalidateContextCacheGlobal();
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kContextNotPresent, kRid, 0x1000, false);
}

// A root entry changed in memory is stale too (the context-cache holds the
// result of the root + context lookup).
TEST_F(VtdDmaTest, ClearedRootEntryStaysCachedUntilInvalidation) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x2000);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  ram_->Store<uint64_t>(RootAddr(2), 0);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  remap_->InvalidateContextCacheDevice(1, kRid, 0);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kRootNotPresent, kRid, 0x1000, false);
}

// Moving a device to another domain (new DID and table) is invisible until a
// device-selective invalidation naming the *old* DID and the device's SID.
TEST_F(VtdDmaTest, DeviceSelectiveContextInvalidationNeedsOldDomainAndSid) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x2000);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  const uint64_t new_top = NewTable();
  ram_->Store<uint64_t>(d.ctx_addr, ContextLo(new_top, 0, false));
  ram_->Store<uint64_t>(d.ctx_addr + 8, ContextHi(kAw39, 2));
  Device moved{kRid, 2, 3, new_top, d.ctx_addr};
  Map(moved, 0x1000, 0x9000);
  remap_->InvalidateContextCacheDevice(2, kRid, 0);          // wrong DID
  remap_->InvalidateContextCacheDevice(1, Rid(2, 0, 1), 0);  // wrong SID
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);                     // still domain 1
  remap_->InvalidateContextCacheDevice(1, kRid, 0);
  TranslateResult r = remap_->Translate(kRid, 0x1000, false);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.domain_id, 2);
  EXPECT_EQ(r.hpa, 0x9000u);
}

// CCMD.FM masks function-number bits of the SID: FM=11b hits all eight
// functions of the device, FM=00b only the exact one.
TEST_F(VtdDmaTest, DeviceSelectiveContextInvalidationHonoursFunctionMask) {
  const uint16_t f0 = Rid(2, 4, 0), f5 = Rid(2, 4, 5), other = Rid(2, 5, 0);
  for (uint16_t rid : {f0, f5, other}) AddDevice(rid, 1);
  for (uint16_t rid : {f0, f5, other}) remap_->Translate(rid, 0, false);
  EXPECT_EQ(remap_->context_cache_size(), 3u);
  remap_->InvalidateContextCacheDevice(1, f5, 0b00);
  EXPECT_EQ(remap_->context_cache_size(), 2u);
  for (uint16_t rid : {f0, f5, other}) remap_->Translate(rid, 0, false);
  // FM=01b ignores function bit 2: SID fn 1 also names fn 5, not fn 0.
  remap_->InvalidateContextCacheDevice(1, Rid(2, 4, 1), 0b01);
  EXPECT_EQ(remap_->context_cache_size(), 2u);
  for (uint16_t rid : {f0, f5, other}) remap_->Translate(rid, 0, false);
  // FM=11b ignores all function bits: f0 and f5 go, 02:05.0 stays.
  remap_->InvalidateContextCacheDevice(1, Rid(2, 4, 3), 0b11);
  EXPECT_EQ(remap_->context_cache_size(), 1u);
  remap_->ResetStats();
  remap_->Translate(other, 0, false);
  EXPECT_EQ(remap_->stats().context_cache_hits, 1u);
}

// Domain-selective context-cache invalidation drops only that domain.
TEST_F(VtdDmaTest, DomainSelectiveContextInvalidationOnlyAffectsThatDomain) {
  Device a = AddDevice(Rid(2, 0, 0), 1);
  Device b = AddDevice(Rid(3, 0, 0), 2);
  Map(a, 0x1000, 0x2000);
  Map(b, 0x1000, 0x3000);
  Hpa(a.rid, 0x1000);
  Hpa(b.rid, 0x1000);
  ram_->Store<uint64_t>(a.ctx_addr, 0);
  ram_->Store<uint64_t>(b.ctx_addr, 0);
  remap_->InvalidateContextCacheDomain(1);
  ExpectFault(remap_->Translate(a.rid, 0x1000, false),
              DmaFaultReason::kContextNotPresent, a.rid, 0x1000, false);
  EXPECT_EQ(Hpa(b.rid, 0x1000), 0x3000u);  // domain 2 still cached
}

// Context-cache invalidation does not touch the IOTLB (6.5: software must
// also invalidate the IOTLB).
TEST_F(VtdDmaTest, ContextInvalidationLeavesIotlbStale) {
  Device d = AddDevice(kRid, 1);
  const uint64_t pte = Map(d, 0x1000, 0x2000);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  ram_->Store<uint64_t>(pte, 0x7000 | kR | kW);
  remap_->InvalidateContextCacheGlobal();
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  EXPECT_EQ(remap_->stats().iotlb_hits, 1u);
  remap_->InvalidateIotlbDomain(1);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x7000u);
}

// ===========================================================================
// IOTLB (6.2.4): leaf translations tagged by (DID, page), used until
// invalidated (6.5.1 IOTLB_REG/IVA_REG, 6.5.2.3).

TEST_F(VtdDmaTest, IotlbHitsWithinPageAndMissesAcrossPages) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x2000);
  Map(d, 0x2000, 0x5000);
  Map(d, 0x200000, 0x400000, 2);
  Hpa(kRid, 0x1000);
  Hpa(kRid, 0x1FFF, true);
  Hpa(kRid, 0x2000);
  Hpa(kRid, 0x200000);
  Hpa(kRid, 0x3FFFFF);  // same 2 MiB page
  EXPECT_EQ(remap_->stats().iotlb_misses, 3u);
  EXPECT_EQ(remap_->stats().iotlb_hits, 2u);
  EXPECT_EQ(remap_->stats().page_walks, 3u);
  EXPECT_EQ(remap_->iotlb_size(), 3u);
}

// A PTE rewritten without invalidation keeps its old HPA and rights; after a
// page-selective invalidation the new ones apply.
TEST_F(VtdDmaTest, RewrittenPteIsStaleUntilPageSelectiveInvalidation) {
  Device d = AddDevice(kRid, 1);
  const uint64_t pte = Map(d, 0x1000, 0x2000);
  EXPECT_EQ(Hpa(kRid, 0x1010, true), 0x2010u);
  ram_->Store<uint64_t>(pte, 0x8000 | kR);      // new page, read-only
  EXPECT_EQ(Hpa(kRid, 0x1010, true), 0x2010u);  // stale, still writable
  remap_->InvalidateIotlbPages(1, 0x1000, 0, false);
  EXPECT_EQ(Hpa(kRid, 0x1010), 0x8010u);
  ExpectFault(remap_->Translate(kRid, 0x1010, true),
              DmaFaultReason::kWriteDenied, kRid, 0x1010, true);
}

// An unmapped page is stale too (removed mapping still translates).
TEST_F(VtdDmaTest, UnmappedPteStillTranslatesUntilInvalidated) {
  Device d = AddDevice(kRid, 1);
  const uint64_t pte = Map(d, 0x1000, 0x2000);
  Hpa(kRid, 0x1000);
  ram_->Store<uint64_t>(pte, 0);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  remap_->InvalidateIotlbPages(1, 0x1000, 0, /*invalidation_hint=*/true);
  ExpectFault(remap_->Translate(kRid, 0x1000, false),
              DmaFaultReason::kReadDenied, kRid, 0x1000, false);
}

// Page-selective invalidation covers exactly the naturally aligned
// 2^(12+AM) region containing ADDR, only in its domain.
TEST_F(VtdDmaTest, PageSelectiveInvalidationOnlyAffectsItsRange) {
  Device a = AddDevice(Rid(2, 0, 0), 1);
  Device b = AddDevice(Rid(3, 0, 0), 2);
  std::vector<uint64_t> ptes;
  for (uint64_t i = 0; i < 8; ++i) {
    ptes.push_back(Map(a, 0x10000 + i * k4K, 0x100000 + i * k4K));
    Map(b, 0x10000 + i * k4K, 0x200000 + i * k4K);
    Hpa(a.rid, 0x10000 + i * k4K);
    Hpa(b.rid, 0x10000 + i * k4K);
  }
  for (uint64_t i = 0; i < 8; ++i) {
    ram_->Store<uint64_t>(ptes[i], (0x300000 + i * k4K) | kR | kW);
  }
  // Page 1 only (AM=0): pages 0 and 2.. stay stale.
  remap_->InvalidateIotlbPages(1, 0x11000, 0, false);
  EXPECT_EQ(Hpa(a.rid, 0x10000), 0x100000u);
  EXPECT_EQ(Hpa(a.rid, 0x11000), 0x301000u);
  EXPECT_EQ(Hpa(a.rid, 0x12000), 0x102000u);
  // AM=2 with an address inside pages 4..7: all four (ADDR's low bits are
  // ignored), pages 0, 2, 3 still stale.
  remap_->InvalidateIotlbPages(1, 0x16000, 2, false);
  for (uint64_t i = 4; i < 8; ++i) {
    EXPECT_EQ(Hpa(a.rid, 0x10000 + i * k4K), 0x300000 + i * k4K);
  }
  EXPECT_EQ(Hpa(a.rid, 0x13000), 0x103000u);
  // Same IOVAs in domain 2 never invalidated.
  for (uint64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(Hpa(b.rid, 0x10000 + i * k4K), 0x200000 + i * k4K);
  }
}

// A page-selective invalidation of a 4 KiB region inside a cached 2 MiB page
// drops the whole large-page entry.
TEST_F(VtdDmaTest, PageSelectiveInvalidationDropsOverlappingLargePage) {
  Device d = AddDevice(kRid, 1);
  const uint64_t pde = Map(d, 0x200000, 0x400000, 2);
  EXPECT_EQ(Hpa(kRid, 0x3FF000), 0x5FF000u);
  ram_->Store<uint64_t>(pde, 0xA00000 | kR | kW | kPs);
  remap_->InvalidateIotlbPages(1, 0x1000, 0, false);  // elsewhere
  EXPECT_EQ(Hpa(kRid, 0x3FF000), 0x5FF000u);
  remap_->InvalidateIotlbPages(1, 0x234000, 0, false);
  EXPECT_EQ(remap_->iotlb_size(), 0u);
  EXPECT_EQ(Hpa(kRid, 0x3FF000), 0xBFF000u);
}

// Domain-selective IOTLB invalidation: the named domain only. Global: all.
TEST_F(VtdDmaTest, DomainAndGlobalIotlbInvalidation) {
  Device a = AddDevice(Rid(2, 0, 0), 1);
  Device b = AddDevice(Rid(3, 0, 0), 2);
  const uint64_t pa = Map(a, 0x1000, 0x2000);
  const uint64_t pb = Map(b, 0x1000, 0x3000);
  Hpa(a.rid, 0x1000);
  Hpa(b.rid, 0x1000);
  ram_->Store<uint64_t>(pa, 0x12000 | kR);
  ram_->Store<uint64_t>(pb, 0x13000 | kR);
  remap_->InvalidateIotlbDomain(2);
  EXPECT_EQ(Hpa(a.rid, 0x1000), 0x2000u);
  EXPECT_EQ(Hpa(b.rid, 0x1000), 0x13000u);
  ram_->Store<uint64_t>(pb, 0x23000 | kR);
  remap_->InvalidateIotlbGlobal();
  EXPECT_EQ(Hpa(a.rid, 0x1000), 0x12000u);
  EXPECT_EQ(Hpa(b.rid, 0x1000), 0x23000u);
  EXPECT_EQ(remap_->stats().iotlb_invalidations, 2u);
}

// IOTLB entries are tagged with the DID: two domains share no translations,
// and two devices in one domain share them.
TEST_F(VtdDmaTest, IotlbIsTaggedByDomain) {
  Device a = AddDevice(Rid(2, 0, 0), 1);
  Device b = AddDevice(Rid(3, 0, 0), 2);
  Map(a, 0x1000, 0x2000);
  Map(b, 0x1000, 0x3000);
  EXPECT_EQ(Hpa(a.rid, 0x1000), 0x2000u);
  EXPECT_EQ(Hpa(b.rid, 0x1000), 0x3000u);
  // A third device in domain 1 with its own (different) tables hits the
  // domain's cached entry: software must keep one table per domain.
  Device c = AddDevice(Rid(4, 0, 0), 1);
  Map(c, 0x1000, 0x4000);
  remap_->ResetStats();
  EXPECT_EQ(Hpa(c.rid, 0x1000), 0x2000u);
  EXPECT_EQ(remap_->stats().iotlb_hits, 1u);
}

// Capacity 0 models an emulator without caches: every change is seen at
// once.
TEST_F(VtdDmaTest, NoCacheCapacityReReadsTablesEveryTime) {
  DmaRemapOptions o;
  o.context_cache_capacity = 0;
  o.iotlb_capacity = 0;
  Reset(o);
  Device d = AddDevice(kRid, 1);
  const uint64_t pte = Map(d, 0x1000, 0x2000);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x2000u);
  ram_->Store<uint64_t>(pte, 0x7000 | kR);
  EXPECT_EQ(Hpa(kRid, 0x1000), 0x7000u);
  EXPECT_EQ(remap_->stats().iotlb_hits, 0u);
  EXPECT_EQ(remap_->stats().context_cache_hits, 0u);
  EXPECT_EQ(remap_->stats().context_cache_misses, 2u);
}

// A full cache is flushed before the insertion (deterministic replacement).
TEST_F(VtdDmaTest, FullIotlbIsFlushedOnInsertion) {
  DmaRemapOptions o;
  o.iotlb_capacity = 4;
  Reset(o);
  Device d = AddDevice(kRid, 1);
  for (uint64_t i = 0; i < 5; ++i) Map(d, i * k4K, 0x100000 + i * k4K);
  for (uint64_t i = 0; i < 5; ++i) Hpa(kRid, i * k4K);
  EXPECT_EQ(remap_->iotlb_size(), 1u);
  EXPECT_EQ(Hpa(kRid, 4 * k4K), 0x104000u);
  EXPECT_EQ(remap_->stats().iotlb_hits, 1u);
}

// ===========================================================================
// Fault log format (Linux drivers/iommu/intel/dmar.c, dmar_fault_do_one).

TEST(VtdDmaFaultTest, LogLineMatchesLinux) {
  EXPECT_EQ(FormatDmaFaultLog(DmaFault{DmaFaultReason::kReadDenied,
                                       Rid(2, 0, 0), 0x5123, false}),
            "DMAR: [DMA Read NO_PASID] Request device [02:00.0] fault addr "
            "0x5000 [fault reason 0x06] PTE Read access is not set");
  EXPECT_EQ(FormatDmaFaultLog(DmaFault{DmaFaultReason::kRootNotPresent,
                                       Rid(0x3a, 0x1f, 7), 0xFFFF0000, true}),
            "DMAR: [DMA Write NO_PASID] Request device [3a:1f.7] fault addr "
            "0xffff0000 [fault reason 0x01] Present bit in root entry is "
            "clear");
  EXPECT_STREQ(DmaFaultReasonString(0xD),
               "PCE for translation request specifies blocking");
  EXPECT_STREQ(DmaFaultReasonString(0xE), "Unknown");
}

// ===========================================================================
// RemappingDmaSink: the decorator in the DMA path.

class RemappingDmaSinkTest : public VtdDmaTest {
 protected:
  RemappingDmaSinkTest()
      : root_(ram_.get(), &msis_),
        sink_(
            remap_.get(), &root_,
            [this](const DmaFault& f) { faults_.push_back(f); }, &tracer_) {
    tracer_.AddSink(&recorder_);
    sink_.set_translation_enabled(true);
  }

  RecordingMsiSink msis_;
  RootComplex root_;
  Tracer tracer_;
  TraceRecorder recorder_;
  std::vector<DmaFault> faults_;
  RemappingDmaSink sink_;
};

// GSTS.TE=0: DMA addresses are host addresses.
TEST_F(RemappingDmaSinkTest, DisabledTranslationPassesThrough) {
  sink_.set_translation_enabled(false);
  const uint8_t bytes[] = {1, 2, 3, 4};
  ASSERT_TRUE(sink_.Write(kRid, 0x900000, bytes).ok());
  EXPECT_EQ(ram_->Load<uint32_t>(0x900000), 0x04030201u);
  EXPECT_EQ(remap_->stats().context_cache_misses, 0u);
}

// A write crossing a page boundary is split and each page translated: the
// bytes land on two unrelated host pages.
TEST_F(RemappingDmaSinkTest, MultiPageWriteIsTranslatedPageByPage) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x900000);
  Map(d, 0x2000, 0x700000);
  const uint8_t bytes[] = {0xA, 0xB, 0xC, 0xD, 0xE, 0xF};
  ASSERT_TRUE(sink_.Write(kRid, 0x1FFD, bytes).ok());
  EXPECT_EQ(ram_->Load<uint8_t>(0x900FFD), 0xA);
  EXPECT_EQ(ram_->Load<uint8_t>(0x900FFF), 0xC);
  EXPECT_EQ(ram_->Load<uint8_t>(0x700000), 0xD);
  EXPECT_EQ(ram_->Load<uint8_t>(0x700002), 0xF);
  uint8_t back[6] = {};
  ASSERT_TRUE(sink_.Read(kRid, 0x1FFD, absl::MakeSpan(back)).ok());
  EXPECT_EQ(0, std::memcmp(back, bytes, 6));
  EXPECT_TRUE(faults_.empty());
  // Trace: one DMA_REMAP per page piece of the write.
  ASSERT_GE(recorder_.events().size(), 2u);
  EXPECT_EQ(recorder_.events()[0].stage(), trace::DMA_REMAP);
  EXPECT_EQ(recorder_.events()[0].address(), 0x1FFDu);
  EXPECT_EQ(recorder_.events()[0].data(), 0x900FFDu);
}

// A 2 MiB mapping is forwarded as one piece.
TEST_F(RemappingDmaSinkTest, LargePageTransferIsOnePiece) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x200000, 0x400000, 2);
  std::vector<uint8_t> bytes(3 * k4K, 0x5A);
  ASSERT_TRUE(sink_.Write(kRid, 0x201800, bytes).ok());
  EXPECT_EQ(root_.dma_bytes(), 3 * k4K);
  EXPECT_EQ(ram_->Load<uint8_t>(0x403FFF), 0x5A);
  EXPECT_EQ(remap_->stats().iotlb_misses, 1u);
}

// A fault on the second page: recorded once (reason, rid, the faulting
// page's address, direction), PermissionDenied, nothing written at all.
TEST_F(RemappingDmaSinkTest, FaultReportsAndWritesNothing) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x900000);
  Map(d, 0x2000, 0x700000, 1, kR);
  const uint8_t bytes[] = {1, 2, 3, 4, 5, 6, 7, 8};
  absl::Status s = sink_.Write(kRid, 0x1FFC, bytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  ASSERT_EQ(faults_.size(), 1u);
  EXPECT_EQ(static_cast<int>(faults_[0].reason), 0x5);
  EXPECT_EQ(faults_[0].rid, kRid);
  EXPECT_EQ(faults_[0].address, 0x2000u);
  EXPECT_TRUE(faults_[0].write);
  EXPECT_EQ(ram_->Load<uint32_t>(0x900FFC), 0u);
  EXPECT_EQ(root_.dma_bytes(), 0u);
  ASSERT_FALSE(recorder_.events().empty());
  const TraceEvent& e = recorder_.events().back();
  EXPECT_EQ(e.stage(), trace::DMA_FAULT);
  EXPECT_EQ(e.data(), 5u);
  EXPECT_EQ(e.detail(),
            "DMAR: [DMA Write NO_PASID] Request device [02:00.0] fault addr "
            "0x2000 [fault reason 0x05] PTE Write access is not set");
  // A faulting read leaves the buffer unchanged.
  uint8_t out[4] = {9, 9, 9, 9};
  EXPECT_EQ(sink_.Read(kRid, 0x5000, absl::MakeSpan(out)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(out[0], 9);
  ASSERT_EQ(faults_.size(), 2u);
  EXPECT_FALSE(faults_[1].write);
}

// FPD=1: the DMA is still blocked, but the fault is not recorded.
TEST_F(RemappingDmaSinkTest, FpdContextBlocksWithoutRecording) {
  AddDevice(kRid, 1, kAw39, kTtUntranslated, /*fpd=*/true);
  const uint8_t bytes[] = {1};
  EXPECT_EQ(sink_.Write(kRid, 0x1000, bytes).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(faults_.empty());
  EXPECT_EQ(remap_->stats().faults, 1u);
}

// Interrupt-range writes (0xFEEx_xxxx) are interrupt requests, not DMA: they
// reach the MSI path untranslated even with nothing mapped (3.14).
TEST_F(RemappingDmaSinkTest, InterruptRangeWriteIsNotTranslated) {
  AddDevice(kRid, 1);
  const uint32_t data = 0x41;
  ASSERT_TRUE(sink_
                  .Write(kRid, 0xFEE00000,
                         absl::MakeConstSpan(
                             reinterpret_cast<const uint8_t*>(&data), 4))
                  .ok());
  ASSERT_EQ(msis_.messages.size(), 1u);
  EXPECT_EQ(msis_.messages[0].Vector(), 0x41);
  EXPECT_TRUE(faults_.empty());
}

// A translation to a host address outside RAM is the next sink's master
// abort, not a remapping fault.
TEST_F(RemappingDmaSinkTest, TranslatedAddressOutsideRamMasterAborts) {
  Device d = AddDevice(kRid, 1);
  Map(d, 0x1000, 0x7000000000ull);
  uint8_t out[4];
  EXPECT_EQ(sink_.Read(kRid, 0x1000, absl::MakeSpan(out)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(faults_.empty());
}

// ===========================================================================
// Robustness: random table bytes and random requests never crash and every
// result is well-formed (fixed seed, so failures replay).

TEST(VtdDmaFuzzTest, RandomTablesAndRequestsNeverCrash) {
  constexpr uint64_t kRam = 1 << 20;
  auto ram = std::move(GuestRam::Create(kRam)).value();
  std::mt19937_64 rng(0x1F0D0D0A);
  RecordingMsiSink msis;
  RootComplex root(ram.get(), &msis);
  uint64_t faults_seen[16] = {};
  uint64_t ok_count = 0;
  for (int round = 0; round < 20; ++round) {
    DmaRemapOptions o;
    o.sagaw = static_cast<uint8_t>(rng() & 0xF);
    o.mgaw = 30 + static_cast<int>(rng() % 28);
    o.haw = 21 + static_cast<int>(rng() % 32);
    o.sllps = rng() & 3;
    o.domain_id_bits = 4 + 2 * static_cast<int>(rng() % 7);
    o.pass_through = rng() & 1;
    o.device_tlb = rng() & 1;
    o.iotlb_capacity = rng() % 64;
    o.context_cache_capacity = rng() % 16;
    DmaRemapper remap(ram.get(), o);
    // Random words shaped like entries so that walks go deep: even words
    // mostly pointers into (or just past) RAM with random present/permission
    // and PS bits, odd words mostly zero or context-upper-half-like (AW,
    // DID), and a few fully random words everywhere.
    for (uint64_t a = 0; a < kRam; a += 8) {
      const uint64_t pick = rng() % 100;
      const uint64_t ptr = (rng() % (kRam + kRam / 8)) & ~0xFFFull;
      uint64_t v;
      // Low bits: present root/context (P, P+FPD, P+TT=01b/10b), R+W,
      // R, W, PS+R+W, not present.
      static constexpr uint64_t kLow[] = {0x1, 0x3, 0x3, 0x1,  0x5, 0x9,
                                          0x3, 0x1, 0x2, 0x83, 0x0, 0x3};
      const uint64_t low = kLow[rng() % std::size(kLow)];
      if (pick < 5) {
        v = rng();
      } else if ((a & 8) == 0) {
        v = pick < 90 ? ptr | low : 0;
      } else if (pick < 45) {
        v = 0;
      } else if (pick < 80) {
        v = (1 + rng() % 3) | ((rng() & 0xFF) << 8);  // AW 1..3, DID
      } else {
        v = ptr | low;
      }
      if (rng() % 64 == 0) v |= 1ull << (rng() % 64);
      ram->Store<uint64_t>(a, v);
    }
    // Every fifth round the root table lies past the end of RAM (8h).
    const uint64_t rta =
        round % 5 == 4 ? kRam + (rng() % 4) * k4K : rng() % kRam & ~0xFFFull;
    remap.SetRootTableAddress(rta);
    // Mostly well-formed root and context entries for the buses and devfns
    // the requests use, so that random page tables get walked.
    for (uint64_t bus = 0; bus < 4 && rta < kRam; ++bus) {
      if (rng() % 4 == 0) continue;
      const uint64_t ctp = (rng() % (kRam + kRam / 16)) & ~0xFFFull;
      ram->Store<uint64_t>(rta + bus * 16, ctp | 1);
      ram->Store<uint64_t>(rta + bus * 16 + 8, 0);
      for (uint64_t devfn = 0; devfn < 8 && ctp < kRam; ++devfn) {
        if (rng() % 4 == 0) continue;
        const uint64_t slpt = (rng() % (kRam + kRam / 16)) & ~0xFFFull;
        ram->Store<uint64_t>(ctp + devfn * 16, slpt | (rng() % 4 ? 1 : 9));
        ram->Store<uint64_t>(ctp + devfn * 16 + 8,
                             (1 + rng() % 2) | ((rng() & 0xF) << 8));
      }
    }
    int faulting_callbacks = 0;
    RemappingDmaSink sink(&remap, &root,
                          [&](const DmaFault&) { ++faulting_callbacks; });
    sink.set_translation_enabled(true);
    for (int i = 0; i < 5000; ++i) {
      const uint16_t rid =
          static_cast<uint16_t>(rng() % 8 ? rng() & 0x0307 : rng());
      uint64_t iova = rng();
      if (rng() % 4) iova &= (1ull << (rng() % 48)) - 1;
      const bool write = rng() & 1;
      const AddressType at =
          rng() % 8 ? AddressType::kUntranslated : AddressType::kTranslated;
      TranslateResult r = remap.Translate(rid, iova, write, at);
      if (r.ok) {
        ++ok_count;
        ASSERT_TRUE(r.page_size == k4K || r.page_size == k2M ||
                    r.page_size == k1G);
        ASSERT_EQ(r.hpa & (k4K - 1), iova & (k4K - 1));
      } else {
        const int reason = static_cast<int>(r.fault.reason);
        ASSERT_GE(reason, 0x1);
        ASSERT_LE(reason, 0xD);
        ASSERT_EQ(r.fault.rid, rid);
        ASSERT_EQ(r.fault.address, iova);
        ++faults_seen[reason];
      }
      switch (rng() % 16) {
        case 0:
          remap.InvalidateIotlbPages(rng(), rng(), rng() % 70, rng() & 1);
          break;
        case 1:
          remap.InvalidateContextCacheDevice(rng(), rng(), rng());
          break;
        case 2:
          remap.InvalidateIotlbDomain(rng());
          break;
        case 3:
          remap.InvalidateContextCacheDomain(rng());
          break;
        case 4: {
          std::vector<uint8_t> buf(rng() % (3 * k4K));
          if (rng() & 1) {
            (void)sink.Write(rid, iova, buf);
          } else {
            (void)sink.Read(rid, iova, absl::MakeSpan(buf));
          }
          break;
        }
        case 5:
          ram->Store<uint64_t>((rng() % kRam) & ~7ull, rng());
          break;
        default:
          break;
      }
    }
    remap.InvalidateContextCacheGlobal();
    remap.InvalidateIotlbGlobal();
    EXPECT_EQ(remap.iotlb_size(), 0u);
    EXPECT_EQ(remap.context_cache_size(), 0u);
  }
  // The fuzzer reaches every stage of the lookup, not only the root table.
  for (int reason = 0x1; reason <= 0xD; ++reason) {
    EXPECT_GT(faults_seen[reason], 0u) << "reason " << reason;
  }
  EXPECT_GT(ok_count, 0u);
}

}  // namespace
}  // namespace vtd
}  // namespace irqlab
