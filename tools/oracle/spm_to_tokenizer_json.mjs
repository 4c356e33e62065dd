// Converts a SentencePiece BPE model (tokenizer.model, protobuf) into a Hugging Face
// tokenizer.json of the Llama-2 / TinyLlama / Mistral kind ("legacy" SentencePiece-style
// BPE with byte fallback), the same shape transformers' Llama converter produces:
//
//   normalizer     Sequence[Prepend("▁"), Replace(" " → "▁")]
//   pre_tokenizer  null
//   model          BPE(vocab = pieces by id, merges below, unk "<unk>", fuse_unk, byte_fallback)
//   post_processor TemplateProcessing: single "<s> $A", pair "<s> $A <s> $B"
//   decoder        Sequence[Replace("▁" → " "), ByteFallback, Fuse, Strip(" ", 1, 0)]
//   added_tokens   ids 0, 1, 2 (<unk>, <s>, </s>), special, not normalized
//
// Merges are derived from the vocabulary and the scores: every split of a piece
// (at a code-point boundary) into two pieces that are both in the vocabulary is a
// merge; the merges of one piece are ordered by (id of left, id of right), pieces in
// id order, and the whole list is then stably sorted by the piece's score, highest
// first. This is the rule by which the Hugging Face converter turns a score-based
// SentencePiece vocabulary into rank-ordered BPE merges.
//
//   node spm_to_tokenizer_json.mjs tokenizer.model out/tokenizer.json
//
// The protobuf is parsed here directly (ModelProto: 1 = repeated SentencePiece
// {1 piece, 2 score (float), 3 type}, 2 = TrainerSpec, 3 = NormalizerSpec).

import fs from 'node:fs';

function reader(buf) {
    let pos = 0;
    const varint = () => {
        let v = 0n, shift = 0n;
        for (;;) {
            if (pos >= buf.length) throw new Error('truncated varint');
            const b = buf[pos++];
            v |= BigInt(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
            shift += 7n;
        }
    };
    // Yields [field, wireType, value]: value is a BigInt (varint), a Buffer (length-
    // delimited) or the raw 4/8 bytes (fixed32/fixed64).
    function* fields(end = buf.length) {
        while (pos < end) {
            const key = Number(varint());
            const field = key >>> 3, wt = key & 7;
            if (wt === 0) yield [field, wt, varint()];
            else if (wt === 1) { yield [field, wt, buf.subarray(pos, pos + 8)]; pos += 8; }
            else if (wt === 2) {
                const n = Number(varint());
                if (pos + n > end) throw new Error('truncated length-delimited field');
                yield [field, wt, buf.subarray(pos, pos + n)];
                pos += n;
            } else if (wt === 5) { yield [field, wt, buf.subarray(pos, pos + 4)]; pos += 4; }
            else throw new Error(`unsupported wire type ${wt}`);
        }
    }
    return { fields };
}

export function parseModel(path) {
    const buf = fs.readFileSync(path);
    const pieces = [];
    const trainer = {}, normalizer = {};
    for (const [f, wt, v] of reader(buf).fields()) {
        if (f === 1 && wt === 2) {
            const p = { piece: '', score: 0, type: 1 }; // type NORMAL unless given
            for (const [pf, pwt, pv] of reader(v).fields()) {
                if (pf === 1 && pwt === 2) p.piece = pv.toString('utf8');
                else if (pf === 2 && pwt === 5) p.score = pv.readFloatLE(0);
                else if (pf === 3 && pwt === 0) p.type = Number(pv);
            }
            pieces.push(p);
        } else if (f === 2 && wt === 2) {
            for (const [tf, twt, tv] of reader(v).fields()) {
                if (tf === 3 && twt === 0) trainer.model_type = Number(tv); // 1 UNIGRAM, 2 BPE
                if (tf === 35 && twt === 0) trainer.byte_fallback = tv !== 0n;
                if (tf === 40 && twt === 0) trainer.unk_id = Number(tv);
                if (tf === 41 && twt === 0) trainer.bos_id = Number(tv);
                if (tf === 42 && twt === 0) trainer.eos_id = Number(tv);
                if (tf === 45 && twt === 2) trainer.unk_piece = tv.toString('utf8');
            }
        } else if (f === 3 && wt === 2) {
            for (const [nf, nwt, nv] of reader(v).fields()) {
                if (nf === 1 && nwt === 2) normalizer.name = nv.toString('utf8');
                if (nf === 3 && nwt === 0) normalizer.add_dummy_prefix = nv !== 0n;
                if (nf === 4 && nwt === 0) normalizer.remove_extra_whitespaces = nv !== 0n;
            }
        }
    }
    return { pieces, trainer, normalizer };
}

export function deriveMerges(pieces) {
    const id = new Map(pieces.map((p, i) => [p.piece, i]));
    const all = [];
    pieces.forEach((p) => {
        const cps = [...p.piece]; // split at code points, not UTF-16 units
        const local = [];
        for (let k = 1; k < cps.length; k++) {
            const l = cps.slice(0, k).join(''), r = cps.slice(k).join('');
            if (id.has(l) && id.has(r)) local.push([l, r, p.score]);
        }
        local.sort((a, b) => (id.get(a[0]) - id.get(b[0])) || (id.get(a[1]) - id.get(b[1])));
        all.push(...local);
    });
    // Array.prototype.sort is stable (ES2019): equal scores keep the order above.
    all.sort((a, b) => b[2] - a[2]);
    return all.map((m) => `${m[0]} ${m[1]}`);
}

export function toTokenizerJson(model) {
    const { pieces } = model;
    const vocab = {};
    pieces.forEach((p, i) => { vocab[p.piece] = i; });
    const special = (i) => ({ id: i, content: pieces[i].piece, single_word: false, lstrip: false, rstrip: false,
        normalized: false, special: true });
    const bos = pieces[1].piece;
    return {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [special(0), special(1), special(2)],
        normalizer: { type: 'Sequence', normalizers: [
            { type: 'Prepend', prepend: '▁' },
            { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ] },
        pre_tokenizer: null,
        post_processor: {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
                { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
            special_tokens: { [bos]: { id: bos, ids: [1], tokens: [bos] } },
        },
        decoder: { type: 'Sequence', decoders: [
            { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
            { type: 'ByteFallback' },
            { type: 'Fuse' },
            { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ] },
        model: {
            type: 'BPE', dropout: null, unk_token: pieces[0].piece, continuing_subword_prefix: null,
            end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
            vocab, merges: deriveMerges(pieces),
        },
    };
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const [src, dst] = process.argv.slice(2);
    if (!src || !dst) {
        console.error('usage: node spm_to_tokenizer_json.mjs tokenizer.model tokenizer.json');
        process.exit(2);
    }
    const model = parseModel(src);
    const p = model.pieces;
    // This converter implements the Llama-2 layout only; refuse anything else.
    if (model.trainer.model_type !== 2) throw new Error(`${src}: not a BPE SentencePiece model`);
    if (!model.trainer.byte_fallback) throw new Error(`${src}: byte_fallback is off`);
    if (p[0].type !== 2 || p[1].type !== 3 || p[2].type !== 3) throw new Error(`${src}: ids 0-2 are not <unk>, <s>, </s>`);
    const json = toTokenizerJson(model);
    fs.writeFileSync(dst, JSON.stringify(json) + '\n');
    console.log(`${dst}: ${p.length} pieces, ${json.model.merges.length} merges; trainer ${JSON.stringify(model.trainer)}, ` +
        `normalizer ${JSON.stringify(model.normalizer)}`);
}
