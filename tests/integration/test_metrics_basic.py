"""The Prometheus exporter serves msgr's counters with the API.md names."""
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from msgr import EntityType, Message, Policy, metrics
from tests.conftest import Recorder, wait_for


def test_exporter_serves_counters(messengers):
    s = messengers("osd.7", policy=Policy.stateless_server(), bind=True, dispatcher=Recorder(reply=True))
    cd = Recorder()
    c = messengers(policy=Policy.lossy_client(), dispatcher=cd)
    conn = c.connect_to(EntityType.OSD, s.bound)
    for _ in range(5):
        conn.send_message(Message(1))
    for _ in range(5):
        cd.get()
    port = metrics.serve(0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.stop_servers()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    recv = sum(s.value for s in fams["msgr_messages_received"].samples
               if s.labels.get("entity") == "osd.7" and s.name.endswith("_total"))
    assert recv == 5
    for name in ("msgr_connections", "msgr_dispatch_queue_length", "msgr_bad_frames"):
        assert name in fams
