/*
 * WCN6855 firmware: the command loop of the synthetic device's ARM core.
 *
 * The firmware sleeps in WFI. The device wakes it when the driver rings the
 * doorbell (the command is latched in WCN_REG_FW_CMD / WCN_REG_FW_ARG) or
 * when the WCN_OB_SLEEP timer armed before the WFI expires. On every wake it
 * takes a pending command, then fires the streamed events that are due.
 *
 * Firing source S: read the MSI address (low, high) and data the driver
 * wrote at the source's window offsets, set bit S in IRQ_STATUS, count it in
 * EVENTS and emit exactly that memory write through the outbound engine.
 * The firmware never checks or adjusts the values: whatever the driver
 * copied is what goes on the bus (seed 000's bug; an address of 0 is a DMA
 * write to 0).
 *
 * Commands (devices/wcn6855_regs.h): BOOT, HTT_CONNECT (needs READY or
 * HTT_CONNECTED, else status BAD_STATE), EVENTS(N) (first event at once,
 * then one per WCN_EVENT_INTERVAL ticks over sources 1..12; a new EVENTS
 * restarts the stream), RESET (stops the stream, STATE=RESET, EVENTS=0),
 * FIRE(S) (S < 13, else BAD_ARG). Each command writes RESPONSE before it
 * fires anything, so an interrupt handler already sees the outcome.
 */
#include <stdint.h>

#include "devices/wcn6855_regs.h"

#define REG(off) (*(volatile uint32_t *)(WCN_FW_DEVREGS + (off)))
#define OB(off) (*(volatile uint32_t *)(WCN_FW_OUTBOUND + (off)))

#define STREAM_FIRST WCN_SRC_CE0
#define STREAM_SOURCES 12u /* ce0..ce7, dp0..dp3 */

static const uint32_t source_offsets[WCN_NUM_SOURCES] = WCN_SOURCE_OFFSETS;

/* The event stream (EVENTS command). */
static uint32_t events_left;
static uint32_t events_due;  /* virtual time (low 32 bits) of the next one */
static uint32_t events_next; /* 0..11: next source is STREAM_FIRST + this */

static void fire(uint32_t source) {
  const uint32_t off = source_offsets[source];
  const uint32_t lo = REG(off + WCN_SRC_ADDR_LO);
  const uint32_t hi = REG(off + WCN_SRC_ADDR_HI);
  const uint32_t data = REG(off + WCN_SRC_DATA);
  REG(WCN_REG_IRQ_STATUS) = 1u << source;
  REG(WCN_REG_EVENTS) = REG(WCN_REG_EVENTS) + 1;
  OB(WCN_OB_ADDR_LO) = lo;
  OB(WCN_OB_ADDR_HI) = hi;
  OB(WCN_OB_DATA) = data;
  OB(WCN_OB_SOURCE) = source;
  OB(WCN_OB_GO) = 1;
}

static void respond(uint32_t code, uint32_t status) {
  REG(WCN_REG_RESPONSE) = (code & 0xFFu) | status << 8;
}

static void command(uint32_t code, uint32_t arg) {
  switch (code) {
    case WCN_CMD_BOOT:
      REG(WCN_REG_STATE) = WCN_STATE_READY;
      respond(code, WCN_STATUS_OK);
      fire(WCN_SRC_MHI);
      break;
    case WCN_CMD_HTT_CONNECT: {
      const uint32_t state = REG(WCN_REG_STATE);
      if (state != WCN_STATE_READY && state != WCN_STATE_HTT_CONNECTED) {
        respond(code, WCN_STATUS_BAD_STATE);
        break;
      }
      REG(WCN_REG_STATE) = WCN_STATE_HTT_CONNECTED;
      respond(code, WCN_STATUS_OK);
      fire(WCN_SRC_CE2);
      break;
    }
    case WCN_CMD_EVENTS:
      events_left = arg;
      events_due = OB(WCN_OB_NOW);
      events_next = 0;
      respond(code, WCN_STATUS_OK);
      break;
    case WCN_CMD_RESET:
      events_left = 0;
      OB(WCN_OB_SLEEP) = 0;
      REG(WCN_REG_STATE) = WCN_STATE_RESET;
      REG(WCN_REG_EVENTS) = 0;
      respond(code, WCN_STATUS_OK);
      break;
    case WCN_CMD_FIRE:
      if (arg >= WCN_NUM_SOURCES) {
        respond(code, WCN_STATUS_BAD_ARG);
        break;
      }
      respond(code, WCN_STATUS_OK);
      fire(arg);
      break;
    default:
      respond(code, WCN_STATUS_UNKNOWN);
      break;
  }
}

/* Fires every streamed event that is due and re-arms the timer. */
static void stream(void) {
  while (events_left != 0 && (int32_t)(OB(WCN_OB_NOW) - events_due) >= 0) {
    fire(STREAM_FIRST + events_next);
    if (++events_next == STREAM_SOURCES) events_next = 0;
    --events_left;
    events_due += WCN_EVENT_INTERVAL;
  }
  if (events_left != 0) OB(WCN_OB_SLEEP) = events_due - OB(WCN_OB_NOW);
}

void wcn_main(void) __attribute__((noreturn));
void wcn_main(void) {
  for (;;) {
    const uint32_t cmd = REG(WCN_REG_FW_CMD);
    if (cmd != 0) {
      const uint32_t arg = REG(WCN_REG_FW_ARG);
      REG(WCN_REG_FW_CMD) = 0;
      command(cmd & 0xFFu, arg);
    }
    stream();
    __asm__ volatile("wfi" ::: "memory");
  }
}
