// Event delivery of the x86 vCPU: taking an NMI or external interrupt at an
// instruction boundary and delivering it, or an exception or software
// interrupt Unicorn raised, through the guest IDT. Unicorn has no such API
// (ARCHITECTURE.md, "Unicorn as a vCPU"), so the vCPU reads the gate, checks
// it, switches stacks, writes the frame and loads CS:RIP itself.
//
// Hardware modelled (Intel SDM vol. 3):
//   6.7.1         NMI blocking from delivery until the next IRET (the block
//                 hook in vcpu.cc sees the IRET).
//   6.8.1         maskable interrupts wait for RFLAGS.IF=1.
//   6.12 / 6.14   delivery through 8-byte (protected mode) and 16-byte
//                 (IA-32e) interrupt and trap gates: gate type, DPL (software
//                 interrupts only), present bit, handler code segment from
//                 the GDT (conforming keeps CPL), CPL change with the stack
//                 from TSS.RSPn / SS0:ESP0, IST stacks, 16-byte RSP alignment
//                 in IA-32e mode, error codes, IF cleared for interrupt gates,
//                 TF/NT/RF/VM cleared.
//   6.13 / 6.15   error codes of the faults delivery itself raises (#GP, #NP,
//                 #TS, #SS, #PF with EXT), which exceptions push an error
//                 code, faults vs traps (the return RIP).
//   table 6-5     contributory and page-fault classes: #DF, and a fault while
//                 delivering #DF is a triple fault (shutdown).
//   4.7           the #PF error code, which Unicorn does not report,
//                 recomputed by walking the tables.
// NOT modelled: task gates and 16-bit gates (#GP), real-mode (IVT)
// delivery (the vCPU shuts down with a stop_reason), LDT-based handler CS,
// limit checks on the stack segment, SMI, #MC, debug exceptions, exact
// error codes of #GP/#TS/#NP/#SS that *Unicorn* raises (0 is pushed; faults
// raised by this file carry the exact SDM error code), the #PF error code's
// RSVD, PK and SGX bits, and benign/contributory ordering beyond table 6-5.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_format.h"
#include "emu/core/trace.h"
#include "emu/cpu/vcpu_impl.h"
#include "emu/cpu/x86_decode.h"
#include "emu/cpu/x86_paging.h"

namespace irqlab {
namespace {

// Contributory exceptions (SDM table 6-4): #DE, #TS, #NP, #SS, #GP.
bool IsContributory(int v) { return v == 0 || (v >= 10 && v <= 13); }

}  // namespace

// ---- Taking an NMI or interrupt at an instruction boundary -----------------
bool Vcpu::Impl::TryInterrupt(uint64_t boundary_rip) {
  if (!nmi_blocked_ && (nmi_pending_ || irq_->TakeNmi())) {
    nmi_pending_ = false;
    nmi_blocked_ = true;
    nmi_return_rip_ = boundary_rip;
    nmi_return_rsp_ = Reg(UC_X86_REG_RSP);
    Trace(trace::NMI, absl::StrFormat("rip=%#x", boundary_rip), 2);
    Deliver(2, Kind::kNmi, false, 0, boundary_rip);
    return true;
  }
  int v = irq_->PendingVector();
  if (v < 0) {
    check_irq_ = false;
    return false;
  }
  const uint64_t rflags = Reg(UC_X86_REG_RFLAGS);
  if (!(rflags & kIF)) return false;  // waits for IF
  irq_->Acknowledge(v);
  if (tracer_ != nullptr && tracer_->enabled()) {
    Trace(trace::DELIVER, absl::StrFormat("rip=%#x", boundary_rip), v,
          boundary_rip);
  }
  Deliver(v, Kind::kExternal, false, 0, boundary_rip, rflags);
  return true;  // check_irq_ stays set: more may be pending
}

// ---- Delivery through the IDT ----------------------------------------------
Vcpu::Impl::DeliveryRegs Vcpu::Impl::ReadDeliveryRegs(
    std::optional<uint64_t> rflags) {
  DeliveryRegs r{&Control()};
  int ids[] = {UC_X86_REG_RSP, UC_X86_REG_CS, UC_X86_REG_SS, UC_X86_REG_RFLAGS};
  void* vals[] = {&r.rsp, &r.cs, &r.ss, &r.rflags};
  static_assert(std::size(ids) == std::size(vals));
  const int n = static_cast<int>(std::size(ids)) - (rflags ? 1 : 0);
  uc_reg_read_batch(uc_, ids, vals, n);
  if (rflags) r.rflags = *rflags;
  return r;
}

std::optional<Vcpu::Impl::Fault> Vcpu::Impl::TryDeliver(
    const DeliveryRegs& regs, int vector, Kind kind, bool has_err, uint32_t err,
    uint64_t ret_rip) {
  const PagingRegs& pg = regs.control->pg;
  const uint64_t rsp = regs.rsp, rflags = regs.rflags, cs64 = regs.cs,
                 ss64 = regs.ss;
  const uc_x86_mmr &idtr = regs.control->idtr, &gdtr = regs.control->gdtr;
  uc_x86_mmr tr{};
  const uint32_t ext =
      (kind == Kind::kExternal || kind == Kind::kNmi) ? 1 : 0;
  if (!(pg.cr0 & 1)) {
    return Fault{-1, 0, false};  // real mode: not modelled
  }
  const bool lm = pg.efer & (1 << 10);
  uint16_t cs = static_cast<uint16_t>(cs64);
  uint16_t ss = static_cast<uint16_t>(ss64);
  int cpl = cs & 3;
  const uint32_t gate_size = lm ? 16 : 8;
  const uint32_t idt_err = static_cast<uint32_t>(vector) * 8 + 2 + ext;
  if (static_cast<uint64_t>(vector) * gate_size + gate_size - 1 >
      idtr.limit) {
    return Fault{13, idt_err, true};
  }
  uint8_t gate[16] = {};
  if (auto f = AccessLinear(pg, idtr.base + vector * gate_size, gate,
                            gate_size, false, false)) {
    return f;
  }
  const int type = gate[5] & 0xF, dpl = (gate[5] >> 5) & 3;
  const bool present = gate[5] & 0x80;
  const bool type_ok = type == 0xE || type == 0xF;  // task/16-bit: no
  if (!type_ok) return Fault{13, idt_err, true};
  if (kind == Kind::kSoftware && dpl < cpl) return Fault{13, idt_err, true};
  if (!present) return Fault{11, idt_err, true};
  uint16_t sel = gate[2] | (gate[3] << 8);
  uint64_t offset = gate[0] | (gate[1] << 8) | (gate[6] << 16) |
                    (static_cast<uint64_t>(gate[7]) << 24);
  if (lm) {
    uint32_t hi;
    std::memcpy(&hi, gate + 8, 4);
    offset |= static_cast<uint64_t>(hi) << 32;
  }
  const int ist = lm ? (gate[4] & 7) : 0;
  // Handler code segment.
  const uint32_t sel_err = (sel & 0xFFFC) | ext;
  if ((sel & 0xFFFC) == 0 || (sel & 4)) return Fault{13, sel_err, true};
  if ((sel | 7u) > gdtr.limit) return Fault{13, sel_err, true};
  uint8_t desc[8];
  if (auto f = AccessLinear(pg, gdtr.base + (sel & ~7u), desc, 8, false,
                            false)) {
    return f;
  }
  const bool is_code = (desc[5] & 0x18) == 0x18;
  const int cs_dpl = (desc[5] >> 5) & 3;
  if (!is_code || cs_dpl > cpl || (lm && !(desc[6] & 0x20))) {
    return Fault{13, sel_err, true};
  }
  if (!(desc[5] & 0x80)) return Fault{11, sel_err, true};
  const int new_cpl = (desc[5] & 4) ? cpl : cs_dpl;  // conforming keeps CPL
  uint16_t new_ss = ss;
  uint64_t new_rsp = rsp;
  const bool priv_change = new_cpl < cpl;
  if (ist || priv_change) uc_reg_read(uc_, UC_X86_REG_TR, &tr);
  // TR's selector (used only where `tr` was read). Not Reg(UC_X86_REG_TR):
  // Unicorn stores a whole uc_x86_mmr through the pointer.
  const uint32_t ts_err = (tr.selector & 0xFFFC) | ext;
  if (lm) {
    uint32_t tss_off = ist ? 0x24 + (ist - 1) * 8
                           : (priv_change ? 4 + new_cpl * 8 : 0);
    if (ist || priv_change) {
      if (tss_off + 7 > tr.limit) return Fault{10, ts_err, true};
      if (auto f = AccessLinear(pg, tr.base + tss_off, &new_rsp, 8, false,
                                false)) {
        return f;
      }
    }
    if (priv_change) new_ss = static_cast<uint16_t>(new_cpl);
    new_rsp &= ~0xFull;
    int64_t s = static_cast<int64_t>(new_rsp - 1) >> 47;
    if (s != 0 && s != -1) return Fault{12, ext, true};
    uint64_t frame[6];
    int n = 0;
    if (has_err) frame[n++] = err;
    frame[n++] = ret_rip;
    frame[n++] = cs;
    frame[n++] = rflags;
    frame[n++] = rsp;
    frame[n++] = ss;
    new_rsp -= n * 8;
    if (auto f = AccessLinear(pg, new_rsp, frame, n * 8, true,
                              new_cpl == 3)) {
      return f;
    }
  } else {
    uint64_t ss_base = 0;
    if (priv_change) {
      uint32_t esp0 = 0;
      uint16_t ss0 = 0;
      uint32_t off = 4 + new_cpl * 8;
      if (off + 5 > tr.limit) return Fault{10, ts_err, true};
      if (auto f = AccessLinear(pg, tr.base + off, &esp0, 4, false, false))
        return f;
      if (auto f = AccessLinear(pg, tr.base + off + 4, &ss0, 2, false, false))
        return f;
      new_ss = ss0;
      new_rsp = esp0;
    }
    // Stack segment base from its GDT descriptor (flat stacks are the norm).
    if ((new_ss & 0xFFFC) != 0 && !(new_ss & 4) && (new_ss | 7u) <= gdtr.limit) {
      uint8_t sd[8];
      if (!AccessLinear(pg, gdtr.base + (new_ss & ~7u), sd, 8, false, false)) {
        ss_base = sd[2] | (sd[3] << 8) | (sd[4] << 16) |
                  (static_cast<uint64_t>(sd[7]) << 24);
      }
    }
    uint32_t frame[6];
    int n = 0;
    if (has_err) frame[n++] = err;
    frame[n++] = static_cast<uint32_t>(ret_rip);
    frame[n++] = cs;
    frame[n++] = static_cast<uint32_t>(rflags);
    if (priv_change) {
      frame[n++] = static_cast<uint32_t>(rsp);
      frame[n++] = ss;
    }
    new_rsp = static_cast<uint32_t>(new_rsp - n * 4);
    if (auto f = AccessLinear(pg, (ss_base + new_rsp) & 0xFFFFFFFF, frame,
                              n * 4, true, new_cpl == 3)) {
      if (f->vector == 14) f->vector = 14;
      return f;
    }
  }
  uint64_t new_flags = rflags & ~(kTF | kNT | kRF | kVM);
  if (type == 0xE) new_flags &= ~kIF;
  // The same writes in the same order as separate uc_reg_write() calls,
  // in one uc_reg_write_batch().
  uint64_t sel64 = sel, new_ss64 = new_ss;
  // (Filled, not zero-initialized: `= {...}` on these became a `rep stos`,
  // 1/5 of Deliver's time.)
  int ids[5];
  void* vals[5];
  int n = 0;
  ids[n] = UC_X86_REG_RSP, vals[n++] = &new_rsp;
  ids[n] = UC_X86_REG_RFLAGS, vals[n++] = &new_flags;
  if (sel != cs) ids[n] = UC_X86_REG_CS, vals[n++] = &sel64;
  if (new_ss != ss) ids[n] = UC_X86_REG_SS, vals[n++] = &new_ss64;
  ids[n] = UC_X86_REG_RIP, vals[n++] = &offset;
  uc_reg_write_batch(uc_, ids, vals, n);
  return std::nullopt;
}

bool Vcpu::Impl::Deliver(int vector, Kind kind, bool has_err, uint32_t err,
                         uint64_t ret_rip, std::optional<uint64_t> rflags) {
  const DeliveryRegs regs = ReadDeliveryRegs(rflags);
  int first = vector;
  for (int depth = 0; depth < 4; ++depth) {
    std::optional<Fault> f =
        TryDeliver(regs, vector, kind, has_err, err, ret_rip);
    if (!f) return true;
    if (f->vector < 0) {
      Shutdown(absl::StrFormat(
          "vector %#x raised in real mode at rip %#x (real-mode delivery is "
          "not modelled)", vector, ret_rip));
      return false;
    }
    if (f->vector == 14) SetReg(UC_X86_REG_CR2, f->cr2);
    if (vector == 8) {
      Shutdown(absl::StrFormat(
          "triple fault: vector %d (error %#x) while delivering #DF at rip "
          "%#x", f->vector, f->error, ret_rip));
      return false;
    }
    bool c1 = IsContributory(vector), p1 = vector == 14;
    bool c2 = IsContributory(f->vector), p2 = f->vector == 14;
    if ((c1 && c2) || (p1 && (c2 || p2))) {
      Trace(trace::EXCEPTION,
            absl::StrFormat("#DF: vector %d while delivering %d", f->vector,
                            vector), 8);
      vector = 8, has_err = true, err = 0;
    } else {
      vector = f->vector, has_err = f->has_error, err = f->error;
    }
    kind = Kind::kException;
  }
  Shutdown(absl::StrFormat("unresolvable fault nesting delivering %d", first));
  return false;
}

// ---- Guest linear memory for delivery --------------------------------------
std::optional<Vcpu::Impl::Fault> Vcpu::Impl::AccessLinear(
    const PagingRegs& pg, uint64_t la, void* buf, size_t len, bool write,
    bool user) {
  uint8_t* b = static_cast<uint8_t*>(buf);
  while (len > 0) {
    size_t chunk = std::min<uint64_t>(len, 4096 - (la & 0xFFF));
    uint64_t pa;
    uint32_t err;
    if (!Translate(pg, la, write, user, false, &pa, &err)) {
      return Fault{14, err, true, la};
    }
    if (ram_->Contains(pa, chunk)) {
      if (write) CopyBytes(ram_->data() + pa, b, chunk);
      else CopyBytes(b, ram_->data() + pa, chunk);
    } else if (pa >= kRomBase && pa + chunk <= kRomBase + kRomSize) {
      if (!write) std::memcpy(b, rom_ + (pa - kRomBase), chunk);
    } else {
      for (size_t i = 0; i < chunk; ++i) {
        if (write) host_->MmioWrite(config_.index, pa + i, 1, b[i]);
        else b[i] = static_cast<uint8_t>(host_->MmioRead(config_.index, pa + i, 1));
      }
    }
    la += chunk;
    b += chunk;
    len -= chunk;
  }
  return std::nullopt;
}

// ---- Exceptions Unicorn raises ---------------------------------------------
void Vcpu::Impl::Intr(uint32_t intno) {
  if (state_ == State::kShutdown) return;
  uint64_t rip = Reg(UC_X86_REG_RIP);
  if (intno > 255) {
    Shutdown(absl::StrFormat("unexpected engine event %#x at rip %#x", intno,
                             rip));
    return;
  }
  int v = static_cast<int>(intno);
  // INT n (n >= 32), INT3 and INTO are software events: RIP is already past
  // the instruction. Everything else is a fault (RIP at the instruction).
  Kind kind = (v >= 32 || v == 3 || v == 4) ? Kind::kSoftware
                                               : Kind::kException;
  bool has_err = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21;
  uint32_t err = 0;
  if (v == 14) err = PageFaultErrorCode(rip);
  Trace(trace::EXCEPTION,
        absl::StrFormat("vector %d err %#x rip %#x", v, err, rip), v, rip,
        err);
  if (!Deliver(v, kind, has_err, err, rip)) return;
  ResetUnicornExceptionState();
}

// Unicorn does not expose the #PF error code (SDM 4.7); recompute it from
// CR2 by walking the guest tables. The access type is inferred: a fetch if
// CR2 lies in the faulting instruction, a write if the page is present
// (reads of present pages do not fault for these privileges) or the
// instruction is a store, else a read.
uint32_t Vcpu::Impl::PageFaultErrorCode(uint64_t rip) {
  PagingRegs pg = ReadPaging();  // a copy: Translate() walks, bypassing tlb_
  uint64_t cr2 = Reg(UC_X86_REG_CR2);
  bool user = (Reg(UC_X86_REG_CS) & 3) == 3;
  bool fetch = cr2 >= rip && cr2 < rip + 16;
  uint64_t pa;
  uint32_t e = 0;
  if (fetch) {
    if (!Translate(pg, cr2, false, user, true, &pa, &e)) return e;
  }
  if (!Translate(pg, cr2, false, user, false, &pa, &e)) {
    // Not present (or U/S): decide read vs write from the instruction.
    uint8_t code[16] = {};
    ReadCode(pg, rip, code, 16);
    bool code64 = pg.efer & (1 << 10);
    bool store = MovStoreLength(code, 16, code64) > 0;
    uint64_t rsp = Reg(UC_X86_REG_RSP);
    if (cr2 < rsp && cr2 + 64 >= rsp) store = true;  // push/call
    return e | (store ? 2 : 0);
  }
  // Present and readable: it must have been a write.
  Translate(pg, cr2, true, user, false, &pa, &e);
  return e | 2;
}

}  // namespace irqlab
