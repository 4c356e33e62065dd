/* Model hyper-parameters, filled from a Hugging Face config.json (plus the
 * sentence-transformers files and generation_config.json) or from GGUF
 * metadata; both map to the same struct. */
#ifndef QR_RUNTIME_MODEL_CONFIG_H
#define QR_RUNTIME_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/weights/weights.h"

typedef enum { QR_ARCH_BERT = 0, QR_ARCH_LLAMA, QR_ARCH_QWEN2 } qr_arch;
typedef enum { QR_ROPE_NONE = 0, QR_ROPE_LINEAR, QR_ROPE_LLAMA3 } qr_rope_scaling;

#define QR_MAX_EOS 8

typedef struct qr_model_config {
    qr_arch arch;
    char arch_name[32];      /* "bert", "llama", "mistral", "qwen2" as given */
    int32_t vocab_size;
    int32_t d_model;         /* hidden_size */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_kv_head;       /* = n_head without GQA */
    int32_t head_dim;        /* usually d_model / n_head */
    int32_t d_ff;            /* intermediate_size */
    int32_t max_pos;         /* max_position_embeddings */
    float norm_eps;          /* layer_norm_eps / rms_norm_eps */
    /* decoder */
    float rope_theta;
    qr_rope_scaling rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int32_t rope_orig_max_pos;
    bool tie_embeddings;
    bool qkv_bias;           /* Qwen2 (always), Llama attention_bias, BERT */
    bool attn_out_bias;      /* o_proj bias: Llama attention_bias, BERT */
    bool mlp_bias;           /* Llama mlp_bias, BERT */
    int32_t bos_id;          /* -1 if none */
    int32_t eos_ids[QR_MAX_EOS];
    int n_eos;
    /* encoder */
    int32_t type_vocab_size;
    qr_pool_mode pooling;
    bool normalize;
    int32_t max_seq_length;  /* sentence-transformers truncation; 0 = max_pos */
} qr_model_config;

/* Reads config.json (+ sentence-transformers modules / 1_Pooling / sentence_bert_config.json,
 * generation_config.json) from a model directory. */
int qr_config_from_dir(const char *dir, qr_model_config *out);
/* Reads general.architecture and <arch>.* keys from GGUF metadata. */
int qr_config_from_gguf(const qr_gguf *g, qr_model_config *out);
/* Directory, GGUF file (recognised by its magic, so Ollama blobs work), or a
 * single .safetensors file (config.json beside it). */
int qr_config_load(const char *model_path, qr_model_config *out);

#endif
