import shutil

from st2reactor.sensor.base import PollingSensor


class DiskSpaceSensor(PollingSensor):
    """Checks each configured path's filesystem; alerts once when it crosses the threshold, again after it recovers."""

    def __init__(self, sensor_service, config=None, poll_interval=30):
        super(DiskSpaceSensor, self).__init__(sensor_service=sensor_service, config=config, poll_interval=poll_interval)
        self._logger = self.sensor_service.get_logger(name=self.__class__.__name__)

    def setup(self):
        self._paths = self.config.get("disk_paths", ["/"])
        self._threshold = float(self.config.get("disk_threshold", 90))

    def poll(self):
        for path in self._paths:
            try:
                usage = shutil.disk_usage(path)
            except OSError as error:
                self._logger.warning("cannot read %s: %s", path, error)
                continue

            percent = round(100.0 * usage.used / usage.total, 1)
            # The datastore remembers which paths were alerted on, across polls and restarts.
            key = "alerted." + (path.strip("/").replace("/", ".") or "root")
            alerted = self.sensor_service.get_value(key) is not None
            if percent >= self._threshold and not alerted:
                self._logger.info("%s is %s%% full", path, percent)
                self.sensor_service.dispatch(trigger="examples.disk_space_low",
                                             payload={"path": path, "percent": percent, "threshold": self._threshold})
                self.sensor_service.set_value(key, str(percent))
            elif percent < self._threshold and alerted:
                self.sensor_service.delete_value(key)
