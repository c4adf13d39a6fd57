// Machine-level tests with tiny hand-assembled multiboot kernels (32-bit
// code run at the multiboot entry, before any long-mode switch): debug exit,
// the multiboot hand-off registers, hang and time-limit detection, unmapped
// MMIO and port accesses (all-ones reads, traced), deterministic time.
#include "emu/machine/machine.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace irqlab {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kLoad = 0x100000;  // 1 MiB, like most multiboot kernels

// A minimal ELF32 multiboot kernel: one PT_LOAD segment at kLoad holding a
// multiboot header (flags 0) followed by `code`; the entry is the code.
std::vector<uint8_t> TinyKernel(const std::vector<uint8_t>& code, uint32_t bss = 0) {
  std::vector<uint8_t> payload;
  auto put32 = [](std::vector<uint8_t>& v, uint32_t x) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
  };
  put32(payload, 0x1BADB002);
  put32(payload, 0);
  put32(payload, static_cast<uint32_t>(-0x1BADB002));
  payload.insert(payload.end(), code.begin(), code.end());
  // Then hlt; jmp back: the last block ends at a branch, not in the zeros
  // after it.
  payload.insert(payload.end(), {0xF4, 0xEB, 0xFD});

  constexpr uint32_t kEhdr = 52, kPhdr = 32;
  std::vector<uint8_t> elf(kEhdr + kPhdr + payload.size(), 0);
  const uint8_t ident[] = {0x7F, 'E', 'L', 'F', 1 /*32*/, 1 /*LE*/, 1 /*version*/};
  std::memcpy(elf.data(), ident, sizeof(ident));
  auto set16 = [&](size_t off, uint16_t x) { std::memcpy(&elf[off], &x, 2); };
  auto set32 = [&](size_t off, uint32_t x) { std::memcpy(&elf[off], &x, 4); };
  set16(16, 2);               // ET_EXEC
  set16(18, 3);               // EM_386
  set32(20, 1);               // EV_CURRENT
  set32(24, kLoad + 12);      // e_entry: after the multiboot header
  set32(28, kEhdr);           // e_phoff
  set16(40, kEhdr);           // e_ehsize
  set16(42, kPhdr);           // e_phentsize
  set16(44, 1);               // e_phnum
  set32(kEhdr + 0, 1);        // PT_LOAD
  set32(kEhdr + 4, kEhdr + kPhdr);  // p_offset
  set32(kEhdr + 8, kLoad);    // p_vaddr
  set32(kEhdr + 12, kLoad);   // p_paddr
  set32(kEhdr + 16, static_cast<uint32_t>(payload.size()));  // p_filesz
  set32(kEhdr + 20, static_cast<uint32_t>(payload.size()) + bss);  // p_memsz
  set32(kEhdr + 24, 5);       // R+X
  std::copy(payload.begin(), payload.end(), elf.begin() + kEhdr + kPhdr);
  return elf;
}

struct Booted {
  std::unique_ptr<Machine> machine;
  TraceRecorder recorder;
  Tracer tracer;
};

std::unique_ptr<Booted> Boot(const std::vector<uint8_t>& code, int cpus = 1,
                             MachineConfig mc = {}) {
  auto b = std::make_unique<Booted>();
  b->tracer.AddSink(&b->recorder);
  mc.cpus = cpus;
  absl::StatusOr<std::unique_ptr<Machine>> m = Machine::Create(mc, &b->tracer);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return nullptr;
  b->machine = std::move(*m);
  const std::vector<uint8_t> elf = TinyKernel(code);
  absl::Status st = b->machine->LoadKernel(elf, "", {});
  EXPECT_TRUE(st.ok()) << st;
  return b;
}

int CountStage(const TraceRecorder& r, Stage s) {
  int n = 0;
  for (const TraceEvent& e : r.events()) n += e.stage() == s ? 1 : 0;
  return n;
}

// Multiboot spec 3.2: EAX holds 0x2BADB002 at entry. The kernel exits with
// debug-exit value 0 if so (status 1), else value 1 (status 3).
TEST(MachineTest, MultibootMagicInEaxAndDebugExitStatus) {
  auto b = Boot({0x3D, 0x02, 0xB0, 0xAD, 0x2B,  // cmp eax, 0x2BADB002
                 0x75, 0x04,                    // jne fail
                 0x31, 0xC0,                    // xor eax, eax
                 0xE7, 0xF4,                    // out 0xf4, eax
                 0xB8, 0x01, 0, 0, 0,           // fail: mov eax, 1
                 0xE7, 0xF4});                  // out 0xf4, eax
  ASSERT_NE(b, nullptr);
  RunResult r = b->machine->Run(1'000'000);
  EXPECT_EQ(r.outcome, RunResult::Outcome::kExit) << r.detail;
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_EQ(CountStage(b->recorder, trace::DEBUG_EXIT), 1);
}

// A read of physical memory where nothing is mapped returns all-ones and is
// traced; the value written to debug-exit proves what the guest saw:
// (0xFFFFFFFF << 1 | 1) & 0xFF = 255.
TEST(MachineTest, UnmappedMmioReadIsAllOnesAndTraced) {
  auto b = Boot({0xA1, 0x00, 0x00, 0x00, 0xD0,  // mov eax, [0xD0000000]
                 0xE7, 0xF4});                  // out 0xf4, eax
  ASSERT_NE(b, nullptr);
  RunResult r = b->machine->Run(1'000'000);
  ASSERT_EQ(r.outcome, RunResult::Outcome::kExit) << r.detail;
  EXPECT_EQ(r.exit_status, 255);
  ASSERT_EQ(CountStage(b->recorder, trace::MMIO_UNMAPPED), 1);
  for (const TraceEvent& e : b->recorder.events()) {
    if (e.stage() == trace::MMIO_UNMAPPED) {
      EXPECT_EQ(e.address(), 0xD0000000u);
    }
  }
}

// Writes to a port nothing decodes are dropped and traced.
TEST(MachineTest, UnmappedPortWriteIsDroppedAndTraced) {
  auto b = Boot({0xB0, 0x55,                    // mov al, 0x55
                 0xE6, 0x80,                    // out 0x80, al
                 0x31, 0xC0, 0xE7, 0xF4});      // exit 0
  ASSERT_NE(b, nullptr);
  RunResult r = b->machine->Run(1'000'000);
  ASSERT_EQ(r.outcome, RunResult::Outcome::kExit) << r.detail;
  int found = 0;
  for (const TraceEvent& e : b->recorder.events()) {
    if (e.stage() == trace::PORT_UNMAPPED && e.address() == 0x80 && e.data() == 0x55) ++found;
  }
  EXPECT_EQ(found, 1);
}

// HLT with IF=0 and no NMI can never wake up: a hang, reported at once
// rather than spinning until the time limit.
TEST(MachineTest, HaltWithInterruptsDisabledIsAHang) {
  auto b = Boot({0xFA, 0xF4, 0xEB, 0xFD});  // cli; hlt; jmp back
  ASSERT_NE(b, nullptr);
  RunResult r = b->machine->Run(1'000'000'000);
  EXPECT_EQ(r.outcome, RunResult::Outcome::kHang);
  EXPECT_THAT(r.detail, HasSubstr("cpu 0 halted with interrupts disabled"));
  EXPECT_LT(r.time, 1'000'000u);
}

// A guest that never exits ends exactly at the virtual time limit.
TEST(MachineTest, SpinningGuestEndsAtTheTimeLimit) {
  auto b = Boot({0xEB, 0xFE});  // jmp $
  ASSERT_NE(b, nullptr);
  RunResult r = b->machine->Run(200'000);
  EXPECT_EQ(r.outcome, RunResult::Outcome::kTimeLimit);
  EXPECT_EQ(r.time, 200'000u);
}

// Virtual time is retired instructions: the same kernel retires the same
// number of instructions and ends at the same time on every run.
TEST(MachineTest, VirtualTimeIsDeterministic) {
  const std::vector<uint8_t> code = {0xB9, 0x10, 0x27, 0, 0,  // mov ecx, 10000
                                     0xE2, 0xFE,              // loop $
                                     0x31, 0xC0, 0xE7, 0xF4}; // exit 0
  auto a = Boot(code);
  auto b = Boot(code);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  RunResult ra = a->machine->Run(10'000'000);
  RunResult rb = b->machine->Run(10'000'000);
  ASSERT_EQ(ra.outcome, RunResult::Outcome::kExit) << ra.detail;
  EXPECT_EQ(ra.time, rb.time);
  // mov + 10000 x loop + xor + out, exactly (1 tick per instruction).
  EXPECT_EQ(ra.time, 10'003u);
}

// Machine configuration errors name the setting.
TEST(MachineTest, BadConfigurationIsAnError) {
  MachineConfig mc;
  mc.cpus = 0;
  absl::StatusOr<std::unique_ptr<Machine>> m = Machine::Create(mc, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("machine.cpus"));
  mc.cpus = 1;
  mc.ram_bytes = 12345;
  m = Machine::Create(mc, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("machine.ram"));
}

// Fault injection (delay_eoi): a delayed level EOI reaches the IOAPIC
// `ticks` later; until then Remote IRR stays set and the still-asserted
// line is not redelivered. Only `count` EOIs are delayed.
TEST(MachineTest, DelayedEoiBroadcastReachesTheIoApicLater) {
  TraceRecorder recorder;
  Tracer tracer;
  tracer.AddSink(&recorder);
  absl::StatusOr<std::unique_ptr<Machine>> created = Machine::Create(MachineConfig{}, &tracer);
  ASSERT_TRUE(created.ok()) << created.status();
  Machine& m = **created;
  const AccessOrigin cpu0 = AccessOrigin::Cpu(0);
  LocalApic& lapic = m.lapic(0);
  IoApic& io = m.ioapic();
  lapic.Write(cpu0, 0xF0, 4, 0x1FF);                  // SVR: APIC enabled
  io.Write(cpu0, 0x00, 4, 0x18);                      // RTE 4 low:
  io.Write(cpu0, 0x10, 4, 0x8034);                    // level, vector 0x34, APIC 0
  m.SetIrqLine(4, true);
  ASSERT_EQ(io.delivery_count(), 1u);
  ASSERT_TRUE(io.remote_irr(4));

  m.DelayEoiBroadcasts(1000, 1, "test");
  lapic.Acknowledge(0x34);
  lapic.Write(cpu0, 0xB0, 4, 0);                      // EOI, broadcast delayed
  EXPECT_TRUE(io.remote_irr(4));
  EXPECT_EQ(io.delivery_count(), 1u);
  int delayed = 0;
  for (const TraceEvent& e : recorder.events()) {
    if (e.stage() == trace::FAULT_INJECT &&
        absl::StrContains(e.detail(), "test: EOI broadcast of vector 0x34 from cpu 0 delayed to t=1000")) {
      ++delayed;
    }
  }
  EXPECT_EQ(delayed, 1);

  m.events().RunUntil(999);
  EXPECT_TRUE(io.remote_irr(4));
  m.events().RunUntil(1000);  // the EOI arrives: cleared, line high: sent again
  EXPECT_EQ(io.delivery_count(), 2u);
  EXPECT_TRUE(io.remote_irr(4));

  m.SetIrqLine(4, false);
  lapic.Acknowledge(0x34);
  lapic.Write(cpu0, 0xB0, 4, 0);                      // not delayed any more
  EXPECT_FALSE(io.remote_irr(4));
  EXPECT_EQ(io.delivery_count(), 2u);

  // A delay past the end of time saturates instead of wrapping into the
  // past: the EOI never arrives and Remote IRR stays set.
  m.SetIrqLine(4, true);
  ASSERT_EQ(io.delivery_count(), 3u);
  m.DelayEoiBroadcasts(~uint64_t{0}, 1, "huge");
  lapic.Acknowledge(0x34);
  lapic.Write(cpu0, 0xB0, 4, 0);
  m.events().RunUntil(uint64_t{1} << 62);
  EXPECT_TRUE(io.remote_irr(4));
  EXPECT_EQ(io.delivery_count(), 3u);
}

TEST(ClockTest, TimeAfterSaturates) {
  EXPECT_EQ(TimeAfter(100, 20), 120u);
  EXPECT_EQ(TimeAfter(100, ~uint64_t{0}), ~uint64_t{0});
  EXPECT_EQ(TimeAfter(~uint64_t{0} - 5, 5), ~uint64_t{0});
}

// A kernel (here its BSS) that does not fit in RAM is refused when loading,
// with a message saying so.
TEST(MachineTest, KernelBeyondRamIsRefused) {
  MachineConfig mc;
  mc.ram_bytes = 2 << 20;
  absl::StatusOr<std::unique_ptr<Machine>> m = Machine::Create(mc, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  absl::Status st = (*m)->LoadKernel(TinyKernel({0xF4}, 4 << 20), "", {});
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("RAM too small"));
}

}  // namespace
}  // namespace irqlab

namespace irqlab {
namespace {

// SDM vol. 3, 11.4.3: with IA32_APIC_BASE.EN cleared, CPUID.1:EDX.APIC
// (bit 9) reads 0. The kernel reports bit 9 before (bit 0 of the exit value)
// and after (bit 1) clearing EN: 0b01 -> debug-exit status 3.
TEST(MachineTest, CpuidApicBitFollowsApicBaseEnable) {
  auto b = Boot({0xB8, 0x01, 0, 0, 0,           // mov eax, 1
                 0x0F, 0xA2,                    // cpuid
                 0x89, 0xD6,                    // mov esi, edx
                 0xB9, 0x1B, 0, 0, 0,           // mov ecx, IA32_APIC_BASE
                 0x0F, 0x32,                    // rdmsr
                 0x25, 0xFF, 0xF7, 0xFF, 0xFF,  // and eax, ~EN (bit 11)
                 0x0F, 0x30,                    // wrmsr
                 0xB8, 0x01, 0, 0, 0,           // mov eax, 1
                 0x0F, 0xA2,                    // cpuid
                 0xC1, 0xEE, 0x09,              // shr esi, 9
                 0x83, 0xE6, 0x01,              // and esi, 1
                 0xC1, 0xEA, 0x09,              // shr edx, 9
                 0x83, 0xE2, 0x01,              // and edx, 1
                 0xD1, 0xE2,                    // shl edx, 1
                 0x09, 0xD6,                    // or esi, edx
                 0x89, 0xF0,                    // mov eax, esi
                 0xE7, 0xF4});                  // out 0xf4, eax
  ASSERT_NE(b, nullptr);
  RunResult r = b->machine->Run(1'000'000);
  EXPECT_EQ(r.outcome, RunResult::Outcome::kExit) << r.detail;
  EXPECT_EQ(r.exit_status, 3);  // before: APIC 1, after: APIC 0
}

}  // namespace
}  // namespace irqlab

namespace irqlab {
namespace {

// MSRs the CPU model implies exist (emu/cpu/msr_file.h): MTRRcap reads
// 0x508 on the default model (exit value 0x508 & 0x7F = 8 -> status 17).
TEST(MachineTest, RdmsrOfAnImpliedMsrReadsItsValue) {
  auto b = Boot({0xB9, 0xFE, 0, 0, 0,     // mov ecx, IA32_MTRRCAP
                 0x0F, 0x32,              // rdmsr
                 0x83, 0xE0, 0x7F,        // and eax, 0x7F
                 0xE7, 0xF4});            // out 0xf4, eax
  ASSERT_NE(b, nullptr);
  RunResult r = b->machine->Run(1'000'000);
  EXPECT_EQ(r.outcome, RunResult::Outcome::kExit) << r.detail;
  EXPECT_EQ(r.exit_status, 17);
}

// An MSR no model implies: #GP(0) (here with no IDT: a triple fault), or,
// with KVM's ignore_msrs policy, reads 0 and drops the write (both traced).
TEST(MachineTest, UnknownMsrIsGpUnlessIgnoreMsrs) {
  const std::vector<uint8_t> code = {
      0xB9, 0x78, 0x56, 0x34, 0x12,  // mov ecx, 0x12345678
      0xB8, 0x07, 0, 0, 0,           // mov eax, 7
      0x0F, 0x30,                    // wrmsr
      0x0F, 0x32,                    // rdmsr (eax := 0 if ignored)
      0xE7, 0xF4};                   // out 0xf4, eax
  auto strict = Boot(code);
  ASSERT_NE(strict, nullptr);
  EXPECT_EQ(strict->machine->Run(1'000'000).outcome, RunResult::Outcome::kShutdown);

  MachineConfig mc;
  mc.ignore_msrs = true;
  auto ignoring = Boot(code, 1, mc);
  ASSERT_NE(ignoring, nullptr);
  RunResult r = ignoring->machine->Run(1'000'000);
  EXPECT_EQ(r.outcome, RunResult::Outcome::kExit) << r.detail;
  EXPECT_EQ(r.exit_status, 1);  // read back 0: the write was dropped
  int ignored = 0;
  for (const TraceEvent& e : ignoring->recorder.events()) {
    if (e.stage() == trace::MSR && absl::StrContains(e.detail(), "(ignore-msrs)")) ++ignored;
  }
  EXPECT_EQ(ignored, 2);
}

}  // namespace
}  // namespace irqlab
