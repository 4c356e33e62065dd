// Deep comparison of JSON values for the integration tests: numbers within a
// relative/absolute tolerance, keys listed in `ignore` (timings) skipped at
// any depth. Returns null when equal, else the first difference as text.
export function diffJSON(got, want, { tol = 1e-6, ignore = [], path = '$' } = {}) {
    if (typeof want === 'number' && typeof got === 'number') {
        const d = Math.abs(got - want);
        return d <= tol * Math.max(1, Math.abs(want)) ? null : `${path}: ${got} vs ${want} (|diff| ${d})`;
    }
    if (want === null || typeof want !== 'object') {
        return got === want ? null : `${path}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`;
    }
    if (Array.isArray(want)) {
        if (!Array.isArray(got)) return `${path}: not an array: ${JSON.stringify(got).slice(0, 200)}`;
        if (got.length !== want.length) return `${path}: length ${got.length} vs ${want.length}`;
        for (let i = 0; i < want.length; i++) {
            const d = diffJSON(got[i], want[i], { tol, ignore, path: `${path}[${i}]` });
            if (d) return d;
        }
        return null;
    }
    if (got === null || typeof got !== 'object' || Array.isArray(got)) return `${path}: not an object: ${JSON.stringify(got).slice(0, 200)}`;
    const keys = new Set([...Object.keys(want), ...Object.keys(got)]);
    for (const k of keys) {
        if (ignore.includes(k)) continue;
        if (!(k in got)) return `${path}.${k}: missing`;
        if (!(k in want)) return `${path}.${k}: unexpected (${JSON.stringify(got[k]).slice(0, 100)})`;
        const d = diffJSON(got[k], want[k], { tol, ignore, path: `${path}.${k}` });
        if (d) return d;
    }
    return null;
}

// Largest |a[i] - b[i]| of two equal-length numeric arrays (Infinity if lengths differ).
export function maxAbsDiff(a, b) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return Infinity;
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    return m;
}
