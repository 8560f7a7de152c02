"""The library's side of live previews: the latent -> RGB fit, the middle frame, and nothing built unless asked."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hallo_pipeline.latent_preview import COGVIDEOX, LatentPreview, LatentRGB, RGBFit, fit_latent_rgb, previewer


def _pair(channels=16, h=6, w=9, factor=8, seed=0):
    """A latent and the image an affine map of it paints (each latent pixel an 8 x 8 block), and the map."""
    g = torch.Generator().manual_seed(seed)
    truth = LatentRGB(torch.randn(channels, 3, generator=g) * 0.3, torch.randn(3, generator=g) * 0.1)
    latent = torch.randn(channels, h, w, generator=g)
    image = F.interpolate(truth(latent)[None], scale_factor=factor, mode="nearest")[0]
    return latent, image, truth


def test_the_fit_recovers_the_map_that_painted_the_image() -> None:
    latent, image, truth = _pair()
    fitted = fit_latent_rgb(latent, image)
    torch.testing.assert_close(fitted.factors, truth.factors, rtol=0, atol=1e-4)
    torch.testing.assert_close(fitted.bias, truth.bias, rtol=0, atol=1e-4)
    torch.testing.assert_close(fitted(latent[None])[0], truth(latent), rtol=0, atol=1e-4)


def test_the_fit_averages_the_image_over_each_latent_pixel() -> None:
    latent, image, truth = _pair(seed=1)
    noisy = image + torch.randn(image.shape, generator=torch.Generator().manual_seed(5)) * 0.2
    fitted = fit_latent_rgb(latent, noisy)
    assert (fitted.factors - truth.factors).abs().max() < 0.05  # 54 pixels x 64 noisy samples each


def test_the_map_is_fitted_once_and_only_when_asked(monkeypatch) -> None:
    import hallo_pipeline.latent_preview as module

    latent, image, _ = _pair()
    fits = []
    monkeypatch.setattr(module, "fit_latent_rgb", lambda *pair: fits.append(pair) or LatentRGB(*pair))
    rgb = RGBFit(latent, image)
    make = previewer(torch.zeros(5, 16, 6, 9), COGVIDEOX, rgb)
    assert fits == []  # a step's preview is a closure until someone calls it
    first, second = make(), make()
    assert len(fits) == 1 and first.rgb is second.rgb


def test_the_preview_shows_the_middle_frame() -> None:
    latents = torch.arange(5.0)[:, None, None, None].expand(5, 4, 2, 3)
    middle = LatentPreview(latents, COGVIDEOX).middle
    assert middle.shape == (1, 4, 2, 3) and bool((middle == 2).all())
