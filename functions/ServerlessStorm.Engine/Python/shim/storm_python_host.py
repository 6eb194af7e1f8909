"""Runs one python-script action, one sensor poll or one long-running sensor for the ServerlessStorm host.

Started as `python -u storm_python_host.py` in a fresh process. The protocol keeps the pack code's own output pure:
  * the real stdout is kept on a private descriptor and carries JSON lines to the host (output chunks, datastore
    calls, dispatches, log lines, the outcome);
  * descriptors 1 and 2 become pipes forwarded live as output messages, so prints and subprocesses' output are
    captured, stdout and stderr apart;
  * the real stdin is kept private too and brings JSON lines from the host: the job first, then answers to calls
    (and "stop" for a long-running sensor); the pack code's stdin is /dev/null.
Only what a run needs is imported, and late: the process starts for every execution. So JSON goes through the C
accelerator directly (the json package pulls in re and enum), threads through _thread, and modules load through the
import system's own loader, which saves a third of the start-up.
"""

import _json
import _thread
import os
import sys

# How long output may stay open once the code has finished (a background child holding it) before the outcome is sent.
_DRAIN_SECONDS = 1.0

# Attributes the sensor base classes set: never part of a sensor's kept state. (_poll_interval is: a sensor that
# calls set_poll_interval keeps its new interval for the polls after, as its process would in StackStorm.)
_SENSOR_FRAMEWORK_ATTRIBUTES = frozenset(["_sensor_service", "sensor_service", "_config", "config"])
# Kept beside _poll_interval: the sensor's own interval when it set one (see run_sensor).
_KEPT_INTERVAL_FROM = "__storm_poll_interval_from"


class _JsonContext(object):
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}[name])


_scan = _json.make_scanner(_JsonContext())


def loads(text):
    text = text.strip()
    value, end = _scan(text, 0)
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def _refuse(value):
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def _encoder(default, allow_nan):
    return _json.make_encoder({}, default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, allow_nan)


def dumps(value, default=_refuse):
    """JSON text of value; NaN and infinities become null (as orjson writes them), so the host can always parse it."""
    try:
        return "".join(_encoder(default, False)(value, 0))
    except ValueError as error:
        if "Out of range float" not in str(error):
            raise
    # Rare: walk the value once to replace the non-finite floats, then encode again.
    return "".join(_encoder(default, False)(_finite(value, default), 0))


def _finite(value, default, depth=0):
    if depth > 500:
        raise RecursionError("the value is nested too deeply")
    if type(value) is float or isinstance(value, float):
        return value if value - value == 0.0 else None
    if isinstance(value, (str, int)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _finite(v, default, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, default, depth + 1) for v in value]
    # What the default hook makes of it (a dataclass's dict, say) may hold floats too.
    return _finite(default(value), default, depth + 1)


def to_json(value):
    """The default hook for results and messages: StackStorm's orjson writes these types natively, the same way.

    Checked by module and name so that nothing is imported for a result that holds none of them."""
    kind = type(value)
    module = kind.__module__
    if module == "datetime" and hasattr(value, "isoformat"):
        return value.isoformat()
    if module == "uuid" and kind.__name__ == "UUID":
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if hasattr(kind, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    enum = sys.modules.get("enum")
    if enum is not None and isinstance(value, enum.Enum):
        return value.value
    # Anything else as its text, that value alone (not the whole result).
    return str(value)


class HostError(Exception):
    """The host refused a call or could not answer it; the message says why."""

    def __init__(self, message, refused=False):
        super(HostError, self).__init__(message)
        # True when the host refused what was asked (a payload its trigger type rejects); false when it failed.
        self.refused = refused


class Channel(object):
    """JSON lines to and from the host, on descriptors the pack code does not see."""

    def __init__(self):
        self._out = os.dup(1)
        self._in = os.fdopen(os.dup(0), "rb")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self._write_lock = _thread.allocate_lock()
        self._calls_lock = _thread.allocate_lock()
        self._next_id = 0
        self._answers = {}
        self.on_stop = None
        self._closed = False

    def send(self, message):
        self.send_line(dumps(message, default=to_json))

    def send_line(self, text):
        data = (text + "\n").encode("utf-8")
        with self._write_lock:
            view = memoryview(data)
            while view:
                written = os.write(self._out, view)
                view = view[written:]

    def read_job(self):
        line = self._in.readline()
        if not line:
            os._exit(70)
        return loads(line.decode("utf-8"))

    def listen(self):
        _thread.start_new_thread(self._read_answers, ())

    def _read_answers(self):
        for line in self._in:
            message = loads(line.decode("utf-8"))
            if message.get("t") == "stop":
                if self.on_stop is not None:
                    self.on_stop()
                continue
            with self._calls_lock:
                waiting = self._answers.get(message.get("id"))
            if waiting is not None:
                waiting.append(message)
                waiting[0].release()
        # The host closed its end: calls cannot be answered any more, and a long-running sensor stops.
        self._closed = True
        with self._calls_lock:
            for waiting in self._answers.values():
                waiting.append({"ok": False, "error": "the host closed the channel"})
                waiting[0].release()
        if self.on_stop is not None:
            self.on_stop()

    def call(self, message):
        answered = _thread.allocate_lock()
        answered.acquire()
        waiting = [answered]
        with self._calls_lock:
            self._next_id += 1
            call_id = self._next_id
            self._answers[call_id] = waiting
            if self._closed:
                waiting.append({"ok": False, "error": "the host closed the channel"})
                answered.release()
        message["t"] = "call"
        message["id"] = call_id
        self.send(message)
        answered.acquire()
        with self._calls_lock:
            del self._answers[call_id]
        answer = waiting[1]
        if not answer.get("ok"):
            raise HostError(answer.get("error") or "the host refused the call", bool(answer.get("refused")))
        return answer.get("value")

    # What the services call.
    def datastore(self, call, class_name):
        return self.call({"op": "datastore", "class": class_name, "call": call})

    def dispatch(self, trigger, payload, trace_tag):
        try:
            self.call({"op": "dispatch", "trigger": trigger, "payload": payload, "trace_tag": trace_tag})
        except HostError as error:
            if not error.refused:
                # The bus or the audit failed: raise, so the poll fails and keeps the state it started with.
                raise
            # The host has logged the refusal with its reason; StackStorm drops an invalid payload and goes on too.
        return None


class Capture(object):
    """Descriptors 1 and 2 as pipes whose content is forwarded to the host as it comes."""

    def __init__(self, channel):
        self._channel = channel
        self._threads = [self._pipe(1, "stdout"), self._pipe(2, "stderr")]

    def _pipe(self, fd, stream):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        running = _thread.allocate_lock()
        running.acquire()
        _thread.start_new_thread(self._forward, (read_end, stream, running))
        return running

    def _forward(self, read_end, stream, running):
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            while True:
                data = os.read(read_end, 65536)
                text = decoder.decode(data, final=not data)
                if text:
                    self._channel.send({"t": "out", "stream": stream, "text": text})
                if not data:
                    return
        finally:
            running.release()

    def close(self):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        for running in self._threads:
            running.acquire(True, _DRAIN_SECONDS)


def _end(channel, capture, code, message=None):
    capture.close()
    if isinstance(message, str):
        channel.send_line(message)
    elif message is not None:
        channel.send(message)
    os._exit(code)


def _exit_code(exit):
    code = exit.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    # sys.exit("message") prints the message and exits with 1.
    sys.stderr.write(str(code) + "\n")
    return 1


def _load_module(path):
    import _frozen_importlib
    import _frozen_importlib_external

    # As StackStorm's loader: the module's folder goes last on the path (so a pack file named like a standard module,
    # json.py, does not hide it), and the module is not registered under its bare name.
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.append(folder)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = _frozen_importlib_external.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError('"%s" is not a Python module' % path)
    module = _frozen_importlib.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resolve(path):
    # Paths come relative to the packs folder, which STORM_PACKS_ROOT names where this runs (the Python host in
    # Azure has its own copy of the packs).
    root = os.environ.get("STORM_PACKS_ROOT")
    return os.path.join(root, path) if root and not os.path.isabs(path) else path


def _set_path(job):
    here = os.path.dirname(os.path.abspath(__file__))
    job["file"] = _resolve(job["file"])
    # The pack's libraries come first, as StackStorm puts them on PYTHONPATH; this program's folder (the st2
    # stand-ins, where StackStorm's own site-packages would be) after the interpreter's; the module's folder last.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path[0:0] = [p for p in (_resolve(p) for p in job.get("paths", [])) if os.path.isdir(p)]
    sys.path.append(here)


def _new_action(cls, config, action_service):
    # As StackStorm: an older action whose __init__ takes no action_service gets it assigned after.
    try:
        return cls(config=config, action_service=action_service)
    except TypeError as error:
        if "unexpected keyword argument 'action_service'" not in str(error):
            raise
    action = cls(config=config)
    action.action_service = action_service
    return action


def _setup_logging(level_name, handler_factory):
    def setup(logging):
        level = 100 if level_name == "AUDIT" else getattr(logging, level_name or "DEBUG", logging.DEBUG)
        handler = handler_factory(logging)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)

    import st2common.log

    st2common.log._setup = setup


def _stderr_handler(logging):
    # StackStorm's python runner logs an action's logger to its stderr in this format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(module)s [-] %(message)s"))
    return handler


def _host_handler(channel):
    def make(logging):
        class HostHandler(logging.Handler):
            def emit(self, record):
                try:
                    channel.send({"t": "log", "level": record.levelname, "message": self.format(record)})
                except Exception:
                    self.handleError(record)

        handler = HostHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        return handler

    return make


def _action_class(module, path):
    from st2common.runners.base_action import Action

    # StackStorm's register_plugin: the classes the module itself defines, by name, that implement run() (the base's
    # abstract method); the action is the first of them. A base class without run() is passed over.
    def implements_run(cls):
        run = getattr(cls, "run", None)
        return type(run).__name__ == "function" and run is not Action.run

    found = [value for _, value in sorted(vars(module).items())
             if isinstance(value, type) and value.__module__ == module.__name__ and implements_run(value)]
    if not found:
        raise LookupError('"%s" has no action class: it defines no class that implements run() '
                          "(a subclass of st2common.runners.base_action.Action)" % path)
    return found[0]


def _error_text(error):
    return "%s: %s" % (type(error).__name__, error)


def run_action(job, channel, capture):
    path = job["file"]
    _setup_logging(job.get("log_level"), _stderr_handler)
    try:
        module = _load_module(path)
        cls = _action_class(module, path)
        from storm_services import ActionService

        action = _new_action(cls, job.get("config") or {}, ActionService(channel, cls.__name__))
    except SystemExit as exit:
        _end(channel, capture, _exit_code(exit))
    except BaseException as error:
        import traceback

        traceback.print_exc()
        _end(channel, capture, 1, {"t": "error", "error": 'cannot load the action from "%s": %s' % (path, _error_text(error))})

    try:
        output = action.run(**(job.get("parameters") or {}))
    except SystemExit as exit:
        _end(channel, capture, _exit_code(exit))
    except BaseException:
        import traceback

        traceback.print_exc()
        _end(channel, capture, 1)

    status = None
    if isinstance(output, tuple) and len(output) == 2:
        status, output = output
        # As StackStorm: None is "no status given"; anything else but a bool is an error.
        if status is not None and not isinstance(status, bool):
            sys.stderr.write("Status returned from the action run() method must either be True or False, got: %s\n" % (status,))
            _end(channel, capture, 220)
    try:
        encoded = dumps(output, default=to_json)
    except (TypeError, ValueError, RecursionError):
        # Left: a circular structure or dict keys JSON cannot hold; StackStorm falls back to the text too.
        encoded = dumps(str(output))
    _end(channel, capture, 0, '{"t": "result", "status": %s, "result": %s}' % (dumps(status), encoded))


def _attributes(sensor):
    return {name: value for name, value in vars(sensor).items()
            if name not in _SENSOR_FRAMEWORK_ATTRIBUTES and not callable(value)}


def _keepable(value):
    """(JSON text, None) when value comes back equal from JSON, else (None, why not). Never raises."""
    try:
        text = dumps(value)
        if loads(text) == value:
            return text, None
        # {101: True} would come back as {"101": True}, a tuple as a list, NaN as null: a different value.
        return None, "it would not come back equal from JSON (dict keys that are not strings, a tuple, a NaN?)"
    except Exception as error:
        return None, _error_text(error)


def _fresh(sensor):
    # The value and its JSON text (None when it has none) right after setup(): the text catches in-place changes.
    return {name: (value, _keepable(value)[0]) for name, value in _attributes(sensor).items()}


def _state(fresh, kept, sensor, log):
    """The attributes a poll ever changed from their fresh value, as JSON keeps them (see PythonSensorRunner)."""
    state = {}
    for name, value in _attributes(sensor).items():
        before, before_text = fresh.get(name, (None, None))
        text, why = _keepable(value)
        if text is not None:
            if name in kept or name not in fresh or before_text != text:
                state[name] = loads(text)
        elif name in kept or name not in fresh or before is not value or before_text is not None:
            # State the poll changed but JSON cannot keep: say so, rather than lose it silently every poll.
            log("WARNING", "attribute %s is not kept for the next poll: %s" % (name, why))
    return state


def _interval(sensor):
    try:
        seconds = float(sensor.get_poll_interval())
    except (TypeError, ValueError, AttributeError):
        return None
    return seconds if seconds == seconds and seconds not in (float("inf"), float("-inf")) else None


def run_sensor(job, channel, capture):
    path = job["file"]
    class_name = job["class_name"]
    _setup_logging(job.get("log_level") or "INFO", _host_handler(channel))
    try:
        from st2reactor.sensor.base import BaseSensor, PollingSensor

        module = _load_module(path)
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, BaseSensor)):
            raise LookupError('"%s" has no sensor class %s (a subclass of st2reactor.sensor.base.Sensor or PollingSensor)' % (path, class_name))
        polling = issubclass(cls, PollingSensor)
        if job["operation"] == "poll" and not polling:
            _end(channel, capture, 0, {"t": "done", "long_running": True})

        from storm_services import SensorService

        arguments = {"sensor_service": SensorService(channel, class_name), "config": job.get("config") or {}}
        if polling and job.get("poll_interval"):
            arguments["poll_interval"] = job["poll_interval"]
        sensor = cls(**arguments)
        sensor.setup()
        for trigger in job.get("triggers") or []:
            sensor.add_trigger(trigger)

        if job["operation"] == "poll":
            fresh = _fresh(sensor)
            fresh_interval = _interval(sensor)
            kept = dict(job.get("state") or {})
            # An interval set_poll_interval kept holds while the sensor's own (its YAML's, its class's) is the one it
            # was set over; changed since, the new one holds, as a StackStorm sensor restarted with the new YAML.
            if kept.pop(_KEPT_INTERVAL_FROM, None) != fresh_interval:
                kept.pop("_poll_interval", None)
            for name, value in kept.items():
                setattr(sensor, name, value)
            try:
                sensor.poll()
            finally:
                sensor.cleanup()
            # The state: attributes a poll ever changed from their fresh value (see PythonSensorRunner).
            def log(level, message):
                channel.send({"t": "log", "level": level, "message": message})

            state = _state(fresh, kept, sensor, log)
            if "_poll_interval" in state:
                state[_KEPT_INTERVAL_FROM] = fresh_interval
            # The interval the sensor now asks for (its YAML's, its class's default, or set_poll_interval's): the next
            # poll is scheduled by it, as StackStorm's PollingSensor sleeps get_poll_interval() between polls.
            _end(channel, capture, 0, {"t": "done", "state": state, "poll_interval": _interval(sensor)})

        def stop():
            try:
                sensor.cleanup()
            finally:
                _end(channel, capture, 0, {"t": "done", "state": {}})

        channel.on_stop = stop
        sensor.run()
        sensor.cleanup()
        _end(channel, capture, 0, {"t": "done", "state": {}})
    except SystemExit as exit:
        code = _exit_code(exit)
        _end(channel, capture, code, {"t": "error", "error": "the sensor exited with code %s" % code})
    except BaseException as error:
        import traceback

        traceback.print_exc()
        _end(channel, capture, 1, {"t": "error", "error": _error_text(error)})


def main():
    channel = Channel()
    capture = Capture(channel)
    job = channel.read_job()
    channel.listen()
    _set_path(job)
    if job.get("mode") == "sensor":
        run_sensor(job, channel, capture)
    else:
        run_action(job, channel, capture)


if __name__ == "__main__":
    main()
