"""The hub's uplink over TLS to a real Mosquitto TLS listener: verified against the given CA, refused without it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.edge_support import HubProcess, central_count
from tests.fake_glucose import write_meters
from tests.services import free_port, mosquitto
from tests.test_edge_hub import _gateway, _seed, _until

METER = "AA:00:00:00:09:7C"


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PulseBridge test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1)).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


async def test_the_uplink_is_tls_verified_against_the_configured_ca(timescale_url: str, tmp_path: Path) -> None:
    await _seed(timescale_url, [("hub-tls", "meter-tls", METER, "patient-tls")])
    ca, certificate, key = _certificates(tmp_path)
    meters = tmp_path / "meters.json"
    write_meters(meters, {METER: {"count": 3, "delay": 0}})
    tls_port = free_port()
    extra = f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {certificate}\nkeyfile {key}\n"
    with mosquitto(tmp_path, extra) as port:
        gateway = _gateway(tmp_path, timescale_url, port, "gw-edge-tls")
        verified = HubProcess(tmp_path, "hub-tls", tls_port, meters,
                              {"PULSEBRIDGE_EDGE__UPSTREAM__TLS": "true", "PULSEBRIDGE_EDGE__UPSTREAM__CA_FILE": str(ca)})  # fmt: skip
        untrusting = HubProcess(tmp_path, "hub-untrusting", tls_port, meters, {"PULSEBRIDGE_EDGE__UPSTREAM__TLS": "true"})
        try:
            gateway.start()
            gateway.wait_healthy()
            verified.start()
            untrusting.start()  # the system's CAs do not know this broker: it must not connect
            await _until(lambda: _count(timescale_url, 3), 60, "the meter's records over TLS")
            await asyncio.sleep(1)
            assert " up as hub-hub-tls" in verified.log()
            assert "certificate verify failed" in untrusting.log().lower()
            assert " up as hub-hub-untrusting" not in untrusting.log()
        finally:
            verified.stop()
            untrusting.stop()
            gateway.stop()


async def _count(url: str, want: int) -> bool:
    return await central_count(url, "patient-tls") == want
