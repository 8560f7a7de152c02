"""Stand-in of comfy.latent_formats: the SD 1.5 format's attributes the previewers read (the factors here are
arbitrary numbers of the right shape, not ComfyUI's)."""


class LatentFormat:
    latent_channels = 4
    latent_rgb_factors = None
    latent_rgb_factors_bias = None
    taesd_decoder_name = None


class SD15(LatentFormat):
    def __init__(self):
        self.latent_rgb_factors = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.1, 0.1, 0.1]]
        self.taesd_decoder_name = "taesd_decoder"
