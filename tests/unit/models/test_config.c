/* Model configs from real HF files (values visible in the JSON), from GGUF
 * metadata (stories260K, per tests/fixtures/models/README.md), error cases built in
 * a temporary directory, and RoPE frequencies against hand-computed values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/models/config.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"

static char tmpdir[256];

static void write_file(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void rm_file(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    unlink(p);
}

static void test_minilm(void)
{
    qr_model_config c;
    CHECK_OK(qr_config_load(FIXTURE("models/all-MiniLM-L6-v2-tokenizer"), &c));
    CHECK(c.arch == QR_ARCH_BERT);
    CHECK(strcmp(c.arch_name, "bert") == 0);
    CHECK_INT(c.d_model, 384);
    CHECK_INT(c.n_layer, 6);
    CHECK_INT(c.n_head, 12);
    CHECK_INT(c.n_kv_head, 12);
    CHECK_INT(c.head_dim, 32);
    CHECK_INT(c.d_ff, 1536);
    CHECK_INT(c.vocab_size, 30522);
    CHECK_INT(c.max_pos, 512);
    CHECK_INT(c.type_vocab_size, 2);
    CHECK_NEAR(c.norm_eps, 1e-12, 1e-18);
    CHECK(c.pooling == QR_POOL_MEAN);
    CHECK(c.normalize);                /* 2_Normalize in modules.json */
    CHECK_INT(c.max_seq_length, 256);  /* sentence_bert_config.json */
}

static void test_qwen(void)
{
    qr_model_config c;
    CHECK_OK(qr_config_from_dir(FIXTURE("models/qwen2.5-tokenizer"), &c));
    CHECK(c.arch == QR_ARCH_QWEN2);
    CHECK_INT(c.d_model, 896);
    CHECK_INT(c.n_layer, 24);
    CHECK_INT(c.n_head, 14);
    CHECK_INT(c.n_kv_head, 2);
    CHECK_INT(c.head_dim, 64);
    CHECK_INT(c.d_ff, 4864);
    CHECK_INT(c.vocab_size, 151936);
    CHECK_INT(c.max_pos, 32768);
    CHECK_NEAR(c.rope_theta, 1e6, 1e-3);
    CHECK_NEAR(c.norm_eps, 1e-6, 1e-12);
    CHECK(c.rope_scaling == QR_ROPE_NONE);
    CHECK(c.tie_embeddings);
    CHECK(c.qkv_bias);
    CHECK(!c.attn_out_bias);
    CHECK_INT(c.bos_id, 151643);
    /* generation_config.json's list replaces config.json's single id */
    CHECK_INT(c.n_eos, 2);
    CHECK_INT(c.eos_ids[0], 151645);
    CHECK_INT(c.eos_ids[1], 151643);
}

static void test_fixture_llama3(void)
{
    qr_model_config c;
    CHECK_OK(qr_config_load(FIXTURE("models/llama3"), &c));
    CHECK(c.arch == QR_ARCH_LLAMA);
    CHECK_INT(c.n_kv_head, 1);
    CHECK_INT(c.head_dim, 16);
    CHECK(c.rope_scaling == QR_ROPE_LLAMA3);
    CHECK_NEAR(c.rope_factor, 8, 0);
    CHECK_NEAR(c.rope_low_freq_factor, 1, 0);
    CHECK_NEAR(c.rope_high_freq_factor, 4, 0);
    CHECK_INT(c.rope_orig_max_pos, 64);
    CHECK(!c.tie_embeddings);
    CHECK(!c.qkv_bias);
    CHECK_INT(c.n_eos, 2);
    CHECK_INT(c.eos_ids[0], 510);
    CHECK_INT(c.eos_ids[1], 511);

    /* inv_freq for head_dim 16, theta 1e4, factor 8, bands 64/1 and 64/4:
     * i=0 high frequency (wavelength 2pi < 16): unchanged; i=1, 2 medium:
     * (1-s) f/8 + s f with s = (64/wavelength - 1)/3; i>=3 low: f/8. */
    float f[8];
    CHECK_OK(qr_rope_inv_freq(&c, f));
    const double want[8] = {1.0, 0.24438459943539834, 0.013042256043820465, 0.003952847075210474,
                            0.00125, 0.0003952847075210474, 0.000125, 3.952847075210474e-05};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(f[i], want[i], want[i] * 2e-6);

    c.rope_scaling = QR_ROPE_LINEAR;
    c.rope_factor = 4;
    CHECK_OK(qr_rope_inv_freq(&c, f));
    CHECK_NEAR(f[0], 0.25, 1e-7);
    CHECK_NEAR(f[2], 0.1 / 4, 1e-8);
}

static void test_gguf(void)
{
    qr_model_config c;
    CHECK_OK(qr_config_load(FIXTURE("models/stories260K/stories260K.gguf"), &c));
    CHECK(c.arch == QR_ARCH_LLAMA);
    CHECK_INT(c.d_model, 64);
    CHECK_INT(c.n_layer, 5);
    CHECK_INT(c.n_head, 8);
    CHECK_INT(c.n_kv_head, 4);
    CHECK_INT(c.head_dim, 8);
    CHECK_INT(c.d_ff, 172);
    CHECK_INT(c.vocab_size, 512);
    CHECK_INT(c.bos_id, 1);
    CHECK(c.n_eos >= 1 && c.eos_ids[0] == 2);
    CHECK_NEAR(c.norm_eps, 1e-5, 1e-11);
    CHECK_NEAR(c.rope_theta, 10000, 1e-3);
    CHECK(!c.tie_embeddings); /* separate output.weight */
    CHECK(c.max_pos > 61);
}

static void test_errors(void)
{
    qr_model_config c;
    memset(&c, 0x5a, sizeof c);
    qr_model_config before = c;
    write_file("config.json", "{\"model_type\": \"gpt2\", \"hidden_size\": 8}");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_EUNSUPPORTED);
    CHECK(strstr(qr_last_error(), "gpt2") && strstr(qr_last_error(), "config.json"));
    CHECK(memcmp(&c, &before, sizeof c) == 0); /* untouched on failure */

    write_file("config.json", "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                              " \"intermediate_size\": 32, \"vocab_size\": 100}");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "hidden_size") && strstr(qr_last_error(), "config.json"));

    write_file("config.json", "{\"model_type\": \"llama\", \"hidden_size\": \"big\", \"num_hidden_layers\": 2,"
                              " \"num_attention_heads\": 4, \"intermediate_size\": 32, \"vocab_size\": 100}");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "hidden_size") != NULL);

    write_file("config.json", "{\"model_type\": \"llama\", \"hidden_size\": 32, \"num_hidden_layers\": 2,");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_EFORMAT);

    /* linear rope scaling with the old "type" key; defaults for absent keys */
    write_file("config.json", "{\"model_type\": \"mistral\", \"hidden_size\": 32, \"num_hidden_layers\": 2,"
                              " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 48,"
                              " \"vocab_size\": 100, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0},"
                              " \"eos_token_id\": 2, \"bos_token_id\": 1, \"sliding_window\": 64,"
                              " \"max_position_embeddings\": 1000}");
    CHECK_OK(qr_config_from_dir(tmpdir, &c));
    CHECK_INT(c.max_pos, 64); /* capped to the sliding window */
    CHECK(c.rope_scaling == QR_ROPE_LINEAR);
    CHECK_NEAR(c.rope_factor, 2, 0);
    CHECK_INT(c.head_dim, 8);
    CHECK_INT(c.n_kv_head, 2);
    CHECK_NEAR(c.norm_eps, 1e-6, 1e-12);
    CHECK_NEAR(c.rope_theta, 10000, 0);
    CHECK_INT(c.n_eos, 1);
    CHECK_INT(c.eos_ids[0], 2);
    CHECK_INT(c.bos_id, 1);

    write_file("config.json", "{\"model_type\": \"llama\", \"hidden_size\": 32, \"num_hidden_layers\": 2,"
                              " \"num_attention_heads\": 4, \"intermediate_size\": 48, \"vocab_size\": 100,"
                              " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0}}");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_EUNSUPPORTED);
    CHECK(strstr(qr_last_error(), "yarn") != NULL);

    /* heads that do not divide: 4 heads over 3 kv heads */
    write_file("config.json", "{\"model_type\": \"llama\", \"hidden_size\": 32, \"num_hidden_layers\": 2,"
                              " \"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"intermediate_size\": 48,"
                              " \"vocab_size\": 100}");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_EFORMAT);

    /* sentence-transformers: CLS pooling in a Pooling dir, no Normalize */
    char p[512];
    snprintf(p, sizeof p, "%s/pool", tmpdir);
    mkdir(p, 0700);
    write_file("config.json", "{\"model_type\": \"bert\", \"hidden_size\": 8, \"num_hidden_layers\": 1,"
                              " \"num_attention_heads\": 2, \"intermediate_size\": 16, \"vocab_size\": 50}");
    write_file("modules.json", "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
                               "{\"idx\":1,\"name\":\"1\",\"path\":\"pool\",\"type\":\"sentence_transformers.models.Pooling\"}]");
    write_file("pool/config.json", "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": false}");
    CHECK_OK(qr_config_from_dir(tmpdir, &c));
    CHECK(c.pooling == QR_POOL_CLS);
    CHECK(!c.normalize);
    CHECK_INT(c.max_seq_length, 0);
    CHECK_INT(c.max_pos, 512);
    write_file("pool/config.json", "{\"pooling_mode_lasttoken\": true}");
    CHECK_OK(qr_config_from_dir(tmpdir, &c));
    CHECK(c.pooling == QR_POOL_LAST);
    write_file("pool/config.json", "{\"pooling_mode_max_tokens\": true}");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_EUNSUPPORTED);
    rm_file("pool/config.json");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_ENOTFOUND);
    rmdir(p);
    rm_file("modules.json");
    rm_file("config.json");
    CHECK_INT(qr_config_from_dir(tmpdir, &c), QR_ENOTFOUND);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/quire_test_config_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_minilm();
    test_qwen();
    test_fixture_llama3();
    test_gguf();
    test_errors();
    rmdir(tmpdir);
    return qr_test_done();
}
