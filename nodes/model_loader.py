"""HalloModelLoader: a model folder -> HALLO_PIPELINE (networks registered with ComfyUI's model manager)."""

from __future__ import annotations

from ..hallo_pipeline.families import variant_options, variants_help
from . import comfy_glue as glue
from .api import CATEGORY, PIPELINE, io
from .errors import blame

NODE_ID = "HalloModelLoader"


class HalloModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        folders = list(glue.model_folders())
        return io.Schema(
            node_id="HalloModelLoader",
            display_name="Hallo Model Loader",
            category=f"{CATEGORY}/loaders",
            description="Loads the Hallo / Hallo2 networks and VAE of a model folder laid out like the Hugging Face "
            "repo fudan-generative-ai/hallo. Face and audio models load when first used.",
            inputs=[
                io.Combo.Input(
                    "model_folder", options=folders, default=folders[0] if folders else None,
                    tooltip="A folder under ComfyUI/models/hallo ('hallo' is that folder itself) or under a 'hallo:' "
                    "path of extra_model_paths.yaml, holding hallo/net.pth (and/or hallo2/net.pth), sd-vae-ft-mse/, "
                    "wav2vec/wav2vec2-base-960h/ and face_analysis/models/ as in the Hugging Face repo.",
                ),
                io.Combo.Input(
                    "variant", options=variant_options(), default="auto",
                    tooltip=f"Which weights to load. {variants_help()}.",
                ),
                io.Combo.Input(
                    "precision", options=glue.PRECISIONS, default="auto",
                    tooltip="Weight and compute precision. auto: what ComfyUI picks for this device "
                    "(fp16 on most GPUs, bf16 where fp16 is not supported, fp32 on CPU).",
                ),
                io.Combo.Input(
                    "device", options=glue.DEVICE_OPTIONS, default="auto",
                    tooltip="auto: ComfyUI's GPU; ComfyUI moves our networks on and off it as memory requires. "
                    "low_vram: as auto, and the VAE, ReferenceNet and audio encoder leave the GPU "
                    "right after each use; for Hallo3 also the main DiT's weights in fp8, half its layers streamed "
                    "from the CPU and the VAE decoding in tiles (about 12 GB instead of 23, slightly different "
                    "frames). "
                    "cpu: run everything on the CPU (slow).",
                ),
                # Optional, so API-format prompts saved before this input existed still validate.
                io.Combo.Input(
                    "attention", options=glue.ATTENTIONS, default="auto", optional=True,
                    tooltip="Attention kernel of the UNets. auto / sdpa: PyTorch's scaled_dot_product_attention, which "
                    "picks its own fused kernel on a GPU. "
                    "flash: FlashAttention-3 (Hopper GPUs), else FlashAttention-2. "
                    "sage: SageAttention (8-bit quantised attention: results differ slightly from sdpa). "
                    "flash and sage need "
                    "their Python package (flash-attn / sageattention), a CUDA GPU and fp16 or bf16 precision.",
                ),
                io.Boolean.Input(
                    "compile", default=False, optional=True,
                    tooltip="Hallo: torch.compile the denoising UNet. The first denoising step pays the compile time "
                    "(about a minute on a GPU), later steps run faster; needs a working C++ compiler / Triton "
                    "for your GPU. Hallo3 stops with a message (not wired for its DiT yet).",
                ),
                io.Boolean.Input(
                    "download_missing", default=False, optional=True,
                    tooltip="Fetch the official files the chosen variant needs and the model folder lacks (auto: "
                    "those of the weights it holds, else Hallo's; about 6 GB for Hallo, 40 GB for Hallo3) from "
                    "Hugging Face into it before loading, with a progress bar. Off: a missing file is an error "
                    "that lists what to fetch.",
                ),
                io.Combo.Input(
                    "weight_dtype", options=glue.WEIGHT_DTYPES, default="default", optional=True,
                    tooltip="How the big weights are stored. default: in the precision above (Hallo3's low_vram "
                    "device still stores its DiT in fp8). fp8_e4m3fn: storage only, each layer upcast to the "
                    "precision for its own step: Hallo's networks take 2.5 GB instead of 4.9, Hallo3's DiT 10 GB "
                    "instead of 18; the frames change (the drift measured: README, fp8 weight storage).",
                ),
            ],
            outputs=[PIPELINE.Output("pipeline", display_name="pipeline", tooltip="The loaded Hallo pipeline.")],
        )

    @classmethod
    def execute(
        cls, model_folder: str, variant: str, precision: str, device: str, attention: str = "auto",
        compile: bool = False, download_missing: bool = False, weight_dtype: str = "default",
    ) -> io.NodeOutput:
        with blame(NODE_ID, "attention"):
            glue.attention_kernel(attention, precision, device)  # a wrong choice fails before gigabytes are read
        if download_missing:
            with blame(NODE_ID, "model_folder"):
                folder = glue.model_folder_path(model_folder)
            with blame(NODE_ID, "download_missing"):
                glue.download_missing(folder, variant)
        with blame(NODE_ID, "model_folder", inputs={"variant": "variant", "attention": "attention",
                                                     "compile": "compile", "low_vram": "device",
                                                     "fp8": "weight_dtype"}):
            pipeline = glue.load_pipeline(glue.model_folder_path(model_folder), variant, precision, device, attention,
                                          compile=compile, weight_dtype=weight_dtype)
        return io.NodeOutput(pipeline)
