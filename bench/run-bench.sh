#!/bin/sh
# run-bench.sh BUILD-DIR [PREFIX]: run the benchmark (the cases whose name
# starts with PREFIX, all when empty), print one line per case and peer,
# write BUILD-DIR/bench/results.csv and draw BUILD-DIR/bench/results.png.
# `make bench [CASES=prefix]` calls this. A missing or failing gnuplot does
# not fail the benchmark; a failing case does (after every case has run).
# Environment: MP_BENCH_ROUNDS, MP_BENCH_SECONDS, MP_BENCH_PYTHON (see
# mp_bench.c).
set -u
build=${1:-build}
prefix=${2:-}
out=$build/bench
bin=$out/mp_bench
csv=$out/results.csv
png=$out/results.png
gp=$out/results.gp

# A build tree configured before bench/ existed does not know the target yet.
if [ ! -x "$bin" ] && [ -f "$build/CMakeCache.txt" ]; then
    cmake "$build" >/dev/null && cmake --build "$build" --target mp_bench >/dev/null
fi
if [ ! -x "$bin" ]; then
    echo "bench: $bin is not built (configure with -DMP_BUILD_BENCH=ON)" >&2
    exit 1
fi
"$bin" -c "$csv" ${prefix:+"$prefix"}
status=$?
[ $status -eq 2 ] && exit 2    # bad usage or no such case: nothing written
rm -f "$png" "$gp"

# The plot: one bar per case, placement and peer, the speedup of mproc over
# that peer on a log scale, bars drawn from 1 (above 1: mproc wins).
rows=$(awk -F, 'NR > 1 && $3 != "mproc" && $6 != ""' "$csv" | wc -l)
if [ "$rows" -eq 0 ]; then
    echo "bench: no speedup to plot; $png not drawn"
elif ! command -v gnuplot >/dev/null 2>&1; then
    echo "bench: gnuplot not found; $png not drawn"
else
    awk -F, -v csv="$csv" -v png="$png" '
    NR > 1 && $3 != "mproc" && $6 != "" {
        label = $2 == "all" ? $1 : $1 "@" $2
        if (!(label in group)) { group[label] = ng; glabel[ng++] = label }
        if (!($3 in peer)) { peer[$3] = ++np; pname[np] = $3 }
        n++; g[n] = group[label]; p[n] = peer[$3]; s[n] = $6
        if ($6 + 0 > ymax) ymax = $6 + 0
        if (ymin == "" || $6 + 0 < ymin) ymin = $6 + 0
    }
    END {
        printf "set terminal pngcairo noenhanced size %d,600 font \",10\"\n", 300 + 110 * ng
        printf "set output \"%s\"\n", png
        print  "set title \"mproc speedup per case (above 1: mproc wins)\""
        print  "set ylabel \"speedup (log scale)\""
        print  "set logscale y"
        print  "set ytics (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)"
        lo = ymin < 1 ? ymin / 1.5 : 0.5; hi = ymax > 1 ? ymax * 1.6 : 2
        printf "set yrange [%g:%g]\n", lo, hi
        printf "set xrange [-0.6:%g]\n", ng - 0.4
        print  "set grid ytics"
        print  "set key top left"
        print  "set style fill solid 0.8 border -1"
        print  "set xtics rotate by -30 nomirror"
        printf "set xtics ("
        for (i = 0; i < ng; i++)
            printf "%s\"%s\" %d", (i ? ", " : ""), glabel[i], i
        print  ")"
        print  "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb \"black\""
        bw = 0.8 / np
        print  "$bars << EOD"
        for (i = 1; i <= n; i++) {
            x = g[i] + (p[i] - 1 - (np - 1) / 2) * bw
            printf "%g %g %g %s %d\n", x, x - bw / 2, x + bw / 2, s[i], p[i]
        }
        print  "EOD"
        printf "plot "
        for (j = 1; j <= np; j++)
            printf "%s$bars using ($5 == %d ? $1 : 1/0):4:2:3:(1):4 with boxxyerror lc %d title \"vs %s\"", (j > 1 ? ", " : ""), j, j, pname[j]
        printf ", $bars using 1:($4 > 1 ? $4 : 1):(sprintf(\"%%.2f\", $4)) with labels offset 0,0.7 font \",8\" notitle\n"
    }' "$csv" > "$gp"
    if gnuplot "$gp" 2> "$out/gnuplot.log" && [ -s "$png" ]; then
        echo "bench: results in $csv and $png"
    else
        echo "bench: gnuplot failed (see $out/gnuplot.log); $png not drawn;" \
             "results in $csv"
    fi
fi
exit $status
