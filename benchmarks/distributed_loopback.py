"""A long Hallo video rendered by two ComfyUIs through ComfyUI-Distributed, on one machine (issue #14).

Two headless ComfyUIs on 127.0.0.1 (a master and one worker, one CPU thread each), both with this pack and
ComfyUI-Distributed, run `workflows/hallo_distributed_long_video.json` on a few seconds of speech split in two
segments, with the tiny random-weight models. Then one fresh ComfyUI renders both segments itself (the same graph
with a second sampler for segment 1 and Image Batch instead of the collector), and the command line renders them
as shards and joins them. It reports:

- the collected frames against each segment rendered alone (the worker's travel back as 8-bit PNG; the sampler
  hands segments on in 8-bit levels, so that is lossless);
- the final video (after Hallo Paste Back) against one instance's, and against the frames of
  `animate --segments 2 --segment-index i` + `join --image` (run with ComfyUI's python, so the same libraries);
- the seam (`independent.seam_ratio`) and the wall time of two instances against one, cold (models loaded
  during the run) and warm (the same graph again with another seed: only the samplers run).

    python -m benchmarks.distributed_loopback --distributed DIR [--comfy DIR --python PY] [--seconds 6]

DIR is a ComfyUI-Distributed checkout (`fetch github:robertvoy/ComfyUI-Distributed`, then `git archive`); it is
copied into each instance, never into this repository. Without it, or without a ComfyUI checkout, the script
says so and exits 0 (CI has neither).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO.parent / "shared" / "comfyui" / "comfy_harness.py"
WORKFLOW = REPO / "workflows" / "hallo_distributed_long_video.json"
PORTRAIT = REPO / "tests" / "data" / "portrait.png"
CACHE = Path.home() / ".cache" / "comfyui-harness"
SENTENCE = ("Long talks are cut into segments. Each machine renders its own part, and the parts are joined in the "
            "pauses between sentences, where a cut is hardest to see.")
# The graph's nodes (workflow ids) the script reads or changes.
LOAD_IMAGE, LOAD_AUDIO, FACE_MASK, SAMPLER, STITCH, PASTE, COLLECTOR, JOIN, SEED_NODE = (
    "1", "2", "4", "7", "8", "9", "15", "16", "14")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    missing = [f"{what} {path}" for what, path in (("ComfyUI checkout", args.comfy / "main.py"),
                                                     ("ComfyUI python", args.python),
                                                     ("ComfyUI-Distributed checkout", args.distributed / "__init__.py"),
                                                     ("harness", HARNESS)) if not path.exists()]
    if missing:
        print("skipped: missing " + ", ".join(missing))
        return 0
    work = Path(tempfile.mkdtemp(prefix="hallo-loopback-"))
    try:
        figures = run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.out:
        _write_results(args.out, figures, argv if argv is not None else sys.argv[1:])
    return 0 if figures["passed"] else 1


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--distributed", type=Path, default=Path("/tmp/cud/ComfyUI-Distributed"),
                   help="a ComfyUI-Distributed checkout (its folder with __init__.py)")
    p.add_argument("--comfy", type=Path, default=CACHE / "ComfyUI", help="a ComfyUI checkout")
    p.add_argument("--python", type=Path, default=CACHE / "comfy-venv" / "bin" / "python",
                   help="the python of that ComfyUI's venv")
    p.add_argument("--models", type=Path, default=None,
                   help="a tiny Hallo model folder (default: made with make-tiny-models in the work folder)")
    p.add_argument("--seconds", type=float, default=6.0, help="length of the speech")
    p.add_argument("--steps", type=int, default=3, help="sampler steps per clip")
    p.add_argument("--size", type=int, default=256, help="Face Mask's working size")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per ComfyUI")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds one run may take")
    p.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, outputs)")
    return p.parse_args(argv)


# --- running ComfyUI ---------------------------------------------------------------------------------------------

class Instance:
    """One headless ComfyUI with its own base folder (custom nodes, inputs, outputs, its own Distributed config)."""

    def __init__(self, args, root: Path, name: str, models: Path, inputs: list[Path]):
        self.args, self.base, self.name = args, root / name, name
        nodes = self.base / "custom_nodes"
        nodes.mkdir(parents=True)
        (nodes / "ComfyUI-Hallo").symlink_to(REPO, target_is_directory=True)
        # A copy each: ComfyUI-Distributed keeps its worker list in a file inside its own folder.
        shutil.copytree(args.distributed, nodes / "ComfyUI-Distributed",
                        ignore=shutil.ignore_patterns("gpu_config.json", "__pycache__"))
        (self.base / "models").mkdir()
        (self.base / "models" / "hallo").symlink_to(models, target_is_directory=True)
        (self.base / "input").mkdir()
        for path in inputs:
            shutil.copy(path, self.base / "input" / path.name)
        self.port = _free_port()
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure_workers(self, workers: list["Instance"]) -> None:
        config = {
            "master": {"host": "127.0.0.1"},
            "workers": [{"id": str(i + 1), "name": w.name, "host": "127.0.0.1", "port": w.port, "enabled": True,
                         "type": "local"} for i, w in enumerate(workers)],
        }
        (self.base / "custom_nodes" / "ComfyUI-Distributed" / "gpu_config.json").write_text(json.dumps(config))

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.args.threads), "MKL_NUM_THREADS": str(self.args.threads),
               "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        log = open(self.base / "comfyui.log", "wb")
        self.process = subprocess.Popen(
            [str(self.args.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:", "--disable-auto-launch",
             "--disable-api-nodes"],
            cwd=self.args.comfy, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; log: {self.base / 'comfyui.log'}")
            try:
                _get(f"{self.url}/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not answer in {timeout:.0f} s; log: {self.base / 'comfyui.log'}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def wait_done(self, prompt_id: str, timeout: float) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            history = _get(f"{self.url}/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") != "success":
                    raise RuntimeError(f"{self.name}: prompt failed: {json.dumps(status)[:3000]}")
                return entry
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: prompt {prompt_id} did not finish in {timeout:.0f} s")

    def images(self, prefix: str) -> np.ndarray:
        """The PNGs Save Image wrote under output/<prefix>, in order, as (N, H, W, 3) uint8."""
        from PIL import Image

        folder = self.base / "output" / Path(prefix).parent
        files = sorted(folder.glob(Path(prefix).name + "_*.png"))
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"POST {url}: {exc.code} {exc.read().decode(errors='replace')[:3000]}") from exc


# --- the prompts -------------------------------------------------------------------------------------------------

def api_prompt(args, work: Path) -> dict:
    """The shipped workflow in API format, converted by the harness against a live ComfyUI with both packs."""
    out = work / "workflow_api.json"
    subprocess.run([sys.executable, str(HARNESS), str(REPO), "--convert-only", str(WORKFLOW), "--dump-api", str(out),
                    "--extra-pack", str(args.distributed), "--comfy", str(args.comfy), "--python", str(args.python)],
                   check=True, capture_output=True)
    return json.loads(out.read_text())


def set_run_inputs(prompt: dict, args, seed: int) -> dict:
    prompt = copy.deepcopy(prompt)
    prompt[LOAD_IMAGE]["inputs"]["image"] = "photo.png"
    prompt[LOAD_AUDIO]["inputs"]["audio"] = "speech.wav"
    prompt[FACE_MASK]["inputs"]["image_size"] = args.size
    prompt[SAMPLER]["inputs"].update(steps=args.steps, seed=seed)
    prompt["11"]["inputs"]["filename_prefix"] = "loopback/video"
    return prompt


def distributed_prompt(prompt: dict) -> dict:
    prompt = copy.deepcopy(prompt)
    prompt["90"] = _save([COLLECTOR, 0], "loopback/collected")
    prompt["91"] = _save([PASTE, 0], "loopback/final")
    return prompt


def one_instance_prompt(prompt: dict) -> dict:
    """The same graph on one ComfyUI: a second sampler renders segment 1; Image Batch replaces the collector."""
    prompt = copy.deepcopy(prompt)
    del prompt[SEED_NODE], prompt[COLLECTOR]
    prompt[SAMPLER]["inputs"]["segment_index"] = 0
    prompt["80"] = copy.deepcopy(prompt[SAMPLER])
    prompt["80"]["inputs"]["segment_index"] = 1
    prompt["81"] = copy.deepcopy(prompt[STITCH])
    prompt["81"]["inputs"]["frames"] = ["80", 0]
    prompt["82"] = {"class_type": "ImageBatch", "inputs": {"image1": [STITCH, 0], "image2": ["81", 0]}}
    prompt[JOIN]["inputs"]["segment_images"] = ["82", 0]
    prompt["90"] = _save(["82", 0], "loopback/alone")
    prompt["91"] = _save([PASTE, 0], "loopback/final")
    return prompt


def _save(images: list, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": prefix}}


# --- the run -----------------------------------------------------------------------------------------------------

def make_inputs(args, work: Path) -> tuple[Path, list[Path]]:
    models = args.models
    if models is None:
        models = work / "models" / "hallo"
        subprocess.run([sys.executable, "-m", "hallo_pipeline", "make-tiny-models", str(models)], check=True,
                       cwd=REPO, capture_output=True)
    photo = work / "photo.png"
    shutil.copy(PORTRAIT, photo)
    speech = work / "speech.wav"
    _write_speech(speech, args.seconds)
    return models.resolve(), [photo, speech]


def _write_speech(path: Path, seconds: float) -> None:
    """espeak-ng reading a sentence (real pauses between phrases), padded or cut to `seconds`; a synthetic
    voiced signal with pauses where espeak-ng is missing."""
    from scipy.io import wavfile

    from hallo_pipeline.audio.io import load_audio

    rate = 16000
    samples = int(seconds * rate)
    raw = path.with_suffix(".espeak.wav")
    if shutil.which("espeak-ng") and subprocess.run(["espeak-ng", "-w", str(raw), SENTENCE],
                                                    capture_output=True).returncode == 0:
        from scipy.signal import resample_poly

        waveform, sr = load_audio(raw)
        mono = resample_poly(np.asarray(waveform, np.float64).mean(0), rate, sr)
    else:
        t = np.arange(samples) / rate
        mono = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.3 * np.sin(2 * np.pi * 180 * t)
        mono[(t % 2.0) > 1.6] = 0.0
    voice = np.zeros(samples)
    voice[: min(samples, mono.size)] = mono[:samples]
    wavfile.write(path, rate, (np.clip(voice, -1, 1) * 32767).astype(np.int16))


def cold_and_warm(instances: list[Instance], head: Instance, template: dict, make_prompt, queue, prefixes,
                  timeout: float) -> tuple[dict, dict]:
    """Start the instances, run the graph twice (cold; then warm, with another seed: only the samplers run
    again) through `head`, and stop them: each run's seconds, and the first run's images saved under `prefixes`."""
    try:
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_ready()
        times, images = [], {}
        for seed in (42, 43):
            prompt = make_prompt({**template, SAMPLER: _with_seed(template[SAMPLER], seed)})
            start = time.perf_counter()
            head.wait_done(queue(prompt), timeout)
            times.append(time.perf_counter() - start)
            images = images or {prefix: head.images(prefix) for prefix in prefixes}
        return {"cold": times[0], "warm": times[1]}, images
    finally:
        for instance in instances:
            instance.stop()


def run(args, work: Path) -> dict:
    models, inputs = make_inputs(args, work)
    template = set_run_inputs(api_prompt(args, work), args, seed=42)
    figures = {"seconds": args.seconds, "steps": args.steps, "size": args.size, "threads": args.threads,
               "comfyui": _comfy_version(args.comfy), "distributed": _distributed_version(args.distributed)}

    master = Instance(args, work, "master", models, inputs)
    worker = Instance(args, work, "worker", models, inputs)
    master.configure_workers([worker])
    distributed = {"client_id": "hallo-loopback", "enabled_worker_ids": ["1"], "delegate_master": False}
    figures["two_instances_s"], two = cold_and_warm(
        [master, worker], master, template, distributed_prompt,
        lambda prompt: _post(f"{master.url}/distributed/queue", {**distributed, "prompt": prompt})["prompt_id"],
        ("loopback/collected", "loopback/final"), args.timeout)
    single = Instance(args, work, "single", models, inputs)
    figures["one_instance_s"], one = cold_and_warm(
        [single], single, template, one_instance_prompt,
        lambda prompt: _post(f"{single.url}/prompt", {"client_id": "hallo-loopback", "prompt": prompt})["prompt_id"],
        ("loopback/alone", "loopback/final"), args.timeout)

    cli_final, plan = cli_shards_and_join(args, work, models, inputs)
    figures.update(compare(two["loopback/collected"], one["loopback/alone"], two["loopback/final"],
                           one["loopback/final"], cli_final, plan))
    for key in ("cold", "warm"):
        figures.setdefault("speedup", {})[key] = figures["one_instance_s"][key] / figures["two_instances_s"][key]
    return figures


def _with_seed(node: dict, seed: int) -> dict:
    node = copy.deepcopy(node)
    node["inputs"]["seed"] = seed
    return node


def cli_shards_and_join(args, work: Path, models: Path, inputs: list[Path]):
    """`animate --segments 2 --segment-index i` for each segment, `join`, and the frames `join` encodes. They run
    with ComfyUI's python: another numpy or mediapipe moves the landmarks, and so the frames, a little."""
    from hallo_pipeline.shards import check_shards

    photo, speech = inputs
    parts = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cli = [str(args.python), "-m", "hallo_pipeline"]
    for index in (0, 1):
        part = work / f"part_{index}.mkv"
        subprocess.run([*cli, "animate", "--image", str(photo), "--audio", str(speech), "--output", str(part),
                        "--models", str(models), "--steps", str(args.steps), "--seed", "42", "--size", str(args.size),
                        "--segments", "2", "--segment-index", str(index)], check=True, cwd=REPO, env=env,
                       capture_output=True)
        parts.append(part)
    subprocess.run([*cli, "join", *map(str, parts), "--audio", str(speech), "--image", str(photo), "--output",
                    str(work / "joined.mp4")], check=True, cwd=REPO, env=env, capture_output=True)
    frames = work / "joined.npy"
    code = ("import sys, numpy as np; from hallo_pipeline.shards import joined_frames; "
            "np.save(sys.argv[1], np.concatenate(list(joined_frames(sys.argv[3:], sys.argv[2]))))")
    subprocess.run([str(args.python), "-c", code, str(frames), str(photo), *map(str, parts)], check=True, cwd=REPO,
                   env=env, capture_output=True)
    plan, _ = check_shards(parts)
    return np.load(frames), plan


def compare(collected, alone, distributed_final, single_final, cli_final, plan) -> dict:
    import torch

    from hallo_pipeline.independent import seam_ratio

    def levels(a, b) -> dict:
        if a.shape != b.shape:
            return {"shapes": [list(a.shape), list(b.shape)], "max": None}
        d = np.abs(a.astype(np.int16) - b.astype(np.int16))
        return {"max": int(d.max()), "mean": float(d.mean()), "frames": int(a.shape[0])}

    split = plan.render_lengths[0]
    result = {
        "plan": {"total_frames": plan.total_frames, "boundaries": plan.boundaries, "overlap": plan.overlap,
                 "render_lengths": plan.render_lengths},
        "collected_vs_alone": {"segment_0 (master)": levels(collected[:split], alone[:split]),
                               "segment_1 (worker)": levels(collected[split:], alone[split:])},
        "final_two_vs_one_instance": levels(distributed_final, single_final),
        "final_two_instances_vs_cli_join": levels(distributed_final, cli_final),
    }
    video = torch.from_numpy(distributed_final).permute(0, 3, 1, 2).float() / 255
    result["seam_ratio"] = seam_ratio(video, plan)
    # Everything is in 8-bit levels end to end (module docstring), so "equal" means equal.
    compared = [*result["collected_vs_alone"].values(), result["final_two_vs_one_instance"],
                result["final_two_instances_vs_cli_join"]]
    checks = [c["max"] == 0 for c in compared] + [distributed_final.shape[0] == plan.total_frames]
    result["passed"] = all(checks)
    return result


def _comfy_version(comfy: Path) -> str:
    text = (comfy / "comfyui_version.py").read_text() if (comfy / "comfyui_version.py").exists() else ""
    return text.split('"')[1] if '"' in text else "unknown"


def _distributed_version(folder: Path) -> str:
    text = (folder / "pyproject.toml").read_text()
    return next((line.split('"')[1] for line in text.splitlines() if line.startswith("version")), "unknown")


def _write_results(out: Path, figures: dict, argv: list[str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    two, one, speed = figures["two_instances_s"], figures["one_instance_s"], figures["speedup"]
    cva = figures["collected_vs_alone"]

    def levels(c: dict) -> str:
        return f"shapes differ: {c['shapes']}" if c["max"] is None else \
            f"max {c['max']}, mean {c['mean']:.3f} over {c['frames']} frames"

    lines = [
        "# Two ComfyUIs through ComfyUI-Distributed vs one (tiny models, CPU)",
        "",
        f"Command: `python -m benchmarks.distributed_loopback {' '.join(argv)}`",
        "",
        f"ComfyUI {figures['comfyui']}, ComfyUI-Distributed {figures['distributed']}; "
        f"{figures['seconds']} s of espeak-ng speech, {figures['steps']} steps, working size {figures['size']}, "
        f"{figures['threads']} CPU thread(s) per ComfyUI, plan {figures['plan']}.",
        "",
        "| run | two instances (s) | one instance (s) | speed-up |",
        "|---|---|---|---|",
        f"| cold (models load during the run) | {two['cold']:.1f} | {one['cold']:.1f} | {speed['cold']:.2f}x |",
        f"| warm (another seed: only the samplers) | {two['warm']:.1f} | {one['warm']:.1f} | {speed['warm']:.2f}x |",
        "",
        "Frames (8-bit levels, max / mean absolute difference):",
        "",
        f"- collected segment 0 (master) vs rendered alone: {levels(cva['segment_0 (master)'])}",
        f"- collected segment 1 (worker, sent as 8-bit PNG) vs rendered alone: {levels(cva['segment_1 (worker)'])}",
        f"- final video, two instances vs one: {levels(figures['final_two_vs_one_instance'])}",
        f"- final video, two instances vs CLI shards + join: {levels(figures['final_two_instances_vs_cli_join'])}",
        f"- seam ratio (largest frame change across the join / median frame change): {figures['seam_ratio']:.2f}",
        "",
        f"Passed: {figures['passed']}",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
