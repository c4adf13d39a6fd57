// Tests of the vCPU's own page walk and TLB (emu/cpu/x86_paging.h) on page
// tables built by hand in a GuestRam. Each test names the Intel SDM (vol. 3)
// rule it checks.
#include "emu/cpu/x86_paging.h"

#include <cstdint>
#include <memory>
#include <optional>

#include "emu/core/guest_ram.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

// Paging-structure entry bits (SDM tables 4-15 to 4-20).
constexpr uint64_t kP = 1, kRw = 2, kUs = 4, kPs = 0x80, kXd = 1ull << 63;

// Where the tables live in guest RAM.
constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x4000;

// 4-level paging (IA-32e mode), CR0.WP=1, EFER.NXE=1.
constexpr PagingRegs kLongMode{kCr0Pg | kCr0Wp | kCr0Pe, kPml4, kCr4Pae,
                               kEferLma | kEferNxe};

// The linear address with these 4-level table indices and page offset.
constexpr uint64_t Linear(uint64_t pml4, uint64_t pdpt, uint64_t pd,
                          uint64_t pt, uint64_t offset) {
  return (pml4 << 39) | (pdpt << 30) | (pd << 21) | (pt << 12) | offset;
}

struct Access {
  bool write = false, user = false, fetch = false;
};
constexpr Access kRead{}, kWrite{true}, kUserRead{false, true},
    kUserWrite{true, true}, kFetch{false, false, true};

class X86PagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ram_ = *GuestRam::Create(1 << 20);
    // PML4[1] -> PDPT, PDPT[2] -> PD, PD[3] -> PT: user, writable.
    Set(kPml4 + 1 * 8, kPdpt | kP | kRw | kUs);
    Set(kPdpt + 2 * 8, kPd | kP | kRw | kUs);
    Set(kPd + 3 * 8, kPt | kP | kRw | kUs);
  }
  void Set(uint64_t pa, uint64_t entry) { ram_->Store<uint64_t>(pa, entry); }
  void Set32(uint64_t pa, uint32_t entry) { ram_->Store<uint32_t>(pa, entry); }

  // The physical address `la` translates to, or nullopt on a page fault.
  std::optional<uint64_t> Translate(const PagingRegs& pg, uint64_t la,
                                    Access a, Tlb* tlb = nullptr) {
    uint64_t pa = 0;
    uint32_t error = 0;
    if (!Run(pg, la, a, tlb, &pa, &error)) return std::nullopt;
    return pa;
  }
  // The #PF error code of translating `la`, or nullopt if it succeeds.
  std::optional<uint32_t> Fault(const PagingRegs& pg, uint64_t la, Access a,
                                Tlb* tlb = nullptr) {
    uint64_t pa = 0;
    uint32_t error = 0;
    if (Run(pg, la, a, tlb, &pa, &error)) return std::nullopt;
    return error;
  }

  bool Run(const PagingRegs& pg, uint64_t la, Access a, Tlb* tlb,
           uint64_t* pa, uint32_t* error) {
    return TranslateLinear(pg, tlb, la, a.write, a.user, a.fetch,
                           [this](uint64_t p) { return LoadRam64(*ram_, p); },
                           pa, error);
  }

  std::unique_ptr<GuestRam> ram_;
};

// SDM 4.5.4, figure 4-8: PML4E, PDPTE, PDE and PTE each take 9 bits of the
// linear address; the PTE gives the 4 KiB frame, bits 11:0 the offset.
TEST_F(X86PagingTest, FourKilobytePageThroughFourLevels) {
  Set(kPt + 4 * 8, 0x1234000 | kP | kRw | kUs);
  EXPECT_EQ(Translate(kLongMode, Linear(1, 2, 3, 4, 0x567), kRead), 0x1234567u);
  EXPECT_EQ(Translate(kLongMode, Linear(1, 2, 3, 4, 0xFFF), kUserWrite),
            0x1234FFFu);
}

// SDM 4.5.4, figure 4-9: a PDE with PS=1 maps a 2 MiB page; bits 20:0 of the
// linear address are the offset.
TEST_F(X86PagingTest, TwoMegabytePageFromAPdeWithPs) {
  Set(kPd + 5 * 8, 0x40600000 | kP | kRw | kPs);
  EXPECT_EQ(Translate(kLongMode, Linear(1, 2, 5, 0x1F, 0x345), kRead),
            0x40600000u + (0x1Fu << 12) + 0x345);
}

// SDM 4.5.4, figure 4-10: a PDPTE with PS=1 maps a 1 GiB page; bits 29:0 of
// the linear address are the offset.
TEST_F(X86PagingTest, OneGigabytePageFromAPdpteWithPs) {
  Set(kPdpt + 3 * 8, 0x80000000 | kP | kRw | kPs);
  EXPECT_EQ(Translate(kLongMode, Linear(1, 3, 0x1A, 0x45, 0x678), kRead),
            0x80000000u + (0x1Au << 21) + (0x45u << 12) + 0x678);
}

// SDM 4.7: an entry with P=0 on the walk is a page fault with error code
// P=0; W/R and U/S say what the access was.
TEST_F(X86PagingTest, NotPresentEntryFaultsWithPClear) {
  Set(kPt + 6 * 8, 0x5000);  // P=0
  EXPECT_EQ(Fault(kLongMode, Linear(1, 2, 3, 6, 0), kRead), 0u);
  EXPECT_EQ(Fault(kLongMode, Linear(1, 2, 3, 6, 0), kUserWrite),
            kPfWrite | kPfUser);
  // Not present higher up: PML4[2] is empty.
  EXPECT_EQ(Fault(kLongMode, Linear(2, 0, 0, 0, 0), kWrite), kPfWrite);
}

// SDM 4.5.1: 4-level paging translates 48-bit linear addresses; bits 63:47
// must be equal (canonical). This model treats a non-canonical address as
// not present (hardware: #GP or #SS, no walk).
TEST_F(X86PagingTest, NonCanonicalAddressFails) {
  Set(kPml4 + 256 * 8, kPdpt | kP | kRw);
  EXPECT_EQ(Fault(kLongMode, 1ull << 47, kRead), 0u);
}

// SDM 4.6.1: a user-mode write needs R/W=1 in every entry; a supervisor
// write to a read-only page faults only if CR0.WP=1. A protection fault has
// error code P=1.
TEST_F(X86PagingTest, WriteToReadOnlyPage) {
  Set(kPt + 7 * 8, 0x7000 | kP | kUs);  // R/W=0
  const uint64_t la = Linear(1, 2, 3, 7, 0x10);
  EXPECT_EQ(Translate(kLongMode, la, kRead), 0x7010u);
  EXPECT_EQ(Fault(kLongMode, la, kWrite), kPfPresent | kPfWrite);
  EXPECT_EQ(Fault(kLongMode, la, kUserWrite),
            kPfPresent | kPfWrite | kPfUser);

  PagingRegs no_wp = kLongMode;
  no_wp.cr0 &= ~kCr0Wp;
  EXPECT_EQ(Translate(no_wp, la, kWrite), 0x7010u);
  EXPECT_EQ(Fault(no_wp, la, kUserWrite), kPfPresent | kPfWrite | kPfUser);
}

// SDM 4.6.1: the rights are combined over the walk: R/W=0 in the PDE makes
// every page below it read-only even if its PTE says R/W=1.
TEST_F(X86PagingTest, ReadOnlyHigherLevelWins) {
  Set(kPd + 3 * 8, kPt | kP | kUs);  // R/W=0
  Set(kPt + 4 * 8, 0x1234000 | kP | kRw | kUs);
  EXPECT_EQ(Fault(kLongMode, Linear(1, 2, 3, 4, 0), kUserWrite),
            kPfPresent | kPfWrite | kPfUser);
}

// SDM 4.6.1: a user-mode access needs U/S=1 in every entry; supervisor
// accesses may use user pages.
TEST_F(X86PagingTest, UserAccessToSupervisorPage) {
  Set(kPt + 8 * 8, 0x8000 | kP | kRw);  // U/S=0
  const uint64_t la = Linear(1, 2, 3, 8, 0);
  EXPECT_EQ(Translate(kLongMode, la, kWrite), 0x8000u);
  EXPECT_EQ(Fault(kLongMode, la, kUserRead), kPfPresent | kPfUser);
}

// SDM 4.6.2 and 4.7: with EFER.NXE=1, XD=1 in any entry forbids instruction
// fetches; the fault has I/D=1. With EFER.NXE=0 I/D is never reported.
TEST_F(X86PagingTest, FetchFromExecuteDisabledPage) {
  Set(kPt + 9 * 8, 0x9000 | kP | kRw | kUs | kXd);
  const uint64_t la = Linear(1, 2, 3, 9, 0);
  EXPECT_EQ(Translate(kLongMode, la, kRead), 0x9000u);
  EXPECT_EQ(Fault(kLongMode, la, kFetch), kPfPresent | kPfFetch);

  Set(kPt + 10 * 8, 0);
  // Not present, instruction fetch.
  EXPECT_EQ(Fault(kLongMode, Linear(1, 2, 3, 10, 0), kFetch), kPfFetch);
  PagingRegs no_nx = kLongMode;
  no_nx.efer &= ~kEferNxe;
  EXPECT_EQ(Fault(no_nx, Linear(1, 2, 3, 10, 0), kFetch), 0u);
}

// SDM 4.10.4: the processor may keep using a cached translation after
// software changes the paging structures, until it is invalidated (here:
// Tlb::Flush, the vCPU's reaction to MOV to CR3, INVLPG, ...). A walk
// without the TLB sees the new tables at once.
TEST_F(X86PagingTest, CachedTranslationSurvivesPageTableWriteUntilFlush) {
  Tlb tlb;
  const uint64_t la = Linear(1, 2, 3, 4, 0x21);
  Set(kPt + 4 * 8, 0x1234000 | kP | kRw | kUs);
  EXPECT_EQ(Translate(kLongMode, la, kRead, &tlb), 0x1234021u);
  ASSERT_NE(tlb.Lookup(la), nullptr);

  Set(kPt + 4 * 8, 0x5678000 | kP | kRw | kUs);  // remapped
  EXPECT_EQ(Translate(kLongMode, la, kRead, &tlb), 0x1234021u);  // stale
  EXPECT_EQ(Translate(kLongMode, la, kRead), 0x5678021u);

  Set(kPt + 4 * 8, 0);  // and unmapped
  EXPECT_EQ(Translate(kLongMode, la, kWrite, &tlb), 0x1234021u);  // stale

  tlb.Flush();
  EXPECT_EQ(tlb.Lookup(la), nullptr);
  EXPECT_EQ(Fault(kLongMode, la, kRead, &tlb), 0u);
}

// SDM 4.10.4.3: no TLB entry is created from an entry with P=0, so making
// a page present needs no invalidation.
TEST_F(X86PagingTest, NotPresentTranslationIsNotCached) {
  Tlb tlb;
  const uint64_t la = Linear(1, 2, 3, 11, 0);
  EXPECT_EQ(Translate(kLongMode, la, kRead, &tlb), std::nullopt);
  EXPECT_EQ(tlb.Lookup(la), nullptr);
  Set(kPt + 11 * 8, 0xB000 | kP | kRw);
  EXPECT_EQ(Translate(kLongMode, la, kRead, &tlb), 0xB000u);
}

// SDM 4.3, figures 4-2 and 4-3: 32-bit paging has 4-byte entries, 10+10+12
// bits; a PDE with PS=1 maps a 4 MiB page if CR4.PSE=1 and is a page-table
// pointer otherwise.
TEST_F(X86PagingTest, ThirtyTwoBitPaging) {
  const PagingRegs pg{kCr0Pg | kCr0Pe, 0x10000, kCr4Pse, 0};
  Set32(0x10000 + 1 * 4, 0x11000 | kP | kRw);
  Set32(0x11000 + 2 * 4, 0x00ABC000 | kP | kRw);
  EXPECT_EQ(Translate(pg, (1u << 22) | (2u << 12) | 0x123, kRead), 0xABC123u);
  Set32(0x10000 + 3 * 4, 0x00C00000 | kP | kRw | kPs);
  EXPECT_EQ(Translate(pg, (3u << 22) | 0x2ABCDE, kRead), 0xEABCDEu);
  // The upper half of a linear address beyond 4 GiB is ignored.
  EXPECT_EQ(Translate(pg, (1ull << 32) | (3u << 22), kRead), 0xC00000u);
}

// SDM 4.4, figures 4-5 to 4-7: PAE paging takes one of 4 PDPTEs at
// CR3[31:5], then 8-byte PDEs (PS=1: 2 MiB) and PTEs.
TEST_F(X86PagingTest, PaePaging) {
  const PagingRegs pg{kCr0Pg | kCr0Pe, 0x10020, kCr4Pae, kEferNxe};
  Set(0x10020 + 2 * 8, 0x12000 | kP);
  Set(0x12000 + 4 * 8, 0x13000 | kP | kRw);
  Set(0x13000 + 5 * 8, 0x0DEF000 | kP | kRw | kXd);
  const uint64_t la = (2u << 30) | (4u << 21) | (5u << 12) | 0x9A;
  EXPECT_EQ(Translate(pg, la, kRead), 0xDEF09Au);
  EXPECT_EQ(Fault(pg, la, kFetch), kPfPresent | kPfFetch);
  Set(0x12000 + 6 * 8, 0x00E00000 | kP | kRw | kPs);
  EXPECT_EQ(Translate(pg, (2u << 30) | (6u << 21) | 0x1FFFFF, kRead),
            0xFFFFFFu);
}

// SDM 4.1.1: with CR0.PG=0 linear addresses are physical addresses.
TEST_F(X86PagingTest, PagingOffIsIdentity) {
  const PagingRegs pg{kCr0Pe, 0, 0, 0};
  EXPECT_EQ(Translate(pg, 0x12345678, kUserWrite), 0x12345678u);
}

}  // namespace
}  // namespace irqlab
