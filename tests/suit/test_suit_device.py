"""The simulated device opens payloads encrypted for its sealed KEK."""

from __future__ import annotations

from pathlib import Path

import pytest

from teep.device.runtime import Device
from teep.keys import COSEAlgorithm, PrivateKey
from teep.protocol.errors import ManifestProcessingFailed
from teep.suit.builder import build_envelope


def test_device_decrypts_for_its_kek(tmp_path: Path) -> None:
    """A payload encrypted for the TEE's KEK installs; the KEK persists
    across openings; a payload for another key is refused with a report."""
    device = Device.init(tmp_path / "dev")
    signer = PrivateKey.generate()
    device.tee.add_signer_key(signer.public)
    kek = device.tee.kek.public
    assert Device.open(tmp_path / "dev").tee.kek.public.equals(kek)

    def envelope(recipient: PrivateKey | None, seq: int) -> bytes:
        return build_envelope(
            manifest_component_id=(b"cfg.suit",),
            component_id=(b"cfg",),
            payload=b'{"secret": 1}',
            sequence_number=seq,
            signer=signer,
            encrypt_for=[kek if recipient is None else recipient.public],
            content_algorithm=COSEAlgorithm.A128CTR,
        )

    device.install(envelope(None, 1), None)
    assert device.tee.components.read((b"cfg",)) == b'{"secret": 1}'
    with pytest.raises(ManifestProcessingFailed):
        device.install(envelope(PrivateKey.generate(), 2), None)
