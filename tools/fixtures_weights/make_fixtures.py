#!/usr/bin/python3
"""Writes the weight-reader fixtures under tests/fixtures/weights (numpy only:
run with /usr/bin/python3 tools/fixtures_weights/make_fixtures.py).

  st_single/model.safetensors        F32, F16, BF16 and a 0-d tensor, with __metadata__
  st_sharded/model-0000{1,2}-of-00002.safetensors + model.safetensors.index.json
                                     (shard 1 also holds an I64 position_ids buffer)
  quant.gguf                         GGUF v3 (general.alignment 64) with Q8_0, Q4_0, Q4_K,
                                     Q6_K, F16, BF16 and F32 tensors built from random bytes,
                                     then Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K ones (drawn from a
                                     second generator so the earlier tensors stay byte-identical)
  expected/<tensor>.f32              the f32 value of every tensor above (raw little-endian)

The expected values come from the dequantizer below, written from the ggml
block-format description independently of quire's C code; it evaluates the
products in f32 in ggml's order ((d*scale)*q - dmin*min), so C results must
match bit for bit. Deterministic (fixed seeds)."""
import json
import os
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'fixtures', 'weights')
rng = np.random.default_rng(20261121)
rng2 = np.random.default_rng(20261122)   # for the block types added later
F32 = np.float32


# ---------- values ----------

def rand_f16_bits(n):
    """Random half bit patterns (normals, subnormals, zeros, infinities), no NaN."""
    b = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    nan = ((b & 0x7c00) == 0x7c00) & ((b & 0x3ff) != 0)
    b[nan] &= 0xfc00  # NaN -> inf of the same sign
    return b


def rand_bf16_bits(n):
    b = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    nan = ((b & 0x7f80) == 0x7f80) & ((b & 0x7f) != 0)
    b[nan] &= 0xff80
    return b


def f16_to_f32(bits):
    return bits.view(np.float16).astype(F32)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(F32)


def small_f16(n, std=0.05, gen=None):
    """Finite, sensible block scales as f16 bits."""
    gen = gen if gen is not None else rng
    return (gen.standard_normal(n) * std).astype(np.float16).view(np.uint16)


# ---------- independent dequantizers (from the block-format description) ----------

def deq_q8_0(raw):
    b = raw.reshape(-1, 34)
    d = b[:, 0:2].copy().view(np.float16).astype(F32)          # (nb, 1)
    q = b[:, 2:34].copy().view(np.int8).astype(F32)            # (nb, 32)
    return (q * d).reshape(-1)


def deq_q4_0(raw):
    b = raw.reshape(-1, 18)
    d = b[:, 0:2].copy().view(np.float16).astype(F32)
    qs = b[:, 2:18].astype(np.int32)
    q = np.concatenate([(qs & 15) - 8, (qs >> 4) - 8], axis=1).astype(F32)  # first 16 low nibbles
    return (q * d).reshape(-1)


def deq_q4_k(raw):
    b = raw.reshape(-1, 144)
    nb = b.shape[0]
    d = b[:, 0:2].copy().view(np.float16).astype(F32)[:, 0]
    dmin = b[:, 2:4].copy().view(np.float16).astype(F32)[:, 0]
    s = b[:, 4:16].astype(np.int32)
    sc = np.zeros((nb, 8), np.int32)
    mn = np.zeros((nb, 8), np.int32)
    for j in range(8):
        if j < 4:   # 6 low bits of bytes j (scale) and j+4 (min)
            sc[:, j] = s[:, j] & 63
            mn[:, j] = s[:, j + 4] & 63
        else:       # 4 bits from byte j+4, top 2 bits from bytes j-4 / j
            sc[:, j] = (s[:, j + 4] & 15) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    qs = b[:, 16:144].reshape(nb, 4, 32).astype(np.int32)
    q = np.empty((nb, 8, 32), np.int32)
    q[:, 0::2, :] = qs & 15    # sub-block 2k: low nibbles of byte group k
    q[:, 1::2, :] = qs >> 4    # sub-block 2k+1: high nibbles
    scale = d[:, None] * sc.astype(F32)       # f32 products, as ggml
    mins = dmin[:, None] * mn.astype(F32)
    y = scale[:, :, None] * q.astype(F32) - mins[:, :, None]
    return y.astype(F32).reshape(-1)


def deq_q6_k(raw):
    b = raw.reshape(-1, 210)
    nb = b.shape[0]
    ql = b[:, 0:128].astype(np.int32)
    qh = b[:, 128:192].astype(np.int32)
    sc = b[:, 192:208].copy().view(np.int8).astype(F32)        # (nb, 16): one per 16 values
    d = b[:, 208:210].copy().view(np.float16).astype(F32)[:, 0]
    q = np.empty((nb, 256), np.int32)
    for h in range(2):          # halves of 128 values
        lo, hi = ql[:, 64 * h:64 * h + 64], qh[:, 32 * h:32 * h + 32]
        base = 128 * h
        q[:, base + 0:base + 32] = (lo[:, 0:32] & 15) | (((hi >> 0) & 3) << 4)
        q[:, base + 32:base + 64] = (lo[:, 32:64] & 15) | (((hi >> 2) & 3) << 4)
        q[:, base + 64:base + 96] = (lo[:, 0:32] >> 4) | (((hi >> 4) & 3) << 4)
        q[:, base + 96:base + 128] = (lo[:, 32:64] >> 4) | (((hi >> 6) & 3) << 4)
    q -= 32
    scale = d[:, None] * sc                                    # (nb, 16)
    y = np.repeat(scale, 16, axis=1) * q.astype(F32)
    return y.astype(F32).reshape(-1)


def f16_field(b, off):
    """The f16 at byte offset off of every block, as f32: (nb,)."""
    return b[:, off:off + 2].copy().view(np.float16).astype(F32)[:, 0]


def bits_lsb_first(bytes_, nbits):
    """(nb, k) uint8 -> (nb, k * 8) 0/1 ints, bit i of the little-endian bit string."""
    return np.unpackbits(bytes_, axis=1, bitorder='little').astype(np.int32)[:, :nbits]


def deq_q4_1(raw):
    b = raw.reshape(-1, 20)
    d, m = f16_field(b, 0), f16_field(b, 2)
    qs = b[:, 4:20].astype(np.int32)
    q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(F32)             # (nb, 32)
    return (q * d[:, None] + m[:, None]).astype(F32).reshape(-1)


def q5_quants(qh4, qs16):
    """32 five-bit quants: nibbles of qs (low ones first) plus bit j of the 32-bit qh."""
    lo = np.concatenate([qs16 & 15, qs16 >> 4], axis=1)
    return lo | (bits_lsb_first(qh4, 32) << 4)


def deq_q5_0(raw):
    b = raw.reshape(-1, 22)
    d = f16_field(b, 0)
    q = (q5_quants(b[:, 2:6], b[:, 6:22].astype(np.int32)) - 16).astype(F32)
    return (q * d[:, None]).astype(F32).reshape(-1)


def deq_q5_1(raw):
    b = raw.reshape(-1, 24)
    d, m = f16_field(b, 0), f16_field(b, 2)
    q = q5_quants(b[:, 4:8], b[:, 8:24].astype(np.int32)).astype(F32)
    return (q * d[:, None] + m[:, None]).astype(F32).reshape(-1)


def two_bit_planes(qs64):
    """Q2_K/Q3_K 2-bit quants in value order: (nb, 64) bytes -> (nb, 256).
    Value v = 128 * half + 32 * pass + l (l < 32) is bits 2*pass of byte 32 * half + l."""
    nb = qs64.shape[0]
    q = qs64.astype(np.int32).reshape(nb, 2, 1, 32)
    shifts = np.array([0, 2, 4, 6]).reshape(1, 1, 4, 1)
    return ((q >> shifts) & 3).reshape(nb, 256)


def deq_q2_k(raw):
    b = raw.reshape(-1, 84)
    sc = b[:, 0:16].astype(np.int32)                                      # one byte per 16 values
    d, dmin = f16_field(b, 80), f16_field(b, 82)
    q = two_bit_planes(b[:, 16:80]).astype(F32)
    dl = d[:, None] * (sc & 15).astype(F32)                                # (nb, 16)
    ml = dmin[:, None] * (sc >> 4).astype(F32)
    y = np.repeat(dl, 16, axis=1) * q - np.repeat(ml, 16, axis=1)
    return y.astype(F32).reshape(-1)


def deq_q3_k(raw):
    b = raw.reshape(-1, 110)
    nb = b.shape[0]
    hmask, s = b[:, 0:32], b[:, 96:108].astype(np.int32)
    d = f16_field(b, 108)
    # 16 six-bit scales: low nibbles of bytes 0-7 then high nibbles of bytes 0-7;
    # top two bits: bits 2k..2k+1 of byte 8 + g % 4 with k = g // 4
    low = np.concatenate([s[:, 0:8] & 15, s[:, 0:8] >> 4], axis=1)
    g = np.arange(16)
    high = (s[:, 8 + g % 4] >> (2 * (g // 4))) & 3
    scale = (low | (high << 4)) - 32                                       # (nb, 16)
    # high bit of value v = 32 * p + l is bit p of hmask[l] (p = 0..7 over both halves)
    hbit = np.unpackbits(hmask[:, None, :], axis=1, bitorder='little')    # (nb, 8, 32): [p, l]
    q = two_bit_planes(b[:, 32:96]) - 4 * (1 - hbit.reshape(nb, 256).astype(np.int32))
    dl = d[:, None] * scale.astype(F32)
    return (np.repeat(dl, 16, axis=1) * q.astype(F32)).astype(F32).reshape(-1)


def k4_scales(s):
    """Q4_K/Q5_K: 8 six-bit scales and mins from (nb, 12) packed bytes."""
    sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)], axis=1)
    mn = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], axis=1)
    return sc, mn


def deq_q5_k(raw):
    b = raw.reshape(-1, 176)
    nb = b.shape[0]
    d, dmin = f16_field(b, 0), f16_field(b, 2)
    sc, mn = k4_scales(b[:, 4:16].astype(np.int32))
    qh = np.unpackbits(b[:, None, 16:48], axis=1, bitorder='little').astype(np.int32)  # (nb, 8, 32): bit j of qh[l]
    qs = b[:, 48:176].reshape(nb, 4, 32).astype(np.int32)
    lo = np.stack([qs & 15, qs >> 4], axis=2).reshape(nb, 8, 32)          # sub-block 2k, 2k+1
    q = (lo | (qh << 4)).astype(F32)
    scale = d[:, None] * sc.astype(F32)
    mins = dmin[:, None] * mn.astype(F32)
    y = scale[:, :, None] * q - mins[:, :, None]
    return y.astype(F32).reshape(-1)


# block bytes, and (offset, std) of the f16 scale fields in each block
BLOCKS = {'q8_0': (34, [(0, 0.05)]), 'q4_0': (18, [(0, 0.05)]),
          'q4_k': (144, [(0, 0.01), (2, 0.01)]), 'q6_k': (210, [(208, 0.002)]),
          'q4_1': (20, [(0, 0.05), (2, 0.5)]), 'q5_0': (22, [(0, 0.05)]),
          'q5_1': (24, [(0, 0.05), (2, 0.5)]), 'q2_k': (84, [(80, 0.05), (82, 0.02)]),
          'q3_k': (110, [(108, 0.005)]), 'q5_k': (176, [(0, 0.01), (2, 0.01)])}


def make_blocks(kind, nblocks, gen=None):
    """Random block bytes with finite f16 scales in the right places."""
    gen = gen if gen is not None else rng
    size, fields = BLOCKS[kind]
    b = gen.integers(0, 256, (nblocks, size), dtype=np.uint16).astype(np.uint8)
    for off, std in fields:
        b[:, off:off + 2] = small_f16(nblocks, std, gen).view(np.uint8).reshape(nblocks, 2)
    return b.reshape(-1)


# ---------- writers ----------

def write_expected(name, values):
    os.makedirs(os.path.join(OUT, 'expected'), exist_ok=True)
    np.asarray(values, dtype='<f4').tofile(os.path.join(OUT, 'expected', name + '.f32'))


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header, off = {'__metadata__': {'format': 'pt', 'note': 'quire fixture'}}, 0
    for name, dt, shape, raw in tensors:
        header[name] = {'dtype': dt, 'shape': list(shape), 'data_offsets': [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h)
        for _, _, _, raw in tensors:
            f.write(raw)
    return off


def st_tensor(name, dt, shape):
    n = int(np.prod(shape))
    if dt == 'F32':
        v = rng.standard_normal(n).astype('<f4')
        raw, exp = v.tobytes(), v
    elif dt == 'F16':
        bits = rand_f16_bits(n)
        raw, exp = bits.astype('<u2').tobytes(), f16_to_f32(bits)
    else:
        bits = rand_bf16_bits(n)
        raw, exp = bits.astype('<u2').tobytes(), bf16_to_f32(bits)
    write_expected(name, exp)
    return (name, dt, shape, raw)


GGML = {'F32': 0, 'F16': 1, 'Q4_0': 2, 'Q4_1': 3, 'Q5_0': 6, 'Q5_1': 7, 'Q8_0': 8, 'Q2_K': 10, 'Q3_K': 11,
        'Q4_K': 12, 'Q5_K': 13, 'Q6_K': 14, 'BF16': 30}


def gguf_str(s):
    s = s.encode()
    return struct.pack('<Q', len(s)) + s


def write_gguf(path, tensors, align=64):
    """tensors: list of (name, ggml type name, torch shape, raw bytes)."""
    kv = [gguf_str('general.architecture') + struct.pack('<I', 8) + gguf_str('fixture'),
          gguf_str('general.alignment') + struct.pack('<II', 4, align),
          gguf_str('fixture.words') + struct.pack('<IIQ', 9, 8, 2) + gguf_str('alpha') + gguf_str('beta')]
    out = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kv)) + b''.join(kv)
    off, data = 0, b''
    for name, ty, shape, raw in tensors:
        ne = list(reversed(shape))  # ggml: innermost first
        out += gguf_str(name) + struct.pack('<I', len(ne)) + struct.pack('<%dQ' % len(ne), *ne)
        out += struct.pack('<IQ', GGML[ty], off)
        pad = (align - len(raw) % align) % align
        data += raw + b'\0' * pad
        off += len(raw) + pad
    out += b'\0' * ((align - len(out) % align) % align)
    with open(path, 'wb') as f:
        f.write(out + data)


def main():
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, 'st_single', 'model.safetensors'), [
        st_tensor('f32.weight', 'F32', (3, 5)),
        st_tensor('f16.weight', 'F16', (4, 8)),
        st_tensor('bf16.weight', 'BF16', (2, 3, 4)),
        st_tensor('scalar', 'F32', ()),
    ])
    shards = [
        ('model-00001-of-00002.safetensors', [st_tensor('model.embed.weight', 'BF16', (6, 4)),
                                              st_tensor('model.layers.0.w', 'F32', (4, 4)),
                                              # an int64 buffer, as old transformers saved BERT's
                                              # position_ids: readers must skip it
                                              ('model.position_ids', 'I64', (1, 6),
                                               np.arange(6, dtype='<i8').tobytes())]),
        ('model-00002-of-00002.safetensors', [st_tensor('model.layers.1.w', 'F16', (4, 4)),
                                              st_tensor('lm_head.weight', 'F32', (6, 4))]),
    ]
    total, wmap = 0, {}
    for fname, ts in shards:
        total += write_safetensors(os.path.join(OUT, 'st_sharded', fname), ts)
        for t in ts:
            wmap[t[0]] = fname
    with open(os.path.join(OUT, 'st_sharded', 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': wmap}, f, indent=2)

    gg = []
    for name, kind, shape, blk, deq in [('q8_0.weight', 'Q8_0', (4, 64), 32, deq_q8_0),
                                        ('q4_0.weight', 'Q4_0', (3, 96), 32, deq_q4_0),
                                        ('q4_k.weight', 'Q4_K', (2, 512), 256, deq_q4_k),
                                        ('q6_k.weight', 'Q6_K', (3, 256), 256, deq_q6_k)]:
        raw = make_blocks(kind.lower(), shape[0] * shape[1] // blk)
        write_expected(name, deq(raw))
        gg.append((name, kind, shape, raw.tobytes()))
    for name, dt, shape in [('f16.weight', 'F16', (2, 16)), ('bf16.weight', 'BF16', (2, 16)),
                            ('f32.weight', 'F32', (5,))]:
        t = st_tensor('gguf.' + name, dt, shape)
        os.replace(os.path.join(OUT, 'expected', 'gguf.%s.f32' % name),
                   os.path.join(OUT, 'expected', 'gguf_%s.f32' % name))
        gg.append((name, dt, shape, t[3]))
    # the types added later, from rng2; q5_0 has a row of 896 (Qwen2.5-0.5B's hidden
    # size, where llama.cpp's Q4_K_M falls back to Q5_0)
    for name, kind, shape, blk, deq in [('q4_1.weight', 'Q4_1', (3, 64), 32, deq_q4_1),
                                        ('q5_0.weight', 'Q5_0', (2, 896), 32, deq_q5_0),
                                        ('q5_1.weight', 'Q5_1', (3, 96), 32, deq_q5_1),
                                        ('q2_k.weight', 'Q2_K', (3, 256), 256, deq_q2_k),
                                        ('q3_k.weight', 'Q3_K', (2, 512), 256, deq_q3_k),
                                        ('q5_k.weight', 'Q5_K', (3, 512), 256, deq_q5_k)]:
        raw = make_blocks(kind.lower(), shape[0] * shape[1] // blk, rng2)
        write_expected(name, deq(raw))
        gg.append((name, kind, shape, raw.tobytes()))
    write_gguf(os.path.join(OUT, 'quant.gguf'), gg)
    return 0


if __name__ == '__main__':
    sys.exit(main())
