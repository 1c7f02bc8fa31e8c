#!/usr/bin/env bash
# `hdlm report` end to end: a database with real content (two trained models with losses and
# samples, a script run in a sweep, a failed run) plus evaluation rows and a 'correct' sampler
# event inserted with sqlite3, so every section of the page has data. Checks the page is one
# self-contained file with the expected charts, ids, values and escaped text, then renders it in
# headless Chromium: the inline script must finish (data-ready="1", no error) and the screenshot
# must not be blank. Also: an empty database gives a valid page with "no data" notes; a missing
# file, a non-database and a foreign SQLite file give one error line, a non-zero status and no
# output. About 10 s.
set -u
HDLM=$(realpath "${HDLM_BIN:-./hdlm}") # absolute: one call runs in another directory
SRC=${HDLM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
export OMP_NUM_THREADS=1 HDLM_PROGRESS=off
dir=$(mktemp -d)
cleanup() { [ -n "${KEEP_DIR:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"; }
trap cleanup EXIT
passed=0; failed=0
ok()  { passed=$((passed+1)); }
bad() { failed=$((failed+1)); echo "FAIL: $*" >&2; }
count() { grep -o -- "$1" "$2" | wc -l; } # occurrences of a pattern in a file
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
browser() { # file flags... -> runs headless Chromium on the file with a private profile
  local file=$1
  shift
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$dir/profile" \
    "$@" "file://$file" 2>>"$dir/chromium.log"
}

# ---- a database with real content ----
for _ in $(seq 24); do cat "$SRC/tests/data/tiny.txt"; done > "$dir/corpus.txt"
"$HDLM" data prepare "$dir/corpus.txt" -o "$dir/corpus.tok" --valid 0.25 >/dev/null 2>&1 \
  && ok || bad "data prepare"
cat > "$dir/make.lua" <<'LUA'
local hdlm = require "hdlm"
local a = hdlm.args
local db = hdlm.open()
local data = hdlm.corpus{ path = a.corpus }
local model = { d_model = 32, n_layer = 1, n_head = 2, seq_len = 32 }
local hyb = db:train{ name = "hybrid <b>&'x'", data = data, noise = { "epsilon_hybrid", epsilon = 0.05 },
  schedule = { "block_annealing", width = 8, tau = 4 }, vectorised = true, model = model, steps = 30,
  batch = 8, lr = 3e-3, log_every = 2, eval_every = 10, eval_batches = 2, seed = 1,
  checkpoint_dir = a.ckpt, ckpt_every = 30 }
local ar = db:train{ name = "ar", data = data, noise = { "absorbing" }, schedule = { "autoregressive" },
  vectorised = true, model = model, steps = 30, batch = 8, lr = 3e-3, log_every = 2, eval_every = 10,
  eval_batches = 2, seed = 2 }
hyb:sample{ sampler = { "acs", eta = 1 }, n = 2, seed = 5, prompt = "The <river> & " }
hyb:sample{ sampler = { "remask", eta = 0.2 }, n = 2, seed = 6 }
ar:sample{ n = 1, seed = 1, temperature = 0.8 }
-- a script run in a sweep that logs losses under other names
local sw = db:run{ name = "sweep member", config = { sweep = "lr-sweep", lr = 0.1 } }
for step = 1, 5 do sw:log(step, { ["train/loss"] = 3 - step * 0.2, ["val/loss"] = 3.1 - step * 0.15 }) end
sw:finish()
local failed = db:run{ name = "broken" }
failed:fail("diverged <at> step 3 & more")
LUA
"$HDLM" run "$dir/make.lua" --db "$dir/r.db" corpus="$dir/corpus.tok" ckpt="$dir/ck" \
  >"$dir/make.out" 2>"$dir/make.err" && ok || bad "make.lua failed: $(tail -3 "$dir/make.err")"

# evaluations (no command writes them yet), a 'correct' event at a known place, and a sample
# whose text holds markup and control characters
sqlite3 "$dir/r.db" <<'SQL' && ok || bad "sqlite3 inserts failed"
INSERT INTO evaluations (run_id, metric, value, std_error, settings) VALUES
 (1, 'nll_bound', 2.31, 0.02, '{"estimator":"consistent","bits_per_token":3.333,"bits_per_unit":3.333,"unit":"byte","schedule":{"name":"block_annealing","options":{"width":8,"tau":4}},"noise":{"name":"epsilon_hybrid","options":{"epsilon":0.05}},"weights":"ema","mc":4,"sequences":16,"tokens":512}'),
 (1, 'nll_bound', 2.45, 0.03, '{"estimator":"reference","bits_per_token":3.535,"bits_per_unit":3.535,"unit":"byte","schedule":{"name":"block_annealing","options":{"width":8,"tau":4}},"noise":{"name":"epsilon_hybrid","options":{"epsilon":0.05}},"weights":"ema","mc":4,"sequences":16,"tokens":512}'),
 (2, 'nll_bound', 2.05, 0.015, '{"estimator":"consistent","bits_per_token":2.958,"bits_per_unit":2.958,"unit":"byte","schedule":{"name":"autoregressive","options":{}},"noise":{"name":"absorbing","options":{}},"weights":"raw","mc":1,"sequences":16,"tokens":512}'),
 (1, 'gen_nll', 3.1, NULL, '{"sampler":{"name":"acs","options":{"eta":1}},"temperature":0.9,"steps":16,"judge_run":2}'),
 (1, 'entropy', 4.2, NULL, '{"sampler":{"name":"acs","options":{"eta":1}},"temperature":0.9,"steps":16,"judge_run":2}'),
 (1, 'gen_ppl', 22.2, NULL, '{"sampler":{"name":"acs","options":{"eta":1}},"temperature":0.9,"steps":16,"judge_run":2}'),
 (1, 'distinct_2', 0.8125, NULL, '{"sampler":{"name":"acs","options":{"eta":1}},"temperature":0.9,"steps":16,"judge_run":2}'),
 (2, 'gen_nll', 2.2, NULL, '{"sampler":{"name":"ancestral","options":{}},"temperature":1,"steps":32,"judge_run":2,"note":"<script>alert(1)</script>"}'),
 (2, 'entropy', 4.4, NULL, '{"sampler":{"name":"ancestral","options":{}},"temperature":1,"steps":32,"judge_run":2,"note":"<script>alert(1)</script>"}');
INSERT INTO sample_events (sample_id, seq, step, position, old_token, new_token, prob, kind)
  SELECT 1, max(seq) + 1, 99, 20, 101, (SELECT json_extract(tokens, '$[20]') FROM samples WHERE id = 1),
         0.5, 'correct' FROM sample_events WHERE sample_id = 1;
INSERT INTO samples (run_id, text, tokens, n_tokens, sampler, settings, steps, nfe, wall_time)
  VALUES (2, '<script>alert("x")</script>' || char(7), '[60,115,7,256]', 4,
          '{"name":"ancestral","version":"1.0.0","options":{}}', '{"tokenizer":"bytes"}', 4, 4, 0.01);
SQL

# ---- the report ----
(cd "$dir" && "$HDLM" report r.db -o report.html >"$dir/report.out" 2>"$dir/report.err") \
  && ok || bad "hdlm report failed: $(cat "$dir/report.err")"
R=$dir/report.html
[ -s "$R" ] && ok || bad "no report.html"
grep -q "^report: r.db -> report.html ([0-9]* bytes; 4 runs, 6 charts, 9 evaluations, 6 samples)$" \
  "$dir/report.out" && ok || bad "summary line: $(cat "$dir/report.out")"
[ ! -e "$R.tmp" ] && ok || bad "temporary file left behind"
# self-contained: nothing loaded from elsewhere
if grep -Eiq '(src|href)[[:space:]]*=[[:space:]]*"?[[:space:]]*(https?:|//)|<link|@import|url\(' "$R"; then
  bad "external reference: $(grep -Eio '(src|href)[^>]{0,60}|<link[^>]{0,60}|@import|url\(' "$R" | head -3)"
else ok; fi
[ "$(count '<script' "$R")" = 1 ] && ok || bad "expected exactly one (inline) script, got $(count '<script' "$R")"
# charts: the overlay + one per training run (hybrid, ar, sweep member) + bound bars + frontier
[ "$(count '<svg' "$R")" = 6 ] && ok || bad "expected 6 SVG charts, got $(count '<svg' "$R")"
for id in 1 2 3 4; do
  grep -q "id=\"run-$id\"" "$R" && ok || bad "run $id missing from the runs table"
done
grep -q '<h3 class="sweep">sweep lr-sweep <small>(1 runs)</small></h3>' "$R" && ok || bad "sweep heading"
grep -q 'diverged &lt;at&gt; step 3 &amp; more' "$R" && ok || bad "failed run's escaped error text"
grep -q 'hybrid &lt;b&gt;&amp;&#39;x&#39;' "$R" && ok || bad "escaped run name"
grep -q "<b>&'x'" "$R" && bad "run name not escaped" || ok
# bounds: 2.31 nats = 3.333 bits, printed on the bar; labels name run, schedule and estimator
grep -q '>3.333</text>' "$R" && ok || bad "bound value 3.333 bits/token not printed"
grep -q 'run 1 hybrid &lt;b&gt;&amp;&#39;x&#39; · block_annealing(tau=4, width=8) · reference' "$R" \
  && ok || bad "bound label"
# frontier: the point of run 1 acs and the table's gen_ppl / distinct_2 columns
grep -q '<title>run 1 hybrid &lt;b&gt;&amp;&#39;x&#39; · acs(eta=1) · T=0.9 · steps=16 · judge run 2' "$R" \
  && ok || bad "frontier point of run 1"
grep -q '<th>gen_ppl</th><th>distinct_2</th>' "$R" && ok || bad "frontier table columns"
grep -q '<td>0.8125</td>' "$R" && ok || bad "distinct_2 value"
grep -q '<script>alert(1)' "$R" && bad "settings JSON not escaped" || ok
# samples: escaped prompt, escaped inserted text, control character and mask rendering, the
# inserted correction highlighted with its history
grep -q '<span class="t">&lt;</span><span class="t">r</span>' "$R" && ok || bad "escaped prompt tokens"
grep -q '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\\x07</pre>' "$R" && ok \
  || bad "inserted sample text not escaped"
grep -q '<span class="t x">\\x07</span><span class="t m">█</span>' "$R" && ok || bad "control byte / mask token"
grep -q '<span class="t[^"]* c[^"]*" title="position 20&#10;[^"]*step 99: &#39;e&#39;→[^"]* (correct)">' "$R" \
  && ok || bad "correct event not highlighted with its history"
grep -q "class=\"t[^\"]* r\"" "$R" && ok || bad "no remasked position highlighted"
n=$(count '<div class="sample"' "$R")
[ "$n" = 6 ] && ok || bad "expected 6 samples, got $n"

# ---- in a browser ----
if [ -z "$CHROMIUM" ]; then
  bad "chromium is not installed (scripts/test.sh installs it: apt-get install chromium)"
else
  dom=$(browser "$R" --dump-dom)
  grep -q '<body data-ready="1" data-charts="6" data-samples="6">' <<<"$dom" && ok \
    || bad "page script did not finish: $(grep -o '<body[^>]*>' <<<"$dom") $(grep -A3 'id="errors"' <<<"$dom" | head -4)"
  grep -q '<pre id="errors" hidden=""></pre>' <<<"$dom" && ok || bad "errors shown on the page"
  grep -q '<span id="f-count">6 of 6 shown</span>' <<<"$dom" && ok || bad "sample filter did not run"
  browser "$R" --screenshot="$dir/shot.png" --window-size=1280,2000 >/dev/null
  size=$(stat -c %s "$dir/shot.png" 2>/dev/null || echo 0)
  [ "$size" -gt 60000 ] && ok || bad "screenshot is $size bytes (blank page?)"
  # an error in the page is shown, not swallowed
  sed 's|</body>|<script>null.boom()</script></body>|' "$R" > "$dir/broken.html"
  dom=$(browser "$dir/broken.html" --dump-dom)
  grep -q 'data-ready="error"' <<<"$dom" && grep -q 'TypeError' <<<"$dom" && ok \
    || bad "a script error did not reach #errors / data-ready: $(grep -o '<body[^>]*>' <<<"$dom")"
fi

# ---- an empty database: a valid page with "no data" notes ----
printf 'require("hdlm").open()\n' >"$dir/open.lua" # `hdlm runs` no longer creates a database
"$HDLM" run "$dir/open.lua" --db "$dir/empty.db" >/dev/null 2>&1 && ok || bad "creating an empty database"
"$HDLM" report --db "$dir/empty.db" -o "$dir/empty.html" >/dev/null 2>"$dir/empty.err" && ok \
  || bad "report of an empty database failed: $(cat "$dir/empty.err")"
n=$(count 'class="none">no data' "$dir/empty.html" 2>/dev/null)
[ "$n" = 6 ] && ok || bad "empty database: expected 6 'no data' notes, got $n"
[ "$(count '<svg' "$dir/empty.html")" = 0 ] && ok || bad "empty database has charts"
if [ -n "$CHROMIUM" ]; then
  dom=$(browser "$dir/empty.html" --dump-dom)
  grep -q '<body data-ready="1" data-charts="0" data-samples="0">' <<<"$dom" && ok \
    || bad "empty page script: $(grep -o '<body[^>]*>' <<<"$dom")"
fi

# ---- errors: one line, non-zero, no output, no database created ----
expect_error() { # what db pattern
  local out rc
  out=$("$HDLM" report "$2" -o "$dir/x.html" 2>&1); rc=$?
  if [ $rc -ne 0 ] && [ "$(grep -c . <<<"$out")" = 1 ] && grep -q -- "$3" <<<"$out"; then ok
  else bad "$1: status $rc, output '$out', expected one line matching '$3'"; fi
  [ ! -e "$dir/x.html" ] && ok || bad "$1: an output file was written"
}
expect_error "missing file" "$dir/none.db" "none.db: cannot open: no such file"
[ ! -e "$dir/none.db" ] && ok || bad "a missing database was created"
echo "not a database" > "$dir/text.db"
expect_error "text file" "$dir/text.db" "text.db: .*not a database"
sqlite3 "$dir/foreign.db" "CREATE TABLE t (x)"
expect_error "foreign database" "$dir/foreign.db" "foreign.db: an SQLite database that hdlm did not create"
out=$("$HDLM" report "$dir/r.db" -o "$dir/no/such/dir/r.html" 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(grep -c . <<<"$out")" = 1 ] && grep -q "report: cannot write $dir/no/such/dir/r.html" <<<"$out" \
  && ok || bad "unwritable output: status $rc, '$out'"
out=$("$HDLM" report a.db b.db 2>&1); rc=$?
[ $rc = 2 ] && grep -q "unexpected argument 'b.db'" <<<"$out" && ok || bad "two databases: $rc '$out'"

# `hdlm eval` on a stored run: the numbers are printed, stored as a nll_bound row, and reported
out=$("$HDLM" eval --db "$dir/r.db" --run 1 sequences=2 mc=2 2>"$dir/eval.err"); rc=$?
[ $rc = 0 ] && grep -q "consistent bound on 2 valid sequences of 32 tokens" <<<"$out" \
  && grep -Eq "^  [0-9.]+ ± [0-9.]+ nats/token = [0-9.]+ ± [0-9.]+ bits per byte$" <<<"$out" \
  && ok || bad "hdlm eval: status $rc, '$out' $(tail -2 "$dir/eval.err")"
n=$(sqlite3 "$dir/r.db" "SELECT count(*) FROM evaluations WHERE run_id = 1 AND metric = 'nll_bound' AND json_extract(settings, '$.mc') = 2 AND json_extract(settings, '$.sequences') = 2")
[ "$n" = 1 ] && ok || bad "hdlm eval stored $n rows"
out=$("$HDLM" eval --db "$dir/r.db" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "eval: --run ID is required" <<<"$out" && ok || bad "eval without --run: $rc '$out'"
(cd "$dir" && "$HDLM" report r.db -o report2.html >/dev/null 2>&1) && grep -q "10 evaluations" "$dir/report2.html" \
  && ok || bad "report after hdlm eval: $(grep -o '[0-9]* evaluations' "$dir/report2.html" | head -1)"

# no sanitizer reports from any hdlm run (when the binary is built with them)
if grep -lE "Sanitizer|runtime error" "$dir"/*.err "$dir"/report.out >/dev/null 2>&1; then
  bad "sanitizer report: $(grep -hE -m3 "Sanitizer|runtime error" "$dir"/*.err | grep -v chromium)"
else ok; fi

echo "test_report: $(stat -c %s "$R" 2>/dev/null) bytes of HTML for 4 runs, 6 samples" >&2
echo "test_report: $passed passed, $failed failed"
[ $failed -eq 0 ]
