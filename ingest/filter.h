/* Which walked entries ingest reads: --include / --exclude globs and the
 * default excludes (what users never mean to search).
 *
 * Matching. Each entry found below a walked directory is matched by its
 * relative path (below the PATH argument it was found under, '/'-separated,
 * e.g. "src/app/main.js") and, for a pattern without '/', also by its base
 * name ("main.js"). Patterns are fnmatch(3) globs with no flags: '*', '?'
 * and [...] match any character, '/' and a leading '.' included (so
 * a '*' after "docs/" matches "a/b.md" too, as the path filter of search does).
 * A pattern ending in '/' ("build/") matches directories only.
 *
 * The rule, in order:
 *   directory  excluded when an --exclude pattern matches it, or (default
 *              excludes on) its name is in the default directory list or it
 *              holds a pyvenv.cfg (a Python virtual environment); nothing
 *              below an excluded directory is walked. --include patterns are
 *              not applied to directories.
 *   file       1. an --exclude pattern matches: excluded;
 *              2. --include patterns given: read when one matches (the default
 *                 file patterns do not apply to it), excluded otherwise;
 *              3. (default excludes on) a default file pattern matches: excluded;
 *              4. read.
 * Files named explicitly as a PATH are always read (as hidden files are).
 * --no-default-excludes (default_excludes = false) turns both default lists off.
 *
 * Default directory names: .git .hg .svn .bzr node_modules bower_components
 * __pycache__ .venv .tox .nox .mypy_cache .pytest_cache .ruff_cache
 * .ipynb_checkpoints, and any directory holding pyvenv.cfg.
 * Default file patterns: *.min.js *.min.css *.css *.map package-lock.json
 * npm-shrinkwrap.json yarn.lock pnpm-lock.yaml Cargo.lock poetry.lock
 * Pipfile.lock uv.lock pdm.lock composer.lock Gemfile.lock go.sum flake.lock
 * mix.lock pubspec.lock packages.lock.json. (README lists the same.) */
#ifndef QR_INGEST_FILTER_H
#define QR_INGEST_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#define QR_FILTER_MAX_PATTERNS 256       /* per list (--include, --exclude) */
#define QR_FILTER_MAX_PATTERN_BYTES 1024 /* per pattern */

typedef struct {
    const char *const *include;
    size_t n_include;
    const char *const *exclude;
    size_t n_exclude;
    bool defaults; /* apply the default excludes */
} qr_path_filter;

/* Checks a pattern list against the limits above: QR_ELIMIT for too many or a
 * too long pattern, QR_EINVAL for an empty one, with a message naming what
 * ("--include", "include") and the pattern's index. */
int qr_filter_check_patterns(const char *what, const char *const *pat, size_t n);

/* NULL when the entry is read; else why it is excluded ("--exclude PATTERN",
 * "default exclude NAME", "no --include matches"), valid until the next call
 * on this thread. rel: path below the walk root; path: the full path (for the
 * pyvenv.cfg check of a directory). */
const char *qr_filter_excludes(const qr_path_filter *f, const char *rel, const char *path, bool is_dir);

/* The default lists (NULL-terminated), for documentation and tests. */
extern const char *const qr_filter_default_dirs[];
extern const char *const qr_filter_default_files[];

#endif
