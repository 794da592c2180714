"""Training-speed bench for the grading network: milliseconds per crop of one optimiser step
(augmentation, forward, backward, AdamW) in each precision and memory layout.

    python bench/bench_training.py [--batch-size 32] [--steps 6] [--threads 2]

Prints, per configuration, the augmentation's share and the network step's share of a training
step on random crops of the real shape (3 channels: sagittal, axial T2, presence mask). ``auto``
precision (what ``spinegrade train grading`` uses) is bfloat16 where this CPU has it in hardware
(AVX-512-BF16 or AMX); the float32 rows show what a CPU without it gets.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per configuration (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from SpineGradeLogic.grading.data import Augment, network_input
    from SpineGradeLogic.grading.network import CROP_SHAPE, build_network
    from SpineGradeLogic.training.precision import autocast, native_bf16

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B = args.batch_size
    image = torch.randint(0, 64, (B, *CROP_SHAPE), dtype=torch.uint8)
    axial = torch.randint(0, 64, (B, *CROP_SHAPE), dtype=torch.uint8)
    labels = torch.zeros(B, 2, 13, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    augment = Augment()

    def per_crop(fn) -> float:
        fn()
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1000 * sorted(times)[len(times) // 2] / B  # median step, per crop

    aug_ms = per_crop(lambda: augment(network_input(image, axial, 3), labels, gen))
    print(f"CPU bfloat16 in hardware: {native_bf16(torch.device('cpu'))}; batch {B}, {args.threads} threads")
    print(f"augmentation: {aug_ms:.1f} ms/crop")
    x = augment(network_input(image, axial, 3), labels, gen)[0]
    for layout in ("contiguous", "channels_last_3d"):
        for dtype in (None, torch.bfloat16):
            fmt = torch.channels_last_3d if layout == "channels_last_3d" else torch.contiguous_format
            net = build_network().train().to(memory_format=fmt)
            opt = torch.optim.AdamW(net.parameters(), 1e-4)

            def step():
                opt.zero_grad()
                with autocast("cpu", dtype):
                    loss = net(x).square().mean()
                loss.backward()
                opt.step()

            ms = per_crop(step)
            name = "bfloat16" if dtype is not None else "float32"
            print(f"network step, {name:8s} {layout:17s}: {ms:5.1f} ms/crop; with augmentation {ms + aug_ms:5.1f} ms/crop")


if __name__ == "__main__":
    main()
