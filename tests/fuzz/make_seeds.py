#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into corpus/<target>/.

Each seed is a small script in the target's op format (see the switch in
tests/fuzz/<target>.cc): what a driver would do to reach the interesting
states (IR enabled with an IRTE and an invalidation, MSI-X enabled and
fired, the WCN6855 booted and streaming, ...). The fuzzer mutates from there.

    python3 tests/fuzz/make_seeds.py [WCN6855_FW_BIN]

WCN6855_FW_BIN (e.g. build-fuzz/firmware-stubs/wcn6855_fw.bin) adds a
fuzz_wcn6855_fw seed carrying the built-in firmware image. Regression inputs
(crash reproducers that became tests) are kept as corpus/<target>/regress-*
and are not touched by this script.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v): return struct.pack('<B', v & 0xFF)
def u16(v): return struct.pack('<H', v & 0xFFFF)
def u32(v): return struct.pack('<I', v & 0xFFFFFFFF)
def u64(v): return struct.pack('<Q', v & 0xFFFFFFFFFFFFFFFF)


def size_code(n):
    return {1: 0, 2: 1, 4: 2, 8: 3}[n]


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


# ---------------------------------------------------------------- fuzz_lapic
def lapic():
    def reg(off, val, cpu=0):   # op 2: dword register write (offset >> 4)
        return u8(2 | cpu << 7) + u8(off >> 4) + u32(val)

    def msr(sel, low, val, cpu=0):  # op 3: WriteMsr
        return u8(3 | cpu << 7) + u8(sel) + u8(low) + u64(val)

    def x2(low, val, cpu=0):    # op 5: x2APIC MSR 0x800 + low
        return u8(5 | cpu << 7) + u8(low) + u32(val)

    run = lambda dt, sh=0: u8(12) + u16(dt) + u8(sh)
    ack = lambda cpu=0: u8(10 | cpu << 7)
    eoi = lambda cpu=0: u8(14 | cpu << 7)
    # xAPIC: enable, periodic timer, take and EOI interrupts, self IPI.
    s = reg(0xF0, 0x1FF) + reg(0x80, 0x20) + reg(0x320, 0x20040) + \
        reg(0x3E0, 0xB) + reg(0x380, 100) + run(1000) + ack() + eoi() + \
        run(500) + ack() + eoi() + reg(0x310, 0x01000000) + reg(0x300, 0x4051) + \
        ack(1) + ack() + eoi() + u8(1) + u16(0x390) + u8(2) + u8(1) + u16(0x100) + u8(2)
    write('fuzz_lapic', 'xapic_timer', u8(0) + s)
    # x2APIC: switch mode, SVR, TSC deadline timer, self IPI, ICR to CPU 1.
    s = msr(0, 0, 0xFEE00C00) + x2(0x0F, 0x1FF) + x2(0x32, 0x40045) + \
        msr(1, 0, 700) + run(1000) + ack() + eoi() + x2(0x3F, 0x60) + ack() + \
        eoi() + msr(0, 0, 0xFEE00C00, cpu=1) + x2(0x0F, 0x1FF, cpu=1) + \
        msr(3, 0x30, (1 << 32) | 0x4070) + ack(1) + eoi(1) + \
        u8(4) + u8(3) + u8(0x28) + u8(4) + u8(3) + u8(0x02)
    write('fuzz_lapic', 'x2apic_deadline_ipi', u8(0) + s)
    # Messages: level Accept + EOI broadcast, MSIs (physical, logical, lowest
    # priority, extended destination), LINT0 ExtINT / LINT1 NMI, INIT.
    s = reg(0xF0, 0x1FF) + reg(0xF0, 0x1FF, cpu=1) + \
        u8(6) + u8(0x45) + u8(8) + u16(0x100) + ack() + eoi() + \
        u8(7) + u32(0x80000000 | 0x1000) + u32(0x4033) + u16(0x18) + \
        u8(7) + u32(0x8000000C | 0x3000) + u32(0x0134) + u16(0x18) + \
        u8(7) + u32(0x80000000 | 0x20) + u32(0x35) + u16(0) + \
        u8(8) + u32(0x0) + u32(0x36) + u32(1) + \
        reg(0x350, 0x700) + reg(0x360, 0x400) + u8(9) + u8(1) + u8(9) + u8(0) + \
        u8(6 | 0x80) + u8(0) + u8(5) + u16(0) + u8(13) + u8(15) + u64(0xFEE00000)
    write('fuzz_lapic', 'messages', u8(0x40) + s)


# --------------------------------------------------------------- fuzz_ioapic
def ioapic():
    def rte(pin, low, high=0):  # op 4
        return u8(4) + u8(pin) + u32(high) + u32(low)
    level = lambda pin, hi: u8(5) + u8(pin | (0x40 if hi else 0))
    read = lambda idx: u8(3) + u8(idx)
    s = rte(4, 0x8030, 0x01000000) + level(4, 1) + read(0x18) + u8(6) + u8(0x30) + \
        read(0x18) + level(4, 0) + u8(6) + u8(0x30) + rte(5, 0x30031) + level(5, 1) + \
        rte(5, 0x0031) + level(5, 0) + level(5, 1) + read(0x01) + read(0x00) + read(0x02)
    write('fuzz_ioapic', 'level_edge', u8(0x80) + s)
    # Seed 003: masked pending level entry, destination changed, unmasked.
    s = rte(9, 0x18041, 0x02000000) + level(9, 1) + \
        u8(2) + u8(0x23) + u32(0) + u8(2) + u8(0x22) + u32(0x8041) + \
        u8(7) + u32(0x41) + u8(0) + u16(0x40) + u8(2) + u64(0x41) + \
        u8(1) + u16(0x10) + u8(2) + u8(8) + u8(9) + u8(0x5A) + u8(1)
    write('fuzz_ioapic', 'stale_route', u8(0x82) + s)
    # Version 0x11 (no EOI register), remappable-format RTEs (bit 48).
    s = rte(2, 0x8000 | 0x20, 0x00010000 | 0x00020000) + level(2, 1) + \
        u8(7) + u32(0x20) + u8(6) + u8(0x20) + rte(2, 0x0020, 0x00010000) + \
        level(2, 0) + level(2, 1) + u8(0) + u16(0x10) + u8(0) + u64(0x12)
    write('fuzz_ioapic', 'v11_remappable', u8(0x01) + s)


# ------------------------------------------------------------------ fuzz_vtd
GCMD = {'cfi': 0, 'sirtp': 1, 'ire': 2, 'qie': 3, 'wbf': 4, 'eafl': 5, 'sfl': 6,
        'srtp': 7, 'te': 8}


def vtd():
    def ir_on(irt_page, s_bits, eime, iq_page, cfi=False, dw=False, qs=0):  # op 4
        a = irt_page | (0x80 if cfi else 0)
        b = (s_bits & 0xF) | (0x10 if eime else 0) | (0x20 if dw else 0) | (qs << 6)
        return u8(4) + u8(a) + u8(b) + u8(iq_page)

    def irte(index, lo, hi=0):  # op 6
        return u8(6) + u16(index) + u64(lo) + u64(hi)

    def remapped(vector, dest, eime=True, sid=0, svt=0, level=False, fpd=False):
        lo = 1 | (2 if fpd else 0) | (16 if level else 0) | (vector << 16)
        lo |= (dest << 32) if eime else ((dest & 0xFF) << 40)
        return lo, sid | (svt << 18)

    def desc(*ds):  # op 7: [(t, qw0, qw1)]
        out = u8(7) + u8(len(ds) - 1)
        for t, q0, q1 in ds:
            out += u8(t) + u64(q0) + u64(q1)
        return out

    def msi_remap(handle, rid, shv=False, sub=0):  # op 8
        return u8(8) + u16(handle) + u8(1 if shv else 0) + u16(sub) + u16(rid)

    def msi(addr_low, data, rid):  # op 9
        return u8(9) + u32(addr_low) + u32(data) + u16(rid)

    reg_w = lambda off, sz, v: u8(0) + u16(off) + u8(size_code(sz)) + u64(v)
    reg_r = lambda off, sz: u8(1) + u16(off) + u8(size_code(sz))
    service = lambda unmask=1: u8(15) + u8(unmask) + u8(10) + u8(0)
    # Interrupt remapping: IRTE, remap, stale IEC, invalidate, wait.
    lo, hi = remapped(0x41, 0, sid=0x0200, svt=1)
    s = ir_on(2, 3, True, 4) + irte(1, lo, hi) + msi_remap(1, 0x0200) + \
        irte(1, remapped(0x42, 0x100)[0]) + msi_remap(1, 0x0200) + \
        desc((3, 0x10 | (1 << 32), 0)) + msi_remap(1, 0x0200) + \
        reg_w(0xA4, 4, 0x61) + reg_w(0xA8, 4, 0xFEE00000) + reg_w(0xA0, 4, 0) + \
        desc((4, 0x30 | (0x1234 << 32), 0x8000)) + reg_r(0x9C, 4) + reg_w(0x9C, 4, 1) + \
        msi_remap(1, 0x0300) + msi_remap(100, 0x0200) + msi_remap(0, 0x0200, True, 1) + \
        reg_r(0x34, 4) + reg_r(0x400, 8) + reg_r(0x408, 8) + service()
    write('fuzz_vtd', 'ir_remap', u8(0x80) + u8(0x07) + s)
    # Faults: compat blocked, not present, reserved, source id; fault event.
    s = reg_w(0x3C, 4, 0x50) + reg_w(0x40, 4, 0xFEE00000) + reg_w(0x38, 4, 0) + \
        ir_on(8, 0, False, 9) + msi(0x1000, 0x31, 0x0100) + \
        irte(0, 0x0000000000410001 | (1 << 13)) + msi_remap(0, 0x0100) + \
        msi_remap(1, 0x0100) + reg_r(0x34, 4) + reg_r(0x38, 4) + service(0) + \
        msi(0x1000, 0x31, 0x0100) + u8(5) + u8(0) + u8(1) + msi(0x1000, 0x31, 0x0100) + \
        u8(10) + u32(0x18 | (0 << 5)) + u32(0) + u16(0x0100) + \
        desc((0x83, 0x7, 0)) + reg_r(0xB0, 8) + reg_w(0x34, 4, 0x10)
    write('fuzz_vtd', 'ir_faults', u8(0x80) + u8(0x02) + s)
    # DMA remapping: root/context entries, page tables, translations, IOTLB
    # invalidation (register-based, then queued).
    def ctx(rta_pg, bus, devfn, ctp_pg, slpt_pg, aw, did, tt):  # op 11
        return u8(11) + u8(rta_pg) + u8(bus) + u8(devfn) + u8(ctp_pg) + u8(slpt_pg) + \
            u8(aw) + u16(did) + u8(tt)

    def pte(page, slot, target, flags):  # op 12
        return u8(12) + u8(page) + u16(slot) + u8(target) + u16(flags)

    def dma(rid, addr, f):  # op 13 (shift 0)
        return u8(13) + u16(rid) + u64(addr) + u8(0) + u8(f)
    s = ctx(10, 0, 0x18, 11, 12, 1, 5, 0) + pte(12, 0, 13, 0x1003) + pte(13, 0, 14, 0x1003) + \
        pte(14, 0, 15, 0x1003) + pte(14, 1, 16, 0x1003) + pte(13, 1, 17, 0x1083) + \
        dma(0x18, 0x0, 0x81) + dma(0x18, 0x1000, 0x81) + dma(0x18, 0x1ff0, 0x20) + \
        dma(0x18, 0x200000, 0x81) + dma(0x18, 0x5000, 1) + dma(0x19, 0x1000, 0) + \
        dma(0x18, 0xFEE00000, 0x80) + ir_on(2, 1, False, 3) + \
        desc((1, 0x10, 0), (2, 0x20 | (5 << 16), 0x1000)) + dma(0x18, 0x1000, 0x80) + \
        service()
    write('fuzz_vtd', 'dma', u8(0xC0) + u8(0x02) + s)
    # Posted interrupts: posted IRTE, descriptor, notification; guest owned.
    pd = 0x6000  # page 6
    lo = 1 | (1 << 15) | (0x55 << 16) | (((pd >> 6) & 0x3FFFFFF) << 38)
    s = ir_on(2, 2, True, 4) + irte(3, lo, 0x0018) + u8(14) + u8(0) + u16(pd // 64) + \
        u64((0xF2 << 16) | (0 << 32)) + msi_remap(3, 0x0018) + msi_remap(3, 0x0018) + \
        u8(14) + u8(1) + u16(0x0018) + u16(3) + msi(0x0000, 0x0, 0x0018) + \
        msi(0x0000, 0x1, 0x0018) + u8(14) + u8(2) + u16(0x0018) + msi(0, 0, 0x0018) + \
        irte(4, lo | (1 << 14), 0x0018 | (1 << 18)) + msi_remap(4, 0x0018)
    write('fuzz_vtd', 'posted', u8(0x84) + u8(0x00) + s)


# ------------------------------------------------------------------ fuzz_pci
def pci():
    def cfg_w(reg, size, val, edu=False):  # op 0
        return u8(0 | (0x80 if edu else 0)) + u16(reg) + u8({1: 0, 2: 1, 4: 2}[size]) + u32(val)
    cmd = lambda v, edu=False: u8(11 | (0x80 if edu else 0)) + u16(v)
    fire = lambda n: u8(9) + u8(n)
    tab = lambda entry, field, v: u8(7) + u8(entry) + u8(field) + u32(v)
    # MSI-X: table entries, enable with function mask, unmask, fire, PBA.
    s = cmd(0x6) + tab(0, 0, 0xFEE00000) + tab(0, 8, 0x41) + tab(1, 0, 0xFEE01000) + \
        tab(1, 8, 0x42) + cfg_w(0x5A, 2, 0xC000) + tab(0, 12, 0) + fire(0) + fire(1) + \
        cfg_w(0x5A, 2, 0x8000) + tab(1, 12, 0) + fire(1) + fire(70) + \
        u8(6) + u8(1) + u16(0x800) + u8(3) + u8(8) + u8(3) + u8(1) + \
        u8(12) + u8(0) + u8(1) + u8(1) + cmd(0x2) + fire(0)
    write('fuzz_pci', 'msix', u8(0x80) + s)
    # MSI: 64-bit address, 8 vectors, per-vector mask, fire, pending, INTx.
    s = cmd(0x6) + cfg_w(0x44, 4, 0xFEE00000) + cfg_w(0x48, 4, 0) + cfg_w(0x4C, 2, 0x50) + \
        cfg_w(0x50, 4, 0x2) + cfg_w(0x42, 2, 0x31) + fire(0) + fire(1) + fire(7) + \
        fire(9) + cfg_w(0x50, 4, 0) + u8(1) + u16(0x54) + u8(2) + cfg_w(0x42, 2, 0) + \
        fire(0) + cmd(0x406) + u8(12) + u8(1) + u8(0) + u8(0)
    write('fuzz_pci', 'msi', u8(0x00) + s)
    # BARs: sizing, moving (onto the other function too), edu factorial + DMA.
    bar = lambda i, addr, collide=False, edu=False: u8(10 | (0x80 if edu else 0)) + u8(i) + \
        u32(addr) + u8(1 if collide else 0) + u8(0)
    edu = lambda i, v: u8(14) + u8(i) + u64(v)
    s = bar(0, 0xD0000000) + bar(2, 0xE0000000) + bar(1, 0, True) + bar(0, 0, True, True) + \
        bar(0, 0xD1000000, False, True) + cmd(0x7, True) + edu(2, 0x80) + edu(1, 10) + \
        u8(15) + u16(0x1000) + u8(10) + edu(5, 0x1000) + edu(6, 0x40000) + edu(7, 0x100) + \
        edu(8, 0x5) + u8(15) + u16(0xFFFF) + u8(12) + u8(0x85) + u8(0) + u16(0x20) + u8(0) + \
        u8(4) + u32(0x18000) + u8(2) + u8(0) + u8(3) + u8(12) + u8(2) + u8(1) + u32(0x80001800)
    write('fuzz_pci', 'bars_edu', u8(0x01) + s)


# ------------------------------------------------------------- fuzz_wcn6855
SRC_MHI, SRC_CE2 = 0, 3


def wcn_ops():
    def pair(src, data, addr_lo=0xFEE00000):  # op 3 with an explicit address
        return u8(3) + u8(src) + u8(1) + u32(addr_lo) + u16(data)
    bell = lambda cmd, arg: u8(4) + u8(0x40) + u8(arg) + u32(cmd)
    run = lambda dt, sh=0: u8(5) + u16(dt) + u8(sh)
    ops = b''
    for src in range(13):
        ops += pair(src, 0x20 + src)
    ops += bell(1, 0) + run(5000) + bell(2, 0) + run(5000) + bell(3, 20) + run(0xFFFF, 2) + \
        u8(7) + u32(0xFFFFFFFF) + bell(5, 12) + run(5000) + bell(5, 40) + run(5000) + \
        bell(4, 0) + run(5000) + bell(1, 0) + bell(1, 0) + run(5000) + bell(0x77, 0) + \
        run(5000) + u8(1) + u32(0x108) + u8(2) + u8(1) + u32(0x80048) + u8(3)
    return ops


def wcn():
    write('fuzz_wcn6855', 'boot_stream', u8(0x80) + wcn_ops())
    # Moved MSI pair (not the window), bus master off, sub-dword writes.
    ops = u8(3) + u8(SRC_MHI) + u8(3) + u32(0x1000) + u32(0) + u16(0) + \
        u8(4) + u8(0) + u8(0) + u8(5) + u16(5000) + u8(0) + \
        u8(6) + u8(0) + u8(0x04) + u32(0) + u8(4) + u8(4) + u8(12) + u8(5) + u16(5000) + u8(0) + \
        u8(9) + u32(0x3FFFE) + u8(3) + u64(0x1122334455667788) + u8(0) + u32(0x100) + u8(1) + u64(1)
    write('fuzz_wcn6855', 'misc', u8(0x10) + ops)


def thumb_image(code):
    # Cortex-M vector table: SP, reset PC (Thumb bit), then code at 8.
    return u32(0x20004000) + u32(0x9) + code


def wcn_fw(fw_bin):
    boot = u8(4) + u8(0) + u8(0) + u8(5) + u16(5000) + u8(0) + u8(4) + u8(0x40) + \
        u8(5) + u32(3) + u8(5) + u16(0xFFFF) + u8(2)
    def seed(name, image, budget=20000, ops=boot):
        write('fuzz_wcn6855_fw', name,
              u8(0x80) + u16(len(image)) + image + u16(budget) + ops)
    if fw_bin:
        with open(fw_bin, 'rb') as f:
            seed('builtin_firmware', f.read(), ops=wcn_ops())
    seed('wfi_loop', thumb_image(bytes.fromhex('30bf' 'fde7')))          # wfi; b wfi
    seed('spin', thumb_image(bytes.fromhex('fee7')))                      # b .
    seed('bad_load', thumb_image(bytes.fromhex('6020' '0006' '0168')))    # ldr from 0x60000000
    seed('no_thumb_bit', u32(0x20004000) + u32(0x8) + bytes.fromhex('30bf'))
    seed('svc', thumb_image(bytes.fromhex('00df')))                       # svc #0
    # Write DOORBELL-latched command to outbound GO: movs r0,#0x50; lsls
    # r0,#24; movs r1,#1; str r1,[r0,#12]; wfi; b .
    seed('outbound_go', thumb_image(bytes.fromhex('5020' '0006' '0121' 'c160' '30bf' 'fee7')))


# ----------------------------------------------------------------- fuzz_vfio
def vfio():
    def cfg_w(reg, size, val):  # op 0
        return u8(0) + u16(reg) + u8({1: 0, 2: 1, 4: 2}[size]) + u32(val)
    tab = lambda e, field, v: u8(5) + u8(e) + u8(field) + u32(v)
    fire_msi = lambda n: u8(6) + u8(n) + u8(0)
    fire_msix = lambda n: u8(6) + u8(n) + u8(1)
    run = lambda: u8(7) + u16(5000) + u8(0)
    reg = lambda i, v: u8(9) + u8(i) + u32(v)
    # testdev, no fix: guest MSI (4 vectors), FIRE through BAR0, disable.
    s = cfg_w(0x44, 4, 0xFEE00000) + cfg_w(0x48, 4, 0) + cfg_w(0x4C, 2, 0x40) + \
        cfg_w(0x42, 2, 0x21) + reg(0, 1) + fire_msi(0) + fire_msi(3) + run() + \
        cfg_w(0x50, 4, 1) + fire_msi(0) + cfg_w(0x50, 4, 0) + cfg_w(0x42, 2, 0) + fire_msi(0)
    write('fuzz_vfio', 'testdev_msi', u8(0x80) + s)
    # testdev, lazy MSI-X: table, enable + function mask, unmask, fire.
    s = tab(0, 0, 0xFEE00000) + tab(0, 8, 0x61) + tab(1, 0, 0xFEE00000) + tab(1, 8, 0x62) + \
        cfg_w(0x5A, 2, 0xC000) + cfg_w(0x5A, 2, 0x8000) + tab(0, 12, 0) + fire_msix(0) + \
        fire_msix(1) + tab(1, 12, 0) + run() + tab(0, 8, 0x70) + fire_msix(0) + \
        cfg_w(0x5A, 2, 0) + fire_msix(0)
    write('fuzz_vfio', 'testdev_msix_lazy', u8(0x80) + s)
    # NIC, all-vectors policy: mailbox with every vector masked, EICS.
    s = tab(0, 0, 0xFEE00000) + tab(0, 8, 0x51) + cfg_w(0x72, 2, 0xC000) + \
        cfg_w(0x72, 2, 0x8000) + reg(2, 0x1234) + run() + tab(0, 12, 0) + reg(3, 1) + \
        run() + u8(4) + u8(3) + u16(0x2000) + u8(3)
    write('fuzz_vfio', 'nic_all_vectors', u8(0x80 | 0x01 | (3 << 3)) + s)
    # NOVIRT quirk / IMS with the source window.
    s = cfg_w(0x44, 4, 0xFEE00000) + cfg_w(0x4C, 2, 0x30) + cfg_w(0x42, 2, 0x01) + \
        reg(4, 0xFEE00000) + reg(5, 0x30) + reg(6, 0xFEE00000) + reg(7, 0x31) + run()
    write('fuzz_vfio', 'quirk', u8(0x80 | 0x20 | (1 << 1)) + s)
    write('fuzz_vfio', 'ims', u8(0x80 | (2 << 1)) + s)


def main():
    lapic()
    ioapic()
    vtd()
    pci()
    wcn()
    vfio()
    wcn_fw(sys.argv[1] if len(sys.argv) > 1 else None)


if __name__ == '__main__':
    main()
