"""Bounded YAML and file reading: odd inputs give a clear error or a marker, never a traceback."""

from __future__ import annotations

import pytest

from exporter.yamlsafe import (
    MAX_DEPTH,
    InputError,
    InvalidScalar,
    load_yaml,
    read_bounded,
)

SECRET = "PLANTEDsecretKEY0123456789abcdefDONOTLEAK"


class TestReadBounded:
    def test_dev_zero_is_refused_quickly(self):
        """/dev/zero (endless, size 0 in stat) is refused after limit + 1 bytes."""
        with pytest.raises(InputError, match="larger than 4 KiB"):
            read_bounded("/dev/zero", 4096)

    def test_file_of_exactly_the_limit(self, tmp_path):
        """A file of exactly the limit is read whole."""
        path = tmp_path / "f"
        path.write_bytes(b"x" * 10)
        assert read_bounded(path, 10) == b"x" * 10
        path.write_bytes(b"x" * 11)
        with pytest.raises(InputError, match="larger than 10 bytes"):
            read_bounded(path, 10)


class TestStructure:
    def test_deep_flow_nesting(self):
        """20,000 nested flow lists give a nesting error with a position, not RecursionError."""
        with pytest.raises(InputError, match=f"line 1, column .*nesting deeper than {MAX_DEPTH}"):
            load_yaml("a: " + "[" * 20_000 + "]" * 20_000)

    def test_deep_block_nesting(self):
        """Deep block sequences are bounded the same way."""
        with pytest.raises(InputError, match="nesting deeper than"):
            load_yaml("- " * 5_000 + "x")

    def test_nesting_up_to_the_bound_loads(self):
        """Nesting within the bound still loads."""
        depth = MAX_DEPTH - 1
        assert load_yaml("[" * depth + "]" * depth) is not None

    @pytest.mark.parametrize("text", ["a: 1\na: 2\n", "{a: 1, a: 2}"])
    def test_duplicate_keys(self, text):
        """A duplicate mapping key is refused (PyYAML would silently keep the last one)."""
        with pytest.raises(InputError, match="duplicate key 'a' \\(first on line 1\\)"):
            load_yaml(text)

    def test_merge_keys_may_be_overridden(self):
        """A key overriding one merged in with << is not a duplicate."""
        assert load_yaml("b: &x {a: 1}\nc:\n  <<: *x\n  a: 2\n") == {"b": {"a": 1}, "c": {"a": 2}}

    def test_syntax_error_has_a_position(self):
        """A syntax error names line and column."""
        with pytest.raises(InputError, match="line 2, column 1: invalid YAML"):
            load_yaml("a: [\n")

    def test_control_character(self):
        """A NUL byte is reported by code point and offset, not quoted."""
        with pytest.raises(InputError, match="unacceptable character #x0000 at offset 3"):
            load_yaml("a: \0")

    def test_unknown_tag_stays_an_error(self):
        """Python object tags are refused, not constructed."""
        with pytest.raises(InputError, match="could not determine a constructor"):
            load_yaml("a: !!python/object/apply:os.system [true]")


class TestScalars:
    @pytest.mark.parametrize(
        ("text", "tag"),
        [
            (f"a: !!float {SECRET}", "!!float"),
            ("a: !!int 12x", "!!int"),
            ("a: !!int ''", "!!int"),
            ("a: !!timestamp 2024-13-45", "!!timestamp"),
            ("a: !!timestamp soon", "!!timestamp"),
            ("a: !!bool maybe", "!!bool"),
            ("a: " + "1" * 5_000, "!!int"),  # past Python's 4,300-digit limit
        ],
    )
    def test_unconstructible_scalar_becomes_a_marker(self, text, tag):
        """A scalar its tag cannot construct becomes an InvalidScalar that keeps no text."""
        value = load_yaml(text)["a"]  # type: ignore[index]
        assert isinstance(value, InvalidScalar)
        assert value.describe().endswith(f"{tag} value (line 1, column 4)")
        assert SECRET not in repr(value)
        assert not hasattr(value, "__dict__")  # nothing else stored on it

    def test_huge_hex_integer_is_out_of_range(self):
        """A hexadecimal integer past 64 bits (which Python could not print) is marked."""
        value = load_yaml("a: !!int 0x" + "f" * 10_000)["a"]  # type: ignore[index]
        assert isinstance(value, InvalidScalar)
        assert value.describe().startswith("an out-of-range !!int value")

    def test_aliases_to_a_marker_agree(self):
        """An alias to an unconstructible scalar yields the same marker."""
        data = load_yaml("a: &x !!float abc\nb: *x\n")
        assert data["a"] is data["b"]  # type: ignore[index]

    def test_ordinary_values_are_untouched(self):
        """Valid values load as PyYAML's safe loader loads them."""
        assert load_yaml("a: 1\nb: 2.5\nc: .inf\nd: x\ne: null\nf: true\n") == {
            "a": 1,
            "b": 2.5,
            "c": float("inf"),
            "d": "x",
            "e": None,
            "f": True,
        }
