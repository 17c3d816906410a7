"""A time-stamping authority on 127.0.0.1 for the tests and the demo: a real RFC 3161 TSA, answered by
`openssl ts -reply`.

Each instance makes its own CA and TSA certificate with openssl in a directory of its own (the TSA's certificate
with extendedKeyUsage critical timeStamping, as RFC 3161 requires), then serves POSTs of
application/timestamp-query on an ephemeral port. ``mode`` switches it to failing, to test retries:
``"ok"`` answers, ``"error"`` answers HTTP 500, ``"drop"`` closes the connection without a word.
"""
from __future__ import annotations

import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONFIG = """\
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = placeholder

[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_tsa ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = .
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path, name: str = "Archiver Test TSA") -> None:
    """A CA (ca.pem) and a TSA certificate it signed (tsa.pem, tsa.key), with the openssl config to answer."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tsa.cnf").write_text(CONFIG)
    (directory / "tsaserial").write_text("01\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(directory, "req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
             "-subj", f"/CN={name} Root", "-config", "tsa.cnf", "-extensions", "v3_ca")
    _openssl(directory, "req", "-new", *ec, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", f"/CN={name}",
             "-config", "tsa.cnf")
    _openssl(directory, "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "tsa.pem", "-days", "3650", "-extfile", "tsa.cnf", "-extensions", "v3_tsa")


class LoopbackTSA:
    """``url`` answers timestamp queries; ``ca_file`` is the root to check its tokens against; ``requests``
    counts the queries received (whatever ``mode`` did with them). ``close()`` when done."""

    def __init__(self, directory: Path, name: str = "Archiver Test TSA", host: str = "127.0.0.1") -> None:
        self.dir = directory
        make_pki(directory, name)
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "tsa.pem"
        self.mode = "ok"
        self.requests = 0
        lock = threading.Lock()   # openssl rewrites the serial file: one reply at a time
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                query = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests += 1
                if owner.mode == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if owner.mode == "error":
                    self.send_error(500, "TSA out of order (test)")
                    return
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/timestamp-query":
                    self.send_error(415, "expected application/timestamp-query")
                    return
                with lock, tempfile.TemporaryDirectory() as tmp:
                    q, r = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
                    q.write_bytes(query)
                    proc = subprocess.run(["openssl", "ts", "-reply", "-config", "tsa.cnf", "-section", "tsa_config1",
                                           "-queryfile", str(q), "-out", str(r)], cwd=owner.dir, capture_output=True)
                    body = r.read_bytes() if proc.returncode == 0 and r.exists() else None
                if body is None:
                    self.send_error(500, "openssl ts -reply failed")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://{host}:{self.server.server_address[1]}/tsr"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
