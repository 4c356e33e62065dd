#!/usr/bin/env python3
"""Writes tests/fixtures/models/qwen2-tp: a Qwen2-structure model (q/k/v bias, tied
embeddings) whose heads, KV heads and FFN split 2 and 4 ways, for the tensor-parallel
tests (tests/unit/models/test_tp.c). The fixture tests/fixtures/models/qwen2 keeps
Qwen2.5-0.5B's 7:1 heads, which no TP degree above 1 divides.

Weights, expected.json (torch float64 reference) and the other files come from
ref_models.gen_decoder, exactly as for the other decoder fixtures, so the parity test
(tests/unit/parity/test_parity.c) checks TP = 1 on it too.

  tp_fixtures.py OUTDIR      (OUTDIR = tests/fixtures/models)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_models as R  # noqa: E402

QWEN2_TP = dict(R.QWEN2)
QWEN2_TP.update({
    "_note": "Qwen2 structure (q/k/v bias, tied embeddings, theta 1e6, eps 1e-6) with 8 heads / 2 KV heads "
             "and FFN 160, so tensor parallelism splits it 2, 4 (KV heads replicated) and 8 ways",
    "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 8, "num_key_value_heads": 2,
})


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    R.gen_decoder(sys.argv[1], "qwen2-tp", QWEN2_TP, 4001)


if __name__ == "__main__":
    main()
