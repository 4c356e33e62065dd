/* BM25 speed and quality anchor for bench/bench_bm25: the same BEIR runs done by
 * Apache Lucene (Debian 12's liblucene8-java: Lucene 8.8.1, jars named 8.7.0), whose BM25
 * gives Anserini's published BEIR figures. Not part of quire's build or tests;
 * bench/anchor/run.sh compiles and runs it beside bench_bm25 on the same machine.
 *
 * Configuration, matching quire's (index/bm25.h) and Anserini's "flat" BEIR runs:
 *   - each document indexed as title + "\n" + text in one field, EnglishAnalyzer
 *     (standard tokenizer, possessives, lowercase, English stop words, Porter);
 *   - BM25Similarity(k1 0.9, b 0.4); postings with frequencies and norms only
 *     (no positions, no stored text: what BM25 needs), plus the id as a stored
 *     field (quire keeps postings with tf and norm plus a forward index);
 *   - query = Anserini's bag of words: the analysed query terms as SHOULD clauses,
 *     a term repeated q times boosted q; the query's own id removed from its hits;
 *   - one thread: SerialMergeScheduler, one segment (1 GB RAM buffer), an
 *     IndexSearcher without executor, no query cache; Lucene's top-k collector
 *     (block-max WAND when k < total hits) is part of what is measured.
 *   - the directory is a file system directory under $TMPDIR whose fsync is a
 *     no-op, as quire's bench runs LMDB with MDB_NOSYNC.
 * Timing (method of bench_bm25.c): corpus read into memory first; indexing best
 * of 3 fresh indexes (add + commit), wall and thread CPU time; queries: every
 * query of queries.jsonl at k = 10 and k = 1000, two warm-up passes then 3 timed
 * passes (one more than quire: the JIT); p50 / p99 of per-query wall time, queries/s =
 * queries / wall time of a whole pass (mean of the 3).
 * Quality: the judged queries at k = 1000, trec_eval -c semantics (ties by docno
 * descending), nDCG@10, R@100, R@1000, MRR@10 — an implementation independent
 * of quire's index/eval.c.
 *
 * Output: readable lines plus "RESULT key=value ..." and "QUALITY ..." lines
 * that run.sh turns into the side-by-side table.
 *
 * usage: java -cp CLASSES:JARS Anchor DATASET_DIR... */
import java.io.BufferedReader;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.FieldType;
import org.apache.lucene.document.StoredField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexOptions;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.index.SerialMergeScheduler;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.BoostQuery;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.search.similarities.BM25Similarity;
import org.apache.lucene.store.Directory;
import org.apache.lucene.store.FSDirectory;
import org.apache.lucene.store.FilterDirectory;

public final class Anchor {
    static final String FIELD = "contents";
    static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();

    /* ---- a small JSON reader: one object per line, string members kept ---- */
    static final class Json {
        final String s;
        int i;
        Json(String s) { this.s = s; }
        void ws() { while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++; }
        String str() {
            StringBuilder b = new StringBuilder();
            if (s.charAt(i) != '"') throw new IllegalArgumentException("expected a string at " + i);
            i++;
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c != '\\') { b.append(c); continue; }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n': b.append('\n'); break;
                    case 't': b.append('\t'); break;
                    case 'r': b.append('\r'); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                    default: b.append(e); /* " \ / */
                }
            }
        }
        /* skips any value; returns it when it is a string */
        String value() {
            ws();
            char c = s.charAt(i);
            if (c == '"') return str();
            if (c == '{' || c == '[') {
                char open = c, close = c == '{' ? '}' : ']';
                int depth = 0;
                while (true) {
                    char d = s.charAt(i);
                    if (d == '"') { str(); continue; }
                    i++;
                    if (d == open) depth++;
                    else if (d == close && --depth == 0) return null;
                }
            }
            while (i < s.length() && ",}] \t\r\n".indexOf(s.charAt(i)) < 0) i++; /* number, true, null */
            return null;
        }
        Map<String, String> object() {
            Map<String, String> m = new HashMap<>();
            ws();
            if (s.charAt(i++) != '{') throw new IllegalArgumentException("expected an object");
            ws();
            if (s.charAt(i) == '}') return m;
            while (true) {
                ws();
                String k = str();
                ws();
                i++; /* : */
                String v = value();
                if (v != null) m.put(k, v);
                ws();
                if (s.charAt(i++) == '}') return m;
            }
        }
    }

    static List<Map<String, String>> readJsonl(Path p) throws IOException {
        List<Map<String, String>> out = new ArrayList<>();
        try (BufferedReader r = Files.newBufferedReader(p, StandardCharsets.UTF_8)) {
            for (String line; (line = r.readLine()) != null;)
                if (!line.isBlank()) out.add(new Json(line).object());
        }
        return out;
    }

    /* qrels TSV: header, then query-id TAB corpus-id TAB level (CRLF tolerated) */
    static Map<String, Map<String, Integer>> readQrels(Path p) throws IOException {
        Map<String, Map<String, Integer>> q = new LinkedHashMap<>();
        List<String> lines = Files.readAllLines(p, StandardCharsets.UTF_8);
        for (int n = 1; n < lines.size(); n++) {
            String[] f = lines.get(n).strip().split("\t");
            if (f.length < 3) continue;
            q.computeIfAbsent(f[0], k -> new HashMap<>()).put(f[1], Integer.parseInt(f[2].strip()));
        }
        return q;
    }

    /* fsync as a no-op: quire's bench runs LMDB with MDB_NOSYNC */
    static Directory noSync(Path p) throws IOException {
        return new FilterDirectory(FSDirectory.open(p)) {
            @Override public void sync(Collection<String> names) {}
            @Override public void syncMetaData() {}
        };
    }

    static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (var w = Files.walk(p)) {
            for (Path x : w.sorted(Comparator.reverseOrder()).toArray(Path[]::new)) Files.delete(x);
        }
    }

    static double cpu() { return MX.getCurrentThreadCpuTime() * 1e-9; }
    static double wall() { return System.nanoTime() * 1e-9; }

    /* Anserini's bag-of-words query: analysed terms, repeated ones boosted by their count */
    static Query bagOfWords(Analyzer an, String text) throws IOException {
        Map<String, Integer> tf = new LinkedHashMap<>();
        try (TokenStream ts = an.tokenStream(FIELD, text)) {
            CharTermAttribute t = ts.addAttribute(CharTermAttribute.class);
            ts.reset();
            while (ts.incrementToken()) tf.merge(t.toString(), 1, Integer::sum);
            ts.end();
        }
        BooleanQuery.Builder b = new BooleanQuery.Builder();
        for (Map.Entry<String, Integer> e : tf.entrySet()) {
            Query tq = new TermQuery(new Term(FIELD, e.getKey()));
            b.add(e.getValue() == 1 ? tq : new BoostQuery(tq, e.getValue()), BooleanClause.Occur.SHOULD);
        }
        return b.build();
    }

    static double pct(double[] sorted, double p) { return sorted[(int) (sorted.length * p)]; }

    static void bench(String dir) throws IOException {
        Path d = Paths.get(dir);
        String name = d.getFileName().toString();
        List<Map<String, String>> corpus = readJsonl(d.resolve("corpus.jsonl"));
        List<Map<String, String>> queries = readJsonl(d.resolve("queries.jsonl"));
        Map<String, Map<String, Integer>> qrels = readQrels(d.resolve("qrels/test.tsv"));
        String[] ids = new String[corpus.size()], texts = new String[corpus.size()];
        long bytes = 0;
        for (int n = 0; n < corpus.size(); n++) {
            Map<String, String> m = corpus.get(n);
            ids[n] = m.get("_id");
            texts[n] = m.getOrDefault("title", "") + "\n" + m.getOrDefault("text", "");
            bytes += texts[n].getBytes(StandardCharsets.UTF_8).length;
        }
        BM25Similarity sim = new BM25Similarity(0.9f, 0.4f);
        Analyzer an = new EnglishAnalyzer();
        FieldType ft = new FieldType();
        ft.setTokenized(true);
        ft.setIndexOptions(IndexOptions.DOCS_AND_FREQS);
        ft.freeze();

        String tmp = System.getenv().getOrDefault("TMPDIR", "/tmp");
        Path idx = null;
        double bestWall = 1e30, bestCpu = 1e30;
        for (int r = 0; r < 3; r++) {
            if (idx != null) deleteTree(idx);
            idx = Files.createTempDirectory(Paths.get(tmp), "quire-anchor-lucene-");
            double w0 = wall(), c0 = cpu();
            try (Directory dirx = noSync(idx)) {
                IndexWriterConfig iwc = new IndexWriterConfig(an);
                iwc.setSimilarity(sim);
                iwc.setOpenMode(IndexWriterConfig.OpenMode.CREATE);
                iwc.setRAMBufferSizeMB(1024);
                iwc.setMergeScheduler(new SerialMergeScheduler());
                iwc.setUseCompoundFile(false);
                try (IndexWriter w = new IndexWriter(dirx, iwc)) {
                    for (int n = 0; n < texts.length; n++) {
                        Document doc = new Document();
                        doc.add(new StoredField("id", ids[n]));
                        doc.add(new Field(FIELD, texts[n], ft));
                        w.addDocument(doc);
                    }
                    w.commit();
                }
            }
            double dw = wall() - w0, dc = cpu() - c0;
            bestWall = Math.min(bestWall, dw);
            bestCpu = Math.min(bestCpu, dc);
        }
        long idxBytes = 0;
        try (var w = Files.walk(idx)) {
            for (Path x : w.filter(Files::isRegularFile).toArray(Path[]::new)) idxBytes += Files.size(x);
        }
        try (Directory dirx = FSDirectory.open(idx); DirectoryReader reader = DirectoryReader.open(dirx)) {
            long terms = reader.getSumTotalTermFreq(FIELD);
            System.out.printf("lucene %s: %d docs, %.1f MB, %d terms, %d segment(s); index best of 3: %.3f s wall, %.3f s CPU"
                                  + " (%.0f docs/s wall, %.1f MB index)%n",
                              name, texts.length, bytes / 1e6, terms, reader.leaves().size(), bestWall, bestCpu,
                              texts.length / bestWall, idxBytes / 1e6);
            IndexSearcher s = new IndexSearcher(reader);
            s.setSimilarity(sim);
            s.setQueryCache(null);
            String[] qtext = new String[queries.size()];
            for (int n = 0; n < qtext.length; n++) qtext[n] = queries.get(n).get("text");
            StringBuilder res = new StringBuilder(String.format(
                "RESULT engine=lucene dataset=%s docs=%d terms=%d index_wall=%.4f index_cpu=%.4f", name,
                texts.length, terms, bestWall, bestCpu));
            for (int k : new int[] {10, 1000}) {
                int warm = 2, passes = 3;
                double[] lat = new double[qtext.length * passes];
                double[] lcpu = new double[qtext.length * passes];
                double passWall = 0;
                int nl = 0;
                long sink = 0;
                for (int pass = 0; pass < warm + passes; pass++) {
                    double p0 = wall();
                    for (String q : qtext) {
                        double w0 = wall(), c0 = cpu();
                        TopDocs td = s.search(bagOfWords(an, q), k);
                        double dw = wall() - w0, dc = cpu() - c0;
                        sink += td.scoreDocs.length;
                        if (pass >= warm) { lat[nl] = dw; lcpu[nl++] = dc; }
                    }
                    if (pass >= warm) passWall += wall() - p0;
                }
                Arrays.sort(lat);
                Arrays.sort(lcpu);
                double qps = qtext.length * passes / passWall;
                System.out.printf("lucene %s: %d queries, k=%d: p50 %.3f ms, p99 %.3f ms wall (p50 %.3f ms CPU), %.0f queries/s"
                                      + " (%d hits)%n",
                                  name, qtext.length, k, pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3,
                                  pct(lcpu, 0.5) * 1e3, qps, sink / (warm + passes));
                res.append(String.format(" k%d_p50=%.4f k%d_p99=%.4f k%d_cpu_p50=%.4f k%d_qps=%.1f", k,
                                         pct(lat, 0.5) * 1e3, k, pct(lat, 0.99) * 1e3, k, pct(lcpu, 0.5) * 1e3, k, qps));
            }
            System.out.println(res);

            /* quality: judged queries, 1000 hits, own id removed, trec_eval -c */
            double ndcg = 0, r100 = 0, r1000 = 0, mrr = 0;
            int run = 0;
            for (Map<String, String> qm : queries) {
                String qid = qm.get("_id");
                Map<String, Integer> rel = qrels.get(qid);
                if (rel == null) continue;
                run++;
                TopDocs td = s.search(bagOfWords(an, qm.get("text")), 1000);
                List<String> docs = new ArrayList<>();
                List<Float> scores = new ArrayList<>();
                for (ScoreDoc sd : td.scoreDocs) {
                    String docid = reader.document(sd.doc).get("id");
                    if (docid.equals(qid)) continue; /* Anserini removeQuery */
                    docs.add(docid);
                    scores.add(sd.score);
                }
                Integer[] ord = new Integer[docs.size()];
                for (int n = 0; n < ord.length; n++) ord[n] = n;
                Arrays.sort(ord, (a, b) -> {
                    int c = Float.compare(scores.get(b), scores.get(a));
                    return c != 0 ? c : docs.get(b).compareTo(docs.get(a)); /* trec_eval: docno descending */
                });
                int nrel = 0;
                for (int v : rel.values()) nrel += v >= 1 ? 1 : 0;
                int[] ideal = rel.values().stream().mapToInt(Integer::intValue).map(v -> Math.max(v, 0)).sorted().toArray();
                double dcg = 0, idcg = 0;
                for (int n = 0; n < 10 && n < ideal.length; n++)
                    idcg += ideal[ideal.length - 1 - n] / (Math.log(n + 2) / Math.log(2));
                int hit100 = 0, hit1000 = 0;
                double rr = 0;
                for (int n = 0; n < ord.length; n++) {
                    int lv = rel.getOrDefault(docs.get(ord[n]), 0);
                    if (n < 10 && lv > 0) dcg += lv / (Math.log(n + 2) / Math.log(2));
                    if (lv >= 1) {
                        if (n < 100) hit100++;
                        hit1000++;
                        if (n < 10 && rr == 0) rr = 1.0 / (n + 1);
                    }
                }
                ndcg += idcg > 0 ? dcg / idcg : 0;
                r100 += nrel > 0 ? (double) hit100 / nrel : 0;
                r1000 += nrel > 0 ? (double) hit1000 / nrel : 0;
                mrr += rr;
            }
            int nq = qrels.size(); /* -c: every qrels query, unrun ones count 0 */
            System.out.printf("QUALITY engine=lucene dataset=%s queries=%d run=%d ndcg10=%.4f r100=%.4f r1000=%.4f mrr10=%.4f%n",
                              name, nq, run, ndcg / nq, r100 / nq, r1000 / nq, mrr / nq);
        }
        deleteTree(idx);
        an.close();
    }

    public static void main(String[] args) throws IOException {
        BooleanQuery.setMaxClauseCount(Integer.MAX_VALUE); /* ArguAna queries are whole arguments */
        System.out.printf("lucene %s, java %s (%s)%n", org.apache.lucene.util.Version.LATEST,
                          System.getProperty("java.version"), System.getProperty("java.vm.name"));
        for (String d : args) bench(d);
    }
}
