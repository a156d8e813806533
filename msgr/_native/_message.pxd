# The compiled Message's layout, for the other compiled modules (cimport).
cdef class Message:
    cdef public object type, front, middle, data, priority, tid, version, compat_version
    cdef public object seq, connection, source, recv_stamp, data_off, _throttle, _queued_at
