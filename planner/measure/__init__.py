"""Measurement backend: real runs that check the planner's predictions (issue 3).

``import planner.measure`` imports nothing heavy; torch is imported by the modules below, which the CLI
handlers import lazily, so ``planner gpus`` stays fast.

- ``models``      nn.Modules built from catalog architectures (decoder layers with GQA, gated MLP, RoPE and a
                  KV cache; ViT blocks; ResNet/DenseNet), random weights; every cost-model op runs inside a
                  profiler region with the cost model's op name (``regions``).
- ``recipes``     precisions with real kernels: fp32/bf16/fp16, fp8 (``torch._scaled_mm``), SmoothQuant W8A8
                  (int8 via oneDNN/fbgemm on CPU, ``torch._int_mm`` on CUDA), weight-only int8/int4.
- ``smoothquant`` calibration hooks, smoothing factors, folding, quantizers; ``sq_study`` the accuracy study
                  on all-MiniLM-L6-v2 with radiology sentences.
- ``profiler``    torch.profiler timing of the regions: warm-up, cache flush, repetitions, spread; ``power``
                  NVML sampling on NVIDIA GPUs.
- ``microbench``  achievable GEMM rates, memory bandwidth, launch overhead -> device profile -> roofline.
- ``harness``     one measured run; ``runs`` its files on disk (CSV + metadata JSON, written atomically).
- ``cli``         ``planner microbench | measure | validate | smoothquant``.
"""
