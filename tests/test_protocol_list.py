"""The protocols are one list (`dra.settings.PROTOCOLS`); `demo` and `pocket` are settings files, not protocols."""

from __future__ import annotations

import pytest

from dra import settings as S
from dra.protocols import ablate


def test_one_protocol_list():
    assert S.PROTOCOLS == ("base2new", "cross_dataset", "domain_gen")
    assert S.METHOD_BLOCKS == ("all", "base2new", "cross_dataset", "domain_gen")
    assert S.protocols_text() == "base2new, cross_dataset or domain_gen"
    assert S.protocols_text(tables=True) == "base2new (Table 1), cross_dataset (Table 2) or domain_gen (Table 3)"
    assert set(S.packaged_settings()) == {"base2new", "cross_dataset", "domain_gen", "demo", "pocket"}


@pytest.mark.parametrize("name", ["pocket", "demo"])
def test_a_settings_file_name_is_not_a_protocol(name):
    with pytest.raises(S.SettingsError, match="protocol"):
        S.load_settings("base2new", {"protocol": name})
    with pytest.raises(ValueError, match="dra ablate runs over"):
        ablate.check_suites({"protocol": name}, ["table4"])


def test_demo_and_pocket_load_as_base2new():
    for name in ("demo", "pocket"):
        assert S.load_settings(name).protocol == "base2new"
