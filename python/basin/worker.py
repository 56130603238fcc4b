"""A Basin worker in Python: joins a sweep over BASIN/1 (pyzmq) and evaluates points in PyTorch.

    basin-worker --connect tcp://HOST:5555 [--model FILE.py:FUNCTION]
        [--data DIR] [--name NAME] [--slots 2] [--threads 1] [--keep-alive] [--kinds LIST]
        [--curve-keys NAME.key --curve-server COORDINATOR.pub]

It speaks the protocol in Sources/BasinCluster/Protocol/PROTOCOL.md: HELLO, heartbeats every second,
RESULT frames of 4 float64 per point, reconnection with backoff when the coordinator goes
silent for 5 s, BYE on DONE or SIGTERM. It evaluates every grid job (basin.torch.PointJob):
surfaces along random or trajectory (PCA) directions, interpolations, planes in both bases and
Bezier or polychain curves, with BatchNorm in eval mode or recomputed, and names each variant in
HELLO (`kinds`: surface:random, surface:trajectory, interpolate, plane:raw, plane:orthonormal,
curve; `--kinds` names fewer), so the coordinator leases it only those. A task it does not take
is answered with FAIL and a one-sentence reason.

--model names a function returning the nn.Module to evaluate (for models Basin cannot build);
its named_parameters() order is the parameter order directions are drawn in. Without it the
model is built from the checkpoint's Basin description. With it the worker also announces
`model:external`, so the coordinator leases it the jobs of a spec whose model is external
(`model: {external: NAME}`), which Basin's own workers never get. --data is a directory written by
`basin data SPEC -o DIR`, needed when the spec's data is a built-in generator; --data-factory
names a function returning the data instead (a torch Dataset or tensors, see
basin.torch.load_data_factory). --device and --points-per-pass: see basin.evaluate.
"""
import argparse
import hashlib
import json
import os
import math
import queue
import secrets
import signal
import socket
import sys
import threading
import time
import traceback

from .points import KINDS, job_variant

VERSION = b"BASIN/1"
HEARTBEAT_S = 1.0
SILENCE_S = 5.0


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="basin-worker", description="A Basin worker in Python (pyzmq + PyTorch).")
    parser.add_argument("--connect", required=True, help="the coordinator's endpoint, tcp://HOST:PORT")
    parser.add_argument("--model", help="FILE.py:FUNCTION (or MODULE:FUNCTION) returning the nn.Module")
    parser.add_argument("--data", help="directory from `basin data SPEC -o DIR`")
    parser.add_argument("--data-factory", help="FILE.py:FUNCTION (or MODULE:FUNCTION) returning the data: a "
                                               "Dataset or (features, labels), or a pair (train, test) of them")
    parser.add_argument("--name", default=f"py-{socket.gethostname()}-{os.getpid()}")
    parser.add_argument("--slots", type=int, default=2, help="leases held at once (1-64)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    parser.add_argument("--keep-alive", action="store_true", help="stay connected after the sweep is DONE")
    parser.add_argument("--give-up-after", type=float, default=600.0,
                        help="seconds without a word from the coordinator after which an idle worker exits "
                             "with an error (0: never)")
    parser.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                        os.path.join(os.path.expanduser("~"), ".cache"), "basin"),
                        help="artifacts fetched from the coordinator, by SHA-256 (default ~/.cache/basin)")
    parser.add_argument("--curve-keys", help="this worker's key pair (NAME.key from basin keygen)")
    parser.add_argument("--curve-server", help="the coordinator's public key (its .pub file)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda where there is one); "
                                         "one worker per GPU")
    parser.add_argument("--points-per-pass", type=int,
                        help="points evaluated together under torch.vmap (default: measured per job, "
                             "1 where batching loses)")
    parser.add_argument("--kinds", help=f"job kinds to take, comma-separated (default all: {','.join(KINDS)}; "
                                        "a kind such as surface stands for its variants)")
    args = parser.parse_args(argv)
    try:
        args.kinds = announced(args.kinds)
    except ValueError as error:
        parser.error(str(error))
    if not 1 <= args.slots <= 64:
        parser.error("--slots must be between 1 and 64")
    if args.points_per_pass is not None and not 1 <= args.points_per_pass <= 4096:
        parser.error("--points-per-pass must be between 1 and 4096")
    if not args.give_up_after >= 0:
        parser.error("--give-up-after must be 0 (never) or a number of seconds")
    if (args.curve_keys is None) != (args.curve_server is None):
        parser.error("CURVE needs both --curve-keys and --curve-server")
    return args


def read_key_file(path, field):
    """A Z85 key from a basin keygen file: the `field = ...` line of a .key file, or a .pub file's line."""
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except OSError as error:
        raise SystemExit(f"basin-worker: cannot read {path} ({error.strerror})")
    for line in lines:
        if line.startswith(field) and line[len(field):].lstrip().startswith("="):
            return line[len(field):].lstrip()[1:].strip().encode()
    if field == "public" and len(lines) == 1 and len(lines[0]) == 40:
        return lines[0].encode()
    raise SystemExit(f"basin-worker: {path} has no {field} key (expected a file from basin keygen)")


CHUNK = 1 << 20
CREDIT = 4
JOBS_KEPT = 4  # prepared jobs a worker keeps (shards of several jobs come interleaved)
INDEX_MAX = 1 << 53


def is_hash(value):
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def integer(header, key, low=0, high=INDEX_MAX, default=None):
    """An exact integer field within [low, high], or ValueError naming the field (no trap on 1e300, NaN, null)."""
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and (not math.isfinite(value) or value != int(value))):
        raise ValueError(f"field '{key}' must be an integer from {low} to {high}, got {value!r:.80}")
    if not low <= int(value) <= high:
        raise ValueError(f"field '{key}' must be an integer from {low} to {high}, got {value!r:.80}")
    return int(value)


def strings_in(value):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return {value}
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return set().union(*(strings_in(item) for item in items))


def hash_map(header, key, spec=None):
    """A {name: artifact hash} field; file paths must be ones the spec names, none with a '..' part."""
    value = header.get(key) or {}
    if not isinstance(value, dict) or len(value) > 4096:
        raise ValueError(f"field '{key}' must be an object of at most 4096 names")
    for name, digest in value.items():
        if not is_hash(digest):
            raise ValueError(f"field '{key}' maps {name[:80]!r} to {str(digest)[:80]!r}, not an artifact hash")
        if not name or len(name) > 4096 or "\0" in name:
            raise ValueError(f"field '{key}' has a name that is not a path")
        if spec is not None and (".." in name.split("/") or name not in strings_in(spec)):
            raise ValueError(f"field '{key}' names {name[:80]!r}, which is not a path the task's spec names")
    return value


def declines(definition, kinds):
    """Why this worker does not compute a job (it says so before starting), or None."""
    if not isinstance(definition, dict):
        return None
    variant = job_variant(definition)
    if variant not in kinds:
        return f"this PyTorch worker does not compute {variant[:40]} jobs (it takes {', '.join(kinds)})"
    return None


# The capability that gets a worker the jobs of a spec whose model Basin does not build
# (`model: {external: NAME}`): announced by a worker started with --model, which builds it.
EXTERNAL_MODEL = "model:external"


def announced_capabilities(args):
    """HELLO's `kinds`: the job kinds and variants it takes, and model:external with --model."""
    return list(args.kinds) + ([EXTERNAL_MODEL] if args.model else [])


def announced(text):
    """The job kinds and variants of --kinds (comma-separated; a kind stands for its variants)."""
    if text is None:
        return KINDS
    chosen = []
    for name in (part.strip() for part in text.split(",") if part.strip()):
        matches = [k for k in KINDS if k == name or k.split(":")[0] == name]
        if not matches:
            raise ValueError(f"--kinds: '{name[:40]}' is not one of {', '.join(KINDS)}")
        chosen += [m for m in matches if m not in chosen]
    if not chosen:
        raise ValueError("--kinds names no job kind")
    return tuple(chosen)


def check_task(header):
    """The TASK header's fields, checked once at the edge (PROTOCOL.md); ValueError names the first bad one."""
    integer(header, "lease", 1)
    if not is_hash(header.get("job")):
        raise ValueError("field 'job' must be 64 lowercase hexadecimal digits")
    integer(header, "job_index")
    integer(header, "shard")
    start = integer(header, "start")
    integer(header, "end", start + 1, start + 100_000_000)
    hash_map(header, "inputs")
    if "definition" in header:
        if not isinstance(header.get("definition"), dict) or not isinstance(header.get("spec"), dict) \
                or not isinstance(header.get("base"), str):
            raise ValueError("fields 'definition' and 'spec' must be objects and 'base' a string")
        hash_map(header, "files", header["spec"])


def cache_path(cache, digest):
    """Where artifact `digest` lives in a cache laid out like Basin's (ab/abcdef...)."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"'{digest}' is not an artifact name")
    return os.path.join(cache, digest[:2], digest)


class Fetch:
    """One input artifact arriving in chunks: hashed as it streams, renamed into the cache when whole."""

    def __init__(self, cache, digest):
        self.digest, self.final = digest, cache_path(cache, digest)
        os.makedirs(os.path.dirname(self.final), exist_ok=True)
        self.partial = f"{self.final}.{os.getpid()}.part"
        self.file, self.hasher = open(self.partial, "wb"), hashlib.sha256()
        self.size, self.received, self.requested, self.in_flight = None, 0, CHUNK, 1

    def add(self, offset, size, data):
        if offset != self.received:
            raise ValueError(f"chunk at {offset}, expected {self.received}")
        if self.size is not None and size != self.size:
            raise ValueError(f"chunk announcing {size} bytes for an artifact of {self.size}")
        if len(data) > CHUNK or offset + len(data) > size:
            raise ValueError(f"chunk of {len(data)} bytes at {offset} passes the artifact's {size} bytes")
        self.size = size
        self.file.write(data)
        self.hasher.update(data)
        self.received += len(data)
        self.in_flight -= 1
        return self.received >= size

    def finish(self):
        self.file.close()
        if self.hasher.hexdigest() != self.digest:
            os.unlink(self.partial)
            raise ValueError(f"artifact {self.digest[:12]} arrived with SHA-256 {self.hasher.hexdigest()[:12]}")
        os.replace(self.partial, self.final)

    def abandon(self):
        self.file.close()
        if os.path.exists(self.partial):
            os.unlink(self.partial)


class Compute(threading.Thread):
    """Evaluates tasks one at a time off the socket thread, so heartbeats keep flowing."""

    def __init__(self, args):
        super().__init__(daemon=True)
        self.args, self.tasks, self.results = args, queue.Queue(), queue.Queue()
        self.jobs, self.definitions, self.broken, self.cancelled = {}, {}, {}, set()
        self.busy = None
        from . import evaluate
        from . import torch as bridge
        self.bridge, self.evaluate = bridge, evaluate
        self.factory = bridge.load_factory(args.model) if args.model else None
        self.arrays = bridge.load_data_factory(args.data_factory) if args.data_factory else None
        self.device = evaluate.choose_device(args.device)

    def run(self):
        while True:
            header = self.tasks.get()
            lease = header["lease"]
            if lease in self.cancelled:
                self.cancelled.discard(lease)
                continue
            self.busy = lease
            started = time.monotonic()
            try:
                job, evaluator = self.job(header)
                points = range(header["start"], header["end"])
                if points.stop > job.count:
                    raise ValueError(f"points {points.start}..<{points.stop} outside the job's {job.count}")
                chosen = evaluator.choice
                values = [v for row in evaluator.evaluate(points) for v in row]
                if chosen is None and evaluator.choice is not None:
                    print(f"basin-worker: job {header['job'][:12]} on {evaluator.device}: "
                          f"{evaluator.choice['strategy']}, {evaluator.choice['points_per_pass']} point(s) per pass "
                          f"(measured points/s: {evaluator.choice['rates']})", file=sys.stderr, flush=True)
                self.results.put(("RESULT", header, values, time.monotonic() - started))
            except Exception as error:  # one sentence back to the coordinator, the trace here
                traceback.print_exc(file=sys.stderr)
                self.results.put(("FAIL", header, str(error).splitlines()[0] if str(error) else type(error).__name__, 0))
            self.busy = None

    def job(self, header):
        key = header["job"]
        if key in self.jobs:
            self.jobs[key] = self.jobs.pop(key)  # the most recently used last
            return self.jobs[key]
        if "definition" in header:
            self.definitions[key] = (header["definition"], header["spec"], header["base"], header.get("files") or {})
        if key not in self.definitions and key not in self.broken:
            raise ValueError(f"task for job {key[:12]} without its definition")
        if key in self.broken:
            raise self.broken[key]
        definition, spec, base, data = self.definitions[key]
        outputs = {name: cache_path(self.args.cache, h) for name, h in (header.get("inputs") or {}).items()}
        try:
            job = self.bridge.PointJob(definition, spec, base, factory=self.factory, data=self.args.data,
                                       outputs=outputs, arrays=self.arrays,
                                       data_files={p: cache_path(self.args.cache, h) for p, h in data.items()})
            evaluator = self.evaluate.ShardEvaluator(job, self.device, points_per_pass=self.args.points_per_pass)
        except Exception as error:  # every later shard of this job fails the same way, at once
            self.broken[key] = error
            raise
        self.jobs[key] = (job, evaluator)
        while len(self.jobs) > JOBS_KEPT:  # the oldest job's data and bases leave the device
            self.jobs.pop(next(iter(self.jobs)))
        return self.jobs[key]


class Connection:
    """One socket to the coordinator and what this connection holds: leases in flight, artifacts
    arriving, tasks waiting for them. `handle` takes one message, `tick` the clock; both return
    None to go on, RECONNECT, or an exit status."""

    def __init__(self, worker, generation):
        self.worker, self.args, self.compute = worker, worker.args, worker.compute
        import zmq
        self.zmq = zmq
        s = worker.context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)
        # Unpredictable, so no other peer can take this routing id first and lock the worker out.
        s.setsockopt_string(zmq.ROUTING_ID, f"{self.args.name[:100]}#{generation}.{secrets.token_hex(6)}")
        if self.args.curve_keys:
            s.curve_publickey = read_key_file(self.args.curve_keys, "public")
            s.curve_secretkey = read_key_file(self.args.curve_keys, "secret")
            s.curve_serverkey = read_key_file(self.args.curve_server, "public")
        s.connect(self.args.connect)
        self.socket = s
        self.last_sent = 0.0
        self.last_heard = time.monotonic()
        self.welcomed = False
        self.in_flight = set()
        self.fetches, self.parked, self.job_data = {}, [], {}  # artifacts arriving; tasks waiting; data by job
        self.definitions = {}  # job id -> definition, as the first TASK of each job carries it

    def send(self, command, header=None, *binary):
        # Never block: with IMMEDIATE a send waits for a connection that may never come. A
        # message dropped here is repeated (HELLO, heartbeats) or its lease is re-issued.
        try:
            self.socket.send_multipart([VERSION, command.encode(), json.dumps(header or {}).encode(), *binary],
                                       flags=self.zmq.NOBLOCK)
        except self.zmq.Again:
            pass
        self.last_sent = time.monotonic()

    def hello(self):
        self.send("HELLO", {"worker": self.args.name, "host": socket.gethostname(), "pid": os.getpid(),
                            "slots": self.args.slots, "version": "basin-worker (Python)",
                            "kinds": announced_capabilities(self.args)})

    def receive(self, timeout_ms):
        """The next message's (command, header, frames), None when nothing came, or an exit status."""
        if not self.socket.poll(timeout_ms):
            return None
        frames = self.socket.recv_multipart()
        self.last_heard = self.worker.last_contact = time.monotonic()
        if len(frames) < 3 or frames[0] != VERSION:
            self.worker.log("dropped an unreadable message from the coordinator")
            return None
        command = frames[1].decode(errors="replace")
        header = None
        try:
            header = json.loads(frames[2])
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            if command == "TASK":
                check_task(header)
        except (ValueError, RecursionError) as error:
            self.worker.log(f"refused a {command[:16]!r} from the coordinator: {str(error)[:300]}")
            lease = header.get("lease") if command == "TASK" and isinstance(header, dict) else None
            if isinstance(lease, int) and not isinstance(lease, bool) and 0 < lease <= INDEX_MAX:
                self.send("FAIL", {"lease": lease, "error": f"refused the task: {str(error)[:300]}"})
            return None
        return command, header, frames

    def handle(self, command, header, frames):
        method = getattr(self, f"on_{command.lower()}", None) if command.isalpha() else None
        return method(header, frames) if method else None

    def on_welcome(self, header, frames):
        self.welcomed = True
        self.worker.backoff = 1.0
        self.worker.log(f"joined {self.args.connect} (epoch {header.get('epoch')})")

    def on_task(self, header, frames):
        job = header["job"]
        if "definition" in header:
            self.definitions[job] = header["definition"]
        reason = declines(self.definitions.get(job), self.args.kinds)
        if reason:
            self.send("FAIL", {"lease": header["lease"], "error": reason, "declined": True})
            return
        self.in_flight.add(header["lease"])
        if "files" in header:
            self.job_data[job] = header["files"]
        header["_needs"] = sorted(set((header.get("inputs") or {}).values()) | set(self.job_data.get(job, {}).values()))
        missing = [h for h in header["_needs"] if not self.cached(h)]
        for digest in missing:
            if digest not in self.fetches:
                self.fetches[digest] = Fetch(self.args.cache, digest)
                self.send("FETCH", {"artifact": digest, "offset": 0, "length": CHUNK})
        if missing:
            self.parked.append(header)
        else:
            self.compute.tasks.put(header)

    def cached(self, digest):
        return os.path.exists(cache_path(self.args.cache, digest))

    def on_chunk(self, header, frames):
        digest = header.get("artifact")
        fetch = self.fetches.get(digest) if isinstance(digest, str) else None
        if fetch is None:
            return
        try:
            if "error" in header:
                raise ValueError(str(header["error"])[:300])
            size = integer(header, "size", 0, 1 << 40)
            offset = integer(header, "offset", 0, size)
            if fetch.add(offset, size, frames[3] if len(frames) > 3 else b""):
                fetch.finish()
                del self.fetches[digest]
                ready = [t for t in self.parked if all(self.cached(h) for h in t["_needs"])]
                self.parked = [t for t in self.parked if t not in ready]
                for task in ready:
                    self.compute.tasks.put(task)
            else:
                while fetch.in_flight < CREDIT and fetch.requested < fetch.size:
                    self.send("FETCH", {"artifact": digest, "offset": fetch.requested, "length": CHUNK})
                    fetch.requested += CHUNK
                    fetch.in_flight += 1
        except (ValueError, KeyError, OSError) as error:
            fetch.abandon()
            self.fetches.pop(digest, None)
            for task in [t for t in self.parked if digest in t["_needs"]]:
                self.parked.remove(task)
                self.send("FAIL", {"lease": task["lease"], "error": f"cannot fetch an input: {error}"})

    def on_ack(self, header, frames):
        self.in_flight.discard(header.get("lease"))

    def on_cancel(self, header, frames):
        self.compute.cancelled.add(header.get("lease"))
        self.in_flight.discard(header.get("lease"))

    def on_disconnect(self, header, frames):
        reason = str(header.get("reason"))[:500]
        if header.get("quarantined") is True:
            self.worker.log(f"the coordinator quarantined this worker: {reason}")
            return 1
        self.worker.log(f"coordinator said: {reason}; reconnecting")
        return RECONNECT

    def on_done(self, header, frames):
        if self.args.keep_alive:
            return None
        self.send("BYE")
        self.worker.log(f"the sweep is done ({self.worker.shards_done} shard(s) computed here)")
        return 0

    def send_results(self):
        """RESULT or FAIL for every finished task whose lease is still this connection's."""
        import numpy as np
        while not self.compute.results.empty():
            kind, task, values, seconds = self.compute.results.get()
            if task["lease"] not in self.in_flight:
                continue
            if kind == "RESULT":
                header = {k: task[k] for k in ("lease", "job", "job_index", "shard")}
                header["seconds"] = seconds
                self.send("RESULT", header, np.asarray(values, dtype="<f8").tobytes())
                self.worker.shards_done += 1
            else:
                self.send("FAIL", {"lease": task["lease"], "error": values})

    def tick(self):
        """Heartbeats (HELLO until welcomed), giving up on a coordinator that never answers, and
        reconnecting after SILENCE_S without a word."""
        now = time.monotonic()
        if now - self.last_sent >= HEARTBEAT_S:
            if self.welcomed:
                heartbeat = {"queued": self.compute.tasks.qsize()}
                if self.compute.busy is not None:
                    heartbeat["computing"] = self.compute.busy
                self.send("HEARTBEAT", heartbeat)
            else:
                self.hello()
        idle = self.compute.busy is None and self.compute.tasks.empty()
        silent = now - self.worker.last_contact
        if self.args.give_up_after > 0 and idle and silent > self.args.give_up_after:
            self.worker.log(f"no coordinator answered at {self.args.connect} for {silent:.0f} s; "
                            "giving up (--give-up-after)")
            return 1
        if now - self.last_heard > SILENCE_S:
            self.worker.log(f"no word from {self.args.connect} for {SILENCE_S:g} s; "
                            f"reconnecting in {self.worker.backoff:g} s")
            return RECONNECT
        return None

    def close(self):
        """Drops queued work (the coordinator reissues whatever was not acknowledged) and the socket."""
        while not self.compute.tasks.empty():
            self.compute.tasks.get_nowait()
        for fetch in self.fetches.values():
            fetch.abandon()
        self.socket.close()


RECONNECT = "reconnect"


class Worker:
    """Connections to one coordinator, one after another with backoff, until DONE, a quarantine,
    a signal or --give-up-after."""

    def __init__(self, args):
        import zmq
        import torch
        torch.set_num_threads(args.threads)
        self.args = args
        self.compute = Compute(args)
        self.compute.start()
        self.context = zmq.Context()
        self.stopping = False
        self.backoff, self.shards_done = 1.0, 0
        self.last_contact = time.monotonic()  # a coordinator's last word, across reconnects

    def log(self, text):
        print(f"basin-worker {self.args.name}: {text}", file=sys.stderr, flush=True)

    def stop(self, *_):
        self.stopping = True

    def run(self):
        generation = 0
        try:
            while True:
                connection = Connection(self, generation)
                outcome = self.serve(connection)
                connection.close()
                if outcome != RECONNECT:
                    return outcome
                time.sleep(self.backoff)
                self.backoff = min(self.backoff * 2, 32.0)
                generation += 1
        finally:
            self.context.term()

    def serve(self, connection):
        connection.hello()
        while True:
            if self.stopping:
                connection.send("BYE")
                self.log("stopping on a signal (BYE sent)")
                return 0
            message = connection.receive(100)
            if message is not None:
                outcome = connection.handle(*message)
                if outcome is not None:
                    return outcome
            connection.send_results()
            outcome = connection.tick()
            if outcome is not None:
                return outcome


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        import torch  # noqa: F401
        import zmq  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"basin-worker: needs numpy, torch, safetensors and pyzmq ({error}); "
                         "pip install 'basin-landscapes[torch]'")
    from .evaluate import choose_device
    try:
        choose_device(args.device)
    except ValueError as error:
        raise SystemExit(f"basin-worker: {error}")
    try:
        worker = Worker(args)
    except ValueError as error:  # a factory that cannot be loaded or returns no usable data
        raise SystemExit(f"basin-worker: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
