"""Live previews in a real, headless ComfyUI: records the preview images the sampler sends over the websocket, and
times the sampler node with each preview method.

The shared harness (`../shared/comfyui/comfy_harness.py`) queues prompts without listening on the websocket, so
ComfyUI's previews (sent only to the client that queued the prompt) reach nobody. This script borrows the
harness's server and workflow conversion, connects as a websocket client (announcing that it reads previews with
metadata, as the frontend does), queues the workflow itself and keeps every binary preview message, with the node
that sent it. One server per preview method (`--preview-method`), all up at once; the repeats alternate between
them so that a slow moment of the machine hits every method alike. Each repeat uses another seed, so the sampler
runs again while the nodes before it come from ComfyUI's cache.

Run it with the python of the ComfyUI it starts (its venv; the script needs aiohttp, which ComfyUI has):

    ~/.cache/comfyui-harness/comfy-venv/bin/python benchmarks/live_previews.py --models <dir with hallo/> \\
        --input face.png --input speech.wav --set 4.image_size=128 --set 7.steps=10 \\
        --methods none,latent2rgb --repeats 5 --out /tmp/previews

The sampler's time is taken from ComfyUI's own `executing` messages: from the one that starts the sampler to the
next. The first run on each server (model loading, first-use costs) is reported apart and left out of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The read-only shared material: HALLO_SHARED_DIR, or ../shared beside the repository (as tests/conftest.py).
HARNESS = Path(os.environ.get("HALLO_SHARED_DIR") or REPO.parent / "shared") / "comfyui" / "comfy_harness.py"
COMFY = Path.home() / ".cache" / "comfyui-harness" / "ComfyUI"
PREVIEW, PREVIEW_WITH_METADATA = 1, 4  # ComfyUI's binary event types (protocol.BinaryEventTypes)


def load_harness(path: Path):
    spec = importlib.util.spec_from_file_location("comfy_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_base(models: Path, inputs: list[Path], vae_approx: Path | None) -> Path:
    """A ComfyUI base directory: this pack in custom_nodes, the inputs, a models folder whose hallo/ (and
    vae_approx/, when given) link to the given folders."""
    base = Path(tempfile.mkdtemp(prefix="hallo-previews-"))
    for name in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / name).mkdir()
    (base / "custom_nodes" / REPO.name).symlink_to(REPO, target_is_directory=True)
    for file in inputs:
        shutil.copy(file, base / "input" / file.name)
    for entry in models.iterdir():
        (base / "models" / entry.name).symlink_to(entry.resolve())
    if vae_approx is not None:
        (base / "models" / "vae_approx").symlink_to(vae_approx.resolve(), target_is_directory=True)
    return base


def make_tiny_taesd(folder: Path, comfy: Path, seed: int = 0) -> Path:
    """A TAESD decoder file for SD 1.5 latents with random weights, in the layout of ComfyUI's own TAESD decoder
    (built by ComfyUI's class, in a child process): it proves the TAESD path end to end, it is no decoder."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys, torch\n"
        f"sys.path.insert(0, {str(comfy)!r})\n"
        "sys.argv = ['main.py', '--cpu']\n"  # ComfyUI's modules read its command line when imported
        "import comfy.options\n"
        "comfy.options.enable_args_parsing()\n"
        "from comfy.taesd.taesd import Decoder\n"
        "from safetensors.torch import save_file\n"
        f"g = torch.Generator().manual_seed({seed})\n"
        "weights = {}\n"
        "for name, value in Decoder(4).state_dict().items():\n"
        "    fan_in = value[0].numel() if value.dim() > 1 else 1\n"
        "    weights[name] = torch.randn(value.shape, generator=g) / fan_in ** 0.5 if value.dim() > 1 "
        "else torch.zeros(value.shape)\n"
        f"save_file(weights, {str(folder / 'taesd_decoder.safetensors')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=comfy)
    return folder


def parse_preview(data: bytes) -> dict | None:
    """A binary websocket message -> {"node": ..., "image": bytes}, or None for other binary events."""
    (event,) = struct.unpack(">I", data[:4])
    if event == PREVIEW_WITH_METADATA:
        (length,) = struct.unpack(">I", data[4:8])
        metadata = json.loads(data[8 : 8 + length])
        return {"node": metadata.get("node_id"), "image": data[8 + length :]}
    if event == PREVIEW:
        return {"node": None, "image": data[8:]}  # after the image-type word
    return None


async def run_prompt(port: int, prompt: dict, timeout: float) -> dict:
    """Queue `prompt` as a websocket client; returns the node timings, the previews and the outcome."""
    import aiohttp

    client = uuid.uuid4().hex
    started, previews, steps, outcome = {}, [], 0, None
    order: list[tuple[str, float]] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws?clientId={client}", max_msg_size=0) as ws:
            await ws.send_str(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            async with session.post(f"http://127.0.0.1:{port}/prompt",
                                    json={"prompt": prompt, "client_id": client}) as response:
                queued = await response.json()
            if "prompt_id" not in queued:
                return {"error": queued}
            prompt_id = queued["prompt_id"]
            deadline = time.monotonic() + timeout
            while outcome is None:
                message = await ws.receive(timeout=max(1.0, deadline - time.monotonic()))
                now = time.monotonic()
                if message.type == aiohttp.WSMsgType.BINARY:
                    preview = parse_preview(message.data)
                    if preview is not None:
                        previews.append({**preview, "at": now, "step": steps})
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    outcome = f"websocket closed ({message.type})"
                    break
                event = json.loads(message.data)
                data = event.get("data") or {}
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if event["type"] == "executing":
                    order.append((data.get("node"), now))
                    if data.get("node") is None:
                        outcome = "success"
                elif event["type"] == "progress":
                    steps = data.get("value", steps)
                elif event["type"] in ("execution_error", "execution_interrupted"):
                    outcome = f"{event['type']}: {data.get('exception_message', '')}"
    for (node, at), (_, after) in zip(order, order[1:]):
        started[node] = after - at
    return {"outcome": outcome, "node_seconds": started, "previews": previews}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflow", type=Path, default=REPO / "workflows" / "hallo_portrait_to_video.json")
    ap.add_argument("--models", type=Path, required=True, help="a models folder: its hallo/ holds the weights")
    ap.add_argument("--vae-approx", type=Path, help="a folder to serve as models/vae_approx (TAESD decoders)")
    ap.add_argument("--tiny-taesd", action="store_true", help="serve a random-weight TAESD decoder for SD 1.5 "
                    "latents as models/vae_approx (made in OUT/vae_approx), to exercise the TAESD path")
    ap.add_argument("--input", type=Path, action="append", default=[])
    ap.add_argument("--set", action="append", default=[], help="NODE.INPUT=JSON, as the harness takes it")
    ap.add_argument("--sampler", default="7", help="the sampler's node id (its seed changes per repeat)")
    ap.add_argument("--methods", default="none,latent2rgb", help="preview methods, one server each")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method, after one warm-up run")
    ap.add_argument("--out", type=Path, required=True, help="previews (jpg) and summary.json go here")
    ap.add_argument("--comfy", type=Path, default=COMFY)
    ap.add_argument("--harness", type=Path, default=HARNESS)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)

    harness = load_harness(args.harness)
    methods = args.methods.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    vae_approx = make_tiny_taesd(args.out / "vae_approx", args.comfy) if args.tiny_taesd else args.vae_approx
    base = make_base(args.models, args.input, vae_approx)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    servers = {}
    summary = {"methods": {}, "command": sys.argv}
    try:
        for method in methods:
            folder = base / method
            folder.mkdir()
            for name in ("custom_nodes", "input", "output", "temp", "user", "models"):
                (folder / name).symlink_to(base / name)
            server = harness.ComfyServer(str(args.comfy), sys.executable, str(folder), harness.free_port(),
                                         ["--preview-method", method, "--disable-api-nodes", "--verbose", "DEBUG"],
                                         env)
            server.start()
            servers[method] = server
        object_info = servers[methods[0]].api.get("/object_info", timeout=120)
        workflow = json.loads(args.workflow.read_text())
        prompt = harness.ui_to_api(workflow, object_info) if harness.is_ui_workflow(workflow) else workflow
        harness.apply_sets(prompt, args.set)
        runs = {method: [] for method in methods}
        for repeat in range(args.repeats + 1):
            for method in methods:
                prompt[args.sampler]["inputs"]["seed"] = 1000 + repeat
                result = asyncio.run(run_prompt(servers[method].port, prompt, args.timeout))
                if result.get("outcome") != "success":
                    print(f"{method} run {repeat}: {result.get('outcome') or result.get('error')}")
                    print(servers[method].log_tail(40))
                    return 1
                seconds = result["node_seconds"].get(args.sampler)
                mine = [p for p in result["previews"] if p["node"] in (None, args.sampler)]
                for k, p in enumerate(mine):
                    (args.out / f"{method}_run{repeat}_preview{k}_step{p['step']}.jpg").write_bytes(p["image"])
                runs[method].append({"sampler_seconds": seconds, "previews": len(mine),
                                     "preview_nodes": sorted({str(p["node"]) for p in result["previews"]}),
                                     "preview_steps": [p["step"] for p in mine]})
                print(f"{method:>10} run {repeat}{' (warm-up)' if repeat == 0 else ''}: sampler {seconds:.3f} s, "
                      f"{len(mine)} previews at steps {[p['step'] for p in mine]}")
        for method, method_runs in runs.items():
            timed = [r["sampler_seconds"] for r in method_runs[1:]] or [float("nan")]  # --repeats 0: warm-up only
            log = servers[method].log_text()
            summary["methods"][method] = {
                "runs": method_runs, "median_s": statistics.median(timed), "mean_s": statistics.fmean(timed),
                # the sampler's own account of its preview time (nodes/comfy_glue.py LivePreviews.log_cost)
                "own_account": [line.split("Hallo previews: ", 1)[1] for line in log.splitlines()
                                if "Hallo previews: " in line],
                "log_notes": [line for line in log.splitlines() if "TAESD" in line or "Hallo:" in line],
            }
        if "none" in runs:
            reference = summary["methods"]["none"]["median_s"]
            for method, figures in summary["methods"].items():
                figures["overhead_vs_none"] = figures["median_s"] / reference - 1
                # Each repeat against the none run just before it: less of the machine's drift in between.
                figures["paired_ratios"] = [run["sampler_seconds"] / none["sampler_seconds"]
                                            for run, none in zip(runs[method][1:], runs["none"][1:])]
                print(f"{method:>10}: per repeat against none: "
                      f"{', '.join(f'{r - 1:+.1%}' for r in figures['paired_ratios'])}; "
                      f"median {statistics.median(figures['paired_ratios']) - 1:+.1%}")
                print(f"{method:>10}: median sampler {figures['median_s']:.3f} s over {args.repeats} runs, "
                      f"{figures['overhead_vs_none']:+.1%} against none; own account: {figures['own_account'][1:]}")
        for method, figures in summary["methods"].items():
            for line in figures["log_notes"]:
                print(f"{method:>10} log: {line}")
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
