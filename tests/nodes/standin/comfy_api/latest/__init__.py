"""Stand-in of comfy_api.latest: `io`, `ComfyExtension`, `InputImpl`, `Types`."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

from . import _io as io


class ComfyExtension(ABC):
    async def on_load(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        pass

    @abstractmethod
    async def get_node_list(self) -> list:
        ...


@dataclass
class VideoComponents:
    images: object
    frame_rate: Fraction
    audio: Optional[dict] = None
    metadata: Optional[dict] = None


class VideoFromComponents:
    def __init__(self, components: VideoComponents):
        self.__components = components

    def get_components(self) -> VideoComponents:
        c = self.__components
        return VideoComponents(images=c.images, audio=c.audio, frame_rate=c.frame_rate)

    def get_dimensions(self) -> tuple[int, int]:
        return self.__components.images.shape[2], self.__components.images.shape[1]


class InputImpl:
    VideoFromComponents = VideoFromComponents


class Types:
    VideoComponents = VideoComponents


__all__ = ["io", "ComfyExtension", "InputImpl", "Types"]
