"""What the real-model tests of this folder need, or exit 77 (SKIP) naming the script that brings it."""
import os
import sys


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def minilm():
    """The all-MiniLM-L6-v2 directory fetched by tools/models.sh."""
    model = os.path.join(os.environ.get("QUIRE_MODELS", ""), "all-MiniLM-L6-v2")
    if not os.path.isfile(os.path.join(model, "model.safetensors")):
        skip(f"{model} missing: run tools/models.sh")
    return model


def shared_data(name):
    """A data set of ../shared/data (QUIRE_SHARED)."""
    src = os.path.join(os.environ.get("QUIRE_SHARED", ""), "data", name)
    if not os.path.isfile(os.path.join(src, "corpus.jsonl")):
        skip(f"{src} missing (../shared evaluation data)")
    return src
