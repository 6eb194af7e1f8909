"""The base classes of Python sensors, with StackStorm's methods and constructor arguments."""

__all__ = ["Sensor", "PollingSensor"]


class BaseSensor(object):
    def __init__(self, sensor_service, config=None):
        self._sensor_service = sensor_service
        self.sensor_service = sensor_service
        self._config = config or {}
        self.config = self._config

    def setup(self):
        pass

    def run(self):
        pass

    def cleanup(self):
        pass

    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass


class Sensor(BaseSensor):
    """A sensor whose run() goes on until it is stopped (a listener, a consumer)."""

    def run(self):
        raise NotImplementedError("the sensor class must implement run()")


class PollingSensor(BaseSensor):
    """A sensor that poll() is called on every poll_interval seconds."""

    def __init__(self, sensor_service, config=None, poll_interval=5):
        super(PollingSensor, self).__init__(sensor_service=sensor_service, config=config)
        self._poll_interval = poll_interval

    def poll(self):
        raise NotImplementedError("the sensor class must implement poll()")

    def run(self):
        # Only for code that drives the sensor itself: ServerlessStorm calls poll() once per process.
        import time

        while True:
            self.poll()
            time.sleep(self._poll_interval)

    def get_poll_interval(self):
        return self._poll_interval

    def set_poll_interval(self, poll_interval):
        self._poll_interval = poll_interval
