"""CpuHeadroom: stall share between samples, lazy sampling, no PSI -> never spare."""
import pytest

from msgr.reactor.headroom import CpuHeadroom, parse_psi_some, read_cpu_pressure

PSI = (b"some avg10=11.40 avg60=11.13 avg300=10.21 total=2339186338\n"
       b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


class FakePsi:
    """Returns queued cumulative stall samples (microseconds) and counts reads."""

    def __init__(self, *samples):
        self.samples = list(samples)
        self.reads = 0

    def __call__(self):
        self.reads += 1
        return self.samples.pop(0)


def test_parse_psi_some():
    assert parse_psi_some(PSI) == 2339186338
    assert parse_psi_some(b"some total=5\n") == 5
    for bad in (b"", b"full avg10=0.00 total=7\n", b"some avg10=1.0\n", b"some total=x\n"):
        with pytest.raises(ValueError):
            parse_psi_some(bad)


def test_spare_follows_the_stall_share_between_samples():
    # samples at 0.0, 0.2, 0.4, 0.6 s; 10% of 0.2 s is 20,000 us
    psi = FakePsi(1_000, 1_000 + 5_000, 6_000 + 21_000, 27_000 + 19_000)
    h = CpuHeadroom(psi, max_stall=0.10, interval=0.1)
    assert not h.spare(0.0)            # one sample: no interval to judge yet
    assert h.spare(0.2)                # 2.5% stalled
    assert not h.spare(0.4)            # 10.5%: no headroom
    assert h.spare(0.6)                # 9.5%
    assert psi.reads == 4


def test_samples_at_most_once_per_interval():
    psi = FakePsi(0, 0)
    h = CpuHeadroom(psi, interval=0.1)
    h.spare(1.0)
    assert not h.spare(1.05)           # within the interval: the cached verdict
    assert psi.reads == 1
    assert h.spare(1.1)
    assert h.spare(1.15) and psi.reads == 2


def test_unreadable_pressure_is_never_spare_and_not_retried():
    psi = FakePsi(None, 0, 0)
    h = CpuHeadroom(psi)
    assert not h.spare(0.0)
    assert not h.spare(10.0)
    assert psi.reads == 1


def test_read_cpu_pressure(tmp_path):
    f = tmp_path / "cpu"
    f.write_bytes(PSI)
    assert read_cpu_pressure(str(f)) == 2339186338
    assert read_cpu_pressure(str(tmp_path / "missing")) is None
    f.write_bytes(b"garbage\n")
    assert read_cpu_pressure(str(f)) is None
