"""HTTPS: an untrusted certificate is a classified failure; a trusted one is recorded with its TLS details
and certificate chain."""
from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import json
import ssl
import subprocess
import threading

import pytest

from conftest import sealed_warc, sealed_warc_bytes, stored_warcs
from warcutil import read_records, responses

PAGE = b"<!doctype html><title>Secure statement</title><p>Served over TLS on loopback.</p>"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    # SPKI pin for Chromium's --ignore-certificate-errors-spki-list: trust this one certificate, nothing else.
    pubkey = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-pubkey"], check=True,
                            capture_output=True).stdout
    spki_der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey, check=True,
                              capture_output=True).stdout
    spki = base64.b64encode(hashlib.sha256(spki_der).digest()).decode()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"https://127.0.0.1:{server.server_address[1]}/statement", "spki": spki, "der": der}
    server.shutdown()


def test_untrusted_certificate_is_a_tls_failure(cli, tls_site):
    result = cli("capture", tls_site["url"], "--json", env={"ARCHIVER_QUEUE_MAX_ATTEMPTS": "1"})
    assert result.code == 1
    outcome = result.json()[0]
    assert outcome["failure_class"] == "tls" and outcome["capture_id"] is None
    assert "CERT" in outcome["message"]
    assert stored_warcs(cli.archive) == []


def test_trusted_certificate_recorded_with_tls_details(cli, tls_site):
    env = {"ARCHIVER_BROWSER_EXTRA_ARGS": json.dumps([f"--ignore-certificate-errors-spki-list={tls_site['spki']}"])}
    result = cli("capture", tls_site["url"], "--json", env=env)
    assert result.code == 0, result.err + result.out
    show = cli("show", result.json()[0]["capture_id"], "--json").json()
    main = show["provenance"]["main"]
    assert main["tls"]["protocol"] == "TLS 1.3"
    pem = main["certificate_chain_pem"]
    assert ssl.PEM_cert_to_DER_cert(pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n") \
        == tls_site["der"]
    [page] = responses(read_records(sealed_warc(cli.archive, show)), tls_site["url"])
    assert page.payload == PAGE
    assert page.headers.get("WARC-IP-Address") == "127.0.0.1"
    # Two WARC-Protocol headers on the response: the HTTP version and the TLS version.
    text = gzip.decompress(sealed_warc_bytes(cli.archive, show))
    assert b"WARC-Protocol: http/1.1\r\nWARC-Protocol: tls/1.3\r\n" in text
