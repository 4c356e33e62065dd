// Builds a Hugging Face tokenizer.json (GPT-2 layout) from the vocabulary of a GGUF file
// whose tokenizer.ggml.model is "gpt2" and tokenizer.ggml.pre "gpt-2"/"default", so the
// Hugging Face `tokenizers` library can serve as the reference for quire's GGUF loader:
//
//   pre_tokenizer ByteLevel(add_prefix_space=false, use_regex=true), model BPE (vocab =
//   tokenizer.ggml.tokens by index, merges = tokenizer.ggml.merges in order), decoder and
//   post-processor ByteLevel, control tokens (token_type 3) as special added tokens.
//
//   node gguf_to_tokenizer_json.mjs ggml-vocab-gpt-2.gguf out.json
//
// readGguf() parses GGUF v2/v3 metadata (the tensor infos are not needed here).

import fs from 'node:fs';

export function readGguf(path) {
    const buf = fs.readFileSync(path);
    let pos = 0;
    const u32 = () => { const v = buf.readUInt32LE(pos); pos += 4; return v; };
    const u64 = () => { const v = buf.readBigUInt64LE(pos); pos += 8; return Number(v); };
    const str = () => { const n = u64(); const s = buf.toString('utf8', pos, pos + n); pos += n; return s; };
    const scalar = {
        0: () => buf.readUInt8(pos++), 1: () => buf.readInt8(pos++),
        2: () => { const v = buf.readUInt16LE(pos); pos += 2; return v; },
        3: () => { const v = buf.readInt16LE(pos); pos += 2; return v; },
        4: u32, 5: () => { const v = buf.readInt32LE(pos); pos += 4; return v; },
        6: () => { const v = buf.readFloatLE(pos); pos += 4; return v; },
        7: () => buf.readUInt8(pos++) !== 0, 8: str,
        10: u64, 11: () => { const v = buf.readBigInt64LE(pos); pos += 8; return Number(v); },
        12: () => { const v = buf.readDoubleLE(pos); pos += 8; return v; },
    };
    const value = (t) => {
        if (t === 9) {
            const et = u32(), n = u64();
            return Array.from({ length: n }, () => value(et));
        }
        if (!scalar[t]) throw new Error(`${path}: unknown GGUF type ${t}`);
        return scalar[t]();
    };
    if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path}: not a GGUF file`);
    pos = 4;
    const version = u32();
    if (version < 2) throw new Error(`${path}: GGUF v${version} not supported`);
    u64(); // tensors
    const nkv = u64();
    const kv = {};
    for (let i = 0; i < nkv; i++) {
        const k = str();
        kv[k] = value(u32());
    }
    return kv;
}

export function gpt2TokenizerJson(kv) {
    if (kv['tokenizer.ggml.model'] !== 'gpt2') throw new Error('not a gpt2 vocabulary');
    const pre = kv['tokenizer.ggml.pre'] ?? 'default';
    if (pre !== 'gpt-2' && pre !== 'default') throw new Error(`pre-tokenizer ${pre}: only gpt-2 here`);
    const tokens = kv['tokenizer.ggml.tokens'];
    const types = kv['tokenizer.ggml.token_type'] ?? tokens.map(() => 1);
    const vocab = {};
    tokens.forEach((t, i) => { vocab[t] = i; });
    const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    return {
        version: '1.0', truncation: null, padding: null,
        added_tokens: tokens.flatMap((t, i) => (types[i] === 3 ? [{ id: i, content: t, single_word: false,
            lstrip: false, rstrip: false, normalized: false, special: true }] : [])),
        normalizer: null, pre_tokenizer: bl, post_processor: bl, decoder: bl,
        model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
            fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: kv['tokenizer.ggml.merges'] },
    };
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const [src, dst] = process.argv.slice(2);
    const kv = readGguf(src);
    fs.writeFileSync(dst, JSON.stringify(gpt2TokenizerJson(kv)) + '\n');
    console.log(`${dst}: ${kv['tokenizer.ggml.tokens'].length} tokens, ${kv['tokenizer.ggml.merges'].length} merges`);
}
