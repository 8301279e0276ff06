#!/usr/bin/env bash
# Mutation testing with mutmut 3 (configuration: [tool.mutmut] in pyproject.toml).
#
#   pip install mutmut==3.8.1
#   tests/mutation/run.sh GROUP[:SAMPLE] [GROUP[:SAMPLE]...]
#
# GROUP:  detect | psds_counts | shards | onnx_export | model_folder | all
# SAMPLE: a glob on the mutant number (mutmut names mutants <module>.<function>__mutmut_<N>):
#         '*' runs every mutant (the default); '*7' about 1 in 10; '*[02468]7' about 1 in 20; '*[036]7' about 3 in 100.
#
# Give all groups to one call: each call first regenerates the mutants (~1 min here) and runs the selected
# tests once unmutated (~4 min here). mutmut mutates a copy of the code in mutants/ (git-ignored), records
# which of the tests listed in pytest_add_cli_args_test_selection reach each function (once, cached in mutants/mutmut-stats.json), then runs
# only those tests against each mutant, one worker at a time, in one process ("-n 0").
# Then:  mutmut results   (survivors)   ·   mutmut show NAME   (the diff)   ·   rm -rf mutants   (start afresh)
set -euo pipefail
cd "$(dirname "$0")/../.."

[[ $# -gt 0 ]] || { echo "usage: tests/mutation/run.sh GROUP[:SAMPLE]..." >&2; exit 2; }
patterns=()
for arg in "$@"; do
  group=${arg%%:*}
  sample='*'
  [[ "$arg" == *:* ]] && sample=${arg#*:}
  case "$group" in
    detect)       modules=("tools.detect.*") ;;
    psds_counts)  modules=("tools.eval.psds_counts.*") ;;
    shards)       modules=("data_handling.shards.*") ;;
    onnx_export)  modules=("models.onnx_export.*") ;;
    model_folder) modules=("models.model_folder.*") ;;
    all)          modules=("tools.detect.*" "tools.eval.psds_counts.*" "data_handling.shards.*"
                           "models.onnx_export.*" "models.model_folder.*") ;;
    *) echo "unknown group '$group': expected detect, psds_counts, shards, onnx_export, model_folder or all" >&2
       exit 2 ;;
  esac
  for module in "${modules[@]}"; do patterns+=("${module}__mutmut_${sample}"); done
done
status=0
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout "${MUTATION_TIMEOUT_S:-7200}" nice -n 10 mutmut run --max-children 1 "${patterns[@]}" \
  || status=$?                   # 124: MUTATION_TIMEOUT_S ran out; the mutants checked so far are kept
mutmut results | grep -v ": not checked$" || true
exit "$status"
