"""Source of the Trusted Components teep ships for demonstrations.

They are kept as WebAssembly text and assembled when needed, so the
repository holds no opaque binaries.
"""

from __future__ import annotations

from importlib import resources

from teep.device.wasm import compile_wat

__all__ = ["DEMO_COMPONENT", "demo_component_source", "demo_component_wasm"]

DEMO_COMPONENT = "hello"
"""Short name of the demo Trusted Component."""


def demo_component_source() -> str:
    """The WebAssembly text of the demo component (``hello.wat``)."""
    return resources.files(__name__).joinpath("hello.wat").read_text("utf-8")


def demo_component_wasm() -> bytes:
    """The demo component assembled into a binary module.

    :raises ComponentError: if the shipped source does not assemble.
    """
    return compile_wat(demo_component_source())
