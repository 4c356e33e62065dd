"""Writes tests/fixtures/prompt/qwen_counts.json: for the question and sources in
tests/fixtures/prompt/sources.json and k = 0..n sources, the prompt rendered by
transformers' apply_chat_template (Jinja2, the Qwen2.5 chat template of
tests/fixtures/models/qwen2.5-tokenizer) and its token count from the Hugging Face `tokenizers`
library (encode without added special tokens, as apply_chat_template(tokenize=True)
does). The user message format is written here independently from generate/prompt.c,
following prompt.h. Both packages are pinned in tools/python/requirements.txt.

  build/venv/bin/python tools/prompt_oracle/gen_prompt_counts.py
"""
import json
import os

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))

INSTRUCTION = (
    'Answer the question using only the numbered sources below. Cite the sources that support each '
    'statement with their numbers in square brackets, like [1] or [2, 3]. If the sources do not contain '
    'the answer, say so.')


def label(s):
    lab = s['path']
    if s.get('title'):
        lab += f' "{s["title"]}"'
    if s.get('page', 0) > 0:
        lab += f', page {s["page"]}'
    if s.get('heading'):
        lab += f', section {s["heading"]}'
    return lab


def user(fx, k):
    u = 'Sources:\n\n'
    for i in range(k):
        src = fx['sources'][i]
        u += f'[{i + 1}] {label(src)}\n{src["text"]}\n\n'
    if k == 0:
        u += '(no sources)\n\n'
    return u + 'Question: ' + fx['question']


def main():
    with open(os.path.join(ROOT, 'tests/fixtures/prompt/sources.json'), encoding='utf-8') as f:
        fx = json.load(f)
    d = os.path.join(ROOT, 'tests', 'fixtures', 'models', 'qwen2.5-tokenizer')
    chat = PreTrainedTokenizerFast.from_pretrained(d)  # local directory: tokenizer_config.json's chat_template
    tok = Tokenizer.from_file(os.path.join(d, 'tokenizer.json'))
    out = []
    for k in range(len(fx['sources']) + 1):
        text = chat.apply_chat_template(
            [{'role': 'system', 'content': INSTRUCTION}, {'role': 'user', 'content': user(fx, k)}],
            tokenize=False, add_generation_prompt=True)
        out.append({'k': k, 'n_tokens': len(tok.encode(text, add_special_tokens=False).ids), 'text': text})
    with open(os.path.join(ROOT, 'tests/fixtures/prompt/qwen_counts.json'), 'w', encoding='utf-8') as f:
        f.write(json.dumps(out, indent=1, ensure_ascii=False) + '\n')
    print('\n'.join(f'{o["k"]}: {o["n_tokens"]}' for o in out))


if __name__ == '__main__':
    main()
