/* manifest.json: write/read round trip, field-level errors naming the field,
 * version refusal, embedder identity comparison and the model content hash
 * (changes when config.json changes, not when the directory moves). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "index/manifest.h"
#include "tests/unit/test.h"

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

int main(void)
{
    char dir[] = "/tmp/qr_manXXXXXX", p[700], cmd[400];
    CHECK(mkdtemp(dir) != NULL);
    qr_manifest m, r;
    qr_manifest_init(&m);
    CHECK_INT(m.version, 1);
    CHECK(strcmp(m.factory, "Flat") == 0 && strcmp(m.vec_dtype, "f32") == 0);
    m.has_embedder = true;
    strcpy(m.embedder.model, "/m/\"quoted\" é");
    strcpy(m.embedder.hash, "fnv1a64:0123456789abcdef");
    m.embedder.dim = 384;
    strcpy(m.embedder.pooling, "cls");
    m.embedder.normalize = false;
    strcpy(m.metric, "l2");
    strcpy(m.factory, "IVF64,PQ16");
    m.chunk_tokens = 200;
    m.chunk_overlap = 20;
    strcpy(m.chunk_tokenizer, "tok");
    m.n_docs = 3;
    m.n_chunks = 5000000000ULL; /* beyond 32 bits */
    m.n_vectors = 7;
    m.generation = 99;
    CHECK_OK(qr_manifest_write(dir, &m));
    memset(&r, 0x5a, sizeof r);
    CHECK_OK(qr_manifest_read(dir, &r));
    CHECK(r.has_embedder && strcmp(r.embedder.model, m.embedder.model) == 0);
    CHECK(qr_embedder_same(&r.embedder, &m.embedder));
    CHECK(strcmp(r.factory, "IVF64,PQ16") == 0 && strcmp(r.metric, "l2") == 0);
    CHECK_INT(r.chunk_tokens, 200);
    CHECK_INT(r.chunk_overlap, 20);
    CHECK(r.n_chunks == 5000000000ULL && r.n_docs == 3 && r.n_vectors == 7 && r.generation == 99);
    CHECK(strcmp(r.created, m.created) == 0);

    /* Embedder identity: path differences do not matter, the rest does. */
    qr_embedder_id a = m.embedder, b = m.embedder;
    strcpy(b.model, "/elsewhere");
    CHECK(qr_embedder_same(&a, &b));
    b.normalize = true;
    CHECK(!qr_embedder_same(&a, &b));
    b = a;
    b.hash[10] = 'x';
    CHECK(!qr_embedder_same(&a, &b));

    /* Errors name the file and the field; *out untouched on failure. */
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    put(p, "{\"format\":\"quire-store\",\"version\":1,\"created\":\"x\",\"updated\":\"y\",\"embedder\":{\"model\":\"m\","
           "\"hash\":\"h\",\"dim\":\"384\",\"pooling\":\"mean\",\"normalize\":true}}");
    memcpy(&r, &m, sizeof r);
    CHECK_INT(qr_manifest_read(dir, &r), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "embedder.dim") && strstr(qr_last_error(), "manifest.json"));
    CHECK(memcmp(&r, &m, sizeof r) == 0);
    put(p, "{\"format\":\"quire-store\",\"version\":2}");
    CHECK_INT(qr_manifest_read(dir, &r), QR_EUNSUPPORTED);
    CHECK(strstr(qr_last_error(), "version 2") != NULL);
    put(p, "{\"format\":\"other\",\"version\":1}");
    CHECK_INT(qr_manifest_read(dir, &r), QR_EFORMAT);
    put(p, "[1,2");
    CHECK_INT(qr_manifest_read(dir, &r), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "line 1") != NULL);
    unlink(p);
    CHECK_INT(qr_manifest_read(dir, &r), QR_ENOTFOUND);

    /* Model hash: stable, sensitive to config and weights header, not to location. */
    char md[300], md2[300], h1[96], h2[96], h3[96];
    snprintf(md, sizeof md, "%s/model", dir);
    mkdir(md, 0755);
    snprintf(p, sizeof p, "%s/config.json", md);
    put(p, "{\"hidden_size\": 8}");
    snprintf(p, sizeof p, "%s/model.safetensors", md);
    put(p, "HEADER-A");
    CHECK_OK(qr_embedder_hash(md, h1, sizeof h1));
    CHECK(strncmp(h1, "fnv1a64:", 8) == 0 && strlen(h1) == 24);
    snprintf(md2, sizeof md2, "%s/moved", dir);
    CHECK(rename(md, md2) == 0);
    CHECK_OK(qr_embedder_hash(md2, h2, sizeof h2));
    CHECK(strcmp(h1, h2) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors", md2);
    put(p, "HEADER-B");
    CHECK_OK(qr_embedder_hash(md2, h3, sizeof h3));
    CHECK(strcmp(h1, h3) != 0);
    /* A single file (GGUF) hashes too, differently from the directory. */
    snprintf(p, sizeof p, "%s/one.gguf", dir);
    put(p, "GGUF");
    CHECK_OK(qr_embedder_hash(p, h1, sizeof h1));
    CHECK(strcmp(h1, h3) != 0 && strcmp(h1, h2) != 0);
    CHECK_INT(qr_embedder_hash("/nonexistent/model", h1, sizeof h1), QR_ENOTFOUND);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return qr_test_done();
}
