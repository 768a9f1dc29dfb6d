"""Pure parts of `ocirun inspect`: mountinfo, capability masks, /proc status, the table."""
from ocirun import inspect as I

MOUNTINFO = (
    "22 1 254:0 / / ro,relatime shared:1 - ext4 /dev/vda rw\n"
    "23 22 0:5 /null /proc/keys rw,nosuid master:3 - tmpfs tmpfs rw,mode=755\n"
    "24 22 0:6 / /mnt/with\\040space rw unbindable - tmpfs my\\134src rw\n"
    "25 22 0:7 / /plain rw - proc proc rw\n"
)


def test_parse_mountinfo_fields_escapes_propagation():
    m = I.parse_mountinfo(MOUNTINFO)
    assert [x["mountPoint"] for x in m] == ["/", "/proc/keys", "/mnt/with space", "/plain"]
    assert m[0]["options"] == ["ro", "relatime"] and m[0]["propagation"] == "shared:1"
    assert m[1]["root"] == "/null" and m[1]["propagation"] == "master:3"
    assert m[2]["source"] == "my\\src" and m[2]["propagation"] == "unbindable"
    assert m[3]["propagation"] == "private" and m[3]["type"] == "proc" and m[3]["superOptions"] == ["rw"]


def test_cap_names_decodes_bits_and_unknown_ones():
    assert I.cap_names(0) == []
    assert I.cap_names((1 << 0) | (1 << 5)) == ["CAP_CHOWN", "CAP_KILL"]
    assert I.cap_names(1 << 63) == ["CAP_63"]


def test_masked_verification_from_mount_table():
    mounts = I.parse_mountinfo(MOUNTINFO)
    assert I._masked("/proc/keys", mounts, 0, "/proc")["how"] == "/dev/null"
    assert I._masked("/plain", mounts, 0, "/proc")["verified"] is False
    assert I._masked("/x", None, 0, "/proc") == {"path": "/x", "verified": None, "how": None}
    assert I._readonly("/", mounts, 0, "/proc")["verified"] is True
    assert I._readonly("/plain", mounts, 0, "/proc")["verified"] is False


def test_security_from_status_text():
    status = "Uid:\t0\t0\t0\t0\nCapEff:\t0000000000000021\nCapBnd:\t0000000000000021\nNoNewPrivs:\t1\n" \
             "Seccomp:\t2\nSeccomp_filters:\t1\n"
    conf = {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["a", "b"]}, {"names": ["c"]}]}}}
    p = I._security(status, conf, "running")
    assert p["capabilities"]["effective"] == ["CAP_CHOWN", "CAP_KILL"] and p["uid"] == 0
    assert p["seccomp"] == {"mode": "filter", "filters": 1, "configured": True,
                            "defaultAction": "SCMP_ACT_ALLOW", "rules": 2, "syscalls": 3}
    assert p["noNewPrivileges"] is True and p["applied"] is True
    assert I._security(status, {}, "created")["applied"] is False
