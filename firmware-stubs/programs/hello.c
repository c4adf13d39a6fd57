/* KERNEL-DESCRIPTION: Prints a greeting with the fw_cfg CPU count and the cmdline, checks multiboot and fw_cfg */
/*
 * hello: the smallest built-in kernel. Prints a greeting with the CPU
 * count from fw_cfg, the memory size and the command line, and checks the
 * multiboot hand-off and the fw_cfg signature.
 *
 * Output: "Hello from irqlab guest: N CPUs, ..." and PASS lines for
 * multiboot, fw_cfg and hello. Exit 0 iff all pass.
 *
 * crash=1 executes ud2 with no handler installed, to exercise the
 * runtime's unexpected-exception path (PANIC line, exit code 2).
 */
#include "runtime.h"

int main(void) {
  bool fw_cfg = fw_cfg_present();
  int cpus = fw_cfg_cpu_count();
  printf("Hello from irqlab guest: %d CPU%s, %u KiB low + %u KiB high memory\n",
         cpus, cpus == 1 ? "" : "s", boot_info.mem_lower_kb,
         boot_info.mem_upper_kb);
  printf("cmdline: '%s'\n", cmdline());
  printf("bsp apic id %u (cpuid), %u (lapic)\n", cpuid_apic_id(), lapic_id());
  uint32_t a, b, c, d, sig[3], vendor[3];
  cpuid(0, &a, &vendor[0], &vendor[2], &vendor[1]);
  printf("cpuid.0 vendor '%.12s', max leaf 0x%x\n", (const char *)vendor, a);
  cpuid(1, &a, &b, &c, &d);
  cpuid(0x40000000, &a, &sig[0], &sig[1], &sig[2]);
  printf("cpuid.1 ecx=0x%x edx=0x%x; leaf 0x40000000: max 0x%x '%.12s'\n", c, d, a,
         (const char *)sig);

  reportf("multiboot", boot_info.mb_magic == 0x2BADB002 && (boot_info.mb_flags & 1),
          "magic 0x%x flags 0x%x", boot_info.mb_magic, boot_info.mb_flags);
  reportf("fw_cfg", fw_cfg && cpus >= 1, "signature %s, %d cpus",
          fw_cfg ? "QEMU" : "missing", cpus);
  if (cmdline_get_int("crash", 0)) __asm__ volatile("ud2");
  report("hello", true);
  report_exit();
}
