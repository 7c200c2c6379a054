"""Captures what a C Tor relay answers a client's VERSIONS with (VERSIONS, CERTS,
AUTH_CHALLENGE, NETINFO) and the TLS certificate it presented, as JSON.

    python3 capture-ctor-certs.py ORPORT OUT.json

The relay needs no network: a torrc with `ORPort 127.0.0.1:PORT`, `SocksPort 0`,
`TestingTorNetwork 1`, one fake `DirAuthority ... 127.0.0.1:9 ...` (so it contacts no real
authority), `AssumeReachable 1` and `PublishServerDescriptor 0`.
ctor-0.4.9.11-certs.hex is the CERTS payload captured this way from Tor 0.4.9.11.
"""
import socket, ssl, struct, sys, time, hashlib, json
port = int(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection(('127.0.0.1', port), timeout=10)
t = ctx.wrap_socket(s)
peer = t.getpeercert(binary_form=True)
# VERSIONS 3,4,5 with a 2-byte circ id
t.sendall(struct.pack('>HBH', 0, 7, 6) + struct.pack('>HHH', 3, 4, 5))
t0 = int(time.time())
buf = b''
deadline = time.time() + 10
cells = []
first = True
while time.time() < deadline and not any(c[0] == 8 for c in cells):
    try:
        d = t.recv(65536)
    except socket.timeout:
        break
    if not d:
        break
    buf += d
    while True:
        idl = 2 if first else 4
        if len(buf) < idl + 1:
            break
        cmd = buf[idl]
        if cmd == 7 or cmd >= 128:
            if len(buf) < idl + 3:
                break
            ln = struct.unpack('>H', buf[idl+1:idl+3])[0]
            tot = idl + 3 + ln
            if len(buf) < tot:
                break
            cells.append((cmd, buf[idl+3:tot], buf[:tot]))
        else:
            tot = 514
            if len(buf) < tot:
                break
            cells.append((cmd, buf[5:tot], buf[:tot]))
        buf = buf[tot:]
        first = False
out = {
    'time': t0,
    'tls_version': t.version(),
    'peer_cert': peer.hex(),
    'peer_cert_sha256': hashlib.sha256(peer).hexdigest(),
    'cells': [(c[0], c[1].hex()) for c in cells],
}
json.dump(out, open(sys.argv[2], 'w'))
print(t.version(), [c[0] for c in cells], len(peer))
t.close()
