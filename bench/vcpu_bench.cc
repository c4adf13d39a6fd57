// vCPU micro-benchmarks (Google Benchmark). Guest code: tests/guest/suite.asm.
//   build-vcpu/bench/vcpu_bench
// BM_InjectedInterrupts and BM_BareUnicornInjection run the same guest loop
// and handler (spin with IF=1; handler: inc [counter]; iretq) so the cost of
// the Vcpu foundation over a minimal block-hook injector is measured in one
// run.
#include <sys/mman.h>
#include <unicorn/unicorn.h>

#include <cstring>
#include <memory>
#include <optional>

#include "benchmark/benchmark.h"
#include "emu/core/guest_ram.h"
#include "emu/core/trace.h"
#include "emu/cpu/vcpu.h"
#include "tests/guest/snippets.h"

namespace irqlab {
namespace {

class NullHost : public VcpuHost {
 public:
  uint64_t MmioRead(int, uint64_t, unsigned) override { return ~0ull; }
  void MmioWrite(int, uint64_t, unsigned, uint64_t) override {}
  uint64_t PortRead(int, uint16_t, unsigned) override { return 0; }
  void PortWrite(int, uint16_t, unsigned, uint64_t) override { ++outs; }
  std::optional<uint64_t> ReadMsr(int, uint32_t) override { return 0; }
  bool WriteMsr(int, uint32_t, uint64_t) override { return true; }
  uint64_t SliceStartTime() const override { return 0; }
  uint8_t ReadTpr(int) override { return 0; }
  void WriteTpr(int, uint8_t) override {}
  uint64_t outs = 0;
};

// Keeps `vector` pending forever (re-armed on every Acknowledge).
class RearmingSource : public InterruptSource {
 public:
  int PendingVector() override { return vector; }
  void Acknowledge(int) override { ++acks; }
  bool TakeNmi() override { return false; }
  int vector = -1;
  uint64_t acks = 0;
};

struct Machine {
  std::unique_ptr<GuestRam> ram;
  NullHost host;
  RearmingSource irq;
  std::unique_ptr<Vcpu> vcpu;
  bool Boot(int scenario) {
    ram = std::move(*GuestRam::Create(16 << 20));
    std::string_view suite = testing::GuestSnippet("suite");
    std::memcpy(ram->data() + 0x100000, suite.data(), suite.size());
    ram->Store<uint32_t>(0x5100, scenario);
    auto v = Vcpu::Create(VcpuConfig{}, ram.get(), &host, &irq, nullptr);
    if (!v.ok()) return false;
    vcpu = std::move(*v);
    if (!vcpu->SetMultibootEntry(0x100000, 0x2BADB002, 0).ok()) return false;
    vcpu->Run(200000);  // boot into the scenario
    return true;
  }
};

void BM_GuestRegisterLoop(benchmark::State& state) {
  Machine m;
  if (!m.Boot(15)) return state.SkipWithError("boot failed");
  uint64_t start = m.vcpu->instructions_retired();
  for (auto _ : state) m.vcpu->Run(10'000'000);
  state.counters["guest_insn/s"] = benchmark::Counter(
      static_cast<double>(m.vcpu->instructions_retired() - start),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_GuestRegisterLoop)->Unit(benchmark::kMillisecond);

// One OUT whose handler does nothing: the host<->guest exit cost.
void BM_PortOutExit(benchmark::State& state) {
  Machine m;
  if (!m.Boot(16)) return state.SkipWithError("boot failed");
  uint64_t start = m.host.outs;
  for (auto _ : state) m.vcpu->Run(1'000'000);
  double n = static_cast<double>(m.host.outs - start);
  state.counters["exits/s"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
  // kIsRate|kInvert gives seconds per exit; scaled by 1e9 -> nanoseconds.
  state.counters["ns_per_exit"] = benchmark::Counter(
      n / 1e9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_PortOutExit)->Unit(benchmark::kMillisecond);

// Run() returning after one block: the cost of one slice.
void BM_RunCallReturn(benchmark::State& state) {
  Machine m;
  if (!m.Boot(15)) return state.SkipWithError("boot failed");
  for (auto _ : state) m.vcpu->Run(1);
}
BENCHMARK(BM_RunCallReturn);

void BM_InjectedInterrupts(benchmark::State& state) {
  Machine m;
  if (!m.Boot(14)) return state.SkipWithError("boot failed");
  m.irq.vector = 0x40;
  m.vcpu->Kick();
  uint64_t start = m.irq.acks;
  for (auto _ : state) m.vcpu->Run(1'000'000);
  state.counters["irq/s"] = benchmark::Counter(
      static_cast<double>(m.irq.acks - start), benchmark::Counter::kIsRate);
  if (m.ram->Load<uint64_t>(0x6800) < m.irq.acks - 1) {
    state.SkipWithError("handler count mismatch");
  }
}
BENCHMARK(BM_InjectedInterrupts)->Unit(benchmark::kMillisecond);

// Bare Unicorn probe: the same loop/handler, raw UC_MODE_64 engine, minimal
// block-hook injection (read IDTR + 16-byte gate, push the 5-qword frame on
// RSP & ~0xF, clear IF, jump). No Vcpu class.
struct Bare {
  uint8_t* ram;
  uint64_t injected = 0;
  uint64_t blocks = 0;
  uint64_t budget = 0;
};
void BareBlock(uc_engine* uc, uint64_t addr, uint32_t, void* ud) {
  auto* b = static_cast<Bare*>(ud);
  if (++b->blocks >= b->budget) {
    uc_emu_stop(uc);
    return;
  }
  uint64_t rflags;
  uc_reg_read(uc, UC_X86_REG_RFLAGS, &rflags);
  if (!(rflags & 0x200)) return;
  uc_x86_mmr idtr;
  uc_reg_read(uc, UC_X86_REG_IDTR, &idtr);
  const uint8_t* g = b->ram + idtr.base + 0x40 * 16;
  uint64_t handler = g[0] | (g[1] << 8) | (g[6] << 16) |
                     (static_cast<uint64_t>(g[7]) << 24);
  uint64_t rsp;
  uc_reg_read(uc, UC_X86_REG_RSP, &rsp);
  uint64_t frame[5] = {addr, 0x08, rflags, rsp, 0};
  uint64_t nrsp = (rsp & ~0xFull) - 40;
  std::memcpy(b->ram + nrsp, frame, 40);
  rflags &= ~0x200ull;
  uc_reg_write(uc, UC_X86_REG_RSP, &nrsp);
  uc_reg_write(uc, UC_X86_REG_RFLAGS, &rflags);
  uc_reg_write(uc, UC_X86_REG_RIP, &handler);
  ++b->injected;
}
void BM_BareUnicornInjection(benchmark::State& state) {
  const size_t kSize = 1 << 20;
  auto* ram = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  // 0x1000: sti; .l: jmp .l      0x1100: inc qword [0x3000]; iretq
  const uint8_t loop[] = {0xFB, 0xEB, 0xFE};
  const uint8_t isr[] = {0x48, 0xFF, 0x04, 0x25, 0x00, 0x30, 0x00, 0x00,
                         0x48, 0xCF};
  std::memcpy(ram + 0x1000, loop, sizeof(loop));
  std::memcpy(ram + 0x1100, isr, sizeof(isr));
  uint64_t gdt[3] = {0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF};
  std::memcpy(ram + 0x2000, gdt, sizeof(gdt));
  uint8_t* g = ram + 0x4000 + 0x40 * 16;  // IDT at 0x4000, gate 0x40
  g[0] = 0x00, g[1] = 0x11, g[2] = 0x08, g[5] = 0x8E;
  uc_engine* uc;
  uc_open(UC_ARCH_X86, UC_MODE_64, &uc);
  uc_mem_map_ptr(uc, 0, kSize, UC_PROT_ALL, ram);
  uc_x86_mmr gdtr{0, 0x2000, sizeof(gdt) - 1, 0}, idtr{0, 0x4000, 4095, 0};
  uc_reg_write(uc, UC_X86_REG_GDTR, &gdtr);
  uc_reg_write(uc, UC_X86_REG_IDTR, &idtr);
  uint64_t rsp = 0x80000, rip = 0x1000;
  uc_reg_write(uc, UC_X86_REG_RSP, &rsp);
  Bare b{ram};
  uc_hook h;
  uc_hook_add(uc, &h, UC_HOOK_BLOCK, reinterpret_cast<void*>(&BareBlock), &b,
              1, 0);
  for (auto _ : state) {
    b.budget = b.blocks + 1'000'000;
    uc_reg_read(uc, UC_X86_REG_RIP, &rip);
    uc_emu_start(uc, rip, ~0ull, 0, 0);
  }
  state.counters["irq/s"] = benchmark::Counter(static_cast<double>(b.injected),
                                               benchmark::Counter::kIsRate);
  uint64_t handled;
  std::memcpy(&handled, ram + 0x3000, 8);
  if (handled + 1 < b.injected) state.SkipWithError("handler did not run");
  uc_close(uc);
  munmap(ram, kSize);
}
BENCHMARK(BM_BareUnicornInjection)->Unit(benchmark::kMillisecond);

// What a UC_HOOK_MEM_READ|WRITE costs every guest RAM access, even one its
// range never matches (emu/cpu/vcpu.cc installs one on the MMIO window so that
// Unicorn syncs RIP before memory accesses): bare Unicorn, the loop
//   .l: mov rax, [rbx]; mov [rbx+8], rax; dec rcx; jnz .l
// over RAM, 10^6 iterations per benchmark iteration, with memhook:1 a no-op
// hook on [0x10000000, 0x20000000] that no access touches. Unicorn 2.1.1
// then takes its slow softmmu path (a helper call per access) for every
// load and store it translates. items_per_second: loop iterations (one
// load, one store, two ALU instructions) per second.
void MemHookNoop(uc_engine*, uc_mem_type, uint64_t, int, int64_t, void*) {}
void BM_BareUnicornRamAccess(benchmark::State& state) {
  const bool hook = state.range(0) != 0;
  const size_t kSize = 1 << 20;
  const uint64_t kIters = 1'000'000;
  auto* ram = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const uint8_t loop[] = {0x48, 0x8B, 0x03,        // mov rax, [rbx]
                          0x48, 0x89, 0x43, 0x08,  // mov [rbx+8], rax
                          0x48, 0xFF, 0xC9,        // dec rcx
                          0x75, 0xF4};             // jnz .l
  std::memcpy(ram + 0x1000, loop, sizeof(loop));
  uc_engine* uc;
  uc_open(UC_ARCH_X86, UC_MODE_64, &uc);
  uc_mem_map_ptr(uc, 0, kSize, UC_PROT_ALL, ram);
  uc_hook h;
  if (hook) {
    uc_hook_add(uc, &h, UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
                reinterpret_cast<void*>(&MemHookNoop), nullptr, 0x10000000, 0x20000000);
  }
  for (auto _ : state) {
    uint64_t rbx = 0x8000, rcx = kIters;
    uc_reg_write(uc, UC_X86_REG_RBX, &rbx);
    uc_reg_write(uc, UC_X86_REG_RCX, &rcx);
    uc_emu_start(uc, 0x1000, 0x1000 + sizeof(loop), 0, 0);
    uc_reg_read(uc, UC_X86_REG_RCX, &rcx);
    if (rcx != 0) state.SkipWithError("loop did not finish");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kIters));
  uc_close(uc);
  munmap(ram, kSize);
}
BENCHMARK(BM_BareUnicornRamAccess)->ArgName("memhook")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace irqlab
