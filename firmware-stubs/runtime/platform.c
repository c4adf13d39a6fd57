/*
 * platform.c: C-side boot (runtime_start, called by boot.S on the BSP in
 * long mode), multiboot info and command line parsing, fw_cfg, the legacy
 * PIC mask-off and the local APIC IPI helper.
 */
#include "runtime.h"

#define MB_BOOTLOADER_MAGIC 0x2BADB002
#define MBI_MEM 0x001
#define MBI_CMDLINE 0x004
#define MBI_MODS 0x008
#define MBI_MMAP 0x040

#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DATA 0x511

/* Multiboot v1 information structure (the fields we use). */
struct __attribute__((packed)) multiboot_info {
  uint32_t flags;
  uint32_t mem_lower;
  uint32_t mem_upper;
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t mods_count;
  uint32_t mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length;
  uint32_t mmap_addr;
};

struct boot_info boot_info;
static char cmdline_buf[1024];

void idt_init(void);

const char *cmdline(void) { return cmdline_buf; }

static void parse_multiboot(uint32_t magic, uint32_t info) {
  boot_info.mb_magic = magic;
  if (magic != MB_BOOTLOADER_MAGIC || info == 0) return;
  const struct multiboot_info *mbi =
      (const struct multiboot_info *)(uint64_t)info;
  boot_info.mb_flags = mbi->flags;
  if (mbi->flags & MBI_MEM) {
    boot_info.mem_lower_kb = mbi->mem_lower;
    boot_info.mem_upper_kb = mbi->mem_upper;
  }
  if (mbi->flags & MBI_MODS) {
    boot_info.mods_count = mbi->mods_count;
    boot_info.mods_addr = mbi->mods_addr;
  }
  if (mbi->flags & MBI_MMAP) {
    boot_info.mmap_length = mbi->mmap_length;
    boot_info.mmap_addr = mbi->mmap_addr;
  }
  if ((mbi->flags & MBI_CMDLINE) && mbi->cmdline) {
    /* Copy now: loaders put the string right after the image, where a
       program might later put data. */
    const char *s = (const char *)(uint64_t)mbi->cmdline;
    size_t i = 0;
    for (; s[i] && i < sizeof(cmdline_buf) - 1; i++) cmdline_buf[i] = s[i];
    cmdline_buf[i] = '\0';
  }
}

/* Finds "key=" or "key" as a whole space-separated token. Returns a pointer
   just past the key (at '=' or the end of the token) or NULL. */
static const char *find_key(const char *key) {
  size_t klen = strlen(key);
  const char *p = cmdline_buf;
  while (*p) {
    while (*p == ' ') p++;
    const char *tok = p;
    while (*p && *p != ' ') p++;
    size_t tlen = (size_t)(p - tok);
    if (tlen >= klen && strncmp(tok, key, klen) == 0 &&
        (tlen == klen || tok[klen] == '='))
      return tok + klen;
  }
  return NULL;
}

bool cmdline_has(const char *key) { return find_key(key) != NULL; }

bool cmdline_get_str(const char *key, char *buf, size_t size) {
  const char *v = find_key(key);
  if (!v || *v != '=' || size == 0) return false;
  v++;
  size_t i = 0;
  while (v[i] && v[i] != ' ' && i < size - 1) {
    buf[i] = v[i];
    i++;
  }
  buf[i] = '\0';
  return true;
}

int64_t cmdline_get_int(const char *key, int64_t def) {
  char buf[32];
  if (!cmdline_get_str(key, buf, sizeof(buf))) return def;
  const char *p = buf;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  unsigned base = 10;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
  }
  if (!*p) return def;
  uint64_t v = 0;
  for (; *p; p++) {
    unsigned d;
    if (*p >= '0' && *p <= '9') d = (unsigned)(*p - '0');
    else if (base == 16 && *p >= 'a' && *p <= 'f') d = (unsigned)(*p - 'a' + 10);
    else if (base == 16 && *p >= 'A' && *p <= 'F') d = (unsigned)(*p - 'A' + 10);
    else return def;
    v = v * base + d;
  }
  return neg ? -(int64_t)v : (int64_t)v;
}

/* ---- fw_cfg ---- */

void fw_cfg_read(uint16_t key, void *buf, size_t len) {
  outw(FW_CFG_PORT_SEL, key);
  uint8_t *b = buf;
  for (size_t i = 0; i < len; i++) b[i] = inb(FW_CFG_PORT_DATA);
}

bool fw_cfg_present(void) {
  char sig[4];
  fw_cfg_read(FW_CFG_SIGNATURE, sig, sizeof(sig));
  return memcmp(sig, "QEMU", 4) == 0;
}

int fw_cfg_cpu_count(void) {
  if (!fw_cfg_present()) return 1;
  uint8_t b[2];
  fw_cfg_read(FW_CFG_NB_CPUS, b, sizeof(b));
  int n = b[0] | (b[1] << 8);
  return n > 0 ? n : 1;
}

/* ---- Local APIC ---- */

void lapic_send_ipi(uint32_t dest_apic_id, uint32_t icr_lo) {
  lapic_write(LAPIC_ICR_HI, dest_apic_id << 24);
  lapic_write(LAPIC_ICR_LO, icr_lo);
}

volatile uint64_t lapic_x2apic_cpus;

void lapic_enable_x2apic(void) {
  uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
  wrmsr(MSR_IA32_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
  __atomic_or_fetch(&lapic_x2apic_cpus, 1ull << this_cpu(), __ATOMIC_SEQ_CST);
}

void lapic_send_ipi_any(uint32_t dest, uint32_t icr_lo) {
  if (lapic_in_x2apic()) {
    wrmsr(MSR_X2APIC_ICR, ((uint64_t)dest << 32) | icr_lo);
  } else {
    lapic_send_ipi(dest, icr_lo);
  }
}

/* ---- Entry ---- */

/* Called by boot.S on the BSP: 64-bit mode, IF=0, boot stack. */
void runtime_start(uint32_t mb_magic, uint32_t mb_info) {
  parse_multiboot(mb_magic, mb_info);
  /* Mask both legacy 8259 PICs: only directly injected / APIC interrupts. */
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
  idt_init();
  cpu_init_descriptors(0);
  lapic_enable();
  exit(main());
}
