"""Peak memory (RSS) of `python -m hallo_pipeline convert-hallo3`, which must not hold the 29 GB checkpoint.

    python -m benchmarks.hallo3_convert_memory --gb 2          # a synthetic 2 GB {'module': ...} pickle
    python -m benchmarks.hallo3_convert_memory \
        --source ../shared/parity-hallo3/models/hallo3/1/mp_rank_00_model_states.pt \
        --keys ../shared/parity-hallo3/models/hallo3_keys.json     # an existing file and its key table

Each command runs in a process of its own, measured with wait4 (peak RSS of that process alone):
`baseline` only imports what the command imports; `convert` is the command itself (plain file reads at
the offsets torch records); `convert_mmap` forces the fallback for torch versions that record none
(copies from a memory-mapped load: the file's pages count in RSS as they are read, but are the page
cache's, not the process's own memory); `naive` (with --naive) is torch.load + safetensors' save_file,
for comparison. Prints one JSON line; the output is checked tensor by tensor against the input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_MAKE = """
import sys, json, torch
gb, path, keys = float(sys.argv[1]), sys.argv[2], sys.argv[3]
total = int(gb * 1e9) // 2  # bf16 values
big = int(total * 0.4) // 4096 * 4096  # one tensor like AudioProj's conv1 (40% of the release's bytes there)
rest = (total - big) // 64 // 4096 * 4096
gen = torch.Generator().manual_seed(0)
state = {"model.diffusion_model.big.weight": torch.empty(big // 4096, 4096, dtype=torch.bfloat16)}
state.update({f"model.diffusion_model.layers.{i}.weight": torch.empty(rest // 4096, 4096, dtype=torch.bfloat16)
              for i in range(64)})
for t in state.values():
    t.normal_(generator=gen)
torch.save({"module": state}, path)
json.dump({k: [list(v.shape), "bfloat16"] for k, v in state.items()}, open(keys, "w"))
"""

_CHECK = """
import sys, torch
from safetensors import safe_open
src = torch.load(sys.argv[1], mmap=True, weights_only=True)["module"]
with safe_open(sys.argv[2], "pt") as f:
    assert sorted(f.keys()) == sorted(src), "keys differ"
    for k in src:
        assert torch.equal(f.get_tensor(k), src[k]), k
print("same tensors")
"""

_IMPORTS = "import torch, safetensors, hallo_pipeline.cli, hallo_pipeline.hallo3.checkpoint"
_MMAP_PATH = "from hallo_pipeline.hallo3 import checkpoint; checkpoint._located = lambda name, t: None; "
_CLI = "from hallo_pipeline.cli import main; raise SystemExit(main(sys.argv[1:]))"
_NAIVE = ("import sys, torch; from safetensors.torch import save_file; "
          "save_file(torch.load(sys.argv[1], weights_only=True)['module'], sys.argv[2])")


def measured(code: str, *args: str) -> dict:
    """Run `python -c code args` alone and report its peak RSS (MiB) and wall time."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{code[:60]!r} failed with exit code {proc.returncode}")
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0, help="size of the synthetic checkpoint")
    parser.add_argument("--source", type=Path, help="an existing {'module': ...} pickle instead")
    parser.add_argument("--keys", type=Path, help="its key table (.tsv or .json)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temp folder)")
    parser.add_argument("--naive", action="store_true", help="also measure torch.load + save_file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        if args.source:
            source, keys = args.source, args.keys
        else:
            source, keys = tmp / "synthetic.pt", tmp / "keys.json"
            subprocess.run([sys.executable, "-c", _MAKE, str(args.gb), str(source), str(keys)], check=True)
        out = tmp / "out.safetensors"
        command = ["convert-hallo3", str(source), str(out), "--keys", str(keys), "--force"]
        result = {
            "file_mib": round(source.stat().st_size / 2**20, 1),
            "baseline": measured(_IMPORTS),
            "convert": measured("import sys; " + _CLI, *command),
        }
        subprocess.run([sys.executable, "-c", _CHECK, str(source), str(out)], check=True, env=dict(
            os.environ, PYTHONPATH=str(REPO)))
        result["convert_mmap"] = measured("import sys; " + _MMAP_PATH + _CLI, *command)
        if args.naive:
            result["naive"] = measured(_NAIVE, str(source), str(tmp / "naive.safetensors"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
