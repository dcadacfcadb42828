#!/usr/bin/env bash
# Issue 15 (training side) on one GPU: every figure the CPU session could not measure, in one go.
#   MNIST=path/to/mnist bash bench/gpu_issue15d.sh 2>&1 | tee gpu-15d.txt
# Needs the MNIST idx files in $MNIST; about 5 minutes on an H200.
set -euo pipefail
export PYTHONPATH=${PYTHONPATH:-src}
MNIST=${MNIST:-../shared/data/mnist}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
# the pipeline's own GPU paths (pinned staging), the 2-rank equivalence, fp16 resume
python -m pytest -q -p no:cacheprovider tests/test_pipeline_device.py tests/test_precision.py tests/test_distributed.py
# pipeline vs bare loop: the table (fp32 at 128, bn + bf16 at 128, fp32 at 1,024), ResNet-18 96x96
python bench/throughput.py --dataset mnist --data-dir "$MNIST" --device cuda --triplets 128000 --repeats 3
python bench/throughput.py --dataset mnist --data-dir "$MNIST" --device cuda --batch-norm --precision bf16 --triplets 128000 --repeats 3
python bench/throughput.py --dataset mnist --data-dir "$MNIST" --device cuda --batch-size 1024 --triplets 512000 --repeats 3
python bench/throughput.py --dataset synthetic96 --model resnet18 --device cuda --precision auto --triplets 12800 --repeats 3
# the losses against PML on the GPU (batch-all at 1,024 / 4,096 / 16,384 and the others at 1,024)
python bench/losses.py --device cuda
