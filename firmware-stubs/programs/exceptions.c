/* KERNEL-DESCRIPTION: Takes #UD #GP #DE #BP #PF through the IDT, checks vector/error code/RIP/CR2, resumes */
/*
 * exceptions: takes #UD, #GP, #DE, #BP and #PF through the guest IDT and
 * checks what the handler sees: vector, error code, faulting RIP (the
 * instruction for faults, the next instruction for the #BP trap), CS, the
 * interrupted RSP and GPRs in the frame, CR2 for #PF; each handler
 * resumes past the faulting instruction by editing frame->rip.
 *
 * #PF cases use a 4 KiB page table this program installs for the 2 MiB
 * region at 1 GiB: page 0 not present, page 1 present read-only (with
 * CR0.WP=1, which boot.S sets). Expected error codes (P bit 0, W bit 1,
 * U bit 2): read not present 0x0, write not present 0x2, write read-only
 * 0x3. The faulting accesses never reach memory, so no RAM is needed there.
 *
 * Under QEMU TCG (CPUID hypervisor signature "TCGTCGTCGTCG"), which
 * returns 0 for unknown MSRs instead of raising #GP, gp_rdmsr is reported
 * as SKIP and #GP is checked with a non-canonical load (gp_noncanonical).
 *
 * Exit 0 iff every check passed.
 */
#include "runtime.h"

/* Faulting instructions live in top-level asm so each has exactly one
   address: <name>_fault is the instruction, <name>_resume the next one. */
__asm__(
    ".pushsection .text\n"
    /* uint64_t do_ud(void): rax/r11 are set before ud2 so the handler can
       check the saved GPRs; the handler replaces rax, which is returned. */
    ".globl do_ud, ud_fault, ud_resume\n"
    "do_ud:\n"
    "  mov %rsp, ud_rsp(%rip)\n"
    "  movabs $0x1122334455667788, %rax\n"
    "  mov $0x5a5a, %r11d\n"
    "ud_fault: ud2\n"
    "ud_resume: ret\n"
    /* void do_gp(void): rdmsr of a non-existent MSR. */
    ".globl do_gp, gp_fault, gp_resume\n"
    "do_gp:\n"
    "  mov $0xdeadbeef, %ecx\n"
    "gp_fault: rdmsr\n"
    "gp_resume: ret\n"
    /* void do_de(void): 64-bit divide by zero. */
    ".globl do_de, de_fault, de_resume\n"
    "do_de:\n"
    "  mov $1, %eax\n"
    "  xor %edx, %edx\n"
    "  xor %ecx, %ecx\n"
    "de_fault: div %rcx\n"
    "de_resume: ret\n"
    /* void do_bp(void) */
    ".globl do_bp, bp_fault, bp_resume\n"
    "do_bp:\n"
    "bp_fault: int3\n"
    "bp_resume: ret\n"
    /* void do_pf_read(uint64_t addr) */
    ".globl do_pf_read, pf_read_fault, pf_read_resume\n"
    "do_pf_read:\n"
    "pf_read_fault: mov (%rdi), %rax\n"
    "pf_read_resume: ret\n"
    /* void do_pf_write(uint64_t addr) */
    ".globl do_pf_write, pf_write_fault, pf_write_resume\n"
    "do_pf_write:\n"
    "pf_write_fault: movq $1, (%rdi)\n"
    "pf_write_resume: ret\n"
    ".popsection\n");

uint64_t do_ud(void);
void do_gp(void);
void do_de(void);
void do_bp(void);
void do_pf_read(uint64_t addr);
void do_pf_write(uint64_t addr);
extern char ud_fault[], ud_resume[], gp_fault[], gp_resume[], de_fault[],
    de_resume[], bp_fault[], bp_resume[], pf_read_fault[], pf_read_resume[],
    pf_write_fault[], pf_write_resume[];
uint64_t ud_rsp;

#define PF_REGION 0x40000000ull /* 1 GiB: PD entry 512 */
#define PF_NOT_PRESENT (PF_REGION + 0x0000)
#define PF_READ_ONLY (PF_REGION + 0x1000)

static uint64_t pf_pt[512] __attribute__((aligned(4096)));

/* What the handler saw for the current test. */
static struct {
  uint64_t resume;  /* where to continue; 0 = leave rip alone */
  int hits;
  uint64_t vector, error_code, rip, cs, rsp, rax, r11, cr2;
} seen;

static void on_exception(struct irq_frame *f) {
  seen.hits++;
  seen.vector = f->vector;
  seen.error_code = f->error_code;
  seen.rip = f->rip;
  seen.cs = f->cs;
  seen.rsp = f->rsp;
  seen.rax = f->rax;
  seen.r11 = f->r11;
  seen.cr2 = f->vector == 14 ? read_cr2() : 0;
  if (f->vector == 6) f->rax = 0xabcd; /* checked by the caller of do_ud */
  if (seen.resume) f->rip = seen.resume;
}

static void arm(char *resume) {
  memset(&seen, 0, sizeof(seen));
  seen.resume = (uint64_t)resume;
}

/* Common checks: exactly one exception, with this vector/error/rip. */
static void check(const char *name, uint64_t vector, uint64_t error_code,
                  const char *rip) {
  reportf(name,
          seen.hits == 1 && seen.vector == vector &&
              seen.error_code == error_code && seen.rip == (uint64_t)rip &&
              seen.cs == KERNEL_CS,
          "hits %d vector %lu (want %lu) error 0x%lx (want 0x%lx) rip 0x%lx "
          "(want 0x%lx) cs 0x%lx",
          seen.hits, seen.vector, vector, seen.error_code, error_code,
          seen.rip, (uint64_t)rip, seen.cs);
}

static void setup_pf_region(void) {
  for (int i = 0; i < 512; i++)
    pf_pt[i] = (PF_REGION + ((uint64_t)i << 12)) | PTE_P | PTE_W;
  pf_pt[0] = 0;                        /* not present */
  pf_pt[1] = PF_READ_ONLY | PTE_P;     /* present, read-only */
  boot_pd[PF_REGION >> 21] = (uint64_t)pf_pt | PTE_P | PTE_W;
  flush_tlb();
}

int main(void) {
  static const int kVectors[] = {0, 3, 6, 13, 14};
  for (unsigned i = 0; i < sizeof(kVectors) / sizeof(kVectors[0]); i++)
    irq_set_handler(kVectors[i], on_exception);

  /* #UD: also checks the frame's RSP and GPRs and that a handler's write
     to a saved GPR reaches the interrupted code. */
  arm(ud_resume);
  uint64_t rax = do_ud();
  check("ud", 6, 0, ud_fault);
  reportf("ud_frame", seen.rsp == ud_rsp && seen.rax == 0x1122334455667788ull &&
                          seen.r11 == 0x5a5a && rax == 0xabcd,
          "rsp 0x%lx (want 0x%lx) rax 0x%lx r11 0x%lx returned 0x%lx",
          seen.rsp, ud_rsp, seen.rax, seen.r11, rax);

  arm(gp_resume);
  do_gp();
  if (seen.hits == 0 && cpuid_hypervisor_is("TCGTCGTCGTCG")) {
    /* QEMU's TCG returns 0 for unknown MSRs instead of #GP (KVM and real
       CPUs fault). Check the #GP path with a non-canonical load instead. */
    report_skip("gp_rdmsr", "QEMU TCG does not #GP on unknown MSRs");
    arm(pf_read_resume);
    do_pf_read(0x8000000000000000ull);
    check("gp_noncanonical", 13, 0, pf_read_fault);
  } else {
    check("gp_rdmsr", 13, 0, gp_fault);
  }

  arm(de_resume);
  do_de();
  check("de", 0, 0, de_fault);

  /* #BP is a trap: the saved RIP is already past int3. */
  arm(NULL);
  do_bp();
  check("bp", 3, 0, bp_resume);

  setup_pf_region();
  arm(pf_read_resume);
  do_pf_read(PF_NOT_PRESENT);
  check("pf_read_not_present", 14, 0x0, pf_read_fault);
  reportf("pf_read_not_present_cr2", seen.cr2 == PF_NOT_PRESENT,
          "cr2 0x%lx", seen.cr2);

  arm(pf_write_resume);
  do_pf_write(PF_NOT_PRESENT + 8);
  check("pf_write_not_present", 14, 0x2, pf_write_fault);
  reportf("pf_write_not_present_cr2", seen.cr2 == PF_NOT_PRESENT + 8,
          "cr2 0x%lx", seen.cr2);

  arm(pf_write_resume);
  do_pf_write(PF_READ_ONLY + 0x10);
  check("pf_write_read_only", 14, 0x3, pf_write_fault);
  reportf("pf_write_read_only_cr2", seen.cr2 == PF_READ_ONLY + 0x10,
          "cr2 0x%lx", seen.cr2);

  /* Restore the identity map of the region. */
  boot_pd[PF_REGION >> 21] = PF_REGION | PTE_P | PTE_W | PTE_PS;
  flush_tlb();
  report_exit();
}
