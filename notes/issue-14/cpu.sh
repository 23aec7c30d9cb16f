#!/usr/bin/env bash
# usage: cpu.sh SECONDS PID... ; prints CPU% of each pid over the interval, and the machine's
t=$1; shift
tick=$(getconf CLK_TCK)
declare -A a
for p in "$@"; do a[$p]=$(awk '{print $14+$15}' /proc/$p/stat); done
read -r _ u n s i w rest < /proc/stat; tot0=$((u+n+s+i+w)); idle0=$i; iow0=$w
sleep $t
read -r _ u n s i w rest < /proc/stat; tot1=$((u+n+s+i+w))
for p in "$@"; do b=$(awk '{print $14+$15}' /proc/$p/stat); echo "pid $p ($(tr '\0' ' ' </proc/$p/cmdline | cut -c1-30)): $(( (b - a[$p]) * 100 / tick / t ))%"; done
echo "machine: busy $(( 100 - (i - idle0 + w - iow0) * 100 / (tot1 - tot0) ))% of 2 cores-total, iowait $(( (w - iow0) * 100 / (tot1 - tot0) ))%"
