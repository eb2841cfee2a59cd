"""genie._C.parse_phases: the runtime's phase-spec parser seen from Python.

Python must accept and refuse exactly what srun --genie-phases and
genie-launch --phases do, with the same one-line "genie: " messages, raised
as ValueError.
"""
import pytest

from genie import _C

LLM = ["prefill", "decode"]


def test_good_spec():
    assert _C.parse_phases("prefill:8,decode:1") == [("prefill", 8), ("decode", 1)]


def test_good_specs_with_limits():
    assert _C.parse_phases("llm_prefill:4096") == [("llm_prefill", 4096)]
    assert _C.parse_phases("decode:1,prefill:8", allowed=LLM) == [("decode", 1), ("prefill", 8)]
    assert _C.parse_phases("prefill:8,decode:1", LLM, 9) == [("prefill", 8), ("decode", 1)]
    assert _C.parse_phases("vision:3", max_slices=0) == [("vision", 3)]


def test_spare_slices():
    """slices is the total (spares included) unless spares=True asks for
    (name, total, spares); "+0" is no spare; limits apply to the totals."""
    assert _C.parse_phases("prefill:1,decode:2+1") == [("prefill", 1), ("decode", 3)]
    assert _C.parse_phases("prefill:1,decode:2+1", spares=True) == [("prefill", 1, 0),
                                                                    ("decode", 3, 1)]
    assert _C.parse_phases("decode:2+1", spares=False) == [("decode", 3)]
    assert _C.parse_phases("decode:1+0", spares=True) == [("decode", 1, 0)]
    assert _C.parse_phases("decode:4095+1", spares=True) == [("decode", 4096, 1)]
    assert _C.parse_phases("decode:2+1", LLM, 3, True) == [("decode", 3, 1)]
    with pytest.raises(ValueError, match="more than the 3 available"):
        _C.parse_phases("prefill:1,decode:2+1", max_slices=3)
    with pytest.raises(ValueError, match="unknown phase 'vision'"):
        _C.parse_phases("vision:1+1", allowed=LLM, spares=True)


@pytest.mark.parametrize(
    "spec, allowed, max_slices, needle",
    [
        ("", None, 0, "empty --genie-phases spec"),
        ("prefill", None, 0, "has no slice count; write prefill:N"),
        ("prefill:", None, 0, "nothing after ':'"),
        ("prefill:x", None, 0, "not a plain decimal number"),
        ("prefill:-1", None, 0, "negative slice count"),
        ("prefill:+1", None, 0, "no slice count before '+'"),
        ("decode:+1", None, 0, "phase 'decode' has no slice count before '+'"),
        ("decode:1+", None, 0, "nothing after '+'"),
        ("decode:1+x", None, 0, "spare count '1+x', which is not a plain decimal number"),
        ("decode:1+-1", None, 0, "bad character '-'"),
        ("decode:1+1+1", None, 0, "bad character '+'"),
        ("decode:0+1", None, 0, "has 0 slices"),
        ("decode:4096+1", None, 0, "too large"),
        ("decode:1+99999999999", None, 0, "too large"),
        ("decode:1+4294967297", None, 0, "too large"),
        ("prefill:0", None, 0, "has 0 slices"),
        ("prefill:99999999999", None, 0, "too large"),
        ("prefill:4294967297", None, 0, "too large"),
        (":3", None, 0, "no phase name"),
        ("prefill:2,prefill:1", None, 0, "appears more than once"),
        ("vision:1", LLM, 0, "unknown phase 'vision'; allowed phases: prefill, decode"),
        ("prefill:8,decode:2", None, 9, "more than the 9 available"),
        ("prefill:8,", None, 0, "ends with a comma"),
        ("prefill:8,,decode:1", None, 0, "two commas in a row"),
        (",prefill:8", None, 0, "starts with a comma"),
        ("prefill: 8", None, 0, "bad character ' '"),
        ("Prefill:8", None, 0, "bad character 'P'"),
        ("a" * 32 + ":1", None, 0, "is 32 bytes long"),
        (",".join(f"p{i}:1" for i in range(17)), None, 0, "more than 16 entries"),
        ("prefill:8\n", None, 0, "bad character \\x0a"),
        ("prefill:8\x00decode:1", None, 0, "NUL character"),
    ],
)
def test_bad_spec(spec, allowed, max_slices, needle):
    with pytest.raises(ValueError) as info:
        _C.parse_phases(spec, allowed, max_slices)
    msg = str(info.value)
    assert msg.startswith("genie:")
    assert "\n" not in msg
    assert needle in msg


def test_bad_arguments():
    with pytest.raises(TypeError):
        _C.parse_phases("prefill:1", allowed=["prefill", 3])
    with pytest.raises(TypeError):
        _C.parse_phases("prefill:1", allowed=5)
    with pytest.raises(TypeError):
        _C.parse_phases(b"prefill:1")
    with pytest.raises(ValueError, match="^genie: max_slices"):
        _C.parse_phases("prefill:1", max_slices=-1)
