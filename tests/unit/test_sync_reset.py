"""ocirun.sync on a real socketpair: a stage that reports an error and exits before reading what the
parent sent last (CGROUP_JOINED) must still have its error read, not a "connection reset"."""

from ocirun import sync


def test_error_of_a_stage_that_exited_with_unread_messages_is_read():
    parent, stage = sync.pair()
    try:
        sync.send(parent, sync.CONFIG, spec={})
        sync.recv(stage, sync.CONFIG)
        sync.send(stage, sync.ERROR, msg="unable to apply caps: operation not permitted")
        sync.send(parent, sync.CGROUP_JOINED)  # the stage never reads it
        stage.close()  # exits: SEQPACKET reports ECONNRESET to the parent before the ERROR it queued
        try:
            sync.recv(parent, sync.PID)
        except sync.PeerError as e:
            assert str(e) == "unable to apply caps: operation not permitted"
        else:
            raise AssertionError("no error")
    finally:
        parent.close()


def test_a_stage_that_died_silently_is_still_eof():
    parent, stage = sync.pair()
    try:
        sync.send(parent, sync.CONFIG, spec={})
        stage.close()  # CONFIG unread: reset, then nothing
        try:
            sync.recv(parent)
        except sync.ProtocolError as e:
            assert "exited without reporting" in str(e)
        else:
            raise AssertionError("no error")
    finally:
        parent.close()
