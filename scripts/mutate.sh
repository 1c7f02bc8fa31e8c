#!/usr/bin/env bash
# The project's own mutation check: realistic one-line bugs, applied one at a time to a clone of
# this tree, each built and put through the test suite. A mutant the suite does not notice
# ("survived") is a hole in the safety net. Run it before calling a change to core paths done;
# it is not part of CI (about 30 s per mutant on 2 cores).
#
#   scripts/mutate.sh                  # every mutant, suite minus the integration tests
#   scripts/mutate.sh --list           # the mutants: id, file, what the bug is
#   scripts/mutate.sh -m sample-cache-rope -m 'eval-*'    # some of them (ids or globs)
#   scripts/mutate.sh -R '^unit\.' -E '' -j 2 -t 300
#
# Options:
#   -l, --list          list the mutants and exit
#   -m, --mutant ID     run only these (repeatable; comma lists and shell globs allowed)
#   -R, --tests RE      ctest -R: the tests to run (default: all)
#   -E, --exclude RE    ctest -E: tests left out (default: '^integration\.' — the shell tests
#                       that drive the binary end to end take ~90 s of the suite's ~110 s and
#                       only test process-level behaviour; '' runs everything)
#   -j, --jobs N        build jobs and ctest -j (default 2)
#   -t, --timeout S     limit for one mutant's test run, seconds (default: 3 x the unmutated
#                       run + 60); a mutant that makes the suite hang counts as killed
#   -w, --workdir DIR   where the clone, its build and the logs go (default: a new temp dir,
#                       removed at the end unless --keep)
#   -k, --keep          keep the work dir
#
# What is tested: the current commit (HEAD) plus uncommitted changes to tracked files (untracked
# files are not copied). The clone is built once (Release, no -Werror, so a mutant that only
# warns still builds); then for each mutant: its original text must occur exactly once in its
# file (otherwise the script stops: the mutant is stale, update its text), the file is mutated,
# the tree rebuilt incrementally (`cmake --build`: every target, plugins included), the tests run
# with --stop-on-failure, and the file restored. Tests that fail on the unmutated tree (say the
# report test without chromium) are left out with a warning. Result per mutant: killed (by the
# first failing test), survived, or stillborn (did not compile: not counted).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)

# ---- the mutants ---------------------------------------------------------------------------------
# mutant ID FILE ORIGINAL REPLACEMENT DESCRIPTION
# ORIGINAL must occur exactly once in FILE. core/diffusion/sample.c and eval.c,
# plugins/noise/gamma_hybrid.c and plugins/sampler/remask.c were being edited on main when this
# list was written: their mutants use lines unlikely to change, and a stale one stops the run
# with its id (fix its text).
M_ID=() M_FILE=() M_FROM=() M_TO=() M_WHAT=()
mutant() { M_ID+=("$1") M_FILE+=("$2") M_FROM+=("$3") M_TO+=("$4") M_WHAT+=("$5"); }

# issue #18's four bugs
mutant eval-mc-weight core/diffusion/eval.c \
    'mc == 0 ? 1.0 : (double)v.p.K / mc,' \
    'mc == 0 ? 1.0 : (double)(v.p.K - 1) / mc,' \
    'MC step weight (K-1)/mc instead of K/mc (per-step passes): bound too low'
mutant eval-mc-weight-2l core/diffusion/eval.c \
    'mc == 0 ? 1.0 : (double)cnt / mc,' \
    'mc == 0 ? 1.0 : (double)(cnt - 1) / mc,' \
    'MC step weight (cnt-1)/mc in the vectorised 2L layout: bound too low'
mutant sample-cache-rope core/diffusion/sample.c \
    'pos[dst] = p;' \
    'pos[dst] = k;' \
    'cached pass: rotary position = index inside the pass, not the position'
mutant eval-se-no-1/n core/diffusion/eval.c \
    'sqrt(sq / (double)(r->n_seq - 1) / (double)r->n_seq)' \
    'sqrt(sq / (double)(r->n_seq - 1))' \
    'standard error without the 1/n: the standard deviation reported as the error'
mutant sample-first-t core/diffusion/sample.c \
    'st[i] = mv.state, tn[i] = mv.t, tr[i] = mv.t_now, tx[i] = mv.t_next;' \
    'st[i] = mv.state, tn[i] = mv.t, tr[i] = mv.t, tx[i] = mv.t_next;' \
    'first active step of a position starts from its level time, not t = 1'

# the sampling loop
mutant sample-settle-s core/diffusion/sample.c \
    'st[i] = mv.state, tn[i] = mv.t, tr[i] = mv.t_now, tx[i] = mv.t_next;' \
    'st[i] = mv.state, tn[i] = mv.t, tr[i] = mv.t_now, tx[i] = s == n_steps ? 0.0f : plan_times(&pl, s + 1)[i];' \
    'a position settling at the next step is not denoised fully (s = eps, not 0)'
mutant sample-cache-offset core/diffusion/sample.c \
    'lg + ((size_t)b * n + nc) * Vp,' \
    'lg + ((size_t)b * n) * Vp,' \
    'cached pass: active logits copied from the rows of the settling prefix'
mutant sample-stale-rows core/diffusion/sample.c \
    '} else if (filled[i] || !use_cache) {' \
    '} else if (filled[i]) {' \
    'uncached: logits rows of non-active positions are left as computed, not cleared'
mutant sample-cache-full core/diffusion/hyper.c \
    'if (context == MASK_CTX_FULL) return 0;' \
    'if (context == MASK_CTX_FULL) return 1;' \
    'KV cache used with full context, where settled keys change as the prefix grows'

mutant hyper-width-L core/diffusion/hyper.c \
    'int64_t w = context_width > 0 ? context_width : block;' \
    'int64_t w = context_width > 0 ? context_width : L;' \
    'settled rows see the whole settled prefix by default (the width eval.c used to give simple annealing)'

# the evaluator
mutant eval-first-t core/diffusion/eval.c \
    'v->tnow[j] = mv.t_now;' \
    'v->tnow[j] = mv.t;' \
    'bound terms start a first active step from the level time, not 1'
mutant eval-settle-s core/diffusion/eval.c \
    'v->tnext[j] = mv.t_next;' \
    'v->tnext[j] = s == v->p.K ? 0.0f : plan_times(&v->p, s + 1)[i];' \
    'bound terms end a settling position at its next time, not 0'
mutant eval-limit-input core/diffusion/eval.c \
    'v->from_limit[j] = st == HDLM_WORTHLESS || mv.first;' \
    'v->from_limit[j] = st == HDLM_WORTHLESS;' \
    'first active step scored on x ~ q(x_t | x0) instead of the limit (masked) input'
mutant eval-strata core/diffusion/eval.c \
    'plan_step_of(&v.p, frac(u0[0] + (double)j / mc));' \
    'plan_step_of(&v.p, frac(u0[0] + (double)j / mc) * (1.0 - 1.0 / (double)v.p.K));' \
    'stratified step draw never reaches the last step'

# the schedule plan (the rules all three consumers read)
mutant plan-first-t core/diffusion/plan.h \
    'm.t_now = m.first ? 1.0f : m.t;' \
    'm.t_now = m.t;' \
    'plan: a first active step starts from the level time, not 1 (sampling and the bound)'
mutant plan-settle-s core/diffusion/plan.h \
    'm.t_next = s == p->K || p->state[j + L] == HDLM_SETTLED ? 0.0f : p->t[j + L];' \
    'm.t_next = s == p->K ? 0.0f : p->t[j + L];' \
    'plan: a position settling at the next step ends at its settled time, not 0'
mutant plan-block-steps core/diffusion/plan.c \
    'if (live) p->block_steps[n++] = s;' \
    'if (live && s % 2) p->block_steps[n++] = s;' \
    'plan: the 2L layout drops every other step of a block (training and the bound)'
mutant plan-rise core/diffusion/plan.c \
    'if (lv[i] > prev[i])' \
    'if (lv[i] > prev[i] + 1)' \
    'plan: a level rising by one step is not refused'

# hyperschedule times and masks
mutant hyper-delta core/diffusion/hyper.c \
    'double delta_d = W > 1 ? (1.0 - 2.0 * a_d) / (double)(W - 1) : 0.0;' \
    'double delta_d = W > 1 ? (1.0 - 2.0 * a_d) / (double)W : 0.0;' \
    'level spacing 1/W instead of 1/(W-1): times off the spec'
mutant hyper-settled core/diffusion/hyper.c \
    'if (i < n_settled) {' \
    'if (i <= n_settled) {' \
    'the first unsettled position is marked settled'
mutant mask-causal core/nn/mask.c \
    'r.hi1 = i + 1;' \
    'r.hi1 = i;' \
    'causal settled rows do not see their own position'
mutant mask-block-leak core/nn/mask.c \
    'r.hi1 = end < n_s ? end : n_s;' \
    'r.hi1 = end;' \
    'block-causal settled rows see into the active block (leak)'
mutant mask-2l-leak core/nn/mask.c \
    'attn_row r = {0, s, L + s,' \
    'attn_row r = {0, end, L + s,' \
    '2L layout: a noisy block sees its own clean copy (leak)'

# model and kernels
mutant kv-append core/nn/model.c \
    'size_t dst = lay + ((size_t)bb * kc->Tmax + kc->len + t) * C;' \
    'size_t dst = lay + ((size_t)bb * kc->Tmax + t) * C;' \
    'KV cache: new keys/values overwrite the cached prefix'
mutant kv-commit core/nn/model.c \
    'kc->len += n_commit;' \
    'kc->len += b->T;' \
    'KV cache: the active positions are committed as context too'
mutant layernorm-var core/nn/layers.c \
    'float rs = 1.0f / sqrtf(v / (float)C + LN_EPS);' \
    'float rs = 1.0f / sqrtf(v / (float)(C - 1) + LN_EPS);' \
    'LayerNorm with the unbiased variance'
mutant rope-sign core/nn/layers.c \
    'x2[k] = b * cs[k] + a * sn[k];' \
    'x2[k] = b * cs[k] - a * sn[k];' \
    'rotary embedding: not a rotation'
mutant mix-swap core/nn/layers.c \
    'float a = w[n], b = 1.0f - w[n];
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = a * et[c] + b * em[c];' \
    'float a = 1.0f - w[n], b = w[n];
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = a * et[c] + b * em[c];' \
    'RADD input mix: token and mask weights swapped (forward only)'

# optimizer
mutant adamw-decay-all core/nn/optim.c \
    'p -= (dec[i] ? wd : 0.0f) * p;' \
    'p -= wd * p;' \
    'weight decay applied to LayerNorm weights and biases too'
mutant lr-warmup core/nn/optim.c \
    'return c->lr * (double)(t + 1) / (double)c->warmup;' \
    'return c->lr * (double)t / (double)c->warmup;' \
    'warm-up starts at lr 0 (the first step does nothing)'
mutant ema-warmup core/nn/optim.c \
    'float ema = (float)(c->ema < d ? c->ema : d);' \
    'float ema = (float)c->ema;' \
    'EMA without its warm-up'

# the training objective
mutant method-step0 core/diffusion/method.c \
    'int64_t s = plan_step_of(p, draw_u(m, r, u0, g0 + b, G));' \
    'int64_t s = plan_step_of(p, draw_u(m, r, u0, g0 + b, G)) - 1;' \
    'training draws step 0 (all worthless) and never the last step'
mutant method-2l-times core/diffusion/method.c \
    'memcpy(t + L + lo, plan_times(p, s) + lo, (size_t)(hi - lo) * sizeof *t);' \
    'memcpy(t + L + lo, plan_times(p, s), (size_t)(hi - lo) * sizeof *t);' \
    '2L layout: every block gets the levels of the first block'

# schedules
mutant block-annealing-hi plugins/schedule/block_annealing.c \
    'level[i] = i < lo ? 0 : i < hi ? active : s->tau;' \
    'level[i] = i < lo ? 0 : i <= hi ? active : s->tau;' \
    'block annealing: the block is one position too wide'
mutant hybrid-behind plugins/schedule/hybrid_annealing.c \
    'int64_t behind = sigma - (i - lo);' \
    'int64_t behind = sigma - (i - lo) + 1;' \
    'hybrid annealing: the diagonal starts one step early'

# noise processes
mutant absorbing-bound plugins/noise/absorbing.c \
    'b->bound[j] = (t - s) / t * (logsumexp(lg, a->V) - lg[b->x0[j]]);' \
    'b->bound[j] = (t - s) * (logsumexp(lg, a->V) - lg[b->x0[j]]);' \
    'absorbing bound term without its 1/t'
mutant absorbing-keep plugins/noise/absorbing.c \
    'const double keep = (double)b->s[j] / (double)b->t[j];' \
    'const double keep = 1.0 - (double)b->s[j] / (double)b->t[j];' \
    'absorbing reverse: p(stay masked) = 1 - s/t'
mutant absorbing-loss-w plugins/noise/absorbing.c \
    'const double w = 1.0 / p;' \
    'const double w = 1.0;' \
    'absorbing loss without the 1/t weight'
mutant uniform-kernel plugins/noise/uniform.c \
    'q.r = s < 1 ? (t - s) / (1 - s) : 0;' \
    'q.r = s < 1 ? (t - s) / t : 0;' \
    'uniform posterior: the absorbing ratio used as the replacement rate'
mutant eps-marginal plugins/noise/epsilon_hybrid.c \
    'probs[x0] = (1 - t) * ((1 - h->epsilon) + h->epsilon / h->V);' \
    'probs[x0] = (1 - t) * (1 - h->epsilon);' \
    'epsilon hybrid marginal forgets a uniform redraw of the token itself'
mutant eps-loss-w plugins/noise/epsilon_hybrid.c \
    'w = h->lambda * (b->xt[j] != b->x0[j] ? 1 - h->epsilon : h->epsilon);' \
    'w = h->lambda * (b->xt[j] != b->x0[j] ? h->epsilon : 1 - h->epsilon);' \
    'epsilon hybrid: the weights of swapped and kept tokens exchanged'

# samplers
mutant ancestral-ptr plugins/sampler/ancestral.c \
    'const double all = real + row[M];' \
    'const double all = real;' \
    'ancestral: a masked position always unmasks'
mutant acs-ratio plugins/sampler/acs.c \
    'double p = t > 0 && tn > 0 ? s->eta * tn / t : 0;' \
    'double p = t > 0 && tn > 0 ? s->eta * t / tn : 0;' \
    'acs: correction probability eta*t/s instead of eta*s/t'
mutant confidence-order plugins/sampler/confidence.c \
    'if (a->conf != b->conf) return a->conf > b->conf ? -1 : 1;' \
    'if (a->conf != b->conf) return a->conf > b->conf ? 1 : -1;' \
    'confidence: least confident positions first'
mutant remask-cap plugins/sampler/remask.c \
    'return r->rescale ? r->eta * smax : (r->eta < smax ? r->eta : smax);' \
    'return r->rescale ? r->eta * smax : (r->eta > smax ? r->eta : smax);' \
    'remask cap rule: max(eta, smax) instead of min'

# ---- options ---------------------------------------------------------------------------------------
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
list=0 keep=0 jobs=2 timeout_s="" workdir="" tests_re="" exclude_re='^integration\.'
sel=()
while [ $# -gt 0 ]; do
    case "$1" in
    -l | --list) list=1 ;;
    -m | --mutant) IFS=, read -r -a parts <<<"$2" && sel+=("${parts[@]}") && shift ;;
    -R | --tests) tests_re=$2 && shift ;;
    -E | --exclude) exclude_re=$2 && shift ;;
    -j | --jobs) jobs=$2 && shift ;;
    -t | --timeout) timeout_s=$2 && shift ;;
    -w | --workdir) workdir=$2 && shift ;;
    -k | --keep) keep=1 ;;
    -h | --help) usage && exit 0 ;;
    *) echo "mutate: unknown option '$1' (see --help)" >&2 && exit 2 ;;
    esac
    shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "mutate: -j needs a positive integer, got '$jobs'" >&2; exit 2; }
[ -z "$timeout_s" ] || [[ $timeout_s =~ ^[1-9][0-9]*$ ]] ||
    { echo "mutate: -t needs seconds, got '$timeout_s'" >&2; exit 2; }


# selected indices (in list order)
n_all=${#M_ID[@]}
run=()
for ((i = 0; i < n_all; i++)); do
    if [ ${#sel[@]} = 0 ]; then run+=("$i") && continue; fi
    for pat in "${sel[@]}"; do
        # shellcheck disable=SC2053 # glob match on purpose
        if [[ ${M_ID[i]} == $pat ]]; then run+=("$i") && break; fi
    done
done
for pat in "${sel[@]}"; do
    found=0
    # shellcheck disable=SC2053 # glob match on purpose
    for i in "${run[@]}"; do [[ ${M_ID[i]} == $pat ]] && found=1; done
    [ $found = 1 ] || { echo "mutate: no mutant matches '$pat' (see --list)" >&2; exit 2; }
done

# ---- exact-text substitution (perl: literal text, fails unless it occurs exactly once) ------------
# subst FILE FROM TO [check]: with `check`, only counts.
subst() {
    FROM=$2 TO=$3 CHECK=${4:-} perl -e '
        my ($file) = @ARGV;
        open(my $fh, "<", $file) or die "cannot read $file: $!\n";
        local $/; my $text = <$fh>; close $fh;
        my ($from, $to) = ($ENV{FROM}, $ENV{TO});
        my ($n, $at) = (0, -1);
        for (my $p = index($text, $from); $p >= 0; $p = index($text, $from, $p + 1)) { $n++; $at = $p if $at < 0 }
        die "original text found $n times in $file (expected exactly once)\n" if $n != 1;
        exit 0 if $ENV{CHECK};
        substr($text, $at, length $from) = $to;
        open($fh, ">", $file) or die "cannot write $file: $!\n";
        print $fh $text; close $fh or die "cannot write $file: $!\n";
    ' "$1"
}

n_all=${#M_ID[@]}
if [ $list = 1 ]; then
    stale=0
    for ((i = 0; i < n_all; i++)); do
        ok=""
        subst "$SRC/${M_FILE[i]}" "${M_FROM[i]}" "${M_TO[i]}" check 2>/dev/null || ok=" [STALE]" stale=1
        printf '%-20s %-36s %s%s\n' "${M_ID[i]}" "${M_FILE[i]}" "${M_WHAT[i]}" "$ok"
    done
    echo "$n_all mutants"
    exit $stale
fi

stale=0
for i in "${run[@]}"; do
    if ! msg=$(subst "$SRC/${M_FILE[i]}" "${M_FROM[i]}" "${M_TO[i]}" check 2>&1); then
        echo "mutate: mutant ${M_ID[i]} is stale: $msg" >&2
        stale=1
    fi
done
[ $stale = 0 ] || { echo "mutate: update the stale mutants' text in $0" >&2; exit 1; }

# ---- the clone, built once ------------------------------------------------------------------------
if [ -z "$workdir" ]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/hdlm-mutate.XXXXXX")
else
    mkdir -p "$workdir"
fi
clone=$workdir/src build=$workdir/build logs=$workdir/logs
current=-1
cleanup() {
    if [ "$current" -ge 0 ] && [ -f "$workdir/orig" ]; then
        cp "$workdir/orig" "$clone/${M_FILE[current]}" # leave the clone unmutated
    fi
    if [ $keep = 0 ]; then rm -rf "$workdir"; else echo "mutate: work dir kept: $workdir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rev=$(git -C "$SRC" rev-parse HEAD)
echo "mutate: $SRC at ${rev:0:12}; work dir $workdir"
rm -rf "$clone" "$build"
mkdir -p "$logs"
git clone -q --no-checkout "$SRC" "$clone"
git -C "$clone" checkout -q --detach "$rev"
if ! git -C "$SRC" diff --quiet HEAD; then
    echo "mutate: applying the uncommitted changes to tracked files"
    git -C "$SRC" diff --binary HEAD | git -C "$clone" apply --whitespace=nowarn
fi
if [ -n "$(git -C "$SRC" ls-files --others --exclude-standard)" ]; then
    echo "mutate: note: untracked files are not part of the clone"
fi

t0=$(date +%s)
echo "mutate: configuring and building the clone (-j $jobs) ..."
cmake -S "$clone" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHDLM_WERROR=OFF >"$logs/configure.log" 2>&1 ||
    { echo "mutate: configure failed, see $logs/configure.log" >&2; keep=1; exit 1; }
cmake --build "$build" -j "$jobs" >"$logs/build.log" 2>&1 ||
    { echo "mutate: the unmutated tree does not build, see $logs/build.log" >&2; keep=1; exit 1; }

ctest_args=(--test-dir "$build" -j "$jobs" --output-on-failure)
[ -z "$tests_re" ] || ctest_args+=(-R "$tests_re")
[ -z "$exclude_re" ] || ctest_args+=(-E "$exclude_re")

echo "mutate: unmutated run of the tests ..."
b0=$(date +%s)
ctest "${ctest_args[@]}" --timeout 900 >"$logs/baseline.log" 2>&1 || true
b1=$(date +%s)
base=$((b1 - b0))
n_tests=$(ctest "${ctest_args[@]}" -N | sed -n 's/^Total Tests: //p')
failing=$(sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) (.*)$/\1/p' "$logs/baseline.log" | sort -u)
if [ -n "$failing" ]; then
    echo "mutate: WARNING: these tests fail on the unmutated tree and are left out:" >&2
    while read -r name; do echo "    $name" >&2; done <<<"$failing"
    # shellcheck disable=SC2016 # a sed expression, not a shell one
    esc=$(echo "$failing" | sed 's/[.[\*^$()+?{|]/\\&/g' | paste -sd'|')
    if [ -n "$exclude_re" ]; then exclude_re="$exclude_re|^($esc)\$"; else exclude_re="^($esc)\$"; fi
    ctest_args=(--test-dir "$build" -j "$jobs" --output-on-failure)
    [ -z "$tests_re" ] || ctest_args+=(-R "$tests_re")
    ctest_args+=(-E "$exclude_re")
    n_tests=$(ctest "${ctest_args[@]}" -N | sed -n 's/^Total Tests: //p')
fi
[ "${n_tests:-0}" -gt 0 ] || { echo "mutate: no tests selected" >&2; exit 2; }
[ -n "$timeout_s" ] || timeout_s=$((3 * base + 60))
echo "mutate: $n_tests tests, unmutated run ${base} s; limit per mutant ${timeout_s} s;" \
    "${#run[@]} mutants"

# ---- one mutant at a time ------------------------------------------------------------------------------
killed=0 survived=0 stillborn=0 k=0
survivors=()
for i in "${run[@]}"; do
    k=$((k + 1))
    id=${M_ID[i]} file=${M_FILE[i]}
    log="$logs/$(echo "$id" | tr '/' '_').log"
    m0=$(date +%s)
    cp "$clone/$file" "$workdir/orig"
    current=$i
    subst "$clone/$file" "${M_FROM[i]}" "${M_TO[i]}"
    if ! cmake --build "$build" -j "$jobs" >"$log" 2>&1; then
        status="stillborn" detail="does not compile"
        stillborn=$((stillborn + 1))
    elif timeout --kill-after=30 "$timeout_s" ctest "${ctest_args[@]}" --stop-on-failure \
        --timeout "$timeout_s" >>"$log" 2>&1; then
        status="SURVIVED" detail=""
        survived=$((survived + 1))
        survivors+=("$id")
    else
        rc=$?
        first=$(sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) (.*)$/\1/p' "$log" | head -1)
        if [ $rc = 124 ] || [ $rc = 137 ]; then detail="timeout after ${timeout_s} s"; else detail=$first; fi
        status="killed" detail="by ${detail:-ctest exit $rc}"
        killed=$((killed + 1))
    fi
    cp "$workdir/orig" "$clone/$file" # a new mtime: the next build recompiles the original
    current=-1
    printf '[%2d/%d] %-9s %-20s %-36s %3d s  %s\n' "$k" "${#run[@]}" "$status" "$id" "$file" \
        $(($(date +%s) - m0)) "$detail"
done
cmake --build "$build" -j "$jobs" >>"$logs/build.log" 2>&1 || true # leave the build unmutated

counted=$((killed + survived))
echo
echo "mutate: killed $killed of $counted ($((counted ? 100 * killed / counted : 0)) %)," \
    "survived $survived, stillborn $stillborn; $(($(date +%s) - t0)) s in all"
for id in "${survivors[@]}"; do
    for ((i = 0; i < n_all; i++)); do
        [ "${M_ID[i]}" = "$id" ] && echo "  survived: $id (${M_FILE[i]}): ${M_WHAT[i]}"
    done
done
[ $survived = 0 ]
