"""Where does InstructZero's GP propose after the Sobol start, by the scores it saw? No LLM.

On hard tasks most instructions score 0, so after 8 start-up points the scores are often all
equal. Per pattern of the 8 scores (all equal, one hit, all different) and seed: the next point
of `instructzero_candidate` (the sampler's GP step) in z = [-1, 1]^d, its norm and how many
coordinates sit at the bound, next to a uniform z's; for black-box outputs that share nothing
between the points' instructions (S = I) and outputs that share half their words (S = 0.5).
Writes research/results/flat_acquisition.{json,md}.

    .venv/bin/python -m research.flat_acquisition --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from scipy.stats import qmc

from components.instructzero_sampler import instructzero_candidate
from components.kernel import output_similarity

RESULTS = Path(__file__).resolve().parent / "results"
PATTERNS = ("all equal", "one hit", "all different")
OUTPUTS = {"share nothing": lambda i, k: f"o{i}x{k}", "share half": lambda i, k: f"answer {i}"}


def scores(pattern: str, n: int, seed: int) -> torch.Tensor:
    """``n`` start-up scores of a pattern."""
    if pattern == "all equal":
        return torch.zeros(n, dtype=torch.float64)
    if pattern == "one hit":
        return torch.tensor([0.3] + [0.0] * (n - 1), dtype=torch.float64)
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--n-startup", type=int, default=8)
    args = parser.parse_args()
    rows = []
    for outputs, words in OUTPUTS.items():
        similarity = output_similarity([[words(i, k) for k in range(20)] for i in range(args.n_startup)])
        off = similarity[~torch.eye(args.n_startup, dtype=torch.bool)].mean().item()
        label = f"{outputs} (S off the diagonal {off:.2f})"
        for pattern in PATTERNS:
            for seed in args.seeds:
                x = torch.tensor(qmc.Sobol(args.dim, seed=seed).random(args.n_startup), dtype=torch.float64)
                torch.manual_seed(seed)
                z = 2 * instructzero_candidate(x, scores(pattern, args.n_startup, seed), similarity)[0] - 1
                rows.append({"outputs": label, "pattern": pattern, "seed": seed, "norm": z.norm().item(),
                             "at_bound": int((z.abs() > 0.98).sum())})
    uniform = 2 * torch.rand(100_000, args.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
    reference = {"norm": uniform.norm(dim=1).mean().item(),
                 "at_bound": (uniform.abs() > 0.98).sum(1).double().mean().item()}
    lines = [f"# The GP's next point after {args.n_startup} Sobol points (d = {args.dim}, seeds {args.seeds})", "",
             "Command: `.venv/bin/python -m research.flat_acquisition --seeds "
             + " ".join(map(str, args.seeds)) + "`", "",
             f"| outputs | start-up scores | mean norm of z | coordinates of {args.dim} at the bound (abs > 0.98), "
             "mean | per seed (norm, at bound) |",
             "|---|---|---|---|---|"]
    for outputs in dict.fromkeys(r["outputs"] for r in rows):
        for pattern in PATTERNS:
            mine = [r for r in rows if r["pattern"] == pattern and r["outputs"] == outputs]
            lines.append(f"| {outputs} | {pattern} | {statistics.mean(r['norm'] for r in mine):.2f} | "
                         f"{statistics.mean(r['at_bound'] for r in mine):.1f} | "
                         + ", ".join(f"({r['norm']:.2f}, {r['at_bound']})" for r in mine) + " |")
    lines.append(f"| | (a uniform z) | {reference['norm']:.2f} | {reference['at_bound']:.1f} | |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "flat_acquisition.md").write_text(table + "\n")
    (RESULTS / "flat_acquisition.json").write_text(json.dumps({"rows": rows, "uniform": reference}, indent=2) + "\n")


if __name__ == "__main__":
    main()
