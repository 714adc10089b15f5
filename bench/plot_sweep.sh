#!/usr/bin/env bash
# bench/plot_sweep.sh - the rate sweep of `make bench BENCH=rate-sweep` as a PNG.
#
#   bash bench/plot_sweep.sh RESULTS.json OUT.png [DATA.dat] [LABEL]
#
# What: latency percentiles (p50, p95, p99, ms, log scale) against the offered rate, gov-edge
# (decision log on) and OPA side by side on the same axes, from the entries evaluate-sweep-<R>
# and opa-evaluate-sweep-<R> of one results.json (bench/run.sh). A rate whose run had errors or
# unfinished requests is marked (an open square on its p99): its percentiles include requests
# that were never answered, at the time they had waited (a lower bound, bench/loadgen).
# How: jq turns the entries into one row per rate (DATA.dat, kept next to the results so the
# figure can be redrawn), gnuplot-nox (pngcairo) draws it. It does not measure anything.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: bash bench/plot_sweep.sh RESULTS.json OUT.png [DATA.dat] [LABEL]" >&2; exit 2; }
results=$1 png=$2 dat=${3:-${1%.json}-rate-sweep.dat}
# LABEL: where the figures come from (bench/run.sh: start time and load average of the run)
label=${4:-$results}
command -v jq >/dev/null || { echo "plot_sweep.sh: jq is missing (deploy/install-deps.sh)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot_sweep.sh: gnuplot is missing (apt-get install gnuplot-nox; deploy/install-deps.sh --all)" >&2; exit 1; }

# rate, then for the edge and for OPA: p50 p95 p99 throughput failed (loadgen's errors, which
# count the unfinished requests too)
jq -r '
  def row(e): if e == null then "NaN NaN NaN NaN NaN"
              else "\(e.p50_ms) \(e.p95_ms) \(e.p99_ms) \(e.throughput_rps) \(e.errors // 0)" end;
  (map(select(.name | test("^(opa-)?evaluate-sweep-[0-9]+$")))) as $s
  | ($s | map(.name | sub("^(opa-)?evaluate-sweep-"; "") | tonumber) | unique) as $rates
  | "# rate edge_p50 edge_p95 edge_p99 edge_rps edge_failed opa_p50 opa_p95 opa_p99 opa_rps opa_failed",
    ($rates[] as $r
     | "\($r) \(row($s | map(select(.name == "evaluate-sweep-\($r)")) | first)) \(row($s | map(select(.name == "opa-evaluate-sweep-\($r)")) | first))")
' "$results" >"$dat"
[[ $(grep -vc '^#' "$dat") -gt 0 ]] || { echo "plot_sweep.sh: no evaluate-sweep-<R> entries in $results" >&2; exit 1; }

mkdir -p "$(dirname "$png")"
gnuplot <<GP
set terminal pngcairo size 1400,560 font "sans,10"
set output "$png"
set datafile missing "NaN"
set logscale y
set grid ytics mytics xtics
set xlabel "offered rate (requests/s)"
set ylabel "latency (ms, log scale)"
set key bottom right opaque box
stats "$dat" using 4 name "E" nooutput
stats "$dat" using 9 name "O" nooutput
ymax = (E_max > O_max ? E_max : O_max)
set yrange [0.05:(ymax > 2 ? ymax * 2 : 4)]
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb "#888888"
set multiplot layout 1,2 title "POST /v1/evaluate: latency against offered rate (bench/loadgen, open loop)\n$label"
set title "gov-edge (decision log on)"
plot "$dat" using 1:2 with linespoints pt 7 title "p50", \
     "" using 1:3 with linespoints pt 5 title "p95", \
     "" using 1:4 with linespoints pt 9 title "p99", \
     "" using 1:(\$6 > 0 ? \$4 : 1/0) with points pt 4 ps 2.5 lc rgb "red" title "errors or unfinished"
set title "Open Policy Agent (same policy)"
plot "$dat" using 1:7 with linespoints pt 7 title "p50", \
     "" using 1:8 with linespoints pt 5 title "p95", \
     "" using 1:9 with linespoints pt 9 title "p99", \
     "" using 1:(\$11 > 0 ? \$9 : 1/0) with points pt 4 ps 2.5 lc rgb "red" title "errors or unfinished"
unset multiplot
GP
echo "$png"
