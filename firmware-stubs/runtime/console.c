/*
 * console.c: polled COM1 output, a small printf, test reporting
 * (PASS/FAIL lines, failure count) and exit through isa-debug-exit.
 */
#include "runtime.h"

#define COM1 0x3F8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20
#define DEBUG_EXIT_PORT 0xF4

static spinlock_t console_lock;
static int tests_run;
static int tests_failed;

static void serial_putc(char c) {
  /* LSR.THRE is always set on the emulated UARTs; bound the wait anyway so
     a missing UART cannot hang the guest. */
  for (int i = 0; i < 1000 && !(inb(COM1_LSR) & LSR_THRE); i++) cpu_relax();
  outb(COM1, (uint8_t)c);
}

/* ---- Formatting ---- */

struct out {
  char *buf;     /* NULL: write to the serial port */
  size_t size;
  size_t len;    /* characters produced (even if truncated) */
};

static void emit(struct out *o, char c) {
  if (o->buf) {
    if (o->len + 1 < o->size) o->buf[o->len] = c;
  } else {
    serial_putc(c);
  }
  o->len++;
}

static void emit_padded(struct out *o, const char *s, size_t n, int width,
                        bool left, char pad) {
  int fill = width > (int)n ? width - (int)n : 0;
  if (!left) {
    /* Zero padding goes after a sign. */
    if (pad == '0' && n > 0 && s[0] == '-') {
      emit(o, '-');
      s++;
      n--;
    }
    while (fill-- > 0) emit(o, pad);
  }
  for (size_t i = 0; i < n; i++) emit(o, s[i]);
  if (left) while (fill-- > 0) emit(o, ' ');
}

static void format(struct out *o, const char *fmt, va_list ap) {
  char tmp[24];
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      emit(o, *fmt);
      continue;
    }
    fmt++;
    bool left = false;
    char pad = ' ';
    for (;; fmt++) {
      if (*fmt == '-') left = true;
      else if (*fmt == '0') pad = '0';
      else break;
    }
    int width = 0;
    if (*fmt == '*') {
      width = va_arg(ap, int);
      fmt++;
    } else {
      while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    }
    int prec = -1;
    if (*fmt == '.') {
      fmt++;
      prec = 0;
      if (*fmt == '*') {
        prec = va_arg(ap, int);
        fmt++;
      } else {
        while (*fmt >= '0' && *fmt <= '9') prec = prec * 10 + (*fmt++ - '0');
      }
    }
    int longs = 0;
    while (*fmt == 'l' || *fmt == 'z') {
      longs += *fmt == 'z' ? 2 : 1;
      fmt++;
    }
    if (left) pad = ' ';
    switch (*fmt) {
      case 'd':
      case 'i': {
        int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
        uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
        int n = 0;
        do { tmp[sizeof(tmp) - 1 - n++] = (char)('0' + u % 10); u /= 10; } while (u);
        if (v < 0) tmp[sizeof(tmp) - 1 - n++] = '-';
        emit_padded(o, tmp + sizeof(tmp) - n, n, width, left, pad);
        break;
      }
      case 'u':
      case 'x':
      case 'X':
      case 'p': {
        uint64_t u;
        unsigned base = *fmt == 'u' ? 10 : 16;
        const char *digits = *fmt == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
        if (*fmt == 'p') {
          u = (uint64_t)va_arg(ap, void *);
          emit(o, '0');
          emit(o, 'x');
        } else {
          u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        }
        int n = 0;
        do { tmp[sizeof(tmp) - 1 - n++] = digits[u % base]; u /= base; } while (u);
        emit_padded(o, tmp + sizeof(tmp) - n, n, width, left, pad);
        break;
      }
      case 's': {
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        size_t n = 0;
        while (s[n] && (prec < 0 || n < (size_t)prec)) n++;
        emit_padded(o, s, n, width, left, ' ');
        break;
      }
      case 'c':
        tmp[0] = (char)va_arg(ap, int);
        emit_padded(o, tmp, 1, width, left, ' ');
        break;
      case '%':
        emit(o, '%');
        break;
      case '\0':
        return;
      default:
        emit(o, '%');
        emit(o, *fmt);
        break;
    }
  }
}

int vprintf(const char *fmt, va_list ap) {
  struct out o = {0};
  spin_lock(&console_lock);
  format(&o, fmt, ap);
  spin_unlock(&console_lock);
  return (int)o.len;
}

int printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vprintf(fmt, ap);
  va_end(ap);
  return n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...) {
  struct out o = {.buf = buf, .size = size, .len = 0};
  va_list ap;
  va_start(ap, fmt);
  format(&o, fmt, ap);
  va_end(ap);
  if (size) buf[o.len < size ? o.len : size - 1] = '\0';
  return (int)o.len;
}

void puts_raw(const char *s) {
  spin_lock(&console_lock);
  while (*s) serial_putc(*s++);
  spin_unlock(&console_lock);
}

/* ---- Reporting and exit ---- */

void report(const char *name, bool ok) {
  tests_run++;
  if (!ok) tests_failed++;
  printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
}

void reportf(const char *name, bool ok, const char *why_fmt, ...) {
  char why[160];
  va_list ap;
  va_start(ap, why_fmt);
  struct out o = {.buf = why, .size = sizeof(why), .len = 0};
  format(&o, why_fmt, ap);
  why[o.len < sizeof(why) ? o.len : sizeof(why) - 1] = '\0';
  va_end(ap);
  tests_run++;
  if (!ok) tests_failed++;
  if (ok)
    printf("PASS: %s\n", name);
  else
    printf("FAIL: %s (%s)\n", name, why);
}

void report_skip(const char *name, const char *why) {
  printf("SKIP: %s (%s)\n", name, why);
}

int report_failures(void) { return tests_failed; }

void report_exit(void) {
  printf("SUMMARY: %d tests, %d failures\n", tests_run, tests_failed);
  exit(tests_failed ? 1 : 0);
}

void exit(int code) {
  cli();
  outl(DEBUG_EXIT_PORT, (uint32_t)code);
  for (;;) hlt();
}

void panic(const char *fmt, ...) {
  /* We may have interrupted a printf on this CPU: take the console over. */
  console_lock.locked = 0;
  va_list ap;
  va_start(ap, fmt);
  puts_raw("PANIC: ");
  vprintf(fmt, ap);
  va_end(ap);
  exit(2);
}
