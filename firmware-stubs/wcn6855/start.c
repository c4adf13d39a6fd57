/*
 * WCN6855 firmware start-up: the Cortex-M vector table (initial SP and the
 * reset handler; the core models no other exceptions) and the C runtime
 * set-up (.data copied from ROM, .bss zeroed) before wcn_main().
 */
#include <stddef.h>
#include <stdint.h>

extern uint32_t wcn_stack_top[];
extern uint32_t wcn_data_start[], wcn_data_end[], wcn_data_load[];
extern uint32_t wcn_bss_start[], wcn_bss_end[];

void wcn_main(void) __attribute__((noreturn));
void wcn_reset(void) __attribute__((noreturn));

__attribute__((section(".vectors"), used))
const void *const wcn_vectors[2] = {wcn_stack_top, (const void *)wcn_reset};

void wcn_reset(void) {
  const uint32_t *src = wcn_data_load;
  for (uint32_t *p = wcn_data_start; p < wcn_data_end; ++p) *p = *src++;
  for (uint32_t *p = wcn_bss_start; p < wcn_bss_end; ++p) *p = 0;
  wcn_main();
}

/* The compiler may emit calls to these even in freestanding code. */
void *memcpy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memset(void *dst, int c, size_t n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
