/* Include / exclude globs and the default excludes (rules: filter.h). */
#include "ingest/filter.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

const char *const qr_filter_default_dirs[] = {
    ".git", ".hg", ".svn", ".bzr", "node_modules", "bower_components", "__pycache__", ".venv", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", NULL,
};

const char *const qr_filter_default_files[] = {
    "*.min.js", "*.min.css", "*.css", "*.map", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock",
    "pnpm-lock.yaml", "Cargo.lock", "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock", "composer.lock",
    "Gemfile.lock", "go.sum", "flake.lock", "mix.lock", "pubspec.lock", "packages.lock.json", NULL,
};

int qr_filter_check_patterns(const char *what, const char *const *pat, size_t n)
{
    if (n > QR_FILTER_MAX_PATTERNS)
        return qr_fail(QR_ELIMIT, "%s: %zu patterns, over the limit of %d", what, n, QR_FILTER_MAX_PATTERNS);
    for (size_t i = 0; i < n; i++) {
        size_t l = pat[i] ? strlen(pat[i]) : 0;
        if (!l)
            return qr_fail(QR_EINVAL, "%s: pattern %zu is empty", what, i + 1);
        if (l > QR_FILTER_MAX_PATTERN_BYTES)
            return qr_fail(QR_ELIMIT, "%s: pattern %zu is %zu bytes, over the limit of %d", what, i + 1, l,
                           QR_FILTER_MAX_PATTERN_BYTES);
    }
    return 0;
}

/* pat against rel (and the base name when pat has no '/'); a trailing '/'
 * restricts pat to directories. */
static bool match(const char *pat, const char *rel, bool is_dir)
{
    size_t l = strlen(pat);
    char buf[QR_FILTER_MAX_PATTERN_BYTES + 1];
    if (l && pat[l - 1] == '/') {
        if (!is_dir || l > QR_FILTER_MAX_PATTERN_BYTES)
            return false;
        memcpy(buf, pat, l - 1);
        buf[l - 1] = '\0';
        pat = buf;
        l--;
        while (l && pat[l - 1] == '/') // "build//"
            buf[--l] = '\0';
        if (!l)
            return false;
    }
    if (fnmatch(pat, rel, 0) == 0)
        return true;
    if (strchr(pat, '/'))
        return false;
    const char *base = strrchr(rel, '/');
    return base && fnmatch(pat, base + 1, 0) == 0;
}

static _Thread_local char why[QR_FILTER_MAX_PATTERN_BYTES + 32];

const char *qr_filter_excludes(const qr_path_filter *f, const char *rel, const char *path, bool is_dir)
{
    for (size_t i = 0; i < f->n_exclude; i++)
        if (match(f->exclude[i], rel, is_dir)) {
            snprintf(why, sizeof why, "--exclude %s", f->exclude[i]);
            return why;
        }
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (is_dir) {
        if (!f->defaults)
            return NULL;
        for (size_t i = 0; qr_filter_default_dirs[i]; i++)
            if (!strcmp(base, qr_filter_default_dirs[i])) {
                snprintf(why, sizeof why, "default exclude %s/", qr_filter_default_dirs[i]);
                return why;
            }
        char cfg[4200];
        if (path && snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", path) < (int)sizeof cfg && access(cfg, F_OK) == 0)
            return "default exclude: a Python virtual environment (pyvenv.cfg)";
        return NULL;
    }
    if (f->n_include) {
        for (size_t i = 0; i < f->n_include; i++)
            if (match(f->include[i], rel, false))
                return NULL;
        return "no --include matches";
    }
    if (f->defaults)
        for (size_t i = 0; qr_filter_default_files[i]; i++)
            if (match(qr_filter_default_files[i], rel, false)) {
                snprintf(why, sizeof why, "default exclude %s", qr_filter_default_files[i]);
                return why;
            }
    return NULL;
}
