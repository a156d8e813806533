"""BufferPool: reuse only when nothing uses a buffer any more; bounded; size rule."""
from msgr.bufpool import BufferPool


def test_free_buffer_comes_back_in_its_size_range():
    pool = BufferPool()
    pool.give(bytearray(1000))
    assert pool.take(2000) is None            # too small for the request
    assert pool.take(400) is None             # more than twice the request: not for small use
    b = pool.take(600)
    assert b is not None and len(b) == 1000 and pool.held() == 0


def test_live_view_or_reference_blocks_reuse():
    pool = BufferPool()
    view = memoryview(bytearray(1000))[10:20]
    pool.give(view.obj)
    assert pool.take(1000) is None            # a slice of a view is still alive
    del view
    assert pool.take(1000) is not None
    held = bytearray(1000)
    pool.give(held)
    assert pool.take(1000) is None            # someone still refers to it
    del held
    assert pool.take(1000) is not None


def test_bounded_count_and_size():
    pool = BufferPool(max_buffers=2, max_bytes=4096)
    pool.give(bytearray(8192))                # too large to keep
    assert pool.held() == 0
    for _ in range(5):
        pool.give(bytearray(4096))
    assert pool.held() == 2
