/*
 * The synthetic WCN6855 (Qualcomm Wi-Fi 6E, ath11k) register interface: the
 * one contract shared by the device model (devices/wcn6855.{h,cc}), its
 * firmware (firmware-stubs/wcn6855/, ARM Thumb) and the ath11k-like guest
 * driver (firmware-stubs/programs/ath11k.c). Plain C so all three include it.
 *
 * PCI: 17cb:1103, class 0x028000 (network, other), no INTx (interrupt pin
 * 0), a 32-bit MSI capability at 0x50 (multiple message capable: 32
 * vectors, no per-vector masking), BAR0 = 2 MiB 64-bit non-prefetchable
 * memory.
 *
 * BAR0 map (host/driver view; offsets from BAR0):
 *
 *   0x00000-0x00FFF  control block (mailbox/handshake, below)
 *   0x80000-0xBFFFF  the "PCI window": interrupt-source registers. For each
 *                    source an MSI address is written at OFF (low dword) and
 *                    OFF+4 (high dword), the MSI data 8 bytes later at
 *                    OFF+8 -- the offsets seen on the real device (seed
 *                    000). Other window offsets are plain RAM-like storage
 *                    (read back what was written), as on hardware.
 *
 * The firmware sees the same register file at WCN_FW_DEVREGS + offset and
 * emits PCIe memory writes through the outbound engine at WCN_FW_OUTBOUND.
 */
#ifndef IRQLAB_DEVICES_WCN6855_REGS_H_
#define IRQLAB_DEVICES_WCN6855_REGS_H_

#define WCN_VENDOR_ID 0x17cbu
#define WCN_DEVICE_ID 0x1103u
#define WCN_CLASS_CODE 0x028000u
#define WCN_MSI_CAP_OFFSET 0x50u
#define WCN_MSI_MAX_VECTORS 32u
#define WCN_BAR0_SIZE 0x200000u

/* ---- Control block (BAR0 + 0x0000). All registers 32-bit. ---- */
#define WCN_REG_SOC_ID 0x0000u       /* RO: WCN_SOC_ID */
#define WCN_SOC_ID 0x68550101u
#define WCN_REG_DOORBELL 0x0100u     /* WO: command code -> wakes the firmware */
#define WCN_REG_CMD_ARG 0x0104u      /* RW: argument of the next command */
#define WCN_REG_STATE 0x0108u        /* RO (firmware-written): WCN_STATE_* */
#define WCN_REG_EVENTS 0x010Cu       /* RO (firmware-written): events fired */
#define WCN_REG_RESPONSE 0x0110u     /* RO (firmware-written): last completed
                                        command code (bits 7:0) and status
                                        (bits 15:8, 0 = ok) */
#define WCN_REG_IRQ_STATUS 0x0114u   /* RW1C by the driver; the firmware sets
                                        bit N when it fires source N */
#define WCN_REG_FW_SCRATCH 0x0200u   /* 0x0200-0x02FF: firmware/driver scratch */

/* Status codes in WCN_REG_RESPONSE bits 15:8. */
#define WCN_STATUS_OK 0x00u
#define WCN_STATUS_BAD_STATE 0x01u   /* e.g. HTT_CONNECT before BOOT */
#define WCN_STATUS_BAD_ARG 0x02u     /* e.g. FIRE of a source >= 13 */
#define WCN_STATUS_UNKNOWN 0xFFu     /* unknown command code */

/* Firmware states (WCN_REG_STATE). */
#define WCN_STATE_RESET 0u           /* powered, firmware idle */
#define WCN_STATE_READY 2u           /* booted ("MHI mission mode") */
#define WCN_STATE_HTT_CONNECTED 3u   /* HTT service connected */

/* Commands (write the code to WCN_REG_DOORBELL; WCN_REG_CMD_ARG first). */
#define WCN_CMD_BOOT 1u          /* boot: STATE=READY, fire source MHI once */
#define WCN_CMD_HTT_CONNECT 2u   /* STATE=HTT_CONNECTED, fire source CE2 once
                                    (the HTT connect response) */
#define WCN_CMD_EVENTS 3u        /* arg = N: fire N data-path events, one
                                    every WCN_EVENT_INTERVAL ticks, cycling
                                    over the sources CE0..DP3 (1..12) */
#define WCN_CMD_RESET 4u         /* STATE=RESET, counters cleared */
#define WCN_CMD_FIRE 5u          /* arg = source index: fire it once (tests) */
#define WCN_EVENT_INTERVAL 2000u /* virtual ticks between streamed events */

/* ---- Interrupt sources: address register offsets in BAR0. ---- */
#define WCN_NUM_SOURCES 13u
/* Index -> name: 0 mhi, 1..8 ce0..ce7, 9..12 dp0..dp3. */
#define WCN_SRC_MHI 0u
#define WCN_SRC_CE0 1u
#define WCN_SRC_CE2 3u   /* HTT connect response */
#define WCN_SRC_DP0 9u
#define WCN_SOURCE_OFFSETS                                               \
  {0x80048u, 0x83048u, 0x830a0u, 0x85048u, 0x850a0u, 0x86048u, 0x8b048u, \
   0x8b0a0u, 0x8e048u, 0xb4968u, 0xb4a70u, 0xb849cu, 0xb85a4u}
/* Within a source: address low, address high, data. */
#define WCN_SRC_ADDR_LO 0x0u
#define WCN_SRC_ADDR_HI 0x4u
#define WCN_SRC_DATA 0x8u
#define WCN_WINDOW_BASE 0x80000u
#define WCN_WINDOW_SIZE 0x40000u

/* ---- Firmware address map (ARM Thumb core, Cortex-M3 like). At reset the
 * core loads SP from ROM word 0 and PC from ROM word 1 (a Cortex-M vector
 * table; PC must have bit 0, the Thumb bit, set). The firmware runs until it
 * executes WFI and sleeps until a doorbell or its WCN_OB_SLEEP timer. ---- */
#define WCN_FW_ROM 0x00000000u        /* firmware image, 64 KiB, RX */
#define WCN_FW_ROM_SIZE 0x10000u
#define WCN_FW_RAM 0x20000000u        /* 16 KiB RAM, stack at the top */
#define WCN_FW_RAM_SIZE 0x4000u
#define WCN_FW_DEVREGS 0x40000000u    /* BAR0 register file, same offsets */
#define WCN_FW_OUTBOUND 0x50000000u   /* outbound PCIe write engine */
/* Outbound engine registers (offsets from WCN_FW_OUTBOUND). */
#define WCN_OB_ADDR_LO 0x00u
#define WCN_OB_ADDR_HI 0x04u
#define WCN_OB_DATA 0x08u
#define WCN_OB_GO 0x0Cu     /* write 1: emit a 4-byte memory write of DATA at
                               ADDR with the device's requester id */
#define WCN_OB_SLEEP 0x10u  /* write N: after the next WFI, wake the firmware
                               N ticks later even without a doorbell (one
                               shot; a later write replaces it, 0 disarms) */
#define WCN_OB_NOW 0x14u    /* RO: low 32 bits of virtual time */
#define WCN_OB_SOURCE 0x18u /* write S: the next GO is the interrupt of source
                               S (the device traces and counts it); every GO
                               resets it to WCN_OB_SOURCE_NONE */
#define WCN_OB_SOURCE_NONE 0xFFFFFFFFu

/* ---- Firmware-only registers (WCN_FW_DEVREGS + offset). The driver reads
 * 0 at these BAR0 offsets and its writes are ignored. ---- */
/* A driver write of WCN_REG_DOORBELL latches the command here and wakes the
 * firmware: FW_CMD = the value written (code in bits 7:0), FW_ARG =
 * WCN_REG_CMD_ARG at that moment. The firmware takes the command by writing
 * 0 to FW_CMD. The latch holds one command: a doorbell rung while FW_CMD is
 * still non-zero overwrites it (the device counts and traces that). */
#define WCN_REG_FW_CMD 0x0180u
#define WCN_REG_FW_ARG 0x0184u
/* Firmware view of the other control registers: STATE, EVENTS, RESPONSE are
 * read/write; a write to IRQ_STATUS sets the bits written (W1S). */

#endif  /* IRQLAB_DEVICES_WCN6855_REGS_H_ */
