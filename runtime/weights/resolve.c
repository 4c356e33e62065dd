/* qr_model_resolve: a user's model argument to a local path, never touching
 * the network.
 *
 * Hugging Face cache layout (huggingface_hub):
 *   <hub>/models--ORG--NAME/refs/<branch>          file holding a commit hash
 *   <hub>/models--ORG--NAME/snapshots/<commit>/    the files of that revision
 *   hub = $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 *         else ~/.cache/huggingface/hub
 * Ollama store layout:
 *   <models>/manifests/<host>/<namespace>/<name>/<tag>   JSON manifest whose layer
 *       with "mediaType": "application/vnd.ollama.image.model" has "digest": "sha256:<hex>"
 *   <models>/blobs/sha256-<hex>                          the GGUF file
 *   models = $OLLAMA_MODELS, else ~/.ollama/models; host registry.ollama.ai,
 *   namespace library unless the name says NS/NAME (or HOST/NS/NAME). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "common/error.h"
#include "runtime/weights/weights.h"

#define NO_NET "quire never uses the network"

typedef struct {
    char hf_hub[4096];     /* resolved HF hub cache directory */
    char ollama[4096];     /* resolved Ollama models directory */
} roots;

/* The one place that reads the environment for model lookup. */
static void read_env(roots *r)
{
    const char *hub = getenv("HF_HUB_CACHE"), *hf = getenv("HF_HOME"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME"), *ol = getenv("OLLAMA_MODELS");
    if (!home || !*home)
        home = ".";
    if (hub && *hub)
        snprintf(r->hf_hub, sizeof r->hf_hub, "%s", hub);
    else if (hf && *hf)
        snprintf(r->hf_hub, sizeof r->hf_hub, "%s/hub", hf);
    else if (xdg && *xdg)
        snprintf(r->hf_hub, sizeof r->hf_hub, "%s/huggingface/hub", xdg);
    else
        snprintf(r->hf_hub, sizeof r->hf_hub, "%s/.cache/huggingface/hub", home);
    if (ol && *ol)
        snprintf(r->ollama, sizeof r->ollama, "%s", ol);
    else
        snprintf(r->ollama, sizeof r->ollama, "%s/.ollama/models", home);
}

static bool exists(const char *p, bool dir)
{
    struct stat st;
    return stat(p, &st) == 0 && (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

static int set_out(const char *path, char **out)
{
    char *p = strdup(path);
    if (!p)
        return qr_fail(QR_ENOMEM, "no memory");
    *out = p;
    return QR_OK;
}

/* A path component from a name: letters, digits, '.', '_', '-', not "." or "..". */
static bool ok_part(const char *s, size_t n)
{
    if (n == 0 || n > 255 || (s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.'))))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

/* First line of a small file (a refs/ entry), whitespace trimmed. */
static bool read_ref(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    return ok_part(buf, n);
}

/* The only snapshot, when refs/ is missing (a download by commit hash writes none). */
static bool only_snapshot(const char *snaps, char *buf, size_t cap)
{
    DIR *d = opendir(snaps);
    struct dirent *e;
    int n = 0;
    if (!d)
        return false;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && n++ == 0)
            snprintf(buf, cap, "%s", e->d_name);
    closedir(d);
    return n == 1;
}

static int resolve_hf(const roots *r, const char *arg, char **out)
{
    char org[256] = "", name[256], rev[256] = "main", repo[8192], p[12288], hash[256];
    const char *slash = strchr(arg, '/'), *at = strchr(arg, '@');
    const char *name_start = slash ? slash + 1 : arg;
    size_t name_len = at ? (size_t)(at - name_start) : strlen(name_start);
    if (slash && (!ok_part(arg, (size_t)(slash - arg)) || (at && at < slash)))
        return QR_EINVAL;
    if (!ok_part(name_start, name_len) || (at && !ok_part(at + 1, strlen(at + 1))))
        return QR_EINVAL;
    if (slash)
        snprintf(org, sizeof org, "%.*s", (int)(slash - arg), arg);
    snprintf(name, sizeof name, "%.*s", (int)name_len, name_start);
    if (at)
        snprintf(rev, sizeof rev, "%s", at + 1);
    char id[600];
    snprintf(id, sizeof id, "%s%s%s", org, *org ? "/" : "", name);
    snprintf(repo, sizeof repo, "%s/models--%s%s%s", r->hf_hub, org, *org ? "--" : "", name);
    if (!exists(repo, true) && !*org)
        return QR_EINVAL; /* a bare name that is not cached: report it as a missing path */
    if (!exists(repo, true))
        return qr_fail(QR_ENOTFOUND,
                       "model '%s' is not a local path and not in the Hugging Face cache (no %s). %s: "
                       "on a login node run `huggingface-cli download %s%s%s`, then copy that cache "
                       "directory here or point HF_HUB_CACHE (or HF_HOME) at it",
                       arg, repo, NO_NET, id, at ? " --revision " : "", at ? rev : "");
    /* revision: a ref (branch/tag) name, or a commit hash that is a snapshot */
    snprintf(p, sizeof p, "%s/refs/%s", repo, rev);
    if (!read_ref(p, hash, sizeof hash)) {
        snprintf(hash, sizeof hash, "%s", rev);
        snprintf(p, sizeof p, "%s/snapshots/%s", repo, rev);
        if (!exists(p, true)) {
            snprintf(p, sizeof p, "%s/snapshots", repo);
            if (at || !only_snapshot(p, hash, sizeof hash))
                return qr_fail(QR_ENOTFOUND,
                               "model '%s': the cache has no revision '%s' (no %s/refs/%s and no "
                               "snapshots/%s). %s: run `huggingface-cli download %s --revision %s` on a "
                               "login node and copy the cache here",
                               arg, rev, repo, rev, rev, NO_NET, id, rev);
        }
    }
    snprintf(p, sizeof p, "%s/snapshots/%s", repo, hash);
    if (!exists(p, true))
        return qr_fail(QR_ENOTFOUND,
                       "model '%s': refs/%s points to snapshot %s, which is missing (%s); the cache copy "
                       "is incomplete. %s: re-run `huggingface-cli download %s` on a login node and copy "
                       "the whole cache directory",
                       arg, rev, hash, p, NO_NET, id);
    return set_out(p, out);
}

/* ollama:[[HOST/]NS/]NAME[:TAG] */
static int resolve_ollama(const roots *r, const char *arg, char **out)
{
    const char *spec = arg + strlen("ollama:");
    char host[256] = "registry.ollama.ai", ns[256] = "library", name[256], tag[256] = "latest";
    char buf[1024], *parts[4];
    int np = 0;
    const char *colon = strrchr(spec, ':');
    if (colon && !ok_part(colon + 1, strlen(colon + 1)))
        goto bad;
    if (colon)
        snprintf(tag, sizeof tag, "%s", colon + 1);
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len >= sizeof buf)
        goto bad;
    memcpy(buf, spec, len);
    buf[len] = '\0';
    /* 1 to 3 '/'-separated components, each a plain name */
    for (char *p = buf; np < 4; np++) {
        parts[np] = p;
        char *e = strchr(p, '/');
        if (e)
            *e = '\0';
        if (!ok_part(parts[np], strlen(parts[np])))
            goto bad;
        if (!e) {
            np++;
            break;
        }
        p = e + 1;
    }
    if (np > 3)
        goto bad;
    snprintf(name, sizeof name, "%s", parts[np - 1]);
    if (np >= 2)
        snprintf(ns, sizeof ns, "%s", parts[np - 2]);
    if (np == 3)
        snprintf(host, sizeof host, "%s", parts[0]);

    char man[8192], pull[1024], blob[8192];
    snprintf(pull, sizeof pull, "%s%s%s:%s", strcmp(ns, "library") ? ns : "", strcmp(ns, "library") ? "/" : "",
             name, tag);
    snprintf(man, sizeof man, "%s/manifests/%s/%s/%s/%s", r->ollama, host, ns, name, tag);
    if (!exists(man, false))
        return qr_fail(QR_ENOTFOUND,
                       "ollama model '%s' not found: no manifest %s. %s: run `ollama pull %s` on a login "
                       "node, then copy its models directory (~/.ollama/models) here or point "
                       "OLLAMA_MODELS at it",
                       pull, man, NO_NET, pull);
    json_error_t err;
    json_t *root = json_load_file(man, 0, &err), *layers = root ? json_object_get(root, "layers") : NULL;
    const char *digest = NULL;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *l = json_array_get(layers, i);
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        if (mt && strcmp(mt, "application/vnd.ollama.image.model") == 0)
            digest = json_string_value(json_object_get(l, "digest"));
    }
    bool hex_ok = digest && strncmp(digest, "sha256:", 7) == 0 && strlen(digest + 7) == 64;
    for (int i = 0; hex_ok && i < 64; i++)
        hex_ok = isxdigit((unsigned char)digest[7 + i]) != 0;
    if (hex_ok)
        snprintf(blob, sizeof blob, "%s/blobs/sha256-%s", r->ollama, digest + 7);
    json_decref(root);
    if (!root)
        return qr_fail(QR_EFORMAT, "%s: ollama manifest is not JSON: %s", man, err.text);
    if (!hex_ok)
        return qr_fail(QR_EFORMAT, "%s: ollama manifest has no model layer "
                       "(mediaType application/vnd.ollama.image.model with a sha256 digest)", man);
    if (!exists(blob, false))
        return qr_fail(QR_ENOTFOUND,
                       "ollama model '%s': its weights blob %s is missing (the store copy is incomplete). "
                       "%s: re-run `ollama pull %s` on a login node and copy the whole models directory",
                       pull, blob, NO_NET, pull);
    return set_out(blob, out);
bad:
    return qr_fail(QR_EINVAL, "'%s': expected ollama:NAME[:TAG] or ollama:NAMESPACE/NAME[:TAG]", arg);
}

int qr_model_resolve(const char *arg, char **out)
{
    struct stat st;
    roots r;
    if (!arg || !*arg)
        return qr_fail(QR_EINVAL, "no model given");
    if (stat(arg, &st) == 0)
        return set_out(arg, out);
    read_env(&r);
    if (strncmp(arg, "ollama:", 7) == 0)
        return resolve_ollama(&r, arg, out);
    int rc = resolve_hf(&r, arg, out);
    if (rc != QR_EINVAL)
        return rc;
    return qr_fail(QR_ENOTFOUND,
                   "model '%s': no such file or directory, and not a Hugging Face id (ORG/NAME[@REV]) "
                   "or ollama:NAME[:TAG]", arg);
}
