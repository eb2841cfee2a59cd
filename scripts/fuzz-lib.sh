# Shared by scripts/fuzz and scripts/fuzz-ci (sourced; REPO, BUILD, JOBS,
# CC_FUZZ set by the caller, working directory the repository root).

# Third-party leaks Genie cannot fix (see the file); a caller's own
# LSAN_OPTIONS wins.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$REPO/tests/fuzz/lsan.supp:print_suppressions=0}

# fuzz_have_clang: 0 when CC_FUZZ and its libFuzzer runtime can build a
# fuzzer, else 1 with the reason on stdout.
fuzz_have_clang() {
    local tmp
    if ! command -v "$CC_FUZZ" >/dev/null; then
        echo "$CC_FUZZ not found (apt-get install clang-14 libclang-rt-14-dev)"
        return 1
    fi
    tmp=$(mktemp -d)
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
        >"$tmp/t.c"
    if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1; then
        rm -rf "$tmp"
        echo "$CC_FUZZ cannot link -fsanitize=fuzzer,address,undefined (apt-get install libclang-rt-14-dev)"
        return 1
    fi
    rm -rf "$tmp"
    return 0
}

# fuzz_configure: configure $BUILD once (GENIE_FUZZ=ON, clang).
fuzz_configure() {
    local why
    if ! why=$(fuzz_have_clang); then
        printf 'genie: fuzz: %s\n' "$why" >&2
        exit 1
    fi
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        mkdir -p "$BUILD"
        CC=$CC_FUZZ cmake -S . -B "$BUILD" -DGENIE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            >"$BUILD/configure.log" 2>&1 ||
            { tail -40 "$BUILD/configure.log" >&2; rm -f "$BUILD/CMakeCache.txt";
              printf 'genie: fuzz: configuring %s failed (log: %s/configure.log)\n' "$BUILD" "$BUILD" >&2;
              exit 1; }
    fi
}

# fuzz_run TARGET SECONDS [flags...]: fuzz into $BUILD/corpus/TARGET, seeded
# from the tree; prints the summary line (FUZZ_LINE too) and returns
# libFuzzer's status.
fuzz_run() {
    local t=$1 s=$2 log rc execs cov ft corp
    shift 2
    mkdir -p "$BUILD/corpus/$t" "$BUILD/artifacts"
    log="$BUILD/fuzz-$t.log"
    rc=0
    "$BUILD/fuzz/$t" -max_total_time="$s" -print_final_stats=1 \
        -rss_limit_mb="${GENIE_FUZZ_RSS_MB:-2048}" -timeout="${GENIE_FUZZ_TIMEOUT_S:-20}" \
        -artifact_prefix="$BUILD/artifacts/$t-" "$@" \
        "$BUILD/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    if [ "${FUZZ_QUIET:-0}" = 1 ]; then
        [ "$rc" -eq 0 ] || tail -60 "$log"
    else
        cat "$log"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # The last status line ("#N DONE cov: C ft: F corp: K/..." or a pulse).
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    corp=$(find "$BUILD/corpus/$t" "tests/fuzz/corpus/$t" -type f | wc -l)
    FUZZ_LINE=$(printf '%-16s execs %9s  cov %5s  ft %6s  corpus %5s  seconds %4s  %s' \
        "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$s" \
        "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (status $rc, log $log)")")
    [ "${FUZZ_QUIET:-0}" = 1 ] || echo "fuzz: $FUZZ_LINE"
    return "$rc"
}
