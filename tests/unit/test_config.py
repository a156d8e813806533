"""Config validation and from_env."""
import pytest

from msgr import Config, ConfigError


def test_defaults_follow_ceph():
    c = Config()
    assert (c.io_threads, c.dispatch_threads, c.ms_initial_backoff, c.ms_max_backoff) == (3, 1, 0.2, 15.0)
    assert c.ms_connection_ready_timeout == 10.0 and c.ms_connection_idle_timeout == 900.0
    assert c.ms_dispatch_throttle_bytes == 100 << 20 and c.ms_tcp_nodelay


@pytest.mark.parametrize("field,value", [
    ("io_threads", 0), ("dispatch_threads", -1), ("ms_initial_backoff", -1.0),
    ("ms_inject_delay_probability", 1.5), ("ms_inject_delay_type", "osd bogus"),
    ("io_threads", "2"), ("ms_tcp_nodelay", 1), ("ms_max_segment_bytes", 0),
    ("ms_max_backoff", float("nan")), ("ms_connection_idle_timeout", float("nan")),
])
def test_bad_values_name_the_option(field, value):
    with pytest.raises(ConfigError) as ei:
        Config(**{field: value})
    assert ei.value.option == field and field in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_max_backoff_below_initial():
    with pytest.raises(ConfigError, match="ms_max_backoff"):
        Config(ms_initial_backoff=2.0, ms_max_backoff=1.0)


def test_from_env():
    c = Config.from_env({"MSGR_IO_THREADS": "2", "MSGR_MS_TCP_NODELAY": "false",
                         "MSGR_MS_MAX_BACKOFF": "1.5", "MSGR_MS_INJECT_DELAY_TYPE": "osd client"},
                        dispatch_threads=0)
    assert (c.io_threads, c.ms_tcp_nodelay, c.ms_max_backoff, c.dispatch_threads) == (2, False, 1.5, 0)


@pytest.mark.parametrize("var,raw", [("MSGR_IO_THREADS", "two"), ("MSGR_MS_TCP_NODELAY", "maybe"),
                                     ("MSGR_MS_MAX_BACKOFF", "nan")])
def test_from_env_bad(var, raw):
    with pytest.raises(ConfigError) as ei:
        Config.from_env({var: raw})
    assert ei.value.option == var[5:].lower()
