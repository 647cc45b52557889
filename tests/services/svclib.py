"""What the Python service checks share (tests/services/*/check).

A check runs inside the test's network namespace as `check ID ADDRESS`
(tests/services/README). This module gives it: the deadline of its first
exchange (env DEADLINE seconds, default 180, 420 on qemu: the machine
may still be booting), a retry loop for that exchange, the mark of the first answer
($SVC_ANSWERED), step printing, and reading the machine's files through
$MACHINE_CAT (on qemu each read stops and restarts the guest: read last).
"""
import os
import shlex
import ssl
import tempfile
import subprocess
import sys
import time

NAME = os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0])))
START = time.monotonic()


def step(text):
    print(f"{NAME}: {text}", flush=True)


def fail(text):
    print(f"{NAME}: FAIL: {text}", flush=True)
    sys.exit(1)


def args():
    """ID and ADDRESS from the command line."""
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} ID ADDRESS", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1], sys.argv[2]


def deadline():
    """The monotonic time by which the first exchange must have succeeded:
    $DEADLINE seconds from the start, by default 180 for a container and
    420 for a guest that boots a kernel (under TCG here: minutes)."""
    default = "180" if os.environ.get("MACHINE_HV", "lxc") in ("lxc", "openvz") else "420"
    return START + float(os.environ.get("DEADLINE", default))


def first(what, attempt, pause=2.0):
    """Call attempt() until it returns without raising OSError (or a
    protocol error of the client libraries, which all derive from
    Exception), up to the deadline; then mark the answer's time."""
    end = deadline()
    last = None
    tries = 0
    while True:
        tries += 1
        try:
            result = attempt()
            break
        except Exception as e:  # the service is not up yet, or not right
            last = e
            if time.monotonic() + pause >= end:
                fail(f"{what}: no answer after {tries} tries in "
                     f"{time.monotonic() - START:.0f} s: {last!r}")
            time.sleep(pause)
    answered()
    step(f"{what}: answered after {time.monotonic() - START:.1f} s ({tries} tries)")
    return result


def answered():
    path = os.environ.get("SVC_ANSWERED")
    if path and not os.path.exists(path):
        with open(path, "w") as f:
            f.write(f"{time.time():.6f}\n")


def machine_cat(path):
    """The machine's file PATH as bytes, or None when it cannot be read."""
    cat = os.environ.get("MACHINE_CAT")
    if not cat:
        fail("MACHINE_CAT is not set (run me from tests/services.sh)")
    r = subprocess.run(shlex.split(cat) + [path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        step(f"reading {path}: exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
        return None
    return r.stdout


def wait_file_has(path, marker):
    """Read the machine's file until it holds marker (bytes); the text
    read, or None. In a container a read is cheap: every 2 s for 120 s.
    A guest is stopped for each read and boots again after it, and what
    was still queued in it is only handled once it is up again: the first
    read waits 15 s (for the service to finish what it was given), the
    next ones 90 s (a boot under TCG, then the work), for up to 420 s."""
    if os.environ.get("MACHINE_HV", "lxc") in ("lxc", "openvz"):
        first, pause, seconds = 0.0, 2.0, 120.0
    else:
        first, pause, seconds = 15.0, 90.0, 420.0
    end = time.monotonic() + seconds
    time.sleep(first)
    while True:
        text = machine_cat(path)
        if text is not None and marker in text:
            return text
        if time.monotonic() + pause >= end:
            return None
        step(f"{path}: not there yet; reading again in {pause:.0f} s")
        time.sleep(pause)


def tls_context():
    """A client context that takes any certificate: the machine's is
    self-signed, made at its first boot; peer_cn tells whose it is."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_cn(sock):
    """The common name in the certificate the peer of a TLS socket sent."""
    der = sock.getpeercert(binary_form=True)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(ssl.DER_cert_to_PEM_cert(der))
        f.flush()
        cert = ssl._ssl._test_decode_cert(f.name)  # pylint: disable=protected-access
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return ""
