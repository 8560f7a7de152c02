"""Stand-in of comfy.model_patcher.ModelPatcher: bookkeeping attributes on the wrapped module,
size, and moves between the load and offload devices."""



class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if not hasattr(self.model, "device"):
            self.model.device = offload_device
        elif self.model.device is None:
            self.model.device = offload_device
        self.load_device = load_device
        self.offload_device = offload_device
        self.model_size()
        if not hasattr(self.model, "model_loaded_weight_memory"):
            self.model.model_loaded_weight_memory = 0
        self.detached = 0

    def model_size(self):
        if self.size > 0:
            return self.size
        self.size = sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
        return self.size

    def loaded_size(self):
        return self.model.model_loaded_weight_memory

    def current_loaded_device(self):
        return self.model.device

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        self.model.to(device_to)
        self.model.device = device_to
        self.model.model_loaded_weight_memory = self.model_size()

    def detach(self, unpatch_all=True):
        self.detached += 1
        if unpatch_all:
            self.model.to(self.offload_device)
            self.model.device = self.offload_device
            self.model.model_loaded_weight_memory = 0
        return self.model

    def is_dynamic(self):
        return False

    def model_patches_models(self):
        return []
