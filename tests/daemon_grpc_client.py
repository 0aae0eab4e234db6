#!/usr/bin/python3
"""An independent client of the factory daemon (issue #5): Debian's
python3-grpcio with stubs generated from proto/factory.proto at run time,
not the C++ code the daemon shares.

  daemon_grpc_client.py --socket SOCK --template NAME [--count 50] [--workers W]
                        [--proto-dir DIR]
  daemon_grpc_client.py --list-imports
      prints the Python files it loads (for copying just those into a VM)

Asks for COUNT VMs, W at a time (default: all at once, one thread each; 1
gives one-by-one latencies, 8 the throughput of 8 clients), Pings every VM's agent over
its agent.sock (tests/agent_sock_client.py: the hybrid-vsock handshake and
the agent frames, also written without our C++), releases them all, then
checks that nothing is left: every VMM process gone, every agent.sock and
console.sock removed, ListVMs empty of them. Prints one JSON object with
the latencies. Runs with /usr/bin/python3 on purpose: Debian's grpcio is
installed for that interpreter, not for a pyenv or venv python3 on PATH.

Exit status: 0 all good, 1 a check failed (named on stderr), 2 usage or
missing packages (python3-grpcio, python3-protobuf, protobuf-compiler-grpc).
"""
import argparse
import concurrent.futures
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# Debian's grpcio and protobuf, also when run with -S (as the nested tier
# does, with only the files this script needs copied in).
if "/usr/lib/python3/dist-packages" not in sys.path:
    sys.path.append("/usr/lib/python3/dist-packages")
import agent_sock_client  # noqa: E402  (the stand-alone agent.sock client)


def fail(msg, code=1):
    print("daemon_grpc_client: " + msg, file=sys.stderr)
    sys.exit(code)


def generate_stubs(proto_dir, out_dir):
    """factory_pb2 and factory_pb2_grpc from proto/factory.proto, now."""
    plugin = shutil.which("grpc_python_plugin")
    protoc = shutil.which("protoc")
    if not plugin or not protoc:
        fail("protoc and grpc_python_plugin are needed (protobuf-compiler-grpc)", 2)
    cmd = [protoc, "-I", proto_dir, "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
           "--plugin=protoc-gen-grpc_python=" + plugin, os.path.join(proto_dir, "factory.proto")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        fail("protoc failed: " + r.stderr.strip(), 2)
    sys.path.insert(0, out_dir)
    return importlib.import_module("factory_pb2"), importlib.import_module("factory_pb2_grpc")


def ping_agent(path, timeout):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    t0 = time.monotonic()
    sock.connect(path)
    conn = agent_sock_client.AgentConnection(sock, 1024, timeout)
    conn.ping(0xFAC7)
    sock.close()
    return time.monotonic() - t0


def percentile(values, p):
    return agent_sock_client.percentile(values, p) if values else 0.0


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purpose only once reaped; report it.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket")
    ap.add_argument("--template")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--workers", type=int, default=0, help="concurrent clients (0: --count)")
    ap.add_argument("--list-imports", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0, help="per call, seconds")
    ap.add_argument("--proto-dir", default=os.path.join(HERE, "..", "proto"))
    a = ap.parse_args()
    try:
        import grpc  # noqa: F401
    except ImportError:
        fail("python3-grpcio is not installed for " + sys.executable, 2)
    if a.list_imports:
        with tempfile.TemporaryDirectory(prefix="kf-pystubs-") as stubs:
            pb, pb_grpc = generate_stubs(os.path.abspath(a.proto_dir), stubs)
            # What a real run loads lazily: a channel, a stub, the pool.
            channel = grpc.insecure_channel("unix:///nonexistent/kf.sock")
            pb_grpc.FactoryStub(channel)
            pb.GetVMRequest(template="x").SerializeToString()
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
                ex.submit(len, "x").result()
            channel.close()
            for m in list(sys.modules.values()):
                f = getattr(m, "__file__", None)
                if f and f.startswith("/usr/lib/python3"):
                    print(f)
        return
    if not a.socket or not a.template:
        fail("--socket and --template are required", 2)
    workers = a.workers or a.count

    with tempfile.TemporaryDirectory(prefix="kf-pystubs-") as stubs:
        pb, pb_grpc = generate_stubs(os.path.abspath(a.proto_dir), stubs)
        channel = grpc.insecure_channel("unix://" + os.path.abspath(a.socket))
        grpc.channel_ready_future(channel).result(timeout=a.timeout)
        factory = pb_grpc.FactoryStub(channel)

        def get_one(i):
            t0 = time.monotonic()
            r = factory.GetVM(pb.GetVMRequest(template=a.template, labels={"client": "py",
                                                                           "n": str(i)}),
                              timeout=a.timeout)
            got = time.monotonic() - t0
            ping = ping_agent(r.vm.agent_socket, a.timeout)
            return r, got, got + ping

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(get_one, range(a.count)))
        wall = time.monotonic() - t0
        vms = [r.vm for r, _, _ in results]
        ids = {vm.id for vm in vms}
        if len(ids) != a.count:
            fail("%d GetVM calls returned %d distinct ids" % (a.count, len(ids)))
        if len({vm.agent_socket for vm in vms}) != a.count:
            fail("two VMs share an agent socket")
        if len({vm.pid for vm in vms}) != a.count:
            fail("two VMs share a pid")
        listed = {vm.id for vm in factory.ListVMs(pb.ListVMsRequest(), timeout=a.timeout).vms}
        missing = ids - listed
        if missing:
            fail("ListVMs lacks %d leased VMs, e.g. %s" % (len(missing), sorted(missing)[0]))

        for vm in vms:
            factory.ReleaseVM(pb.ReleaseVMRequest(id=vm.id), timeout=a.timeout)
        try:
            factory.ReleaseVM(pb.ReleaseVMRequest(id=vms[0].id), timeout=a.timeout)
            fail("releasing a released VM did not fail")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                fail("releasing twice: %s, expected NOT_FOUND" % e.code())

        # Nothing left behind: processes, sockets, ListVMs entries.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = [vm.pid for vm in vms if pid_alive(vm.pid)]
            files = [p for vm in vms for p in (vm.agent_socket, vm.console_socket)
                     if p and os.path.exists(p)]
            if not alive and not files:
                break
            time.sleep(0.1)
        if alive:
            fail("%d VMM processes still alive after release, e.g. pid %d" % (len(alive), alive[0]))
        if files:
            fail("%d sockets left after release, e.g. %s" % (len(files), files[0]))
        left = {vm.id for vm in factory.ListVMs(pb.ListVMsRequest(), timeout=a.timeout).vms} & ids
        if left:
            fail("ListVMs still shows %d released VMs" % len(left))
        channel.close()

    get_s = [g for _, g, _ in results]
    first_ping_s = [p for _, _, p in results]
    hits = sum(1 for r, _, _ in results if r.pool_hit)
    print(json.dumps({
        "count": a.count, "workers": workers, "pool_hits": hits, "wall_s": wall,
        "getvm_per_s": a.count / wall,
        "getvm_ms": {"p50": percentile(get_s, 50) * 1e3, "p99": percentile(get_s, 99) * 1e3},
        "getvm_to_first_ping_ms": {"p50": percentile(first_ping_s, 50) * 1e3,
                                   "p99": percentile(first_ping_s, 99) * 1e3,
                                   "max": max(first_ping_s) * 1e3},
        "released": len(vms), "left_behind": 0}))


if __name__ == "__main__":
    main()
