/* quire command-line entry point: the only code that prints results or exits. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct { const char *name; int (*fn)(int, char **); const char *help; } commands[] = {
    {"tokenize", cli_tokenize, "text on stdin -> token ids (JSON arrays)"},
    {"embed", cli_embed, "texts on stdin -> embeddings (JSON arrays of floats)"},
    {"generate", cli_generate, "complete a prompt with a language model"},
    {"estimate", cli_estimate, "GPU memory a model needs at a precision, and which GPUs it fits"},
    {"search", cli_search, "hybrid search of a store (dense + BM25, RRF, rerank, MMR); --json for scripts"},
    {"ask", cli_ask, "answer a question from a store with cited sources (LLM with --model, else extractive)"},
    {"ingest", cli_ingest, "add files and directories to a store (BM25, and vectors with an embedder)"},
    {"rm", cli_rm, "delete the documents of files or directories from a store"},
    {"merge", cli_merge, "join shard stores (ingest --shard, one per Slurm array task) into one store"},
    {"serve", cli_serve, "HTTP API (search, ask, OpenAI-compatible completions/embeddings) over a store"},
    {"wait", cli_wait, "block until the server named by an endpoint file answers /ready (for batch scripts)"},
    {"info", cli_info, "what a store holds: counts, sizes, embedder, index type, formats"},
    {"eval", cli_eval, "retrieval quality on a BEIR dataset (BM25; nDCG@10, Recall@100/1000, MRR@10)"},
    {"config", cli_config, "show effective options and their origin; --dump-default prints quire.conf"},
    {"version", cli_version, "print the version"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: quire COMMAND [options]   (quire COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nexit codes: 0 ok, 1 error, 2 usage/option error, 3 bad stdin input, 4 model or file not found,\n"
               "5 unsupported in this build or for this model\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cli_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "quire: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
