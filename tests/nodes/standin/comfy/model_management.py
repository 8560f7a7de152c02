"""Stand-in of comfy.model_management: devices, precision choice, load_models_gpu, Cancel.

Tests set the module attributes (`torch_device`, `fp16_supported`, ...) to play a machine;
what was loaded is observable through `load_calls` and the patchers' `model.device`.
"""

import threading

import torch

torch_device = torch.device("cpu")
fp16_supported = False
bf16_supported = False
gpu_only = False
load_calls: list[dict] = []
current_loaded_models: list = []

interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


class InterruptProcessingException(Exception):
    pass


def get_torch_device():
    return torch_device


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return get_torch_device() if gpu_only else torch.device("cpu")


def is_device_cpu(device):
    return getattr(device, "type", device) == "cpu"


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return fp16_supported and not is_device_cpu(device)


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return bf16_supported and not is_device_cpu(device)


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    load_calls.append({"models": list(models), "memory_required": memory_required, "force_full_load": force_full_load})
    for patcher in models:
        if patcher not in current_loaded_models:
            current_loaded_models.insert(0, patcher)
        patcher.load(patcher.load_device, full_load=force_full_load)


def load_model_gpu(model):
    return load_models_gpu([model])


def soft_empty_cache(force=False):
    pass


def interrupt_current_processing(value=True):
    global interrupt_processing
    with interrupt_processing_mutex:
        interrupt_processing = value


def processing_interrupted():
    with interrupt_processing_mutex:
        return interrupt_processing


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    with interrupt_processing_mutex:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()
