"""v1 blkio statistics: which file group carries the numbers (BFQ debug, BFQ, CFQ, throttle), on a fake tree."""
from __future__ import annotations

from ocirun.cgroups.stats import v1_blkio, v1_stats

from .test_cgroups_helpers import touch

READ_WRITE = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\nTotal 4608\n"
IOS = "8:16 Read 3\n8:16 Write 1\nTotal 4\n"


def test_empty_bfq_falls_back_to_throttle(tmp_path):
    # this VM's layout: BFQ's files exist (the module is loaded) but no disk uses BFQ → "Total 0"
    d = str(tmp_path)
    touch(d, {"blkio.bfq.io_serviced_recursive": "Total 0\n", "blkio.bfq.io_service_bytes_recursive": "Total 0\n",
              "blkio.throttle.io_serviced_recursive": IOS, "blkio.throttle.io_service_bytes_recursive": READ_WRITE})
    assert v1_blkio(d) == {
        "ioServicedRecursive": [{"major": 8, "minor": 16, "op": "Read", "value": 3},
                                {"major": 8, "minor": 16, "op": "Write", "value": 1}],
        "ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 4096},
                                    {"major": 8, "minor": 0, "op": "Write", "value": 512},
                                    {"major": 8, "minor": 0, "op": "Sync", "value": 0}]}
    # in the events record minor 0 and the zero value are omitted (runc's omitempty)
    assert v1_stats({"blkio": d})["blkio"]["ioServiceBytesRecursive"][2] == {"major": 8, "op": "Sync"}


def test_non_recursive_throttle_files_are_the_last_resort(tmp_path):
    d = str(tmp_path)
    touch(d, {"blkio.throttle.io_serviced_recursive": "Total 0\n", "blkio.throttle.io_serviced": IOS,
              "blkio.throttle.io_service_bytes": READ_WRITE})
    got = v1_blkio(d)
    assert [e["value"] for e in got["ioServicedRecursive"]] == [3, 1]
    assert [e["value"] for e in got["ioServiceBytesRecursive"]] == [4096, 512, 0]


def test_bfq_in_use_wins_over_throttle(tmp_path):
    d = str(tmp_path)
    touch(d, {"blkio.bfq.io_serviced_recursive": IOS, "blkio.bfq.io_service_bytes_recursive": READ_WRITE,
              "blkio.throttle.io_serviced_recursive": "8:0 Read 999\n",
              "blkio.throttle.io_service_bytes_recursive": "8:0 Read 999\n"})
    got = v1_blkio(d)
    assert got["ioServicedRecursive"][0]["value"] == 3 and got["ioServiceBytesRecursive"][0]["value"] == 4096


def test_cfq_full_set(tmp_path):
    d = str(tmp_path)
    files = {"blkio.sectors_recursive": "8:0 16\n", "blkio.io_service_time_recursive": "8:0 Read 7\n",
             "blkio.io_wait_time_recursive": "8:0 Read 8\n", "blkio.io_merged_recursive": "8:0 Read 9\n",
             "blkio.io_queued_recursive": "8:0 Read 10\n", "blkio.time_recursive": "8:0 11\n",
             "blkio.io_serviced_recursive": IOS, "blkio.io_service_bytes_recursive": READ_WRITE}
    touch(d, files)
    got = v1_blkio(d)
    assert got["sectorsRecursive"] == [{"major": 8, "minor": 0, "op": "", "value": 16}]
    assert got["ioTimeRecursive"][0]["value"] == 11 and got["ioQueueRecursive"][0]["value"] == 10
    assert len(got) == 8


def test_group_in_use_stops_at_first_empty_file(tmp_path):
    # runc: a group whose first file has entries is the one; an empty later file ends the reading there
    d = str(tmp_path)
    touch(d, {"blkio.sectors_recursive": "8:0 16\n", "blkio.io_service_time_recursive": "Total 0\n",
              "blkio.throttle.io_serviced_recursive": IOS})
    assert v1_blkio(d) == {"sectorsRecursive": [{"major": 8, "minor": 0, "op": "", "value": 16}]}


def test_nothing_anywhere(tmp_path):
    assert v1_blkio(str(tmp_path)) == {}
