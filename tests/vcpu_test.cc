// Tests of the vCPU (emu/cpu/vcpu.h): x86 behaviour around instructions that
// Unicorn does not provide. Each test names the behaviour and the Intel SDM
// (vol. 3 unless noted) rule it checks. Guest code: tests/guest/suite.asm.
#include "emu/cpu/vcpu.h"

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "emu/core/guest_ram.h"
#include "emu/core/trace.h"
#include "gtest/gtest.h"
#include "tests/guest/snippets.h"

namespace irqlab {
namespace {

constexpr uint64_t kRes = 0x6000, kCount = 0x6800, kFrame = 0x6900;
constexpr uint64_t kMmio = 0x02000000;

class TestHost : public VcpuHost {
 public:
  uint64_t MmioRead(int, uint64_t addr, unsigned) override {
    mmio_reads.push_back(addr);
    if (on_mmio_read) on_mmio_read(addr);
    return ~0ull;
  }
  void MmioWrite(int, uint64_t addr, unsigned size, uint64_t value) override {
    mmio_writes.push_back({addr, value});
    if (on_mmio) on_mmio(addr, size, value);
  }
  uint64_t PortRead(int, uint16_t, unsigned) override { return 0xFF; }
  void PortWrite(int, uint16_t port, unsigned, uint64_t value) override {
    if (port == 0xE9) {
      done = true;
      if (vcpu) vcpu->RequestStop();
      return;
    }
    ++port_writes;
    if (on_port) on_port(port, value);
  }
  std::optional<uint64_t> ReadMsr(int, uint32_t msr) override {
    if (msr == 0x1B) return 0xFEE00900;
    if (on_msr_read) return on_msr_read(msr);
    return std::nullopt;
  }
  bool WriteMsr(int, uint32_t msr, uint64_t value) override {
    if (msr < 0x800 || msr > 0x8FF) return false;
    msr_writes[msr] = value;
    ++msr_write_count;
    if (on_msr_write) on_msr_write(msr);
    return true;
  }
  uint64_t SliceStartTime() const override { return slice_start; }
  uint8_t ReadTpr(int) override { return tpr; }
  void WriteTpr(int, uint8_t v) override { tpr = v; }

  Vcpu* vcpu = nullptr;
  uint8_t tpr = 0;
  bool done = false;
  int port_writes = 0;
  uint64_t slice_start = 0;
  std::vector<uint64_t> mmio_reads;
  std::vector<std::pair<uint64_t, uint64_t>> mmio_writes;
  std::map<uint32_t, uint64_t> msr_writes;
  std::function<void(uint16_t, uint64_t)> on_port;
  std::function<void(uint64_t, unsigned, uint64_t)> on_mmio;
  std::function<void(uint64_t)> on_mmio_read;
  std::function<void(uint32_t)> on_msr_write;
  std::function<std::optional<uint64_t>(uint32_t)> on_msr_read;
  int msr_write_count = 0;
};

class TestIrq : public InterruptSource {
 public:
  int PendingVector() override { return pending; }
  void Acknowledge(int v) override {
    acks.push_back(v);
    if (!rearm) pending = -1;
  }
  bool TakeNmi() override {
    if (nmis == 0) return false;
    --nmis;
    return true;
  }
  int pending = -1;
  bool rearm = false;
  int nmis = 0;
  std::vector<int> acks;
};

class VcpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ram = GuestRam::Create(16 << 20);
    ASSERT_TRUE(ram.ok()) << ram.status();
    ram_ = std::move(*ram);
  }
  // Boots the suite on a fresh BSP and selects `scenario`.
  void Boot(int scenario) {
    std::string_view suite = testing::GuestSnippet("suite");
    ASSERT_FALSE(suite.empty());
    std::memcpy(ram_->data() + 0x100000, suite.data(), suite.size());
    ram_->Store<uint32_t>(0x5100, scenario);
    auto v = Vcpu::Create(VcpuConfig{}, ram_.get(), &host_, &irq_, &tracer_);
    ASSERT_TRUE(v.ok()) << v.status();
    vcpu_ = std::move(*v);
    host_.vcpu = vcpu_.get();
    ASSERT_TRUE(vcpu_->SetMultibootEntry(0x100000, 0x2BADB002, 0x9000).ok());
  }
  // Runs until the guest reports done (port 0xE9), halts or shuts down.
  Vcpu::Exit RunToEnd(int max_slices = 200) {
    Vcpu::Exit e = Vcpu::Exit::kBudget;
    for (int i = 0; i < max_slices && !host_.done; ++i) {
      e = vcpu_->Run(100000);
      if (e != Vcpu::Exit::kBudget) break;
    }
    return e;
  }
  uint64_t Res(uint64_t off) { return ram_->Load<uint64_t>(kRes + off); }
  uint64_t Frame(uint64_t off) { return ram_->Load<uint64_t>(kFrame + off); }
  uint64_t Count() { return ram_->Load<uint64_t>(kCount); }
  void RaiseOnPort(int vector) {
    host_.on_port = [this, vector](uint16_t, uint64_t) {
      irq_.pending = vector;
      vcpu_->Kick();
    };
  }

  std::unique_ptr<GuestRam> ram_;
  TestHost host_;
  TestIrq irq_;
  Tracer tracer_;
  std::unique_ptr<Vcpu> vcpu_;
};

// Multiboot spec 3.2: EAX = magic, EBX = info, CR0.PE=1, PG=0, EFLAGS.IF=0;
// the kernel then enables PAE, EFER.LME and CR0.PG itself (SDM 10.8.5).
TEST_F(VcpuTest, MultibootEntryIs32BitProtectedModeAndKernelReachesLongMode) {
  Boot(0);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Res(0x00) & 0xFFFFFFFF, 0x2BADB002u);
  EXPECT_EQ(Res(0x08) & 0xFFFFFFFF, 0x9000u);
  EXPECT_EQ(Res(0x10) & 0x80000001, 1u) << "PE=1, PG=0";
  EXPECT_EQ(Res(0x18) & (1 << 9), 0u) << "IF=0";
  EXPECT_EQ(Res(0x20) & 0xFFFF, 0x08u);
  EXPECT_EQ(*vcpu_->ReadRegister("r15"), 0x64u);
  EXPECT_NE(*vcpu_->ReadRegister("efer") & (1 << 10), 0u) << "EFER.LMA";
  EXPECT_GT(vcpu_->instructions_retired(), 1000u);
  EXPECT_FALSE(vcpu_->ReadRegister("nosuchreg").ok());
}

// SDM 6.12.1, 6.14.2: an external interrupt through a 64-bit interrupt gate
// pushes SS, RSP, RFLAGS, CS, RIP on a 16-byte aligned stack and clears IF.
// Timing: the interrupt raised by an OUT is taken at the next instruction
// boundary, i.e. the pushed RIP is the instruction right after the OUT, and
// the flags of the interrupted code survive (ZF).
TEST_F(VcpuTest, InterruptRaisedByOutIsTakenBeforeTheNextInstruction) {
  Boot(1);
  RaiseOnPort(0x40);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(irq_.acks, std::vector<int>{0x40});
  EXPECT_EQ(Count(), 1u);
  EXPECT_EQ(Frame(0x00), Res(0x30)) << "return RIP = the nop after the OUT";
  EXPECT_EQ(Frame(0x08), 0x08u);
  EXPECT_NE(Frame(0x10) & (1 << 9), 0u) << "saved RFLAGS.IF=1";
  EXPECT_EQ(Frame(0x28) & (1 << 9), 0u) << "IF cleared in the handler";
  EXPECT_EQ(Frame(0x18), Res(0x38)) << "saved RSP";
  EXPECT_EQ(Frame(0x20), 0x10u) << "saved SS";
  EXPECT_EQ((Frame(0x30) + 40) % 16, 0u) << "RSP aligned to 16 before the push";
  EXPECT_EQ(Res(0x40) & 0xFF, 1u) << "ZF preserved across the interrupt";
  EXPECT_EQ(Res(0x48), 1u) << "handler ran before the nop";
}

// Same timing rule for an MMIO write (SDM 6.6: external interrupts are taken
// at instruction boundaries): the store to the device raises the interrupt
// and the pushed RIP is the next instruction, on every execution.
TEST_F(VcpuTest, InterruptRaisedByMmioWriteIsTakenBeforeTheNextInstruction) {
  Boot(2);
  host_.on_mmio = [this](uint64_t addr, unsigned, uint64_t value) {
    if (addr == kMmio) {
      irq_.pending = static_cast<int>(value);
      vcpu_->Kick();
    }
  };
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(irq_.acks, (std::vector<int>{0x40, 0x40}));
  EXPECT_EQ(Frame(0x00), Res(0x30));
  EXPECT_EQ(Res(0x48 + 16), 1u) << "first iteration: handler before nop";
  EXPECT_EQ(Res(0x48 + 8), 2u) << "second iteration: handler before nop";
}

// An interrupt raised by an MMIO *load* (a read with a side effect): the
// vCPU cannot end the load's translation block right after it, so the
// first time it delivers at the next block boundary and hooks the next
// instruction (found by decoding the load, emu/cpu/x86_decode.h); from the
// second execution on the pushed RIP is the instruction right after the
// load and the handler runs before it.
TEST_F(VcpuTest, InterruptRaisedByMmioLoadIsTakenRightAfterItOnceLearned) {
  Boot(18);
  host_.on_mmio_read = [this](uint64_t addr) {
    if (addr == kMmio) {
      irq_.pending = 0x40;
      vcpu_->Kick();
    }
  };
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason();
  EXPECT_EQ(irq_.acks, (std::vector<int>{0x40, 0x40, 0x40}));
  EXPECT_EQ(Res(0x48 + 24), 0u) << "first load: delivered at the block end";
  EXPECT_EQ(Res(0x48 + 16), 2u) << "second load: handler before the next instruction";
  EXPECT_EQ(Res(0x48 + 8), 3u) << "third load: handler before the next instruction";
  EXPECT_EQ(Frame(0x00), Res(0x30)) << "return RIP = the instruction after the load";
}

// The vCPU writes interrupt frames itself, through the guest's page tables,
// and caches its walks like a TLB: a remapped stack page must take effect
// once the guest invalidates it, by INVLPG (SDM 4.10.4.1) or by a CR3 load
// (4.10.4.1 too). Each frame lands in the physical page mapped at that
// time (RIP at the frame's bottom, RSP 0x40000800 -> frame at 0x7D8).
TEST_F(VcpuTest, InterruptFramesFollowAStackRemappedWithInvlpgOrCr3Reload) {
  Boot(19);
  RaiseOnPort(0x40);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason();
  EXPECT_EQ(irq_.acks, (std::vector<int>{0x40, 0x40, 0x40}));
  EXPECT_EQ(ram_->Load<uint64_t>(0x40000 + 0x7D8), Res(0x30)) << "first frame";
  EXPECT_EQ(ram_->Load<uint64_t>(0x41000 + 0x7D8), Res(0x38)) << "after INVLPG";
  EXPECT_EQ(ram_->Load<uint64_t>(0x42000 + 0x7D8), Res(0x40)) << "after the CR3 load";
}

// An x2APIC MSR write is emulated in a code hook; when it makes an
// interrupt deliverable (e.g. an EOI uncovering a pending vector, SDM
// 11.8.5) the interrupt is taken at the boundary right after the WRMSR.
// When it does not, the vCPU lets Unicorn's own WRMSR (a no-op for x2APIC
// MSRs) run instead of ending the block: the code after it still runs
// exactly once and the write reached the host exactly once.
TEST_F(VcpuTest, X2apicMsrWriteTakesAnInterruptItUncoversRightAfterIt) {
  Boot(20);
  host_.on_msr_write = [this](uint32_t msr) {
    if (msr == 0x80B && host_.msr_write_count == 1) {
      irq_.pending = 0x40;
      vcpu_->Kick();
    }
  };
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason();
  EXPECT_EQ(irq_.acks, std::vector<int>{0x40});
  EXPECT_EQ(Frame(0x00), Res(0x30)) << "return RIP = the instruction after the WRMSR";
  EXPECT_EQ(Res(0x48), 1u) << "handler ran before the next instruction";
  EXPECT_EQ(host_.msr_write_count, 2);
  EXPECT_EQ(Res(0x50), 1u);
  EXPECT_EQ(Res(0x58), 0x5A5Au);
}

// The vCPU keeps only a few narrow code hooks installed (each hooked
// instruction makes Unicorn walk all of them): with more RDMSR sites than
// that in a loop, cold hooks are evicted and their blocks hooked again when
// they next run. Every execution of every site must still be emulated
// (Unicorn's own RDMSR would return 0 for these MSRs).
TEST_F(VcpuTest, RdmsrSitesBeyondTheHookLimitAreStillEmulated) {
  Boot(21);
  host_.on_msr_read = [](uint32_t msr) -> std::optional<uint64_t> {
    if (msr >= 0x800 && msr < 0x800 + 40) return 0x5000 + msr;
    return std::nullopt;
  };
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason();
  EXPECT_EQ(Res(0x30), 3u) << "rounds";
  for (uint64_t i = 0; i < 40; ++i) {
    EXPECT_EQ(Res(0x100 + 8 * i) & 0xFFFFFFFF, 0x5800 + i) << "site " << i;
  }
  EXPECT_GT(vcpu_->code_hooks_evicted(), 40u) << "hooks were evicted and re-installed";
}

// The vCPU finds the instruction behind an MMIO access by evaluating the
// running block's memory operands (no memory hook: one would slow every
// RAM access). When no single instruction can be named -- two stores to the
// same register, or a block with an access it does not evaluate (PUSH) --
// the interrupt is taken at the end of the block instead, and nothing runs
// twice.
TEST_F(VcpuTest, MmioStoreNotAttributableToOneInstructionDeliversAtTheBlockEnd) {
  Boot(22);
  host_.on_mmio = [this](uint64_t addr, unsigned, uint64_t value) {
    if (addr == kMmio) {
      irq_.pending = static_cast<int>(value);
      vcpu_->Kick();
    }
  };
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason();
  EXPECT_EQ(irq_.acks, (std::vector<int>{0x40, 0x40}));
  EXPECT_EQ(Res(0x48), 0u) << "two candidate stores: not taken inside the block";
  EXPECT_EQ(Res(0x50), 1u) << "taken at the block boundary";
  EXPECT_EQ(Res(0x58), 1u) << "block with a PUSH: not taken inside it";
  EXPECT_EQ(Res(0x60), 2u);
  EXPECT_EQ(Res(0x68), 2u) << "each INC ran once";
}

// SDM 6.12.1.3: a trap gate does not clear IF.
TEST_F(VcpuTest, TrapGateKeepsInterruptsEnabled) {
  Boot(3);
  RaiseOnPort(0x41);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Count(), 1u);
  EXPECT_NE(Frame(0x28) & (1 << 9), 0u);
}

// SDM 6.14.5: a gate with IST=1 switches to TSS.IST1 (aligned to 16).
TEST_F(VcpuTest, IstGateUsesTheInterruptStackTable) {
  Boot(4);
  RaiseOnPort(0x42);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Count(), 1u);
  EXPECT_EQ(Frame(0x30), 0x60000u - 40) << "frame at the top of IST1";
}

// SDM 6.8.3: after STI, interrupts are inhibited until the end of the next
// instruction; the pending vector is not taken at the instruction right after
// STI (delivery is block-granular: the next block boundary).
TEST_F(VcpuTest, StiShadowDefersDeliveryPastTheNextInstruction) {
  Boot(5);
  RaiseOnPort(0x40);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Count(), 1u);
  EXPECT_NE(Frame(0x00), Res(0x30)) << "not inside the STI shadow";
  EXPECT_GT(Frame(0x00), Res(0x30));
  EXPECT_LE(Frame(0x00), Res(0x38)) << "taken before .next";
}

// SDM 6.8.1: with RFLAGS.IF=0 a maskable interrupt stays pending until STI.
TEST_F(VcpuTest, ClearedIfHoldsTheInterruptPendingUntilSti) {
  Boot(6);
  RaiseOnPort(0x40);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Res(0x40), 0u);
  EXPECT_EQ(Count(), 1u);
  EXPECT_LE(Frame(0x00), Res(0x38)) << "taken right after STI's shadow";
}

// SDM 8.10.2 / HLT: the CPU waits; an interrupt wakes it and the pushed RIP
// is the instruction after HLT. Waiting itself is the machine's job.
TEST_F(VcpuTest, HaltedCpuWakesOnKickAndReturnsAfterHlt) {
  Boot(7);
  EXPECT_EQ(RunToEnd(), Vcpu::Exit::kHalted);
  EXPECT_EQ(vcpu_->state(), Vcpu::State::kHalted);
  EXPECT_TRUE(vcpu_->interrupts_enabled());
  EXPECT_EQ(vcpu_->Run(1000), Vcpu::Exit::kHalted) << "nothing to wake it";
  irq_.pending = 0x40;
  vcpu_->Kick();
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Count(), 1u);
  EXPECT_EQ(Frame(0x00), Res(0x30));
}

// SDM 6.7.1: an NMI is delivered regardless of IF, and further NMIs are
// blocked until the next IRET.
TEST_F(VcpuTest, NmiIgnoresIfAndIsBlockedUntilIret) {
  Boot(8);
  int raised = 0;
  host_.on_port = [this, &raised](uint16_t, uint64_t) {
    if (raised++ >= 2) return;  // one NMI per OUT, two OUTs
    ++irq_.nmis;
    vcpu_->Kick();
  };
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Res(0x210), 1u);
  EXPECT_EQ(Res(0x218), 1u) << "second NMI blocked inside the first handler";
  EXPECT_EQ(Res(0x220), 2u) << "second NMI taken after the first IRETQ";
  EXPECT_EQ(Count(), 2u) << "second NMI taken after IRETQ";
}

// SDM 6.15: #UD (no error code, RIP at the instruction), #DE (fault), #BP
// (trap: RIP after INT3), #GP(0) for RDMSR of an unimplemented MSR, #PF with
// CR2 = linear address and error code P=0, W/R per access (SDM 4.7); all
// through the guest IDT and resumable.
TEST_F(VcpuTest, ExceptionsAreDeliveredThroughTheGuestIdt) {
  Boot(9);
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Res(0x38), Res(0x40)) << "#DE frame RIP = the div";
  EXPECT_EQ(Res(0x48), Res(0x50)) << "#BP frame RIP after int3";
  EXPECT_EQ(Res(0x58), 0u) << "#GP error code";
  EXPECT_EQ(Res(0x60), Res(0x68)) << "#GP frame RIP = the rdmsr";
  EXPECT_EQ(Res(0x78), 0x40001000u) << "CR2";
  EXPECT_EQ(Res(0x70), 0u) << "#PF read of a not-present page";
  EXPECT_EQ(Res(0x88), 0x40001008u);
  EXPECT_EQ(Res(0x80), 2u) << "#PF write of a not-present page";
  EXPECT_EQ(Res(0x90), 6u) << "six exceptions handled";
}

// SDM 4.6 / 4.7: with CR0.WP=1 a supervisor write to a present read-only
// page faults with error code P|W = 0x3 and CR2 = the address; the handler
// resumes past the store, and later #PFs (not-present write 0x2, another
// read-only write 0x3) are delivered the same way. The handler has the shape
// of a C runtime's (stub, 15 pushes, CALL to a dispatcher, IRETQ). Run in
// slices of every size from "one block" up: a slice that ends at a block
// entered through a chained jump (e.g. the dispatcher after the CALL) must
// resume exactly there. It used to resume at the CALL (Unicorn left RIP
// stale), pushing a second return address: IRETQ then popped the error code
// as RIP and raised #GP.
TEST_F(VcpuTest, WriteToReadOnlyPageFaultsAndLaterPageFaultsStillWork) {
  for (uint64_t budget : {uint64_t{100000}, uint64_t{1}, uint64_t{2},
                          uint64_t{3}, uint64_t{5}, uint64_t{7}, uint64_t{13}}) {
    SCOPED_TRACE(::testing::Message() << "slice budget " << budget);
    host_ = TestHost();
    ram_ = std::move(*GuestRam::Create(16 << 20));
    Boot(17);
    for (int i = 0; i < 200000 && !host_.done; ++i) {
      if (vcpu_->Run(budget) != Vcpu::Exit::kBudget) break;
    }
    ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " dead=" << Res(0x300) << " count=" << Count();
    EXPECT_EQ(Res(0x300), 0u) << "no unexpected vector (e.g. #GP at IRETQ)";
    EXPECT_EQ(Res(0x60), 3u) << "three #PF handled";
    EXPECT_EQ(Res(0x400), 3u) << "write to a present read-only page: P|W";
    EXPECT_EQ(Res(0x408), 0x40001010u) << "CR2";
    EXPECT_EQ(Res(0x410), Res(0x48)) << "frame RIP = the store";
    EXPECT_EQ(Res(0x420), 2u) << "second #PF: write to a not-present page";
    EXPECT_EQ(Res(0x428), 0x40000008u);
    EXPECT_EQ(Res(0x430), Res(0x50));
    EXPECT_EQ(Res(0x440), 3u) << "third #PF: another read-only page";
    EXPECT_EQ(Res(0x448), 0x40002020u);
    EXPECT_EQ(Res(0x450), Res(0x58));
    EXPECT_EQ(Res(0x38), Res(0x30)) << "stack balanced across the faults";
    EXPECT_EQ(Res(0x40), ram_->Load<uint64_t>(0x1000)) << "RO page readable";
    EXPECT_EQ(*vcpu_->ReadRegister("r14"), 0x600Du) << "guest went on";
    EXPECT_EQ(Count(), 3u);
  }
}

// The APIC MSRs (IA32_APIC_BASE 0x1B, x2APIC 0x800-0x8FF) reach the platform;
// IA32_TIME_STAMP_COUNTER (0x10) is virtual time.
TEST_F(VcpuTest, ApicMsrsReachTheHost) {
  Boot(10);
  host_.slice_start = 5000;
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  EXPECT_EQ(Res(0x30), 0xFEE00900u);
  EXPECT_EQ(host_.msr_writes[0x808], 0x912345678u);
  EXPECT_GE(Res(0x38), 5000u);
}

// CPUID.1: EBX[31:24] initial APIC id, EBX[23:16] logical count, ECX[21]
// x2APIC, ECX[24] TSC-deadline, EDX[9] APIC; CPUID.0xB EDX = x2APIC id.
TEST_F(VcpuTest, CpuidReportsApicTopology) {
  std::string_view suite = testing::GuestSnippet("suite");
  std::memcpy(ram_->data() + 0x100000, suite.data(), suite.size());
  ram_->Store<uint32_t>(0x5100, 11);
  VcpuConfig cfg;
  cfg.apic_id = 3;
  cfg.num_cpus = 4;
  auto v = Vcpu::Create(cfg, ram_.get(), &host_, &irq_, nullptr);
  ASSERT_TRUE(v.ok());
  vcpu_ = std::move(*v);
  host_.vcpu = vcpu_.get();
  ASSERT_TRUE(vcpu_->SetMultibootEntry(0x100000, 0x2BADB002, 0).ok());
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  uint32_t ebx = Res(0x30) & 0xFFFFFFFF, ecx = Res(0x30) >> 32;
  uint32_t edx = Res(0x38) & 0xFFFFFFFF;
  EXPECT_EQ(ebx >> 24, 3u);
  EXPECT_EQ((ebx >> 16) & 0xFF, 4u);
  EXPECT_NE(ecx & (1u << 21), 0u);
  EXPECT_NE(ecx & (1u << 24), 0u);
  EXPECT_NE(edx & (1u << 9), 0u);
  EXPECT_NE((Res(0x38) >> 32) & (1u << 29), 0u) << "long mode still reported";
  EXPECT_EQ(Res(0x40) & 0xFFFFFFFF, 3u);
}

// RDTSC/RDTSCP return virtual time: slice start + instructions retired.
TEST_F(VcpuTest, RdtscIsMonotonicVirtualTime) {
  Boot(12);
  host_.slice_start = 1000000;
  RunToEnd();
  ASSERT_TRUE(host_.done) << vcpu_->stop_reason() << " rip=" << std::hex << *vcpu_->ReadRegister("rip") << " state=" << static_cast<int>(vcpu_->state()) << " dead=" << Res(0x300) << " count=" << Count();
  uint64_t t1 = Res(0x30), t2 = Res(0x38), t3 = Res(0x40) & 0xFFFFFFFFFFFF;
  EXPECT_GE(t1, 1000000u);
  EXPECT_LE(t1, 1000000u + vcpu_->instructions_retired());
  EXPECT_GE(t2, t1 + 50) << "100 LOOP iterations in between";
  EXPECT_LE(t2, t1 + 400);
  EXPECT_GT(t3, t2);
}

// SDM 9.4.4: INIT puts an AP in wait-for-SIPI; SIPI starts it in real mode at
// CS = vector << 8, IP = 0; its own code then reaches long mode.
TEST_F(VcpuTest, ApStartsInRealModeAtSipiVectorAndReachesLongMode) {
  Boot(0);
  RunToEnd();  // BSP builds the page tables at 0x10000
  ASSERT_TRUE(host_.done);
  std::string_view ap = testing::GuestSnippet("ap");
  std::memcpy(ram_->data() + 0x8000, ap.data(), ap.size());
  VcpuConfig cfg;
  cfg.index = 1;
  cfg.apic_id = 1;
  TestIrq ap_irq;
  auto v = Vcpu::Create(cfg, ram_.get(), &host_, &ap_irq, nullptr);
  ASSERT_TRUE(v.ok());
  std::unique_ptr<Vcpu> cpu = std::move(*v);
  EXPECT_EQ(cpu->state(), Vcpu::State::kWaitForSipi);
  EXPECT_EQ(cpu->Run(1000), Vcpu::Exit::kNotRunnable);
  cpu->Init();
  cpu->Sipi(0x08);
  EXPECT_EQ(cpu->state(), Vcpu::State::kRunnable);
  EXPECT_EQ(cpu->Run(100000), Vcpu::Exit::kHalted)
      << cpu->stop_reason() << " rip=" << std::hex << *cpu->ReadRegister("rip")
      << " cs=" << *cpu->ReadRegister("cs") << " cr0=" << *cpu->ReadRegister("cr0");
  EXPECT_EQ(ram_->Load<uint16_t>(0x7F10), 0x0800u) << "CS = vector << 8";
  EXPECT_EQ(ram_->Load<uint16_t>(0x7F12), 0x1234u);
  EXPECT_EQ(ram_->Load<uint64_t>(0x7F00), 0xA9u) << "reached long mode";
  cpu->Sipi(0x09);  // not waiting: ignored
  EXPECT_EQ(cpu->state(), Vcpu::State::kHalted);
}

// Determinism: the same guest and the same host inputs give the same
// instruction counts and the same delivery points.
TEST_F(VcpuTest, ExecutionIsDeterministic) {
  auto run = [this]() {
    host_ = TestHost();
    irq_ = TestIrq();
    ram_ = std::move(*GuestRam::Create(16 << 20));
    Boot(13);
    std::vector<uint64_t> points;
    int n = 0;
    host_.on_port = [&](uint16_t, uint64_t) {
      if (++n % 3 == 0) {
        irq_.pending = 0x40;
        vcpu_->Kick();
      }
    };
    for (int i = 0; i < 300; ++i) {
      EXPECT_EQ(vcpu_->Run(997), Vcpu::Exit::kBudget);
      points.push_back(vcpu_->instructions_retired());
      points.push_back(*vcpu_->ReadRegister("rip"));
      points.push_back(Count());
    }
    return points;
  };
  std::vector<uint64_t> a = run();
  std::vector<uint64_t> b = run();
  EXPECT_EQ(a, b);
  EXPECT_GT(a.back(), 0u) << "interrupts were delivered";
}

// Unmapped physical memory beyond the modelled MMIO window ends the vCPU
// deterministically with a reason, never silently.
TEST(GuestRamTest, RejectsBadSizes) {
  EXPECT_FALSE(GuestRam::Create(0).ok());
  auto r = GuestRam::Create(4097);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("4097"), std::string_view::npos);
  EXPECT_TRUE(GuestRam::Create(8192).ok());
}

}  // namespace
}  // namespace irqlab
